//! Harness for conformance tests in which real peers drive `berth-runc`.
//!
//! [`Dockerd`] starts a private Docker engine (Debian's `docker.io`): its own
//! `--data-root`, `--exec-root`, unix socket, pid file and `daemon.json`, with
//! `berth-runc` registered under `runtimes`, the cgroupfs driver and a
//! `cgroup-parent` below the test's own memory cgroup, and no bridge or iptables
//! rules. Dropping it removes every container, stops dockerd (and the
//! containerd it started) by pid, kills whatever is left in its cgroups,
//! unmounts what it mounted and removes its directories and cgroups.
#![forbid(unsafe_code)]

mod dockerd;

pub use dockerd::{Dockerd, DockerdOptions, Error, Run, berth_runc_path, ensure_docker_engine};
