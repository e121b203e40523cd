//! Docker Engine API types, server routes for berthd and the client berth uses, hijacked
//! attach/exec streams.
//!
//! - [`server`]: the router berthd serves (`router`, `serve_unix`); [`handlers`] translate
//!   requests into [`berth_engine::Engine`] calls and nothing else.
//! - [`client`]: the HTTP-over-unix-socket client the `berth` CLI uses.
//! - [`query`], [`version`], [`jsonmessage`]: moby's conventions (booleans, filters,
//!   version prefixes, streamed JSON messages), shared by both sides.
#![forbid(unsafe_code)]

pub mod client;
pub mod containers;
pub mod error;
pub mod handlers;
pub mod jsonmessage;
pub mod query;
pub mod server;
pub mod units;
pub mod version;

pub use error::ApiError;
pub use server::{router, serve_unix};
