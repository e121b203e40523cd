//! Bridges, veths, IPAM, nftables in Berth's own table, published ports, embedded DNS.
#![forbid(unsafe_code)]
