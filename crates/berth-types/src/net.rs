//! The networking part of a [`ContainerSpec`](crate::spec::ContainerSpec): the networks a
//! container joins (Docker's `NetworkingConfig.EndpointsConfig`), published and exposed
//! ports, legacy links and the MAC address.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One network a container joins, with its per-network settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EndpointSpec {
    /// `--network-alias` / `Aliases`: extra DNS names on this network.
    pub aliases: Vec<String>,
    /// `--ip` / `IPAMConfig.IPv4Address`: a fixed address (empty: the allocator picks).
    pub ipv4_address: String,
    /// `--link` entries given for this network (`name[:alias]`), Docker's `Links`.
    pub links: Vec<String>,
    /// `--mac-address` / `MacAddress` (empty: derived from the address).
    pub mac_address: String,
}

/// Networking settings of a container besides its [`NetworkMode`](crate::spec::NetworkMode).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetSpec {
    /// Networks to join, by name (the network mode's own network is one of them).
    pub networks: BTreeMap<String, EndpointSpec>,
    /// `-p` entries as typed (`[ip:][host[-end]:]container[-end][/proto]`).
    pub publish: Vec<String>,
    /// `-P`: publish every exposed port on a random host port.
    pub publish_all: bool,
    /// `--expose` entries (`port[-end][/proto]`), added to the image's `EXPOSE`.
    pub expose: Vec<String>,
    /// Legacy `--link name[:alias]` (`HostConfig.Links`).
    pub links: Vec<String>,
    /// `--mac-address`.
    pub mac_address: String,
}

/// Splits a `--link` entry into (container, alias); Docker's `/name:/ctr/alias` form too.
pub fn parse_link(link: &str) -> (String, String) {
    let (name, alias) = link.split_once(':').unwrap_or((link, link));
    let name = name.trim_start_matches('/').to_owned();
    let alias = alias.rsplit('/').next().unwrap_or(alias).to_owned();
    (name, alias)
}

/// Parses an `--expose`/`ExposedPorts` entry `port[-end][/proto]` into (port, proto) pairs.
pub fn parse_expose(s: &str) -> Result<Vec<(u16, String)>, String> {
    let (ports, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if proto != "tcp" && proto != "udp" && proto != "sctp" {
        return Err(format!("invalid proto: {proto}"));
    }
    let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
    let a: u16 = a
        .parse()
        .map_err(|_| format!("invalid containerPort: {ports}"))?;
    let b: u16 = b
        .parse()
        .map_err(|_| format!("invalid containerPort: {ports}"))?;
    if a == 0 || b < a {
        return Err(format!(
            "invalid range specified for container port: {ports}"
        ));
    }
    Ok((a..=b).map(|p| (p, proto.clone())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_exposes_parse_like_docker() {
        assert_eq!(parse_link("db"), ("db".into(), "db".into()));
        assert_eq!(parse_link("db:database"), ("db".into(), "database".into()));
        assert_eq!(
            parse_link("/db:/web/database"),
            ("db".into(), "database".into())
        );
        assert_eq!(parse_expose("80").unwrap(), vec![(80, "tcp".to_owned())]);
        assert_eq!(
            parse_expose("53/udp").unwrap(),
            vec![(53, "udp".to_owned())]
        );
        assert_eq!(parse_expose("8000-8002").unwrap().len(), 3);
        assert!(
            parse_expose("x")
                .unwrap_err()
                .contains("invalid containerPort")
        );
        assert!(
            parse_expose("80/xyz")
                .unwrap_err()
                .contains("invalid proto")
        );
    }

    #[test]
    fn net_spec_serde_defaults() {
        let s: NetSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(s, NetSpec::default());
        let s: NetSpec =
            serde_json::from_str(r#"{"publish":["80"],"networks":{"n":{"aliases":["a"]}}}"#)
                .unwrap();
        assert_eq!(s.publish, vec!["80"]);
        assert_eq!(s.networks["n"].aliases, vec!["a"]);
    }
}
