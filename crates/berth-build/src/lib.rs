//! Dockerfile parser, .dockerignore, build planner and cache keys; steps run through a trait the engine implements.
#![forbid(unsafe_code)]
