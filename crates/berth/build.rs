//! The CLI is linked as a position-dependent executable: it starts for every command, and
//! a PIE's ~23,000 relative relocations (and the page faults of the pages they dirty) are
//! a good part of that start. Its code is still position-independent; only the
//! executable's own load address is fixed (as the Go-built docker CLI's). berthd and the
//! shim keep their own link settings.
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
