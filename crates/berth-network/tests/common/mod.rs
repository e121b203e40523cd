//! Test fixtures: network namespaces that the test creates (one plays "the host"), unique
//! names per test, and Drop guards that remove everything even when a test panics.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use berth_network::{Endpoint, Ipam, NetnsRef, NetworkConfig, NetworkManager, PortMapping};

pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A unique short token for this test: pid and a hash of the test name.
pub fn token(test: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in test.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!(
        "{:04x}{:04x}",
        std::process::id() & 0xffff,
        (h ^ (h >> 16)) & 0xffff
    )
}

/// `ip netns add`; deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Run `f` on a thread inside `ns`.
pub fn in_ns<T: Send>(ns: &Path, f: impl FnOnce() -> T + Send) -> T {
    berth_network::netns::run_in(Some(ns), f).expect("enter netns")
}

/// A test world: a "host" netns, a manager in it with its own table and IPAM file.
pub struct World {
    pub token: String,
    pub dir: tempfile::TempDir,
    pub manager: NetworkManager,
    // dropped last: everything else lives inside these namespaces
    pub host: Netns,
}

impl World {
    pub fn new(test: &str) -> World {
        let token = token(test);
        let host = Netns::new(format!("bnt{token}h"));
        let dir = tempfile::tempdir().unwrap();
        let ipam = Arc::new(Ipam::open(dir.path().join("ipam.json")));
        let manager =
            NetworkManager::new(Some(host.path()), &format!("berth_{token}"), ipam).unwrap();
        World {
            token,
            dir,
            manager,
            host,
        }
    }

    /// A network whose subnet is 10.<second>.<pid-derived>.0/24 and bridge `bb<token><tag>`.
    pub fn network(&self, tag: &str, second: u8, internal: bool) -> NetworkConfig {
        let third = (std::process::id() % 250) as u8;
        NetworkConfig {
            name: format!("net-{tag}"),
            id: format!("id{}{tag}", self.token),
            driver: "bridge".into(),
            subnet: format!("10.{second}.{third}.0/24").parse().unwrap(),
            gateway: None,
            ip_range: None,
            internal,
            labels: BTreeMap::new(),
            bridge: format!("bb{}{tag}", self.token),
            mtu: None,
        }
    }

    pub fn container(&self, tag: &str) -> Netns {
        Netns::new(format!("bnt{}{tag}", self.token))
    }

    pub fn endpoint(&self, ns: &Netns, tag: &str, ports: Vec<PortMapping>) -> Endpoint {
        Endpoint {
            container_id: format!("ctr{}{tag}", self.token),
            name: format!("c{tag}"),
            netns: NetnsRef::Path(ns.path()),
            interface: "eth0".into(),
            requested_ip: None,
            aliases: vec![],
            mac: None,
            ports,
        }
    }
}

/// A TCP server inside a namespace that answers every connection with `greeting` followed by
/// what it read; stops on drop.
pub struct TcpServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TcpServer {
    pub fn start(ns: &Path, port: u16, greeting: &'static str) -> TcpServer {
        let listener = in_ns(ns, || {
            TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap()
        });
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let mut buf = [0u8; 64];
                        let n = c.read(&mut buf).unwrap_or(0);
                        let _ = c.write_all(greeting.as_bytes());
                        let _ = c.write_all(&buf[..n]);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TcpServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TcpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A UDP echo server inside a namespace that prefixes replies with `greeting`; stops on drop.
pub struct UdpServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpServer {
    pub fn start(ns: &Path, port: u16, greeting: &'static str) -> UdpServer {
        let sock = in_ns(ns, || {
            UdpSocket::bind((Ipv4Addr::UNSPECIFIED, port)).unwrap()
        });
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                if let Ok((n, from)) = sock.recv_from(&mut buf) {
                    let mut reply = greeting.as_bytes().to_vec();
                    reply.extend_from_slice(&buf[..n]);
                    let _ = sock.send_to(&reply, from);
                }
            }
        });
        UdpServer {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for UdpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect from inside `ns` to `to`, send `msg`, return the reply (or the error text).
pub fn tcp_talk(ns: &Path, to: SocketAddr, msg: &str) -> Result<String, String> {
    in_ns(ns, || {
        let mut c = TcpStream::connect_timeout(&to, Duration::from_millis(1500))
            .map_err(|e| e.to_string())?;
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        c.write_all(msg.as_bytes()).map_err(|e| e.to_string())?;
        c.shutdown(std::net::Shutdown::Write).ok();
        let mut s = String::new();
        c.read_to_string(&mut s).map_err(|e| e.to_string())?;
        Ok(s)
    })
}

/// Send one datagram from inside `ns` and wait for a reply.
pub fn udp_talk(ns: &Path, to: SocketAddr, msg: &str) -> Result<String, String> {
    in_ns(ns, || {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        s.send_to(msg.as_bytes(), to).map_err(|e| e.to_string())?;
        let mut buf = [0u8; 512];
        let (n, _) = s.recv_from(&mut buf).map_err(|e| e.to_string())?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}
