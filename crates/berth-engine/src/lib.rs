//! The core berthd wraps: store, lifecycle, ContainerSpec to OCI, volumes, logs, events, health checks, reconciliation.
#![forbid(unsafe_code)]
