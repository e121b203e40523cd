//! Docker Engine API types, server routes for berthd and the client berth uses, hijacked attach/exec streams.
#![forbid(unsafe_code)]
