//! Test support shared by every crate's integration tests.
//!
//! - [`TestEnv`]: a fresh data root, run root, socket path, network-name prefix and leased
//!   subnet per test, torn down on drop (even on panic) by its [`Cleanup`].
//! - [`images`]: the busybox test image as a docker-archive or OCI layout, built once per
//!   test run and cached under the target dir.
//! - [`Registry`]: Debian's `docker-registry` on a free loopback port (plain, basic auth,
//!   TLS with a throwaway CA, token auth), killed and removed on drop.
//! - [`Cleanup`]: kills processes, unmounts, removes cgroups, veths, netns, nft tables.
//! - [`busybox_rootfs`]: populate a directory with Debian's busybox-static and its applet
//!   links, like Docker Hub's `busybox` image. [`TestDir`]: a temp dir removed on drop.
#![forbid(unsafe_code)]

pub mod cleanup;
mod env;
mod error;
pub mod images;
pub mod registry;
mod tempdir;

pub use berth_mkimage;
pub use berth_mkimage::{BUSYBOX_BIN, busybox_rootfs, busybox_rootfs_from};
pub use cleanup::Cleanup;
pub use env::{LEASE_DIR, SubnetLease, TestEnv, own_cgroup_dirs};
pub use error::Error;
pub use registry::{Flavor, Registry, Response};
pub use tempdir::TestDir;
