//! Ids and names, image references, ContainerSpec, the container state machine; no I/O.
#![forbid(unsafe_code)]
pub mod reference;
pub mod spec;
