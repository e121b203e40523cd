//! What the engine hands this crate: a network, an endpoint, port mappings.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// A bridge network as the engine stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// User-visible name (`bridge`, `app-net`).
    pub name: String,
    /// Full network id.
    pub id: String,
    /// Driver; only `bridge` is implemented.
    pub driver: String,
    /// The subnet.
    pub subnet: Ipv4Net,
    /// Gateway address (the bridge's address); the first host address when `None`.
    pub gateway: Option<Ipv4Addr>,
    /// Sub-range of the subnet that addresses are allocated from (`--ip-range`).
    pub ip_range: Option<Ipv4Net>,
    /// `--internal`: no masquerade, no traffic leaves the bridge.
    pub internal: bool,
    /// Labels (kept for the engine; not used by the data path).
    pub labels: BTreeMap<String, String>,
    /// Bridge device name (at most 15 bytes).
    pub bridge: String,
    /// MTU of the bridge and the veths; 1500 when `None`.
    pub mtu: Option<u32>,
}

impl NetworkConfig {
    /// The gateway: configured, or the subnet's first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway.unwrap_or_else(|| {
            let n = u32::from(self.subnet.network());
            Ipv4Addr::from(n + 1)
        })
    }

    /// The MTU in use.
    pub fn mtu(&self) -> u32 {
        self.mtu.unwrap_or(1500)
    }

    /// Check the fields that the kernel would otherwise reject with less helpful errors.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.driver != "bridge" {
            return Err(ConfigError::Driver(self.driver.clone()));
        }
        if self.bridge.is_empty() || self.bridge.len() > 15 || self.bridge.contains(['/', ' ']) {
            return Err(ConfigError::BridgeName(self.bridge.clone()));
        }
        if self.subnet.prefix_len() > 30 {
            return Err(ConfigError::SubnetTooSmall(self.subnet));
        }
        let gw = self.gateway();
        if !self.subnet.contains(&gw)
            || gw == self.subnet.network()
            || gw == self.subnet.broadcast()
        {
            return Err(ConfigError::Gateway {
                gateway: gw,
                subnet: self.subnet,
            });
        }
        if let Some(r) = self.ip_range
            && !self.subnet.contains(&r)
        {
            return Err(ConfigError::IpRange {
                range: r,
                subnet: self.subnet,
            });
        }
        Ok(())
    }
}

/// Invalid network or endpoint configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("unsupported network driver {0:?} (only \"bridge\")")]
    Driver(String),
    #[error("invalid bridge device name {0:?} (1 to 15 bytes, no '/' or space)")]
    BridgeName(String),
    #[error("subnet {0} is too small (at most /30)")]
    SubnetTooSmall(Ipv4Net),
    #[error("gateway {gateway} is not a host address of subnet {subnet}")]
    Gateway { gateway: Ipv4Addr, subnet: Ipv4Net },
    #[error("ip range {range} is not inside subnet {subnet}")]
    IpRange { range: Ipv4Net, subnet: Ipv4Net },
    #[error("invalid interface name {0:?} (1 to 15 bytes)")]
    Interface(String),
    #[error("invalid port mapping {spec:?}: {reason}")]
    Port { spec: String, reason: String },
}

/// A network namespace: by path (`/proc/<pid>/ns/net`, `/run/netns/<name>`) or by an open
/// file descriptor (kept open by the caller; not serializable).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum NetnsRef {
    /// Path to a namespace file.
    Path(PathBuf),
    /// An open namespace file.
    #[serde(skip)]
    Fd(Arc<OwnedFd>),
}

impl PartialEq for NetnsRef {
    fn eq(&self, other: &NetnsRef) -> bool {
        match (self, other) {
            (NetnsRef::Path(a), NetnsRef::Path(b)) => a == b,
            (NetnsRef::Fd(a), NetnsRef::Fd(b)) => a.as_raw_fd() == b.as_raw_fd(),
            _ => false,
        }
    }
}

impl Eq for NetnsRef {}

impl NetnsRef {
    /// A path that opens the namespace (for a descriptor, its `/proc/self/fd` entry, which any
    /// thread of this process can open).
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsRef::Path(p) => p.clone(),
            NetnsRef::Fd(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        }
    }
}

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One published port: `host_ip:host_port -> container_port/proto`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// Host address to listen on; all IPv4 addresses when `None`.
    pub host_ip: Option<Ipv4Addr>,
    /// Host port; must be non-zero here (the engine picks random ports before calling).
    pub host_port: u16,
    /// Port inside the container.
    pub container_port: u16,
    /// tcp or udp.
    pub protocol: Protocol,
}

impl PortMapping {
    /// Parse Docker's `-p` syntax: `[ip:][hostPort[-end]:]containerPort[-end][/tcp|udp]`.
    /// A range expands into one mapping per port. A missing host port gives host port 0
    /// (the caller picks one).
    pub fn parse(spec: &str) -> Result<Vec<PortMapping>, ConfigError> {
        let bad = |reason: &str| ConfigError::Port {
            spec: spec.to_owned(),
            reason: reason.to_owned(),
        };
        let (rest, protocol) = match spec.rsplit_once('/') {
            Some((r, "tcp")) => (r, Protocol::Tcp),
            Some((r, "udp")) => (r, Protocol::Udp),
            Some((_, p)) => return Err(bad(&format!("unknown protocol {p:?}"))),
            None => (spec, Protocol::Tcp),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (ip, host, ctr) = match parts.as_slice() {
            [c] => (None, None, *c),
            [h, c] => (None, Some(*h), *c),
            [ip, h, c] => (Some(*ip), if h.is_empty() { None } else { Some(*h) }, *c),
            _ => return Err(bad("too many ':'")),
        };
        let host_ip = match ip {
            None | Some("") => None,
            Some(s) => {
                match IpAddr::from_str(s).map_err(|_| bad(&format!("invalid host ip {s:?}")))? {
                    IpAddr::V4(v4) if v4.is_unspecified() => None,
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => return Err(bad("IPv6 host addresses are not supported")),
                }
            }
        };
        let range = |s: &str| -> Result<(u16, u16), ConfigError> {
            let (a, b) = s.split_once('-').unwrap_or((s, s));
            let a: u16 = a.parse().map_err(|_| bad(&format!("invalid port {a:?}")))?;
            let b: u16 = b.parse().map_err(|_| bad(&format!("invalid port {b:?}")))?;
            if b < a {
                return Err(bad("range end before its start"));
            }
            Ok((a, b))
        };
        let (c0, c1) = range(ctr)?;
        if c0 == 0 {
            return Err(bad("container port 0"));
        }
        let count = c1 - c0;
        let h0 = match host {
            None => None,
            Some(h) => {
                let (h0, h1) = range(h)?;
                if h1 - h0 != count {
                    return Err(bad("host and container ranges differ in length"));
                }
                Some(h0)
            }
        };
        Ok((0..=count)
            .map(|i| PortMapping {
                host_ip,
                host_port: h0.map_or(0, |h| h + i),
                container_port: c0 + i,
                protocol,
            })
            .collect())
    }
}

/// A container's attachment to one network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Full container id (rules are tagged with it).
    pub container_id: String,
    /// Container name, resolvable through the embedded DNS.
    pub name: String,
    /// The container's network namespace.
    pub netns: NetnsRef,
    /// Interface name inside the container (`eth0`).
    pub interface: String,
    /// `--ip`.
    pub requested_ip: Option<Ipv4Addr>,
    /// `--network-alias`.
    pub aliases: Vec<String>,
    /// `--mac-address`; Docker-style `02:42:<ip>` when `None`.
    pub mac: Option<[u8; 6]>,
    /// Published ports (host port non-zero).
    pub ports: Vec<PortMapping>,
}

/// What setup did, for the engine to store and show in `inspect`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointResult {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac: [u8; 6],
    /// Host side veth name.
    pub host_veth: String,
    /// Interface name inside the container.
    pub interface: String,
    pub ports: Vec<PortMapping>,
}

/// Docker's MAC for an IPv4 address: `02:42:a:b:c:d`.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_port_specs() {
        let m = PortMapping::parse("8080:80").unwrap();
        assert_eq!(
            m,
            vec![PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp
            }]
        );
        let m = PortMapping::parse("127.0.0.1:53:53/udp").unwrap();
        assert_eq!(m[0].host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(m[0].protocol, Protocol::Udp);
        let m = PortMapping::parse("9000-9002:80-82").unwrap();
        assert_eq!(
            m.iter()
                .map(|p| (p.host_port, p.container_port))
                .collect::<Vec<_>>(),
            vec![(9000, 80), (9001, 81), (9002, 82)]
        );
        let m = PortMapping::parse("80").unwrap();
        assert_eq!(m[0].host_port, 0);
        let m = PortMapping::parse("0.0.0.0::80").unwrap();
        assert_eq!((m[0].host_ip, m[0].host_port), (None, 0));
        assert!(
            PortMapping::parse("1-3:1-2")
                .unwrap_err()
                .to_string()
                .contains("differ in length")
        );
        assert!(
            PortMapping::parse("80/sctp")
                .unwrap_err()
                .to_string()
                .contains("sctp")
        );
        assert!(PortMapping::parse("x:80").is_err());
    }

    #[test]
    fn validates_network() {
        let mut n = NetworkConfig {
            name: "n".into(),
            id: "id".into(),
            driver: "bridge".into(),
            subnet: "10.1.2.0/24".parse().unwrap(),
            gateway: None,
            ip_range: None,
            internal: false,
            labels: BTreeMap::new(),
            bridge: "br-x".into(),
            mtu: None,
        };
        assert_eq!(n.gateway(), Ipv4Addr::new(10, 1, 2, 1));
        n.validate().unwrap();
        n.gateway = Some(Ipv4Addr::new(10, 1, 3, 1));
        assert!(matches!(n.validate(), Err(ConfigError::Gateway { .. })));
        n.gateway = None;
        n.bridge = "a-very-long-bridge-name".into();
        assert!(matches!(n.validate(), Err(ConfigError::BridgeName(_))));
        n.bridge = "b".into();
        n.driver = "macvlan".into();
        assert!(matches!(n.validate(), Err(ConfigError::Driver(_))));
    }

    #[test]
    fn docker_style_mac() {
        assert_eq!(
            format_mac(&mac_for(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
    }
}
