//! Setup and teardown of networks and endpoints: the entry points the engine calls.

use std::fmt;
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::{ConfigError, Endpoint, EndpointResult, NetworkConfig, PortMapping, mac_for};
use crate::firewall::{self, Firewall, FirewallError, container_tag, network_tag};
use crate::ipam::{Ipam, IpamError};
use crate::link::{self, LinkError};
use crate::netns::{self, NetnsError};
use crate::proxy::{PortProxy, ProxyError};

/// Anything that can go wrong while plumbing a network.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("failed to open container network namespace {path:?}: {source}")]
    ContainerNetns {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to enable ip forwarding: {0}")]
    IpForward(std::io::Error),
    #[error("failed to enable route_localnet on bridge {bridge}: {source}")]
    RouteLocalnet {
        bridge: String,
        source: std::io::Error,
    },
}

/// The error type of setup.
pub type SetupError = NetError;

/// Every error a teardown met; it kept going after each of them.
#[derive(Debug)]
pub struct TeardownError(pub Vec<NetError>);

impl fmt::Display for TeardownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "teardown met {} error(s): ", self.0.len())?;
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for TeardownError {}

/// A container attached to a network.
#[derive(Debug)]
pub struct Attached {
    /// What to record and show.
    pub result: EndpointResult,
    /// The userland proxy holding the published ports; dropping it frees them, so the caller
    /// keeps it as long as the container runs.
    pub proxy: Option<PortProxy>,
}

/// One network's desired state, for [`NetworkManager::reload`].
#[derive(Clone, Debug)]
pub struct DesiredNetwork {
    pub network: NetworkConfig,
    /// (container id, what its setup returned)
    pub endpoints: Vec<(String, EndpointResult)>,
}

/// Plumbs networks in one "host" namespace (the caller's own when `host_netns` is `None`; a
/// test namespace in tests) with one nftables table and one IPAM state.
#[derive(Debug)]
pub struct NetworkManager {
    host_netns: Option<PathBuf>,
    firewall: Firewall,
    ipam: Arc<Ipam>,
    fw_lock: Mutex<()>,
    veth_prefix: String,
}

#[cfg(test)]
fn host_veth_name(container_id: &str, network_id: &str) -> (String, String) {
    host_veth_name_with("veth", container_id, network_id)
}

/// `<prefix><hash>` in at most 15 bytes (the hash is cut to fit a longer prefix).
fn host_veth_name_with(prefix: &str, container_id: &str, network_id: &str) -> (String, String) {
    // FNV-1a over both ids: stable, so teardown finds the same name again
    let mut h: u32 = 0x811c_9dc5;
    for b in container_id.bytes().chain([0]).chain(network_id.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let hex = format!("{h:08x}");
    let room = 15usize.saturating_sub(prefix.len()).clamp(1, 8);
    (format!("{prefix}{}", &hex[..room]), format!("vpeer{h:08x}"))
}

impl NetworkManager {
    /// A manager for `host_netns`, rules in `inet <table>`, leases in `ipam`.
    pub fn new(
        host_netns: Option<PathBuf>,
        table: &str,
        ipam: Arc<Ipam>,
    ) -> Result<NetworkManager, NetError> {
        Ok(NetworkManager {
            host_netns,
            firewall: Firewall::new(table)?,
            ipam,
            fw_lock: Mutex::new(()),
            veth_prefix: "veth".into(),
        })
    }

    /// Name host-side veths `<prefix><hash>` instead of `veth<hash>` (at most 14 bytes of
    /// prefix), so that parallel engines (tests) can tell theirs apart.
    pub fn with_veth_prefix(mut self, prefix: &str) -> NetworkManager {
        self.veth_prefix = prefix.chars().take(14).collect();
        self
    }

    fn veth(&self, container_id: &str, network_id: &str) -> String {
        host_veth_name_with(&self.veth_prefix, container_id, network_id).0
    }

    /// Use another firewall (e.g. another `nft` binary).
    pub fn with_firewall(mut self, firewall: Firewall) -> NetworkManager {
        self.firewall = firewall;
        self
    }

    /// The firewall (table) in use.
    pub fn firewall(&self) -> &Firewall {
        &self.firewall
    }

    /// The allocator in use.
    pub fn ipam(&self) -> &Arc<Ipam> {
        &self.ipam
    }

    fn host(&self) -> Option<&Path> {
        self.host_netns.as_deref()
    }

    fn in_host<T: Send>(
        &self,
        f: impl FnOnce() -> Result<T, NetError> + Send,
    ) -> Result<T, NetError> {
        netns::run_in(self.host(), f)?
    }

    fn fw<T: Send>(
        &self,
        f: impl FnOnce(&Firewall) -> Result<T, FirewallError> + Send,
    ) -> Result<T, NetError> {
        let _g = self.fw_lock.lock().unwrap_or_else(|p| p.into_inner());
        self.in_host(|| Ok(f(&self.firewall)?))
    }

    /// Create (or re-assert) a network: bridge with the gateway address, its rules, and
    /// ip_forward when it is not internal. Idempotent.
    pub fn create_network(&self, net: &NetworkConfig) -> Result<(), NetError> {
        net.validate()?;
        let prefix = net.subnet.prefix_len();
        let (gw, mtu) = (net.gateway(), net.mtu());
        netns::block_on_in(self.host(), || async {
            let h = link::connect()?;
            link::ensure_bridge(&h, &net.bridge, gw, prefix, mtu).await
        })??;
        self.fw(|f| f.apply_network(net))?;
        if !net.internal {
            self.in_host(|| firewall::enable_ip_forward().map_err(NetError::IpForward))?;
            let br = net.bridge.clone();
            self.in_host(|| {
                firewall::enable_route_localnet(&br).map_err(|source| NetError::RouteLocalnet {
                    bridge: br.clone(),
                    source,
                })
            })?;
        }
        Ok(())
    }

    /// Remove a network: its rules, its bridge, its leases. Keeps going after failures.
    pub fn remove_network(&self, net: &NetworkConfig) -> Result<(), TeardownError> {
        let mut errors = Vec::new();
        if let Err(e) = self.fw(|f| f.remove_network(net)) {
            errors.push(e);
        }
        let bridge = net.bridge.clone();
        match netns::block_on_in(self.host(), || async {
            let h = link::connect()?;
            link::delete_link(&h, &bridge).await
        }) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => errors.push(e.into()),
            Err(e) => errors.push(e.into()),
        }
        if let Err(e) = self.ipam.remove_network(&net.id) {
            errors.push(e.into());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TeardownError(errors))
        }
    }

    /// Attach a container: address, published ports (refused up front when taken), veth pair,
    /// in-container interface/address/routes, DNAT rules. Purge-then-apply: stale state of the
    /// same attachment is removed first; on failure everything done so far is undone.
    pub fn setup(&self, net: &NetworkConfig, ep: &Endpoint) -> Result<Attached, NetError> {
        net.validate()?;
        if ep.interface.is_empty() || ep.interface.len() > 15 {
            return Err(ConfigError::Interface(ep.interface.clone()).into());
        }
        let ip = self.ipam.allocate(net, &ep.container_id, ep.requested_ip)?;
        let proxy = if ep.ports.is_empty() {
            None
        } else {
            match PortProxy::start(self.host(), &ep.ports, ip) {
                Ok(p) => Some(p),
                Err(e) => {
                    let _ = self.ipam.release(&net.id, &ep.container_id);
                    return Err(e.into());
                }
            }
        };
        match self.plumb(net, ep, ip) {
            Ok(result) => Ok(Attached { result, proxy }),
            Err(e) => {
                drop(proxy);
                let _ = self.teardown(net, ep);
                Err(e)
            }
        }
    }

    fn plumb(
        &self,
        net: &NetworkConfig,
        ep: &Endpoint,
        ip: Ipv4Addr,
    ) -> Result<EndpointResult, NetError> {
        let host_veth = self.veth(&ep.container_id, &net.id);
        let ns_path = ep.netns.path();
        let ns_file = File::open(&ns_path).map_err(|source| NetError::ContainerNetns {
            path: ns_path.clone(),
            source,
        })?;
        let prefix = net.subnet.prefix_len();
        let (gw, mtu) = (net.gateway(), net.mtu());
        let mac = ep.mac.unwrap_or_else(|| mac_for(ip));
        // purge a stale attachment, then create
        netns::block_on_in(self.host(), || async {
            let h = link::connect()?;
            link::delete_link(&h, &host_veth).await?;
            let br = link::ensure_bridge(&h, &net.bridge, gw, prefix, mtu).await?;
            link::create_veth(&h, &host_veth, br, mtu, &ep.interface, mac, &ns_file).await
        })??;
        netns::block_on_in(Some(&ns_path), || async {
            let h = link::connect()?;
            link::configure_container(&h, &ep.interface, ip, prefix, gw).await
        })??;
        self.fw(|f| f.apply_endpoint(net, &ep.container_id, ip, &ep.ports))?;
        if !net.internal {
            self.in_host(|| firewall::enable_ip_forward().map_err(NetError::IpForward))?;
            if !ep.ports.is_empty() {
                let br = net.bridge.clone();
                self.in_host(|| {
                    firewall::enable_route_localnet(&br).map_err(|source| NetError::RouteLocalnet {
                        bridge: br.clone(),
                        source,
                    })
                })?;
            }
        }
        Ok(EndpointResult {
            ip,
            prefix_len: prefix,
            gateway: gw,
            mac,
            host_veth,
            interface: ep.interface.clone(),
            ports: ep.ports.clone(),
        })
    }

    /// Detach a container, in reverse order: its rules, its veth, its address lease. Keeps
    /// going after failures, "already gone" is success, every error is returned at the end.
    /// (The caller drops the [`PortProxy`] it got from setup.)
    pub fn teardown(&self, net: &NetworkConfig, ep: &Endpoint) -> Result<(), TeardownError> {
        self.teardown_with(net, ep, true)
    }

    /// [`Self::teardown`] for a container whose network namespace is about to go (its
    /// processes are gone and the caller releases the namespace next): the veth pair goes
    /// with the namespace, asynchronously in the kernel, so it is not deleted here (deleting a
    /// veth waits for an RCU grace period, the slowest step of a teardown). Rules and the
    /// lease go at once; [`Self::reconcile`] deletes any veth that outlived its namespace.
    pub fn teardown_dying(&self, net: &NetworkConfig, ep: &Endpoint) -> Result<(), TeardownError> {
        self.teardown_with(net, ep, false)
    }

    fn teardown_with(
        &self,
        net: &NetworkConfig,
        ep: &Endpoint,
        delete_veth: bool,
    ) -> Result<(), TeardownError> {
        let mut errors = Vec::new();
        let tag = container_tag(&ep.container_id, &net.id);
        if let Err(e) = self.fw(|f| f.delete_tagged(&tag)) {
            errors.push(e);
        }
        let host_veth = self.veth(&ep.container_id, &net.id);
        if delete_veth {
            match netns::block_on_in(self.host(), || async {
                let h = link::connect()?;
                link::delete_link(&h, &host_veth).await
            }) {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => errors.push(e.into()),
                Err(e) => errors.push(e.into()),
            }
        }
        if let Err(e) = self.ipam.release(&net.id, &ep.container_id) {
            errors.push(e.into());
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TeardownError(errors))
        }
    }

    /// Re-apply the firewall from the desired state: every network's and endpoint's rules are
    /// re-installed, and tagged rules that belong to nothing desired are deleted.
    pub fn reload(&self, desired: &[DesiredNetwork]) -> Result<(), TeardownError> {
        let mut errors = Vec::new();
        let mut keep = Vec::new();
        // reality may have moved (a flushed ruleset, another daemon's crash): read it again
        self.firewall.invalidate();
        for d in desired {
            keep.push(network_tag(&d.network.id));
            if let Err(e) = self.fw(|f| f.apply_network(&d.network)) {
                errors.push(e);
            }
            for (cid, r) in &d.endpoints {
                keep.push(container_tag(cid, &d.network.id));
                let ports: Vec<PortMapping> = r.ports.clone();
                if let Err(e) = self.fw(|f| f.apply_ports(cid, &d.network.id, r.ip, &ports)) {
                    errors.push(e);
                }
            }
            if !d.network.internal
                && let Err(e) =
                    self.in_host(|| firewall::enable_ip_forward().map_err(NetError::IpForward))
            {
                errors.push(e);
            }
        }
        match self.fw(|f| f.tagged_rules()) {
            Ok(rules) => {
                let mut stale: Vec<String> = rules
                    .into_iter()
                    .map(|r| r.comment)
                    .filter(|c| !keep.contains(c))
                    .collect();
                stale.sort();
                stale.dedup();
                for tag in stale {
                    if let Err(e) = self.fw(|f| f.delete_tagged(&tag)) {
                        errors.push(e);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(TeardownError(errors))
        }
    }
}

impl NetworkManager {
    /// Reconcile after a crash of the engine or a shim: re-apply rules ([`Self::reload`]),
    /// delete host veths on the desired networks' bridges that belong to no desired endpoint,
    /// and release their address leases. Returns the veths deleted. Keeps going after failures.
    pub fn reconcile(&self, desired: &[DesiredNetwork]) -> Result<Vec<String>, TeardownError> {
        let mut errors = match self.reload(desired) {
            Ok(()) => Vec::new(),
            Err(TeardownError(e)) => e,
        };
        let mut deleted = Vec::new();
        for d in desired {
            let expected: Vec<String> = d
                .endpoints
                .iter()
                .map(|(cid, _)| self.veth(cid, &d.network.id))
                .collect();
            let bridge = d.network.bridge.clone();
            let res = netns::block_on_in(self.host(), || async {
                let h = link::connect()?;
                let Some(br) = link::index_of(&h, &bridge).await? else {
                    return Ok(Vec::new());
                };
                let mut gone = Vec::new();
                for port in link::ports_of(&h, br).await? {
                    if !expected.contains(&port) && link::delete_link(&h, &port).await? {
                        gone.push(port);
                    }
                }
                Ok::<_, LinkError>(gone)
            });
            match res {
                Ok(Ok(gone)) => deleted.extend(gone),
                Ok(Err(e)) => errors.push(e.into()),
                Err(e) => errors.push(e.into()),
            }
            let keep: Vec<&str> = d.endpoints.iter().map(|(cid, _)| cid.as_str()).collect();
            if let Err(e) = self.ipam.retain_owners(&d.network.id, &keep) {
                errors.push(e.into());
            }
        }
        if errors.is_empty() {
            Ok(deleted)
        } else {
            Err(TeardownError(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_stable_and_short() {
        let (a, b) = host_veth_name(&"f".repeat(64), "net");
        assert_eq!(
            (a.clone(), b.clone()),
            host_veth_name(&"f".repeat(64), "net")
        );
        assert!(a.len() <= 15 && b.len() <= 15);
        assert_ne!(a, host_veth_name(&"f".repeat(64), "net2").0);
        let (p, _) = host_veth_name_with("bt123456", "c", "n");
        assert!(p.starts_with("bt123456") && p.len() == 15, "{p}");
    }

    #[test]
    fn teardown_error_lists_everything() {
        let e = TeardownError(vec![
            NetError::IpForward(std::io::Error::other("x")),
            NetError::Config(ConfigError::Driver("y".into())),
        ]);
        let s = e.to_string();
        assert!(
            s.starts_with("teardown met 2 error(s)")
                && s.contains("ip forwarding")
                && s.contains("\"y\""),
            "{s}"
        );
    }
}
