//! Compose and ContainerSpec to and from Kubernetes manifests (convert, play).
#![forbid(unsafe_code)]
