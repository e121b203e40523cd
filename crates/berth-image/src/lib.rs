//! Content-addressed blob store, manifests and configs, path-safe layer unpack, overlay snapshots, GC.
#![forbid(unsafe_code)]
