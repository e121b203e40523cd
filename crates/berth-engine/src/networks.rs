//! Networks: the store under `<data-root>/network/` (one versioned JSON file per network,
//! IPAM leases in `<exec-root>/network/ipam.json`), the built-in `bridge`, `host` and `none` networks, create /
//! list / inspect / remove / prune, and the kernel side through berth-network's
//! [`NetworkManager`]. A container's attachments while it runs live in
//! [`Networks::live`] and in `<exec-root>/net/<id>.json` (for reconciliation after a crash).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use berth_network::{
    DnsServerHandle, DnsTable, Endpoint, EndpointResult, Ipam, NetworkConfig, NetworkManager,
    PortProxy, SubnetPool,
};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::NetOptions;
use crate::error::ErrorKind;
use crate::events::{Event, EventBus};

/// Store format version of a network file.
pub const NETWORK_VERSION: u32 = 1;

/// Why a network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// No network by that name, id or id prefix.
    #[error("network {0} not found")]
    NotFound(String),
    /// Several networks match an id prefix.
    #[error("network {0} is ambiguous ({1} matches found on name)")]
    Ambiguous(String, usize),
    /// The name is taken.
    #[error("network with name {0} already exists")]
    Exists(String),
    /// `bridge`, `host` and `none` cannot be removed.
    #[error("{0} is a pre-defined network and cannot be removed")]
    Predefined(String),
    /// Containers are attached.
    #[error("error while removing network: network {name} has active endpoints ({containers})")]
    InUse {
        /// The network.
        name: String,
        /// `name:"c1" id:"abc…"` entries.
        containers: String,
    },
    /// A parameter is invalid.
    #[error("{0}")]
    Invalid(String),
    /// No free subnet is left in the pools.
    #[error(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
    )]
    NoSubnet,
    /// A requested subnet overlaps another network's.
    #[error(
        "invalid pool request: Pool overlaps with other one on this address space ({subnet} and network {other})"
    )]
    Overlap {
        /// The requested subnet.
        subnet: String,
        /// The other network.
        other: String,
    },
    /// The container is already on the network.
    #[error("endpoint with name {container} already exists in network {network}")]
    AlreadyConnected {
        /// Container name.
        container: String,
        /// Network name.
        network: String,
    },
    /// The container is not on the network.
    #[error("container {container} is not connected to network {network}")]
    NotConnected {
        /// Container name.
        container: String,
        /// Network name.
        network: String,
    },
    /// An operation needs a running container.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// The network mode does not allow this.
    #[error("{0}")]
    Mode(String),
    /// Kernel plumbing failed.
    #[error(transparent)]
    Net(#[from] berth_network::NetError),
    /// Teardown failed (it kept going; every error is listed).
    #[error(transparent)]
    Teardown(#[from] berth_network::TeardownError),
    /// A namespace mount failed.
    #[error(transparent)]
    Netns(#[from] berth_network::netns::PersistError),
    /// The DNS server could not be started.
    #[error(transparent)]
    Dns(#[from] berth_network::dns::DnsError),
    /// File I/O.
    #[error("failed to {op} {path}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// On what.
        path: String,
        /// What the kernel said.
        source: std::io::Error,
    },
}

impl NetworkError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        use berth_network::NetError;
        match self {
            NetworkError::NotFound(_) => ErrorKind::NotFound,
            NetworkError::Exists(_)
            | NetworkError::Predefined(_)
            | NetworkError::InUse { .. }
            | NetworkError::AlreadyConnected { .. }
            | NetworkError::NotConnected { .. }
            | NetworkError::NotRunning(_)
            | NetworkError::Overlap { .. } => ErrorKind::Conflict,
            NetworkError::Ambiguous(..)
            | NetworkError::Invalid(_)
            | NetworkError::NoSubnet
            | NetworkError::Mode(_) => ErrorKind::InvalidParameter,
            NetworkError::Net(NetError::Config(_)) => ErrorKind::InvalidParameter,
            NetworkError::Net(NetError::Ipam(e)) => match e {
                berth_network::ipam::IpamError::InUse { .. } => ErrorKind::Conflict,
                berth_network::ipam::IpamError::NotInSubnet { .. } => ErrorKind::InvalidParameter,
                _ => ErrorKind::Internal,
            },
            _ => ErrorKind::Internal,
        }
    }

    fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NetworkError {
        let path = path.display().to_string();
        move |source| NetworkError::Io { op, path, source }
    }
}

/// One network as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// Store format version.
    pub version: u32,
    /// Name.
    pub name: String,
    /// 64 hex.
    pub id: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    /// RFC 3339.
    pub created: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options (`-o`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// `--internal`.
    #[serde(default)]
    pub internal: bool,
    /// `--attachable`.
    #[serde(default)]
    pub attachable: bool,
    /// The bridge side (bridge driver only).
    #[serde(default)]
    pub config: Option<NetworkConfig>,
}

impl NetworkRecord {
    /// bridge, host or none.
    pub fn predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }

    /// Whether containers on it resolve each other by name (user-defined bridges).
    pub fn has_dns(&self) -> bool {
        self.driver == "bridge" && self.name != "bridge"
    }
}

/// `POST /networks/create`, normalized.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateRequest {
    /// Name.
    pub name: String,
    /// Driver (`bridge` when empty).
    pub driver: String,
    /// `--subnet`.
    pub subnet: Option<String>,
    /// `--gateway`.
    pub gateway: Option<String>,
    /// `--ip-range`.
    pub ip_range: Option<String>,
    /// `--internal`.
    pub internal: bool,
    /// `--attachable`.
    pub attachable: bool,
    /// `--label`.
    pub labels: BTreeMap<String, String>,
    /// `-o`.
    pub options: BTreeMap<String, String>,
}

/// One network attachment of a running container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Network id.
    pub network_id: String,
    /// Network name.
    pub network_name: String,
    /// Endpoint id (64 hex).
    pub endpoint_id: String,
    /// What was asked.
    pub endpoint: Endpoint,
    /// What setup gave.
    pub result: EndpointResult,
    /// The network as it was when attached (teardown works even after it changed).
    #[serde(default)]
    pub network: Option<NetworkConfig>,
}

/// A running container's networking, as persisted in `<exec-root>/net/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveState {
    /// Container id.
    pub container_id: String,
    /// Container name.
    pub name: String,
    /// The namespace mount.
    pub netns: PathBuf,
    /// Attachments, in the order they were made.
    pub attachments: Vec<Attachment>,
    /// Upstream resolvers of its DNS server (empty: no DNS server).
    #[serde(default)]
    pub dns_upstreams: Vec<std::net::SocketAddr>,
}

/// In memory only: what dies with the daemon (and is rebuilt at its start).
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) state: Option<LiveState>,
    pub(crate) proxies: Vec<PortProxy>,
    pub(crate) dns: Option<DnsServerHandle>,
}

/// The networking settings in effect (flags, else what the last start used, else the
/// defaults), kept in `<data-root>/network/settings.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effective {
    /// Default bridge device (`none`: no default bridge).
    pub bridge: String,
    /// Device name prefix.
    pub prefix: String,
    /// nftables table.
    pub nft_table: String,
}

impl Effective {
    fn resolve(opts: &NetOptions, root: &Path) -> Result<Effective, NetworkError> {
        let path = root.join("settings.json");
        let stored: Option<Effective> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let e = Effective {
            bridge: opts
                .bridge
                .clone()
                .or_else(|| stored.as_ref().map(|s| s.bridge.clone()))
                .unwrap_or_else(|| "berth0".into()),
            prefix: opts
                .prefix
                .clone()
                .or_else(|| stored.as_ref().map(|s| s.prefix.clone()))
                .unwrap_or_default(),
            nft_table: opts
                .nft_table
                .clone()
                .or_else(|| stored.as_ref().map(|s| s.nft_table.clone()))
                .unwrap_or_else(|| "berth".into()),
        };
        if stored.as_ref() != Some(&e) {
            let bytes = serde_json::to_vec_pretty(&e).map_err(|e| NetworkError::Io {
                op: "encode",
                path: path.display().to_string(),
                source: std::io::Error::other(e),
            })?;
            write_atomic(&path, &bytes)?;
        }
        Ok(e)
    }
}

/// The network store and plumbing.
#[derive(Debug)]
pub struct Networks {
    root: PathBuf,
    netns_dir: PathBuf,
    state_dir: PathBuf,
    opts: NetOptions,
    eff: Effective,
    pub(crate) mgr: NetworkManager,
    nets: Mutex<BTreeMap<String, NetworkRecord>>,
    /// Networks whose bridge and rules are in place in this daemon's lifetime.
    plumbed: Mutex<std::collections::HashSet<String>>,
    pub(crate) live: Mutex<HashMap<String, Live>>,
    pub(crate) dns: DnsTable,
    events: Arc<EventBus>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn random_hex() -> String {
    let mut raw = [0u8; 32];
    // getrandom only fails without a kernel entropy source; fall back to time + pid
    if getrandom::fill(&mut raw).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        raw[..16].copy_from_slice(&t.to_le_bytes());
        raw[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    hex::encode(raw)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NetworkError> {
    write_file(path, bytes, true)
}

/// Temp file, (fsync when `durable`), rename: runtime state under the exec root skips the
/// fsync (a reboot empties it anyway).
fn write_file(path: &Path, bytes: &[u8], durable: bool) -> Result<(), NetworkError> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(NetworkError::io("create", &tmp))?;
        f.write_all(bytes)
            .map_err(NetworkError::io("write", &tmp))?;
        if durable {
            f.sync_all().map_err(NetworkError::io("sync", &tmp))?;
        }
    }
    std::fs::rename(&tmp, path).map_err(NetworkError::io("rename into place", path))
}

fn parse_net(s: &str, what: &str) -> Result<Ipv4Net, NetworkError> {
    s.parse::<Ipv4Net>()
        .map_err(|_| NetworkError::Invalid(format!("invalid {what} {s}: not an IPv4 CIDR")))
}

/// Parses `--default-address-pool base=10.10.0.0/16,size=24`.
pub fn parse_pool(s: &str) -> Result<SubnetPool, String> {
    let mut base = None;
    let mut size = None;
    for kv in s.split(',') {
        match kv.split_once('=') {
            Some(("base", v)) => {
                base = Some(
                    v.parse::<Ipv4Net>()
                        .map_err(|_| format!("invalid address pool {s:?}: bad base {v:?}"))?,
                )
            }
            Some(("size", v)) => {
                size = Some(
                    v.parse::<u8>()
                        .ok()
                        .filter(|n| *n <= 32)
                        .ok_or_else(|| format!("invalid address pool {s:?}: bad size {v:?}"))?,
                )
            }
            _ => {
                return Err(format!(
                    "invalid address pool {s:?}: expected base=CIDR,size=N"
                ));
            }
        }
    }
    let base = base.ok_or_else(|| format!("invalid address pool {s:?}: no base"))?;
    let size = size.unwrap_or(base.prefix_len());
    if size < base.prefix_len() {
        return Err(format!(
            "invalid address pool {s:?}: size {size} is larger than the base"
        ));
    }
    Ok(SubnetPool {
        base: base.trunc(),
        size,
    })
}

impl Networks {
    /// Opens the store under `<data-root>/network`, adding the built-in networks.
    pub fn open(
        data_root: &Path,
        exec_root: &Path,
        opts: NetOptions,
        events: Arc<EventBus>,
    ) -> Result<Arc<Networks>, NetworkError> {
        let root = data_root.join("network");
        std::fs::create_dir_all(&root).map_err(NetworkError::io("create", &root))?;
        let eff = Effective::resolve(&opts, &root)?;
        // leases live with the runtime state: they only matter while containers run, and
        // a reboot must not leave stale ones behind
        let ipam_dir = exec_root.join("network");
        std::fs::create_dir_all(&ipam_dir).map_err(NetworkError::io("create", &ipam_dir))?;
        let ipam = Arc::new(Ipam::open(ipam_dir.join("ipam.json")).volatile());
        let mgr = NetworkManager::new(None, &eff.nft_table, ipam)?;
        let mgr = if eff.prefix.is_empty() {
            mgr
        } else {
            mgr.with_veth_prefix(&eff.prefix)
        };
        let mut nets = BTreeMap::new();
        let rd = std::fs::read_dir(&root).map_err(NetworkError::io("list", &root))?;
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json")
                && p.file_name() != Some("ipam.json".as_ref())
                && p.file_name() != Some("settings.json".as_ref())
            {
                let text = std::fs::read_to_string(&p).map_err(NetworkError::io("read", &p))?;
                match serde_json::from_str::<NetworkRecord>(&text) {
                    Ok(r) => {
                        nets.insert(r.id.clone(), r);
                    }
                    Err(e) => {
                        tracing::warn!(path = %p.display(), error = %e, "skipping network file")
                    }
                }
            }
        }
        let n = Arc::new(Networks {
            root,
            netns_dir: exec_root.join("netns"),
            state_dir: exec_root.join("net"),
            opts,
            eff,
            mgr,
            nets: Mutex::new(nets),
            plumbed: Mutex::new(Default::default()),
            live: Mutex::new(HashMap::new()),
            dns: DnsTable::new(),
            events,
        });
        n.ensure_builtins()?;
        Ok(n)
    }

    fn save(&self, r: &NetworkRecord) -> Result<(), NetworkError> {
        let bytes = serde_json::to_vec_pretty(r).map_err(|e| NetworkError::Io {
            op: "encode",
            path: r.id.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&self.root.join(format!("{}.json", r.id)), &bytes)
    }

    fn taken_subnets(&self, nets: &BTreeMap<String, NetworkRecord>, skip: &str) -> Vec<Ipv4Net> {
        let mut taken: Vec<Ipv4Net> = nets
            .values()
            .filter(|r| r.id != skip)
            .filter_map(|r| r.config.as_ref().map(|c| c.subnet))
            .collect();
        // our own bridges' routes are ours; other routes on the host are not to be shadowed
        let own: Vec<String> = nets
            .values()
            .filter_map(|r| r.config.as_ref().map(|c| c.bridge.clone()))
            .collect();
        taken.extend(host_routes_except(&own));
        taken
    }

    fn pools(&self) -> Vec<SubnetPool> {
        if self.opts.pools.is_empty() {
            SubnetPool::docker_defaults()
        } else {
            self.opts.pools.clone()
        }
    }

    fn ensure_builtins(&self) -> Result<(), NetworkError> {
        let mut nets = lock(&self.nets);
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if !nets.values().any(|r| r.name == name) {
                let r = NetworkRecord {
                    version: NETWORK_VERSION,
                    name: name.into(),
                    id: random_hex(),
                    driver: driver.into(),
                    created: jiff::Timestamp::now().to_string(),
                    labels: BTreeMap::new(),
                    options: BTreeMap::new(),
                    internal: false,
                    attachable: false,
                    config: None,
                };
                self.save(&r)?;
                nets.insert(r.id.clone(), r);
            }
        }
        let existing = nets.values().find(|r| r.name == "bridge").cloned();
        if self.eff.bridge == "none" {
            if let Some(r) = existing {
                nets.remove(&r.id);
                let _ = std::fs::remove_file(self.root.join(format!("{}.json", r.id)));
            }
            return Ok(());
        }
        let (subnet, gateway) = match &self.opts.bip {
            Some(bip) => {
                let (ip, len) = bip.split_once('/').ok_or_else(|| {
                    NetworkError::Invalid(format!("invalid --bip {bip}: expected ADDRESS/PREFIX"))
                })?;
                let ip: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| NetworkError::Invalid(format!("invalid --bip {bip}")))?;
                let len: u8 = len
                    .parse()
                    .map_err(|_| NetworkError::Invalid(format!("invalid --bip {bip}")))?;
                let net = Ipv4Net::new(ip, len)
                    .map_err(|_| NetworkError::Invalid(format!("invalid --bip {bip}")))?;
                (net.trunc(), Some(ip))
            }
            None => match existing.as_ref().and_then(|r| r.config.as_ref()) {
                Some(c) => (c.subnet, c.gateway),
                None => match routes_of(&self.eff.bridge).first() {
                    // the device is there already (another start, or the admin's): adopt
                    // its subnet, as dockerd adopts docker0's address
                    Some(s) => (*s, None),
                    None => {
                        let mut taken = self.taken_subnets(&nets, "");
                        let own = routes_of(&self.eff.bridge);
                        taken.retain(|t| !own.contains(t));
                        match berth_network::pick_subnet(&self.pools(), &taken) {
                            Some(s) => (s, None),
                            None => {
                                // no free pool: the daemon still starts; runs on the default
                                // bridge fail, naming the reason
                                tracing::warn!(
                                    bridge = %self.eff.bridge,
                                    "no free subnet for the default bridge; give --bip"
                                );
                                return Ok(());
                            }
                        }
                    }
                },
            },
        };
        let id = existing
            .as_ref()
            .map(|r| r.id.clone())
            .unwrap_or_else(random_hex);
        let mut options = BTreeMap::new();
        options.insert(
            "com.docker.network.bridge.default_bridge".into(),
            "true".into(),
        );
        options.insert("com.docker.network.bridge.enable_icc".into(), "true".into());
        options.insert(
            "com.docker.network.bridge.enable_ip_masquerade".into(),
            "true".into(),
        );
        options.insert(
            "com.docker.network.bridge.host_binding_ipv4".into(),
            "0.0.0.0".into(),
        );
        options.insert(
            "com.docker.network.bridge.name".into(),
            self.eff.bridge.clone(),
        );
        options.insert("com.docker.network.driver.mtu".into(), "1500".into());
        let r = NetworkRecord {
            version: NETWORK_VERSION,
            name: "bridge".into(),
            id: id.clone(),
            driver: "bridge".into(),
            created: existing
                .as_ref()
                .map(|r| r.created.clone())
                .unwrap_or_else(|| jiff::Timestamp::now().to_string()),
            labels: BTreeMap::new(),
            options,
            internal: false,
            attachable: false,
            config: Some(NetworkConfig {
                name: "bridge".into(),
                id: id.clone(),
                driver: "bridge".into(),
                subnet,
                gateway,
                ip_range: None,
                internal: false,
                labels: BTreeMap::new(),
                bridge: self.eff.bridge.clone(),
                mtu: None,
            }),
        };
        if existing.as_ref() != Some(&r) {
            self.save(&r)?;
        }
        nets.insert(id, r);
        Ok(())
    }

    /// `--bridge none`.
    pub fn default_bridge_disabled(&self) -> bool {
        self.eff.bridge == "none"
    }

    /// Resolves a name, a full id or a unique id prefix.
    pub fn get(&self, name: &str) -> Result<NetworkRecord, NetworkError> {
        let nets = lock(&self.nets);
        Self::get_in(&nets, name).cloned()
    }

    fn get_in<'a>(
        nets: &'a BTreeMap<String, NetworkRecord>,
        name: &str,
    ) -> Result<&'a NetworkRecord, NetworkError> {
        if let Some(r) = nets.get(name) {
            return Ok(r);
        }
        if let Some(r) = nets.values().find(|r| r.name == name) {
            return Ok(r);
        }
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<&NetworkRecord> =
                nets.values().filter(|r| r.id.starts_with(name)).collect();
            match hits.len() {
                1 => return Ok(hits[0]),
                0 => {}
                n => return Err(NetworkError::Ambiguous(name.to_owned(), n)),
            }
        }
        Err(NetworkError::NotFound(name.to_owned()))
    }

    /// Every network, by name.
    pub fn all(&self) -> Vec<NetworkRecord> {
        let mut v: Vec<NetworkRecord> = lock(&self.nets).values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn device_name(&self, id: &str) -> String {
        if self.eff.prefix.is_empty() {
            format!("br-{}", &id[..12])
        } else {
            let room = 15usize.saturating_sub(self.eff.prefix.len()).clamp(1, 12);
            format!("{}{}", self.eff.prefix, &id[..room])
        }
    }

    /// `network create`: stores the network and makes its bridge and rules.
    pub fn create(&self, req: CreateRequest) -> Result<NetworkRecord, NetworkError> {
        let driver = if req.driver.is_empty() {
            "bridge".to_owned()
        } else {
            req.driver.clone()
        };
        if driver != "bridge" {
            return Err(NetworkError::Invalid(format!(
                "plugin \"{driver}\" not found: only the bridge driver is supported"
            )));
        }
        if req.name.is_empty()
            || !req
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(NetworkError::Invalid(format!(
                "invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
                req.name
            )));
        }
        if matches!(req.name.as_str(), "bridge" | "host" | "none" | "default") {
            return Err(NetworkError::Invalid(format!(
                "operation is not permitted on predefined {} network",
                req.name
            )));
        }
        for k in req.options.keys() {
            if !matches!(
                k.as_str(),
                "com.docker.network.bridge.name" | "com.docker.network.driver.mtu"
            ) && !k.starts_with("com.docker.network.bridge.")
            {
                return Err(NetworkError::Invalid(format!(
                    "unsupported network option {k:?}"
                )));
            }
        }
        let mtu =
            match req.options.get("com.docker.network.driver.mtu") {
                Some(m) => Some(m.parse::<u32>().map_err(|_| {
                    NetworkError::Invalid(format!("invalid mtu {m:?}: not a number"))
                })?),
                None => None,
            };
        let mut nets = lock(&self.nets);
        if nets.values().any(|r| r.name == req.name) {
            return Err(NetworkError::Exists(req.name));
        }
        let id = random_hex();
        let subnet = match &req.subnet {
            Some(s) => {
                let want = parse_net(s, "subnet")?;
                if want.trunc() != want {
                    return Err(NetworkError::Invalid(format!(
                        "invalid subnet {s}: it has host bits set (did you mean {}?)",
                        want.trunc()
                    )));
                }
                if let Some(o) = nets.values().find(|r| {
                    r.config.as_ref().is_some_and(|c| {
                        c.subnet.contains(&want.network()) || want.contains(&c.subnet.network())
                    })
                }) {
                    return Err(NetworkError::Overlap {
                        subnet: want.to_string(),
                        other: o.name.clone(),
                    });
                }
                want
            }
            None => {
                if req.gateway.is_some() || req.ip_range.is_some() {
                    return Err(NetworkError::Invalid(
                        "--gateway and --ip-range need --subnet".into(),
                    ));
                }
                let taken = self.taken_subnets(&nets, "");
                berth_network::pick_subnet(&self.pools(), &taken).ok_or(NetworkError::NoSubnet)?
            }
        };
        let gateway = match &req.gateway {
            Some(g) => {
                let ip: Ipv4Addr = g
                    .parse()
                    .map_err(|_| NetworkError::Invalid(format!("invalid gateway {g}")))?;
                if !subnet.contains(&ip) {
                    return Err(NetworkError::Invalid(format!(
                        "gateway {ip} is not in subnet {subnet}"
                    )));
                }
                Some(ip)
            }
            None => None,
        };
        let ip_range = match &req.ip_range {
            Some(r) => {
                let r = parse_net(r, "ip-range")?;
                if !subnet.contains(&r.network()) || r.prefix_len() < subnet.prefix_len() {
                    return Err(NetworkError::Invalid(format!(
                        "ip-range {r} is not inside subnet {subnet}"
                    )));
                }
                Some(r)
            }
            None => None,
        };
        let bridge = req
            .options
            .get("com.docker.network.bridge.name")
            .cloned()
            .unwrap_or_else(|| self.device_name(&id));
        if let Some(o) = nets
            .values()
            .find(|r| r.config.as_ref().is_some_and(|c| c.bridge == bridge))
        {
            return Err(NetworkError::Invalid(format!(
                "bridge device {bridge} is already used by network {}",
                o.name
            )));
        }
        let config = NetworkConfig {
            name: req.name.clone(),
            id: id.clone(),
            driver: driver.clone(),
            subnet,
            gateway,
            ip_range,
            internal: req.internal,
            labels: req.labels.clone(),
            bridge,
            mtu,
        };
        config
            .validate()
            .map_err(|e| NetworkError::Invalid(e.to_string()))?;
        let r = NetworkRecord {
            version: NETWORK_VERSION,
            name: req.name.clone(),
            id: id.clone(),
            driver,
            created: jiff::Timestamp::now().to_string(),
            labels: req.labels,
            options: req.options,
            internal: req.internal,
            attachable: req.attachable,
            config: Some(config.clone()),
        };
        self.mgr.create_network(&config)?;
        lock(&self.plumbed).insert(id.clone());
        if let Err(e) = self.save(&r) {
            let _ = self.mgr.remove_network(&config);
            return Err(e);
        }
        nets.insert(id.clone(), r.clone());
        drop(nets);
        self.event(&r, "create", &[]);
        Ok(r)
    }

    pub(crate) fn event(&self, r: &NetworkRecord, action: &str, extra: &[(&str, &str)]) {
        let mut e = Event::new("network", action, &r.id)
            .attr("name", &r.name)
            .attr("type", &r.driver);
        for (k, v) in extra {
            e = e.attr(k, v);
        }
        self.events.publish(e);
    }

    /// Makes sure a network's bridge and rules are in place (the default bridge is made on
    /// first use).
    pub(crate) fn ensure_plumbed(&self, r: &NetworkRecord) -> Result<(), NetworkError> {
        let Some(c) = &r.config else { return Ok(()) };
        if lock(&self.plumbed).contains(&r.id) {
            return Ok(());
        }
        self.mgr.create_network(c)?;
        lock(&self.plumbed).insert(r.id.clone());
        Ok(())
    }

    /// Containers (name, id) with an endpoint on network `id`.
    pub fn endpoints_on(&self, id: &str) -> Vec<(String, Attachment)> {
        let live = lock(&self.live);
        let mut v: Vec<(String, Attachment)> = live
            .values()
            .filter_map(|l| l.state.as_ref())
            .flat_map(|s| {
                s.attachments
                    .iter()
                    .filter(|a| a.network_id == id)
                    .map(|a| (s.name.clone(), a.clone()))
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// `network rm`: refused for the built-ins and while containers are attached.
    pub fn remove(&self, name: &str) -> Result<NetworkRecord, NetworkError> {
        let r = self.get(name)?;
        if r.predefined() {
            return Err(NetworkError::Predefined(r.name));
        }
        let eps = self.endpoints_on(&r.id);
        if !eps.is_empty() {
            let containers = eps
                .iter()
                .map(|(n, a)| format!("name:{n:?} id:{:?}", &a.endpoint.container_id[..12]))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(NetworkError::InUse {
                name: r.name,
                containers,
            });
        }
        if let Some(c) = &r.config
            && let Err(e) = self.mgr.remove_network(c)
        {
            tracing::warn!(network = %r.name, error = %e, "network teardown");
        }
        lock(&self.plumbed).remove(&r.id);
        let path = self.root.join(format!("{}.json", r.id));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NetworkError::io("remove", &path)(e)),
        }
        lock(&self.nets).remove(&r.id);
        self.event(&r, "destroy", &[]);
        Ok(r)
    }

    /// `network prune`: removes user-defined networks no container is attached to, whose
    /// labels match. Returns the names removed.
    pub fn prune(&self, keep: impl Fn(&NetworkRecord) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        for r in self.all() {
            if r.predefined() || keep(&r) || !self.endpoints_on(&r.id).is_empty() {
                continue;
            }
            if self.remove(&r.id).is_ok() {
                out.push(r.name);
            }
        }
        out
    }

    /// The netns mount of a container.
    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        self.netns_dir.join(container_id)
    }

    fn state_path(&self, container_id: &str) -> PathBuf {
        self.state_dir.join(format!("{container_id}.json"))
    }

    pub(crate) fn save_live(&self, s: &LiveState) -> Result<(), NetworkError> {
        std::fs::create_dir_all(&self.state_dir)
            .map_err(NetworkError::io("create", &self.state_dir))?;
        let bytes = serde_json::to_vec_pretty(s).map_err(|e| NetworkError::Io {
            op: "encode",
            path: s.container_id.clone(),
            source: std::io::Error::other(e),
        })?;
        write_file(&self.state_path(&s.container_id), &bytes, false)
    }

    pub(crate) fn load_live(&self, container_id: &str) -> Option<LiveState> {
        let text = std::fs::read_to_string(self.state_path(container_id)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub(crate) fn delete_live(&self, container_id: &str) {
        let _ = std::fs::remove_file(self.state_path(container_id));
    }

    /// Ids of containers with persisted live state or a namespace mount.
    pub(crate) fn known_containers(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for dir in [&self.state_dir, &self.netns_dir] {
            if let Ok(rd) = std::fs::read_dir(dir) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let id = n.trim_end_matches(".json").to_owned();
                    if id.len() == 64 && !ids.contains(&id) {
                        ids.push(id);
                    }
                }
            }
        }
        ids
    }

    /// The live state of a running container.
    pub fn live_state(&self, container_id: &str) -> Option<LiveState> {
        lock(&self.live)
            .get(container_id)
            .and_then(|l| l.state.clone())
    }

    /// Re-applies every rule of every network and running container (`network reload`).
    pub fn reload(&self) -> Result<(), NetworkError> {
        let desired = self.desired();
        self.mgr.reload(&desired)?;
        Ok(())
    }

    pub(crate) fn desired(&self) -> Vec<berth_network::DesiredNetwork> {
        let live = lock(&self.live);
        let plumbed = lock(&self.plumbed);
        lock(&self.nets)
            .values()
            .filter(|r| plumbed.contains(&r.id))
            .filter_map(|r| {
                let c = r.config.clone()?;
                let endpoints = live
                    .values()
                    .filter_map(|l| l.state.as_ref())
                    .flat_map(|s| {
                        s.attachments
                            .iter()
                            .filter(|a| a.network_id == r.id)
                            .map(|a| (s.container_id.clone(), a.result.clone()))
                    })
                    .collect();
                Some(berth_network::DesiredNetwork {
                    network: c,
                    endpoints,
                })
            })
            .collect()
    }

    /// Marks every bridge network that has a device as plumbed (daemon start).
    pub(crate) fn adopt_existing_bridges(&self) {
        let nets = lock(&self.nets).clone();
        for r in nets.values() {
            let Some(c) = &r.config else { continue };
            if Path::new("/sys/class/net").join(&c.bridge).exists() || r.name != "bridge" {
                // user networks are always wanted; re-create a bridge someone deleted
                if let Err(e) = self.ensure_plumbed(r) {
                    tracing::warn!(network = %r.name, error = %e, "cannot restore network");
                }
            }
        }
    }

    /// Docker's `GET /networks/{id}` JSON.
    pub fn inspect_json(&self, r: &NetworkRecord) -> Value {
        let ipam_config: Vec<Value> = r
            .config
            .as_ref()
            .map(|c| {
                let mut v =
                    json!({"Subnet": c.subnet.to_string(), "Gateway": c.gateway().to_string()});
                if let Some(ir) = c.ip_range {
                    v["IPRange"] = json!(ir.to_string());
                }
                vec![v]
            })
            .unwrap_or_default();
        let mut containers = serde_json::Map::new();
        for (name, a) in self.endpoints_on(&r.id) {
            containers.insert(
                a.endpoint.container_id.clone(),
                json!({
                    "Name": name,
                    "EndpointID": a.endpoint_id,
                    "MacAddress": berth_network::config::format_mac(&a.result.mac),
                    "IPv4Address": format!("{}/{}", a.result.ip, a.result.prefix_len),
                    "IPv6Address": "",
                }),
            );
        }
        json!({
            "Name": r.name,
            "Id": r.id,
            "Created": r.created,
            "Scope": "local",
            "Driver": r.driver,
            "EnableIPv4": true,
            "EnableIPv6": false,
            "IPAM": {"Driver": "default", "Options": if r.name == "bridge" { Value::Null } else { json!({}) }, "Config": ipam_config},
            "Internal": r.internal,
            "Attachable": r.attachable,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            "Options": r.options,
            "Labels": r.labels,
        })
    }

    /// The DNS upstreams for a container: `--dns` or the host's resolvers.
    pub(crate) fn upstreams(dns: &[String]) -> Vec<std::net::SocketAddr> {
        if !dns.is_empty() {
            return dns
                .iter()
                .filter_map(|d| d.parse::<IpAddr>().ok())
                .map(|ip| std::net::SocketAddr::new(ip, 53))
                .collect();
        }
        berth_network::dns::upstreams_from_file(Path::new("/etc/resolv.conf")).unwrap_or_default()
    }
}

/// The subnets routed on device `dev` (its addresses' networks).
fn routes_of(dev: &str) -> Vec<Ipv4Net> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    let only: String = text
        .lines()
        .enumerate()
        .filter(|(i, l)| *i == 0 || l.split_whitespace().next() == Some(dev))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    berth_network::subnet::parse_proc_routes(&only)
        .into_iter()
        .filter(|n| n.prefix_len() > 0)
        .collect()
}

/// Host routes (`/proc/net/route`) that are not on our own bridges.
fn host_routes_except(own_bridges: &[String]) -> Vec<Ipv4Net> {
    let Ok(text) = std::fs::read_to_string("/proc/net/route") else {
        return Vec::new();
    };
    let filtered: String = text
        .lines()
        .enumerate()
        .filter(|(i, l)| {
            *i == 0
                || !l
                    .split_whitespace()
                    .next()
                    .is_some_and(|dev| own_bridges.iter().any(|b| b == dev))
        })
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    berth_network::subnet::parse_proc_routes(&filtered)
}

/// The network operations, as the API calls them.
impl crate::Engine {
    /// The network store.
    pub fn networks(&self) -> &Arc<Networks> {
        &self.networks
    }

    async fn net_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(
            Arc<Networks>,
            Arc<crate::containers::Containers>,
        ) -> Result<T, crate::EngineError>
        + Send
        + 'static,
    ) -> Result<T, crate::EngineError> {
        let n = self.networks.clone();
        let c = self.containers().clone();
        tokio::task::spawn_blocking(move || f(n, c))
            .await
            .map_err(|e| crate::EngineError::Task(e.to_string()))?
    }

    /// `POST /networks/create`.
    pub async fn create_network(
        &self,
        req: CreateRequest,
    ) -> Result<NetworkRecord, crate::EngineError> {
        self.net_blocking(move |n, _| Ok(n.create(req)?)).await
    }

    /// `GET /networks/{id}`.
    pub async fn inspect_network(&self, name: &str) -> Result<Value, crate::EngineError> {
        let r = self.networks.get(name)?;
        Ok(self.networks.inspect_json(&r))
    }

    /// `GET /networks`: every network's inspect JSON.
    pub async fn list_networks(&self) -> Vec<Value> {
        self.networks
            .all()
            .iter()
            .map(|r| self.networks.inspect_json(r))
            .collect()
    }

    /// `DELETE /networks/{id}`.
    pub async fn remove_network(&self, name: &str) -> Result<(), crate::EngineError> {
        let name = name.to_owned();
        self.net_blocking(move |n, _| {
            n.remove(&name)?;
            Ok(())
        })
        .await
    }

    /// `POST /networks/prune`: names removed (label filters: `label=k[=v]`, `label!=…`).
    pub async fn prune_networks(
        &self,
        labels: Vec<String>,
        not_labels: Vec<String>,
    ) -> Result<Vec<String>, crate::EngineError> {
        self.net_blocking(move |n, _| {
            let has = |r: &NetworkRecord, f: &str| match f.split_once('=') {
                Some((k, v)) => r.labels.get(k).is_some_and(|x| x == v),
                None => r.labels.contains_key(f),
            };
            Ok(n.prune(|r| {
                labels.iter().any(|f| !has(r, f)) || not_labels.iter().any(|f| has(r, f))
            }))
        })
        .await
    }

    /// `POST /networks/{id}/connect`.
    pub async fn connect_network(
        &self,
        network: &str,
        container: &str,
        ep: berth_types::net::EndpointSpec,
    ) -> Result<(), crate::EngineError> {
        let (network, container) = (network.to_owned(), container.to_owned());
        self.net_blocking(move |_, c| c.net_connect(&network, &container, ep))
            .await
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect_network(
        &self,
        network: &str,
        container: &str,
        force: bool,
    ) -> Result<(), crate::EngineError> {
        let (network, container) = (network.to_owned(), container.to_owned());
        self.net_blocking(move |_, c| c.net_disconnect(&network, &container, force))
            .await
    }

    /// `POST /networks/reload` (Berth): re-applies every rule.
    pub async fn reload_networks(&self) -> Result<(), crate::EngineError> {
        self.net_blocking(|n, _| Ok(n.reload()?)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_parse_like_dockerd() {
        let p = parse_pool("base=10.10.0.0/16,size=24").unwrap();
        assert_eq!(p.base.to_string(), "10.10.0.0/16");
        assert_eq!(p.size, 24);
        assert_eq!(parse_pool("base=10.9.1.0/24").unwrap().size, 24);
        assert!(parse_pool("size=24").unwrap_err().contains("no base"));
        assert!(
            parse_pool("base=10.0.0.0/24,size=16")
                .unwrap_err()
                .contains("larger")
        );
        assert!(parse_pool("base=x").unwrap_err().contains("bad base"));
    }

    #[test]
    fn errors_carry_docker_messages_and_classes() {
        let e = NetworkError::InUse {
            name: "n".into(),
            containers: "name:\"c\" id:\"abc\"".into(),
        };
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.to_string().contains("has active endpoints (name:\"c\""));
        assert_eq!(
            NetworkError::NotFound("x".into()).kind(),
            ErrorKind::NotFound
        );
        assert_eq!(
            NetworkError::NotFound("x".into()).to_string(),
            "network x not found"
        );
    }
}
