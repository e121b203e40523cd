//! The compose model, interpolation and dependency graph; a pure planner applied through the API client.
#![forbid(unsafe_code)]
