//! The embedded DNS server: answers A/AAAA for container names and aliases of the networks a
//! container is on, from a shared table that is updated in place (listeners never restart),
//! and forwards every other name to the host's resolvers.
//!
//! Docker's trick, kept here: the listening sockets are bound inside the container's namespace
//! at 127.0.0.11:53 (from a thread that joined it), while the server itself runs on the
//! caller's tokio runtime, so the sockets it opens towards the upstream resolvers belong to the
//! caller's (the host's) namespace.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;

/// Docker's resolver address inside a container.
pub const DOCKER_DNS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11)), 53);

const TTL: u32 = 600;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
const TCP_IDLE: Duration = Duration::from_secs(30);

/// DNS failures.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("failed to bind the dns {proto} socket on {addr}: {source}")]
    Bind {
        proto: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
}

type Names = HashMap<String, HashMap<String, Vec<IpAddr>>>;

/// Names per network; cheap to clone, every clone sees the same table.
#[derive(Clone, Debug, Default)]
pub struct DnsTable {
    inner: Arc<RwLock<Names>>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsTable {
    /// An empty table.
    pub fn new() -> DnsTable {
        DnsTable::default()
    }

    /// Make `name` resolve to `ip` on `network` (another address for the same name is added,
    /// as with several containers sharing an alias).
    pub fn add(&self, network: &str, name: &str, ip: IpAddr) {
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let ips = t
            .entry(network.to_owned())
            .or_default()
            .entry(key(name))
            .or_default();
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }

    /// Register a container on `network` as Docker does: its name, its aliases and its
    /// 12-character short id.
    pub fn add_endpoint(&self, network: &str, ep: &crate::config::Endpoint, ip: IpAddr) {
        self.add(network, &ep.name, ip);
        for alias in &ep.aliases {
            self.add(network, alias, ip);
        }
        let short: String = ep.container_id.chars().take(12).collect();
        if !short.is_empty() {
            self.add(network, &short, ip);
        }
    }

    /// Drop every name that points at `ip` on `network` (a container left it).
    pub fn remove_ip(&self, network: &str, ip: IpAddr) {
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(names) = t.get_mut(network) {
            names.values_mut().for_each(|ips| ips.retain(|i| *i != ip));
            names.retain(|_, ips| !ips.is_empty());
        }
    }

    /// Drop `name` on `network`.
    pub fn remove_name(&self, network: &str, name: &str) {
        let mut t = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(names) = t.get_mut(network) {
            names.remove(&key(name));
        }
    }

    /// Addresses of `name` on any of `networks`; `None` when the name is unknown there.
    pub fn lookup(&self, networks: &[String], name: &str) -> Option<Vec<IpAddr>> {
        let t = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let k = key(name);
        let mut found: Option<Vec<IpAddr>> = None;
        for n in networks {
            if let Some(ips) = t.get(n).and_then(|names| names.get(&k)) {
                found
                    .get_or_insert_with(Vec::new)
                    .extend(ips.iter().copied());
            }
        }
        found
    }
}

/// The nameservers of a resolv.conf, port 53; 127.0.0.11 (ourselves) is skipped.
pub fn upstreams_from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next()? == "nameserver").then_some(())?;
            let ip: IpAddr = w.next()?.split('%').next()?.parse().ok()?;
            (ip != DOCKER_DNS.ip()).then_some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// The upstreams of the resolv.conf at `path` (the engine passes `/etc/resolv.conf`).
pub fn upstreams_from_file(path: &Path) -> std::io::Result<Vec<SocketAddr>> {
    Ok(upstreams_from_resolv_conf(&std::fs::read_to_string(path)?))
}

/// A container's resolv.conf on a network with embedded DNS, made from the host's: Docker's
/// `nameserver 127.0.0.11`, the host's `search` line kept, the host's `options` kept with
/// `ndots:0` added, as Docker writes it.
pub fn container_resolv_conf(host: &str) -> String {
    let mut out = String::from("nameserver 127.0.0.11\n");
    let mut options: Vec<String> = Vec::new();
    for line in host.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("search") => {
                out.push_str(line.trim());
                out.push('\n');
            }
            Some("options") => options.extend(w.map(str::to_owned)),
            _ => {}
        }
    }
    if !options.iter().any(|o| o.starts_with("ndots:")) {
        options.insert(0, "ndots:0".into());
    }
    out.push_str(&format!("options {}\n", options.join(" ")));
    out
}

/// Bind a UDP socket and a TCP listener on `addr` inside the namespace at `netns`.
pub fn bind_in_netns(
    netns: &Path,
    addr: SocketAddr,
) -> Result<(std::net::UdpSocket, std::net::TcpListener), DnsError> {
    crate::netns::run_in(Some(netns), || -> Result<_, DnsError> {
        let udp = std::net::UdpSocket::bind(addr).map_err(|source| DnsError::Bind {
            proto: "udp",
            addr,
            source,
        })?;
        let tcp = std::net::TcpListener::bind(addr).map_err(|source| DnsError::Bind {
            proto: "tcp",
            addr,
            source,
        })?;
        for r in [udp.set_nonblocking(true), tcp.set_nonblocking(true)] {
            r.map_err(|source| DnsError::Bind {
                proto: "udp",
                addr,
                source,
            })?;
        }
        Ok((udp, tcp))
    })?
}

/// One container's resolver.
#[derive(Clone, Debug)]
pub struct DnsServer {
    table: DnsTable,
    networks: Arc<RwLock<Vec<String>>>,
    upstreams: Arc<RwLock<Vec<SocketAddr>>>,
}

/// Serving tasks; dropping it stops them and closes the sockets.
#[derive(Debug)]
pub struct DnsServerHandle {
    tasks: JoinSet<()>,
    server: DnsServer,
}

impl DnsServerHandle {
    /// The server, to change its networks or upstreams in place.
    pub fn server(&self) -> &DnsServer {
        &self.server
    }

    /// Stop serving.
    pub fn stop(mut self) {
        self.tasks.abort_all();
    }
}

impl DnsServer {
    /// A resolver over `table` for the names of `networks`, forwarding the rest to `upstreams`.
    pub fn new(table: DnsTable, networks: Vec<String>, upstreams: Vec<SocketAddr>) -> DnsServer {
        DnsServer {
            table,
            networks: Arc::new(RwLock::new(networks)),
            upstreams: Arc::new(RwLock::new(upstreams)),
        }
    }

    /// Change the networks whose names this resolver answers (connect/disconnect).
    pub fn set_networks(&self, networks: Vec<String>) {
        *self.networks.write().unwrap_or_else(|p| p.into_inner()) = networks;
    }

    /// Change the upstream resolvers.
    pub fn set_upstreams(&self, upstreams: Vec<SocketAddr>) {
        *self.upstreams.write().unwrap_or_else(|p| p.into_inner()) = upstreams;
    }

    /// Serve on already bound sockets; must be called inside a tokio runtime.
    pub fn serve(
        &self,
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
    ) -> std::io::Result<DnsServerHandle> {
        let udp = Arc::new(UdpSocket::from_std(udp)?);
        let tcp = TcpListener::from_std(tcp)?;
        let mut tasks = JoinSet::new();
        let me = self.clone();
        tasks.spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                let (me, sock, query) = (me.clone(), udp.clone(), buf[..n].to_vec());
                tokio::spawn(async move {
                    if let Some(reply) = me.answer(&query).await {
                        let _ = sock.send_to(&reply, peer).await;
                    }
                });
            }
        });
        let me = self.clone();
        tasks.spawn(async move {
            loop {
                let Ok((stream, _)) = tcp.accept().await else {
                    continue;
                };
                tokio::spawn(me.clone().serve_tcp_conn(stream));
            }
        });
        Ok(DnsServerHandle {
            tasks,
            server: self.clone(),
        })
    }

    async fn serve_tcp_conn(self, mut stream: TcpStream) {
        loop {
            // an idle client does not hold a task forever
            let Ok(Ok(len)) = tokio::time::timeout(TCP_IDLE, stream.read_u16()).await else {
                return;
            };
            let mut q = vec![0u8; usize::from(len)];
            if stream.read_exact(&mut q).await.is_err() {
                return;
            }
            let Some(reply) = self.answer(&q).await else {
                return;
            };
            let Ok(rlen) = u16::try_from(reply.len()) else {
                return;
            };
            if stream.write_u16(rlen).await.is_err() || stream.write_all(&reply).await.is_err() {
                return;
            }
        }
    }

    /// Answer one wire-format query: from the table, else from an upstream, else SERVFAIL.
    pub async fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        let msg = Message::from_vec(query).ok()?;
        if msg.message_type != MessageType::Query {
            return None;
        }
        if let Some(q) = msg.queries.first()
            && msg.op_code == OpCode::Query
        {
            let networks = self
                .networks
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if let Some(ips) = self.table.lookup(&networks, &q.name().to_ascii()) {
                let mut reply = Message::response(msg.id, OpCode::Query);
                reply.metadata.authoritative = true;
                reply.metadata.recursion_desired = msg.recursion_desired;
                reply.metadata.recursion_available = true;
                reply.add_query(q.clone());
                for ip in ips {
                    let rdata = match (q.query_type(), ip) {
                        (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => RData::A(A(v4)),
                        (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => {
                            RData::AAAA(AAAA(v6))
                        }
                        _ => continue,
                    };
                    reply.add_answer(Record::from_rdata(q.name().clone(), TTL, rdata));
                }
                return reply.to_vec().ok();
            }
        }
        let upstreams = self
            .upstreams
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for up in upstreams {
            if let Ok(Ok(reply)) = tokio::time::timeout(UPSTREAM_TIMEOUT, forward(up, query)).await
            {
                return Some(reply);
            }
        }
        let mut fail = Message::error_msg(msg.id, msg.op_code, ResponseCode::ServFail);
        fail.metadata.recursion_desired = msg.recursion_desired;
        fail.add_queries(msg.queries.clone());
        fail.to_vec().ok()
    }
}

async fn forward(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        "[::]:0".parse().expect("valid")
    };
    let sock = UdpSocket::bind(local).await?;
    sock.connect(upstream).await?;
    sock.send(query).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).await?;
        // only accept the reply to our id
        if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
            return Ok(buf[..n].to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_updates_in_place() {
        let t = DnsTable::new();
        let t2 = t.clone();
        let nets = vec!["a".to_string()];
        t.add("a", "DB", "10.0.0.2".parse().unwrap());
        t.add("a", "database", "10.0.0.2".parse().unwrap());
        t.add("b", "other", "10.0.1.2".parse().unwrap());
        assert_eq!(
            t2.lookup(&nets, "db."),
            Some(vec!["10.0.0.2".parse().unwrap()])
        );
        assert_eq!(
            t2.lookup(&nets, "other"),
            None,
            "names of other networks are invisible"
        );
        t.remove_ip("a", "10.0.0.2".parse().unwrap());
        assert_eq!(t2.lookup(&nets, "database"), None);
    }

    #[test]
    fn endpoint_names_aliases_and_short_id() {
        let t = DnsTable::new();
        let ep = crate::config::Endpoint {
            container_id: "0123456789abcdef0123".into(),
            name: "web".into(),
            netns: crate::config::NetnsRef::Path("/proc/self/ns/net".into()),
            interface: "eth0".into(),
            requested_ip: None,
            aliases: vec!["frontend".into()],
            mac: None,
            ports: vec![],
        };
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        t.add_endpoint("n", &ep, ip);
        let nets = vec!["n".to_string()];
        for name in ["web", "frontend", "0123456789ab"] {
            assert_eq!(t.lookup(&nets, name), Some(vec![ip]), "{name}");
        }
        t.remove_ip("n", ip);
        assert_eq!(t.lookup(&nets, "web"), None);
    }

    #[test]
    fn container_resolv_conf_points_at_the_embedded_server() {
        let host = "# generated\nnameserver 10.0.0.53\nsearch corp.example\noptions timeout:2\n";
        assert_eq!(
            container_resolv_conf(host),
            "nameserver 127.0.0.11\nsearch corp.example\noptions ndots:0 timeout:2\n"
        );
        assert_eq!(
            container_resolv_conf("options ndots:3\n"),
            "nameserver 127.0.0.11\noptions ndots:3\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("resolv.conf");
        std::fs::write(&f, "nameserver 192.0.2.53\n").unwrap();
        assert_eq!(
            upstreams_from_file(&f).unwrap(),
            vec!["192.0.2.53:53".parse().unwrap()]
        );
        assert!(upstreams_from_file(&dir.path().join("none")).is_err());
    }

    #[test]
    fn parses_resolv_conf() {
        let text = "# c\nsearch x\nnameserver 10.0.0.53\nnameserver 127.0.0.11\nnameserver fe80::1%eth0\noptions ndots:0\n";
        assert_eq!(
            upstreams_from_resolv_conf(text),
            vec![
                "10.0.0.53:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }
}
