//! Ids and names, image references, ContainerSpec, the container state machine; no I/O.
#![forbid(unsafe_code)]
pub mod interactive;
pub mod mounts;
pub mod net;
pub mod reference;
pub mod run;
pub mod spec;
