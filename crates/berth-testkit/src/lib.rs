//! Test support shared by every crate's integration tests.
//!
//! - [`busybox_rootfs`]: populate a directory with Debian's busybox-static and its applet links,
//!   like Docker Hub's `busybox` image.
//! - [`TestDir`]: a temp dir removed on drop (even on panic).
#![forbid(unsafe_code)]

mod tempdir;

pub use berth_mkimage::{BUSYBOX_BIN, busybox_rootfs, busybox_rootfs_from};
pub use tempdir::TestDir;
