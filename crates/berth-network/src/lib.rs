//! Bridges, veths, IPAM, nftables in Berth's own table, published ports, embedded DNS.
//!
//! The engine describes a network with [`NetworkConfig`] and a container's attachment with
//! [`Endpoint`]; a [`NetworkManager`] turns them into kernel state (bridge, veth pair, addresses,
//! routes, nftables rules in one table of ours, userland proxies for published ports) and tears
//! that state down again. Setup is purge-then-apply, teardown runs in reverse order, keeps going
//! after failures, treats "already gone" as success and reports every error at the end.
//!
//! The manager's methods block (netlink and `nft` run on short-lived threads inside the right
//! namespace); async callers use `spawn_blocking`. [`DnsServer::serve`] is the one entry point
//! that needs the caller's tokio runtime.
#![forbid(unsafe_code)]

pub mod config;
pub mod dns;
pub mod firewall;
pub mod ipam;
pub mod link;
pub mod manager;
pub mod netns;
pub mod proxy;
pub mod subnet;

pub use config::{Endpoint, EndpointResult, NetnsRef, NetworkConfig, PortMapping, Protocol};
pub use dns::{DnsServer, DnsServerHandle, DnsTable};
pub use firewall::Firewall;
pub use ipam::Ipam;
pub use manager::{Attached, DesiredNetwork, NetError, NetworkManager, SetupError, TeardownError};
pub use proxy::PortProxy;
pub use subnet::{SubnetPool, pick_subnet};
