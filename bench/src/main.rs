#![forbid(unsafe_code)]
//! Side-by-side benchmarks; see bench/README.md.
fn main() {}
