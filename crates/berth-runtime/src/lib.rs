//! The OCI runtime as a library: namespaces, rootfs and mounts, devices, user/caps/rlimits/seccomp, pty, init.
//!
//! `unsafe` is denied here except in the clone module, which opts in.
//!
//! The flow follows runc's `create`/`start` split: [`Container::create`] clones the init
//! straight into its namespaces (clone3), maps ids, joins the cgroup, lets the init set
//! up the rootfs (reporting hook points and errors over a SEQPACKET socket as structured
//! [`InitError`]s), and leaves it blocked on `<root>/<id>/exec.fifo`;
//! [`Container::start`] reads the fifo and the init execs the user's process.

mod cgroup;
mod clone;
mod container;
pub mod error;
mod hooks;
mod init;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod state;
mod sync;

pub use container::{Container, CreateOpts, ExecOpts, exit_code_of};
pub use error::{Error, InitError, Result, Stage};
pub use state::{State, Status};

mod capnames;
pub use capnames::CAP_NAMES;
