//! A container's network: its namespace (made and held by a bind mount under
//! `<exec-root>/netns/<id>` before the shim starts, joined through the OCI spec), its
//! endpoints on each network it joins (veth, address, rules), its published ports (userland
//! proxy + DNAT), its DNS server at 127.0.0.11 on user-defined networks, and the
//! /etc/hosts and /etc/resolv.conf that go with them. Set up on start, torn down (reverse
//! order, keep going) on exit, stop, rm, and at the next daemon start after a crash.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use berth_network::{DnsServer, Endpoint, NetnsRef, PortMapping, Protocol};
use berth_types::net::EndpointSpec;
use berth_types::spec::{ContainerSpec, NetworkMode};
use serde_json::{Value, json};

use super::{Containers, Inner, Record, Status, etcfiles, lock};
use crate::EngineError;
use crate::networks::{Attachment, Live, LiveState, NetworkError, NetworkRecord, Networks};

fn lk<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The DNS address Docker serves user-defined networks on, inside each container.
pub const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// Picks a free host port for `-p <container>` (the kernel's ephemeral range).
fn random_port(ip: Option<Ipv4Addr>, proto: Protocol) -> std::io::Result<u16> {
    let addr = SocketAddr::from((ip.unwrap_or(Ipv4Addr::UNSPECIFIED), 0));
    match proto {
        Protocol::Tcp => Ok(std::net::TcpListener::bind(addr)?.local_addr()?.port()),
        Protocol::Udp => Ok(std::net::UdpSocket::bind(addr)?.local_addr()?.port()),
    }
}

/// The ports of `spec` (`-p`, plus every exposed port with `-P`), random host ports picked.
fn resolve_ports(
    spec: &ContainerSpec,
    image_exposed: &[(u16, String)],
) -> Result<Vec<PortMapping>, NetworkError> {
    let mut out: Vec<PortMapping> = Vec::new();
    for p in &spec.net.publish {
        let maps = PortMapping::parse(p).map_err(|e| NetworkError::Invalid(e.to_string()))?;
        out.extend(maps);
    }
    if spec.net.publish_all {
        let mut exposed: Vec<(u16, String)> = image_exposed.to_vec();
        for e in &spec.net.expose {
            exposed.extend(berth_types::net::parse_expose(e).map_err(NetworkError::Invalid)?);
        }
        for (port, proto) in exposed {
            let protocol = match proto.as_str() {
                "udp" => Protocol::Udp,
                "tcp" => Protocol::Tcp,
                _ => continue,
            };
            if out
                .iter()
                .any(|m| m.container_port == port && m.protocol == protocol)
            {
                continue;
            }
            out.push(PortMapping {
                host_ip: None,
                host_port: 0,
                container_port: port,
                protocol,
            });
        }
    }
    for m in &mut out {
        if m.host_port == 0 {
            m.host_port =
                random_port(m.host_ip, m.protocol).map_err(|source| NetworkError::Io {
                    op: "pick a free host port for",
                    path: format!("{}/{}", m.container_port, m.protocol),
                    source,
                })?;
        }
    }
    Ok(out)
}

/// The image's `ExposedPorts` (`{"80/tcp": {}}`).
pub fn image_exposed(config: &Value) -> Vec<(u16, String)> {
    let ports = if config["config"]["ExposedPorts"].is_object() {
        &config["config"]["ExposedPorts"]
    } else {
        &config["ExposedPorts"]
    };
    ports
        .as_object()
        .map(|m| {
            m.keys()
                .filter_map(|k| berth_types::net::parse_expose(k).ok())
                .flatten()
                .collect()
        })
        .unwrap_or_default()
}

/// A network missing at create is the request's fault (400), not a missing object (404):
/// the docker CLI answers a 404 from create by pulling the image.
fn at_create(e: NetworkError) -> NetworkError {
    match e {
        NetworkError::NotFound(n) => NetworkError::Invalid(format!("network {n} not found")),
        other => other,
    }
}

fn parse_mac(s: &str) -> Result<[u8; 6], NetworkError> {
    let bad = || NetworkError::Invalid(format!("invalid MAC address {s:?}"));
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        mac[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

impl Containers {
    /// Hands the network store to the container side (once, at engine open).
    pub(crate) fn set_networks(&self, n: Arc<Networks>) {
        let _ = self.net.set(n);
    }

    /// The network store (set once the engine opened it).
    pub(crate) fn networks(&self) -> Option<&Arc<Networks>> {
        self.net.get()
    }

    /// At create: checks the networks, ports and per-network settings of a spec and puts
    /// the network mode's own network into `spec.net.networks`.
    pub(crate) fn net_create(&self, mut spec: ContainerSpec) -> Result<ContainerSpec, EngineError> {
        let Some(nets) = self.networks() else {
            return Ok(spec);
        };
        for p in &spec.net.publish {
            PortMapping::parse(p).map_err(|e| NetworkError::Invalid(e.to_string()))?;
        }
        for e in &spec.net.expose {
            berth_types::net::parse_expose(e).map_err(NetworkError::Invalid)?;
        }
        if !spec.net.mac_address.is_empty() {
            parse_mac(&spec.net.mac_address)?;
        }
        if spec.network == NetworkMode::Bridge && nets.get("bridge").is_err() {
            if nets.default_bridge_disabled() {
                // `--bridge none`: Docker's containers then have only loopback
                spec.network = NetworkMode::None;
            } else {
                return Err(NetworkError::NoSubnet.into());
            }
        }
        match spec.network.network_name().map(str::to_owned) {
            Some(mode_net) => {
                let r = nets.get(&mode_net).map_err(at_create)?;
                // the mode's entry may come under the typed name or the canonical one
                // the docker CLI names the default network "default" in EndpointsConfig
                let entry = spec
                    .net
                    .networks
                    .remove(&mode_net)
                    .or_else(|| spec.net.networks.remove(&r.name))
                    .or_else(|| {
                        (r.name == "bridge")
                            .then(|| spec.net.networks.remove("default"))
                            .flatten()
                    })
                    .unwrap_or_default();
                let mut others = std::mem::take(&mut spec.net.networks);
                spec.net.networks.insert(r.name.clone(), entry);
                for (name, ep) in std::mem::take(&mut others) {
                    let r = nets.get(&name).map_err(at_create)?;
                    spec.net.networks.insert(r.name, ep);
                }
                for (name, ep) in &spec.net.networks {
                    let r = nets.get(name).map_err(at_create)?;
                    if !r.has_dns() && !ep.aliases.is_empty() {
                        return Err(NetworkError::Mode(
                            "network-scoped alias is supported only for containers in user defined networks".into(),
                        )
                        .into());
                    }
                    if !r.has_dns() && !ep.ipv4_address.is_empty() {
                        return Err(NetworkError::Mode(
                            "user specified IP address is supported on user defined networks only"
                                .into(),
                        )
                        .into());
                    }
                    if !ep.ipv4_address.is_empty() {
                        ep.ipv4_address.parse::<Ipv4Addr>().map_err(|_| {
                            NetworkError::Invalid(format!(
                                "invalid IPv4 address: {}",
                                ep.ipv4_address
                            ))
                        })?;
                    }
                }
            }
            None => {
                spec.net.networks.clear();
                if let NetworkMode::Container(target) = &spec.network {
                    self.resolve(target)?;
                    if !spec.hostname.is_empty() {
                        return Err(NetworkError::Mode(
                            "conflicting options: hostname and the network mode".into(),
                        )
                        .into());
                    }
                }
            }
        }
        Ok(spec)
    }

    /// Points the OCI spec's network namespace at the container's namespace mount.
    pub(crate) fn net_patch_oci(&self, id: &str, spec: &ContainerSpec, oci: &mut Value) {
        let Some(nets) = self.networks() else { return };
        if !spec.network.is_managed() {
            return;
        }
        if let Some(list) = oci["linux"]["namespaces"].as_array_mut() {
            list.retain(|n| n["type"] != "network");
            list.push(json!({"type": "network", "path": nets.netns_path(id)}));
        }
    }

    /// Before the shim starts: namespace, endpoints, ports, DNS, /etc files. On failure
    /// everything made is undone and the container stays as it was.
    pub(super) fn net_start(&self, inner: &Inner, rec: &Record) -> Result<(), EngineError> {
        let Some(nets) = self.networks().cloned() else {
            return Ok(());
        };
        if !rec.spec.network.is_managed() {
            return Ok(());
        }
        // a previous run that was not torn down (crash): start clean
        self.net_stop(&rec.id);
        let netns = nets.netns_path(&rec.id);
        let dir = self.dir(&rec.id);
        if let NetworkMode::Container(target) = &rec.spec.network {
            let tid = Self::resolve_in(inner, target)?;
            let t = &inner.map[&tid];
            if t.state.status != Status::Running || t.state.pid <= 0 {
                return Err(NetworkError::NotRunning(t.name.clone()).into());
            }
            berth_network::netns::bind_existing(
                Path::new(&format!("/proc/{}/ns/net", t.state.pid)),
                &netns,
            )
            .map_err(NetworkError::from)?;
            // it shares the other container's network, so its names and resolver too
            let tdir = self.dir(&tid);
            for f in ["hosts", "resolv.conf"] {
                if let Ok(text) = std::fs::read_to_string(tdir.join(f)) {
                    let _ = std::fs::write(dir.join(f), text);
                }
            }
            let state = LiveState {
                container_id: rec.id.clone(),
                name: rec.name.clone(),
                netns,
                attachments: Vec::new(),
                dns_upstreams: Vec::new(),
            };
            nets.save_live(&state)?;
            lk(&nets.live).insert(
                rec.id.clone(),
                Live {
                    state: Some(state),
                    ..Default::default()
                },
            );
            return Ok(());
        }
        let t0 = std::time::Instant::now();
        berth_network::netns::create_persistent(&netns).map_err(NetworkError::from)?;
        tracing::debug!(id = %rec.id, elapsed = ?t0.elapsed(), "netns made");
        let exposed = self.image_exposed_ports(&rec.image_id);
        let mut live = Live {
            state: Some(LiveState {
                container_id: rec.id.clone(),
                name: rec.name.clone(),
                netns: netns.clone(),
                attachments: Vec::new(),
                dns_upstreams: Vec::new(),
            }),
            ..Default::default()
        };
        let made = (|| -> Result<(), EngineError> {
            let ports = resolve_ports(&rec.spec, &exposed)?;
            let mode_net = rec
                .spec
                .network
                .network_name()
                .map(|n| nets.get(n))
                .transpose()?;
            // the mode's network first: it carries the published ports and eth0
            let mut order: Vec<(NetworkRecord, EndpointSpec)> = Vec::new();
            if let Some(m) = &mode_net {
                let ep = rec
                    .spec
                    .net
                    .networks
                    .get(&m.name)
                    .cloned()
                    .unwrap_or_default();
                order.push((m.clone(), ep));
            }
            for (name, ep) in &rec.spec.net.networks {
                let r = nets.get(name)?;
                if order.iter().any(|(o, _)| o.id == r.id) {
                    continue;
                }
                order.push((r, ep.clone()));
            }
            for (i, (r, ep)) in order.iter().enumerate() {
                let ports = if i == 0 { ports.clone() } else { Vec::new() };
                let a = self.attach_one(&nets, rec, r, ep, format!("eth{i}"), ports, &mut live)?;
                live.state.as_mut().expect("set above").attachments.push(a);
            }
            tracing::debug!(id = %rec.id, elapsed = ?t0.elapsed(), "endpoints up");
            self.start_dns(&nets, rec, &mut live)?;
            write_etc(
                &dir,
                rec,
                inner,
                &nets,
                live.state.as_ref().expect("set above"),
            )?;
            nets.save_live(live.state.as_ref().expect("set above"))?;
            Ok(())
        })();
        match made {
            Ok(()) => {
                for a in &live.state.as_ref().expect("set above").attachments {
                    if let Ok(r) = nets.get(&a.network_id) {
                        nets.event(&r, "connect", &[("container", &rec.id)]);
                    }
                }
                lk(&nets.live).insert(rec.id.clone(), live);
                Ok(())
            }
            Err(e) => {
                teardown_live(&nets, live, false);
                let _ = berth_network::netns::remove_persistent(&netns);
                nets.delete_live(&rec.id);
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn attach_one(
        &self,
        nets: &Networks,
        rec: &Record,
        r: &NetworkRecord,
        ep: &EndpointSpec,
        interface: String,
        ports: Vec<PortMapping>,
        live: &mut Live,
    ) -> Result<Attachment, EngineError> {
        let cfg = r.config.clone().ok_or_else(|| {
            NetworkError::Mode(format!(
                "container cannot be connected to network {} (driver {})",
                r.name, r.driver
            ))
        })?;
        nets.ensure_plumbed(r)?;
        let requested_ip = if ep.ipv4_address.is_empty() {
            None
        } else {
            Some(ep.ipv4_address.parse::<Ipv4Addr>().map_err(|_| {
                NetworkError::Invalid(format!("invalid IPv4 address: {}", ep.ipv4_address))
            })?)
        };
        let mac_s = if ep.mac_address.is_empty() {
            &rec.spec.net.mac_address
        } else {
            &ep.mac_address
        };
        let mac = if mac_s.is_empty() {
            None
        } else {
            Some(parse_mac(mac_s)?)
        };
        let mut aliases = ep.aliases.clone();
        if r.has_dns() {
            // Docker answers to the hostname on user networks too, and to link aliases
            let host = etcfiles::hostname(&rec.id, &rec.spec);
            if !aliases.contains(&host) && host != rec.name {
                aliases.push(host);
            }
        }
        let endpoint = Endpoint {
            container_id: rec.id.clone(),
            name: rec.name.clone(),
            netns: NetnsRef::Path(nets.netns_path(&rec.id)),
            interface,
            requested_ip,
            aliases,
            mac,
            ports,
        };
        let attached = nets
            .mgr
            .setup(&cfg, &endpoint)
            .map_err(NetworkError::from)?;
        if let Some(p) = attached.proxy {
            live.proxies.push(p);
        }
        if r.has_dns() {
            nets.dns
                .add_endpoint(&r.id, &endpoint, attached.result.ip.into());
        }
        Ok(Attachment {
            network_id: r.id.clone(),
            network_name: r.name.clone(),
            endpoint_id: endpoint_id(&rec.id, &r.id),
            endpoint,
            result: attached.result,
            network: Some(cfg),
        })
    }

    fn start_dns(&self, nets: &Networks, rec: &Record, live: &mut Live) -> Result<(), EngineError> {
        let state = live.state.as_mut().expect("live state");
        let dns_nets: Vec<String> = state
            .attachments
            .iter()
            .filter(|a| nets.get(&a.network_id).is_ok_and(|r| r.has_dns()))
            .map(|a| a.network_id.clone())
            .collect();
        if let Some(h) = &live.dns {
            h.server().set_networks(dns_nets);
            return Ok(());
        }
        if dns_nets.is_empty() {
            return Ok(());
        }
        let upstreams = Networks::upstreams(&rec.spec.dns);
        let handle = serve_dns(nets, &state.netns, dns_nets, upstreams.clone())?;
        state.dns_upstreams = upstreams;
        live.dns = Some(handle);
        Ok(())
    }

    /// After the container stopped (or at removal, or before a new start): DNS server,
    /// proxies, endpoints, namespace mount. Keeps going; nothing left is success.
    pub(crate) fn net_stop(&self, id: &str) {
        let Some(nets) = self.networks().cloned() else {
            return;
        };
        let live = lk(&nets.live).remove(id);
        let live = match live {
            Some(l) => l,
            None => match nets.load_live(id) {
                Some(s) => Live {
                    state: Some(s),
                    ..Default::default()
                },
                None => {
                    // nothing recorded: a namespace mount may still be there
                    let _ = berth_network::netns::remove_persistent(&nets.netns_path(id));
                    return;
                }
            },
        };
        let netns = live.state.as_ref().map(|s| s.netns.clone());
        let t0 = std::time::Instant::now();
        teardown_live(&nets, live, true);
        tracing::debug!(id, elapsed = ?t0.elapsed(), "endpoints down");
        if let Some(p) = netns
            && let Err(e) = berth_network::netns::remove_persistent(&p)
        {
            tracing::warn!(id, error = %e, "release network namespace");
        }
        nets.delete_live(id);
        tracing::debug!(id, elapsed = ?t0.elapsed(), "network released");
    }

    /// `network connect`: records the network in the spec; a running container gets its
    /// endpoint at once.
    pub fn net_connect(
        &self,
        network: &str,
        container: &str,
        ep: EndpointSpec,
    ) -> Result<(), EngineError> {
        let Some(nets) = self.networks().cloned() else {
            return Err(NetworkError::NotFound(network.to_owned()).into());
        };
        let r = nets.get(network)?;
        let mut inner = lock(&self.inner);
        let id = Self::resolve_in(&inner, container)?;
        let rec = inner.map[&id].clone();
        match &rec.spec.network {
            NetworkMode::Host | NetworkMode::Container(_) => {
                return Err(NetworkError::Mode(
                    "container sharing network namespace with another container or host cannot be connected to any other network".into(),
                )
                .into());
            }
            NetworkMode::None => {
                return Err(NetworkError::Mode(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode".into(),
                )
                .into());
            }
            _ => {}
        }
        if r.config.is_none() {
            return Err(NetworkError::Mode(format!(
                "container cannot be connected to network {}",
                r.name
            ))
            .into());
        }
        if rec.spec.net.networks.contains_key(&r.name) {
            return Err(NetworkError::AlreadyConnected {
                container: rec.name.clone(),
                network: r.name.clone(),
            }
            .into());
        }
        if !r.has_dns() && !ep.aliases.is_empty() {
            return Err(NetworkError::Mode(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            )
            .into());
        }
        if rec.state.status == Status::Running {
            let mut live_map = lk(&nets.live);
            let live = live_map.entry(id.clone()).or_default();
            let used: Vec<String> = live
                .state
                .as_ref()
                .map(|s| {
                    s.attachments
                        .iter()
                        .map(|a| a.result.interface.clone())
                        .collect()
                })
                .unwrap_or_default();
            let iface = (0..)
                .map(|i| format!("eth{i}"))
                .find(|n| !used.contains(n))
                .expect("an unused name");
            if live.state.is_none() {
                live.state = Some(LiveState {
                    container_id: id.clone(),
                    name: rec.name.clone(),
                    netns: nets.netns_path(&id),
                    attachments: Vec::new(),
                    dns_upstreams: Vec::new(),
                });
            }
            let a = self.attach_one(&nets, &rec, &r, &ep, iface, Vec::new(), live)?;
            live.state.as_mut().expect("set").attachments.push(a);
            self.start_dns(&nets, &rec, live)?;
            let state = live.state.clone().expect("set");
            drop(live_map);
            nets.save_live(&state)?;
            let _ = write_etc(&self.dir(&id), &rec, &inner, &nets, &state);
        }
        let r2 = inner.map.get_mut(&id).expect("resolved above");
        r2.spec.net.networks.insert(r.name.clone(), ep);
        let saved = r2.clone();
        saved.save(&self.dir(&id))?;
        drop(inner);
        nets.event(&r, "connect", &[("container", &id)]);
        self.bump();
        Ok(())
    }

    /// `network disconnect`: drops the network from the spec; a running container loses
    /// its endpoint at once.
    pub fn net_disconnect(
        &self,
        network: &str,
        container: &str,
        force: bool,
    ) -> Result<(), EngineError> {
        let Some(nets) = self.networks().cloned() else {
            return Err(NetworkError::NotFound(network.to_owned()).into());
        };
        let r = nets.get(network)?;
        let mut inner = lock(&self.inner);
        let id = match Self::resolve_in(&inner, container) {
            Ok(id) => id,
            Err(e) => {
                if force {
                    return Ok(());
                }
                return Err(e.into());
            }
        };
        let rec = inner.map[&id].clone();
        let live_has = lk(&nets.live)
            .get(&id)
            .and_then(|l| l.state.as_ref())
            .is_some_and(|s| s.attachments.iter().any(|a| a.network_id == r.id));
        if !rec.spec.net.networks.contains_key(&r.name) && !live_has {
            return Err(NetworkError::NotConnected {
                container: rec.name.clone(),
                network: r.name.clone(),
            }
            .into());
        }
        if live_has {
            let mut live_map = lk(&nets.live);
            if let Some(live) = live_map.get_mut(&id)
                && let Some(state) = live.state.as_mut()
            {
                let pos = state
                    .attachments
                    .iter()
                    .position(|a| a.network_id == r.id)
                    .expect("checked above");
                let a = state.attachments.remove(pos);
                if !a.result.ports.is_empty() {
                    // the proxy forwards to this address: stop it with the endpoint
                    live.proxies.clear();
                }
                detach_one(&nets, &a);
                let state = state.clone();
                self.start_dns(&nets, &rec, live)?;
                drop(live_map);
                nets.save_live(&state)?;
                let _ = write_etc(&self.dir(&id), &rec, &inner, &nets, &state);
            }
        }
        let r2 = inner.map.get_mut(&id).expect("resolved above");
        r2.spec.net.networks.remove(&r.name);
        let saved = r2.clone();
        saved.save(&self.dir(&id))?;
        drop(inner);
        nets.event(&r, "disconnect", &[("container", &id)]);
        self.bump();
        Ok(())
    }

    /// At daemon start, after the containers were reconciled: running containers get
    /// their DNS servers, proxies and rules back; everything of the others is torn down;
    /// endpoints nobody owns are deleted.
    pub(crate) fn net_reconcile(&self) {
        let Some(nets) = self.networks().cloned() else {
            return;
        };
        nets.adopt_existing_bridges();
        let running: BTreeMap<String, Record> = lock(&self.inner)
            .map
            .values()
            .filter(|r| r.state.status == Status::Running)
            .map(|r| (r.id.clone(), r.clone()))
            .collect();
        for id in nets.known_containers() {
            if running.contains_key(&id) {
                continue;
            }
            self.net_stop(&id);
        }
        for (id, rec) in &running {
            if !rec.spec.network.is_managed() || lk(&nets.live).contains_key(id) {
                continue;
            }
            let Some(state) = nets.load_live(id) else {
                continue;
            };
            let mut live = Live {
                state: Some(state.clone()),
                ..Default::default()
            };
            for a in &state.attachments {
                if nets.get(&a.network_id).is_ok_and(|r| r.has_dns()) {
                    nets.dns
                        .add_endpoint(&a.network_id, &a.endpoint, a.result.ip.into());
                }
                if !a.result.ports.is_empty() {
                    match berth_network::PortProxy::start(None, &a.result.ports, a.result.ip) {
                        Ok(p) => live.proxies.push(p),
                        Err(e) => tracing::warn!(id, error = %e, "cannot restore published ports"),
                    }
                }
            }
            let dns_nets: Vec<String> = state
                .attachments
                .iter()
                .filter(|a| nets.get(&a.network_id).is_ok_and(|r| r.has_dns()))
                .map(|a| a.network_id.clone())
                .collect();
            if !dns_nets.is_empty() {
                match serve_dns(&nets, &state.netns, dns_nets, state.dns_upstreams.clone()) {
                    Ok(h) => live.dns = Some(h),
                    Err(e) => tracing::warn!(id, error = %e, "cannot restore DNS server"),
                }
            }
            lk(&nets.live).insert(id.clone(), live);
        }
        let desired = nets.desired();
        if let Err(e) = nets.mgr.reconcile(&desired) {
            tracing::warn!(error = %e, "network reconcile");
        }
    }

    /// Fills inspect's `NetworkSettings`, `HostConfig.{NetworkMode, PortBindings,
    /// PublishAllPorts, Links}` and `Config.{ExposedPorts, MacAddress}`.
    pub(crate) fn net_patch_inspect(&self, rec: &Record, v: &mut Value) {
        v["NetworkSettings"] = self.net_settings(rec);
        let n = &rec.spec.net;
        let mut bindings = serde_json::Map::new();
        for p in &n.publish {
            for m in PortMapping::parse(p).unwrap_or_default() {
                let key = format!("{}/{}", m.container_port, m.protocol);
                let e = bindings.entry(key).or_insert_with(|| json!([]));
                if let Some(a) = e.as_array_mut() {
                    a.push(json!({
                        "HostIp": m.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                        "HostPort": if m.host_port == 0 { String::new() } else { m.host_port.to_string() },
                    }));
                }
            }
        }
        v["HostConfig"]["NetworkMode"] = json!(rec.spec.network.to_string());
        v["HostConfig"]["PortBindings"] = Value::Object(bindings);
        v["HostConfig"]["PublishAllPorts"] = json!(n.publish_all);
        v["HostConfig"]["Links"] = if n.links.is_empty() {
            Value::Null
        } else {
            json!(n.links)
        };
        let mut exposed: serde_json::Map<String, Value> = v["Config"]["ExposedPorts"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let image = rec
            .image_id
            .parse()
            .ok()
            .and_then(|d| self.images.config(&d).ok())
            .map(|c| image_exposed(&c))
            .unwrap_or_default();
        let from_flags = n
            .expose
            .iter()
            .chain(&n.publish)
            .filter_map(|e| {
                // a -p entry's container part, as Docker adds published ports to ExposedPorts
                let (rest, proto) = e.rsplit_once('/').unwrap_or((e, "tcp"));
                let ctr = rest.rsplit(':').next().unwrap_or(rest);
                berth_types::net::parse_expose(&format!("{ctr}/{proto}")).ok()
            })
            .flatten();
        for (p, proto) in image.into_iter().chain(from_flags) {
            exposed.insert(format!("{p}/{proto}"), json!({}));
        }
        if !exposed.is_empty() {
            v["Config"]["ExposedPorts"] = Value::Object(exposed);
        }
        if !n.mac_address.is_empty() {
            v["Config"]["MacAddress"] = json!(n.mac_address);
        }
    }

    /// Docker's `NetworkSettings` for inspect, from the live state (empty when stopped).
    pub(crate) fn net_settings(&self, rec: &Record) -> Value {
        let nets = self.networks();
        let state = nets.and_then(|n| n.live_state(&rec.id));
        let mut networks = serde_json::Map::new();
        let mut ports = serde_json::Map::new();
        let mut first: Option<&Attachment> = None;
        if let Some(s) = &state {
            for a in &s.attachments {
                first.get_or_insert(a);
                networks.insert(a.network_name.clone(), endpoint_json(rec, a, true));
                for m in &a.result.ports {
                    let key = format!("{}/{}", m.container_port, m.protocol);
                    let entry = ports.entry(key).or_insert_with(|| json!([]));
                    if let Some(arr) = entry.as_array_mut() {
                        arr.push(json!({
                            "HostIp": m.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
                            "HostPort": m.host_port.to_string(),
                        }));
                    }
                }
            }
        }
        if state.is_none() {
            // not running: the networks it will join, without addresses
            if let Some(n) = nets {
                for name in rec.spec.net.networks.keys() {
                    if let Ok(r) = n.get(name) {
                        networks.insert(
                            r.name.clone(),
                            json!({
                                "IPAMConfig": null, "Links": null,
                                "Aliases": rec.spec.net.networks[name].aliases,
                                "MacAddress": "", "DriverOpts": null, "GwPriority": 0,
                                "NetworkID": r.id, "EndpointID": "", "Gateway": "",
                                "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
                                "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                                "DNSNames": null,
                            }),
                        );
                    }
                }
            }
            if matches!(rec.spec.network, NetworkMode::Host | NetworkMode::None) {
                let name = rec.spec.network.as_str().to_owned();
                let nid = nets
                    .and_then(|n| n.get(&name).ok())
                    .map(|r| r.id)
                    .unwrap_or_default();
                networks.insert(
                    name,
                    json!({"IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                           "NetworkID": nid, "EndpointID": "", "Gateway": "", "IPAddress": "",
                           "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
                           "GlobalIPv6PrefixLen": 0, "DNSNames": null}),
                );
            }
        }
        // exposed but unpublished ports show as null while running
        if state.is_some() {
            for (p, proto) in self.exposed_ports(rec) {
                ports.entry(format!("{p}/{proto}")).or_insert(Value::Null);
            }
        }
        let on_default = first.filter(|a| a.network_name == "bridge");
        json!({
            "Bridge": "",
            "SandboxID": state.as_ref().map(|_| rec.id.clone()).unwrap_or_default(),
            "SandboxKey": state.as_ref().map(|s| s.netns.display().to_string()).unwrap_or_default(),
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": on_default.map(|a| a.endpoint_id.clone()).unwrap_or_default(),
            "Gateway": on_default.map(|a| a.result.gateway.to_string()).unwrap_or_default(),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": on_default.map(|a| a.result.ip.to_string()).unwrap_or_default(),
            "IPPrefixLen": on_default.map(|a| a.result.prefix_len).unwrap_or(0),
            "IPv6Gateway": "",
            "MacAddress": on_default.map(|a| berth_network::config::format_mac(&a.result.mac)).unwrap_or_default(),
            "Networks": networks,
        })
    }

    /// The ports an image exposes, read from its config once per image.
    fn image_exposed_ports(&self, image_id: &str) -> Vec<(u16, String)> {
        let lock = || {
            self.exposed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some(p) = lock().get(image_id) {
            return p.clone();
        }
        let ports = image_id
            .parse()
            .ok()
            .and_then(|d| self.images.config(&d).ok())
            .map(|c| image_exposed(&c))
            .unwrap_or_default();
        lock().insert(image_id.to_owned(), ports.clone());
        ports
    }

    /// The ports a container exposes: its image's and `--expose`.
    fn exposed_ports(&self, rec: &Record) -> Vec<(u16, String)> {
        let mut out = self.image_exposed_ports(&rec.image_id);
        out.extend(
            rec.spec
                .net
                .expose
                .iter()
                .filter_map(|e| berth_types::net::parse_expose(e).ok())
                .flatten(),
        );
        out
    }

    /// `Ports` and `NetworkSettings.Networks` of a `GET /containers/json` entry.
    pub(crate) fn net_summary(&self, rec: &Record) -> (Value, Value) {
        let state = self.networks().and_then(|n| n.live_state(&rec.id));
        let mut ports = Vec::new();
        let mut networks = serde_json::Map::new();
        if let Some(s) = &state {
            for a in &s.attachments {
                networks.insert(a.network_name.clone(), endpoint_json(rec, a, false));
                for m in &a.result.ports {
                    ports.push(json!({
                        "IP": m.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
                        "PrivatePort": m.container_port,
                        "PublicPort": m.host_port,
                        "Type": m.protocol.to_string(),
                    }));
                }
            }
            // exposed but unpublished ports are listed without an address, as moby
            // lists the unbound entries of its port map
            let mut seen: std::collections::HashSet<(u16, String)> = s
                .attachments
                .iter()
                .flat_map(|a| &a.result.ports)
                .map(|m| (m.container_port, m.protocol.to_string()))
                .collect();
            for (p, proto) in self.exposed_ports(rec) {
                if seen.insert((p, proto.clone())) {
                    ports.push(json!({"PrivatePort": p, "Type": proto}));
                }
            }
        } else {
            for name in rec.spec.net.networks.keys() {
                networks.insert(name.clone(), json!({"IPAddress": "", "Gateway": ""}));
            }
        }
        (Value::Array(ports), Value::Object(networks))
    }
}

fn endpoint_id(container_id: &str, network_id: &str) -> String {
    // stable per (container, network); 64 hex like Docker's
    let mut out = String::new();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0..4u8 {
        for b in container_id
            .bytes()
            .chain([0, round])
            .chain(network_id.bytes())
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

fn endpoint_json(rec: &Record, a: &Attachment, full: bool) -> Value {
    let short: String = rec.id.chars().take(12).collect();
    let mut dns_names = vec![rec.name.clone()];
    dns_names.extend(a.endpoint.aliases.iter().cloned());
    dns_names.push(short);
    let aliases: Vec<String> = rec
        .spec
        .net
        .networks
        .get(&a.network_name)
        .map(|e| e.aliases.clone())
        .unwrap_or_default();
    let mut v = json!({
        "IPAMConfig": a.endpoint.requested_ip.map(|ip| json!({"IPv4Address": ip.to_string()})),
        "Links": null,
        "Aliases": if aliases.is_empty() { Value::Null } else { json!(aliases) },
        "MacAddress": berth_network::config::format_mac(&a.result.mac),
        "DriverOpts": null,
        "GwPriority": 0,
        "NetworkID": a.network_id,
        "EndpointID": a.endpoint_id,
        "Gateway": a.result.gateway.to_string(),
        "IPAddress": a.result.ip.to_string(),
        "IPPrefixLen": a.result.prefix_len,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": if a.network_name == "bridge" { Value::Null } else { json!(dns_names) },
    });
    if !full {
        v["IPAMConfig"] = Value::Null;
    }
    v
}

/// Binds 127.0.0.11:53 inside `netns` and serves it on the daemon's runtime.
fn serve_dns(
    nets: &Networks,
    netns: &Path,
    networks: Vec<String>,
    upstreams: Vec<SocketAddr>,
) -> Result<berth_network::DnsServerHandle, NetworkError> {
    let (udp, tcp) = berth_network::dns::bind_in_netns(netns, SocketAddr::from((DNS_ADDR, 53)))?;
    let server = DnsServer::new(nets.dns.clone(), networks, upstreams);
    let rt = tokio::runtime::Handle::try_current().map_err(|e| NetworkError::Io {
        op: "serve DNS for",
        path: netns.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    let _g = rt.enter();
    server.serve(udp, tcp).map_err(|source| NetworkError::Io {
        op: "serve DNS for",
        path: netns.display().to_string(),
        source,
    })
}

fn detach_one(nets: &Networks, a: &Attachment) {
    detach(nets, a, false);
}

/// `dying`: the namespace is released next, taking the veth with it.
fn detach(nets: &Networks, a: &Attachment, dying: bool) {
    nets.dns.remove_ip(&a.network_id, a.result.ip.into());
    let cfg = a
        .network
        .clone()
        .or_else(|| nets.get(&a.network_id).ok().and_then(|r| r.config));
    let res = cfg.map(|cfg| {
        if dying {
            nets.mgr.teardown_dying(&cfg, &a.endpoint)
        } else {
            nets.mgr.teardown(&cfg, &a.endpoint)
        }
    });
    if let Some(Err(e)) = res {
        tracing::warn!(container = %a.endpoint.container_id, network = %a.network_name, error = %e, "endpoint teardown");
    }
}

/// Reverse order of setup: DNS server, proxies, endpoints (rules, veth, lease).
fn teardown_live(nets: &Networks, live: Live, events: bool) {
    let Live {
        state,
        proxies,
        dns,
    } = live;
    if let Some(h) = dns {
        h.stop();
    }
    for p in proxies {
        p.stop();
    }
    if let Some(s) = state {
        // the container's processes are gone and the namespace is unmounted right after:
        // the kernel removes the veths with it
        for a in s.attachments.iter().rev() {
            detach(nets, a, true);
            if events && let Ok(r) = nets.get(&a.network_id) {
                nets.event(&r, "disconnect", &[("container", &s.container_id)]);
            }
        }
    }
}

/// /etc/hosts with the container's own address (and `--link` entries), /etc/resolv.conf
/// pointing at 127.0.0.11 when a user-defined network gives it a DNS server.
fn write_etc(
    dir: &Path,
    rec: &Record,
    inner: &Inner,
    nets: &Networks,
    state: &LiveState,
) -> Result<(), EngineError> {
    let host = etcfiles::HostFiles::default();
    let mut text = etcfiles::hosts(&rec.spec, &host)?;
    // legacy links: the target's address on a network both share
    for l in &rec.spec.net.links {
        let (name, alias) = berth_types::net::parse_link(l);
        let Ok(tid) = Containers::resolve_in(inner, &name) else {
            continue;
        };
        let t = &inner.map[&tid];
        let Some(ts) = nets.live_state(&tid) else {
            continue;
        };
        let Some(ta) = ts.attachments.iter().find(|ta| {
            state
                .attachments
                .iter()
                .any(|a| a.network_id == ta.network_id)
        }) else {
            continue;
        };
        let short: String = tid.chars().take(12).collect();
        if alias == t.name {
            text.push_str(&format!("{}\t{} {}\n", ta.result.ip, alias, short));
        } else {
            text.push_str(&format!(
                "{}\t{} {} {}\n",
                ta.result.ip, alias, short, t.name
            ));
        }
    }
    if let Some(a) = state.attachments.first() {
        text.push_str(&format!(
            "{}\t{}\n",
            a.result.ip,
            etcfiles::hostname(&rec.id, &rec.spec)
        ));
    }
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, text).map_err(super::ContainerError::io("write", &hosts))?;
    let uses_dns = state
        .attachments
        .iter()
        .any(|a| nets.get(&a.network_id).is_ok_and(|r| r.has_dns()));
    if uses_dns {
        let host_text = std::fs::read_to_string(&host.resolv_conf).unwrap_or_default();
        let mut text = berth_network::dns::container_resolv_conf(&host_text);
        if !rec.spec.dns_search.is_empty() {
            text = text
                .lines()
                .filter(|l| !l.starts_with("search"))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
                + &format!("search {}\n", rec.spec.dns_search.join(" "));
        }
        let p = dir.join("resolv.conf");
        std::fs::write(&p, text).map_err(super::ContainerError::io("write", &p))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposed_ports_from_image_config() {
        let c = json!({"config": {"ExposedPorts": {"80/tcp": {}, "53/udp": {}}}});
        let mut e = image_exposed(&c);
        e.sort();
        assert_eq!(e, vec![(53, "udp".to_owned()), (80, "tcp".to_owned())]);
        assert!(image_exposed(&json!({})).is_empty());
    }

    #[test]
    fn ports_resolve_with_random_host_ports() {
        let mut s = ContainerSpec {
            image: "x".into(),
            ..Default::default()
        };
        s.net.publish = vec!["127.0.0.1:8080:80".into(), "90".into()];
        s.net.publish_all = true;
        s.net.expose = vec!["7000/udp".into()];
        let p = resolve_ports(&s, &[(80, "tcp".into()), (443, "tcp".into())]).unwrap();
        assert_eq!(p.len(), 4, "{p:?}");
        assert_eq!(p[0].host_port, 8080);
        assert_eq!(p[0].host_ip, Some(Ipv4Addr::LOCALHOST));
        assert!(p.iter().all(|m| m.host_port != 0));
        assert!(p.iter().any(|m| m.container_port == 443));
        assert!(
            p.iter()
                .any(|m| m.container_port == 7000 && m.protocol == Protocol::Udp)
        );
        s.net.publish = vec!["1:2:3:4".into()];
        assert!(resolve_ports(&s, &[]).is_err());
    }

    #[test]
    fn macs_and_endpoint_ids() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        assert!(parse_mac("zz").is_err());
        let a = endpoint_id("c", "n");
        assert_eq!(a.len(), 64);
        assert_eq!(a, endpoint_id("c", "n"));
        assert_ne!(a, endpoint_id("c", "m"));
    }
}
