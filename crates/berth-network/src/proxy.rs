//! The userland proxy for published ports.
//!
//! For every mapping it binds `host_ip:host_port` (all addresses when no host ip) in the host
//! namespace: binding first is the "port already taken" check, and holding the socket reserves
//! the port for as long as the container runs, as docker-proxy does. nftables DNAT catches the
//! traffic to the host's addresses, 127.0.0.1 included (the bridge has `route_localnet`, and
//! loopback sources are masqueraded), before it reaches these sockets; what arrives
//! here is, as with Docker's default `userland-proxy: true`, traffic
//! from containers on our bridges to a host address (the prerouting DNAT skips bridge
//! interfaces: DNAT of a bridged packet back into the port it came from is dropped when
//! br_netfilter is loaded). It is copied to the container with tokio (TCP streams, UDP
//! datagrams per client). It runs on its own thread with a single-threaded runtime, inside the host
//! namespace, so the connections to the container start from there too.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::oneshot;

use crate::config::{PortMapping, Protocol};

/// Proxy failures.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("host port {addr}/{protocol} is already in use or cannot be bound: {source}")]
    Bind {
        addr: SocketAddrV4,
        protocol: Protocol,
        source: std::io::Error,
    },
    #[error("host port 0 in mapping to container port {0}: pick a host port first")]
    ZeroPort(u16),
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
    #[error("failed to start the proxy runtime: {0}")]
    Runtime(std::io::Error),
    #[error("proxy thread for {0:?} exited before reporting")]
    Lost(PathBuf),
}

/// A running proxy; stops (and frees the ports) on [`PortProxy::stop`] or drop.
#[derive(Debug)]
pub struct PortProxy {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    addrs: Vec<(SocketAddrV4, Protocol)>,
}

enum Bound {
    Tcp(std::net::TcpListener, SocketAddr),
    Udp(std::net::UdpSocket, SocketAddr),
}

fn bind_all(ports: &[PortMapping], target: Ipv4Addr) -> Result<Vec<Bound>, ProxyError> {
    let mut out = Vec::new();
    for p in ports {
        if p.host_port == 0 {
            return Err(ProxyError::ZeroPort(p.container_port));
        }
        let addr = SocketAddrV4::new(p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), p.host_port);
        let err = |source| ProxyError::Bind {
            addr,
            protocol: p.protocol,
            source,
        };
        let to = SocketAddr::V4(SocketAddrV4::new(target, p.container_port));
        out.push(match p.protocol {
            Protocol::Tcp => {
                let sock = socket2_listener(addr).map_err(err)?;
                Bound::Tcp(sock, to)
            }
            Protocol::Udp => {
                let sock = std::net::UdpSocket::bind(addr).map_err(err)?;
                sock.set_nonblocking(true).map_err(err)?;
                Bound::Udp(sock, to)
            }
        });
    }
    Ok(out)
}

fn socket2_listener(addr: SocketAddrV4) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

impl PortProxy {
    /// Bind every mapping in `host_netns` (the caller's namespace when `None`) and forward to
    /// `target` (the container's address). Fails, with nothing left bound, if any port is taken.
    pub fn start(
        host_netns: Option<&Path>,
        ports: &[PortMapping],
        target: Ipv4Addr,
    ) -> Result<PortProxy, ProxyError> {
        let addrs = ports
            .iter()
            .map(|p| {
                (
                    SocketAddrV4::new(p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), p.host_port),
                    p.protocol,
                )
            })
            .collect();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), ProxyError>>();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let ns = host_netns.map(Path::to_owned);
        let ports = ports.to_vec();
        let thread = std::thread::Builder::new()
            .name("berth-proxy".into())
            .spawn(move || {
                let setup = (|| {
                    if let Some(p) = &ns {
                        crate::netns::enter(p)?;
                    }
                    let bound = bind_all(&ports, target)?;
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(ProxyError::Runtime)?;
                    Ok((bound, rt))
                })();
                let (bound, rt) = match setup {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                rt.block_on(async move {
                    let mut tasks = tokio::task::JoinSet::new();
                    for b in bound {
                        match b {
                            Bound::Tcp(l, to) => match TcpListener::from_std(l) {
                                Ok(l) => {
                                    tasks.spawn(serve_tcp(l, to));
                                }
                                Err(e) => {
                                    let _ = ready_tx.send(Err(ProxyError::Runtime(e)));
                                    return;
                                }
                            },
                            Bound::Udp(s, to) => match UdpSocket::from_std(s) {
                                Ok(s) => {
                                    tasks.spawn(serve_udp(Arc::new(s), to));
                                }
                                Err(e) => {
                                    let _ = ready_tx.send(Err(ProxyError::Runtime(e)));
                                    return;
                                }
                            },
                        }
                    }
                    let _ = ready_tx.send(Ok(()));
                    let _ = stop_rx.await;
                    tasks.abort_all();
                });
            })
            .map_err(ProxyError::Runtime)?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(PortProxy {
                stop: Some(stop_tx),
                thread: Some(thread),
                addrs,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(ProxyError::Lost(
                    host_netns.map(Path::to_owned).unwrap_or_default(),
                ))
            }
        }
    }

    /// The host addresses this proxy holds.
    pub fn addresses(&self) -> &[(SocketAddrV4, Protocol)] {
        &self.addrs
    }

    /// Stop forwarding and close every socket; returns once the ports are free.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PortProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn serve_tcp(listener: TcpListener, to: SocketAddr) {
    loop {
        let Ok((mut inbound, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            if let Ok(mut outbound) = TcpStream::connect(to).await {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            }
        });
    }
}

/// A UDP "connection" ends after this long without a reply from the container (Docker's
/// proxy uses 90 s as well).
const UDP_IDLE: Duration = Duration::from_secs(90);

async fn serve_udp(sock: Arc<UdpSocket>, to: SocketAddr) {
    let mut peers: HashMap<SocketAddr, (Arc<UdpSocket>, Arc<AtomicBool>)> = HashMap::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, client)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        // forget clients whose reply task has ended (idle)
        peers.retain(|_, (_, alive)| alive.load(Ordering::Relaxed));
        let upstream = match peers.get(&client) {
            Some((u, _)) => u.clone(),
            None => {
                let Ok(u) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await else {
                    continue;
                };
                if u.connect(to).await.is_err() {
                    continue;
                }
                let u = Arc::new(u);
                let alive = Arc::new(AtomicBool::new(true));
                let (back, reply, flag) = (sock.clone(), u.clone(), alive.clone());
                tokio::spawn(async move {
                    let mut b = vec![0u8; 65536];
                    while let Ok(Ok(n)) = tokio::time::timeout(UDP_IDLE, reply.recv(&mut b)).await {
                        let _ = back.send_to(&b[..n], client).await;
                    }
                    flag.store(false, Ordering::Relaxed);
                });
                peers.insert(client, (u.clone(), alive));
                u
            }
        };
        let _ = upstream.send(&buf[..n]).await;
    }
}
