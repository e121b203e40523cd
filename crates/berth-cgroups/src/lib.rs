//! cgroup v1 and v2 managers behind one trait: create, limits, freeze, kill, stats.
#![forbid(unsafe_code)]
