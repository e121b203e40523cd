//! The unsafe boundary: clone3, setns, pidfd, the mount API, pivot_root, fd passing.
#![allow(unsafe_code)] // the unsafe boundary: every block carries a `// SAFETY:` line
