//! The OCI runtime as a library: namespaces, rootfs and mounts, devices, user/caps/rlimits/seccomp, pty, init.
//!
//! `unsafe` is denied here except in the clone and fd modules, which opt in.
