//! Times endpoint setup and teardown (root; everything inside namespaces this example creates
//! and deletes): `cargo run --release -p berth-network --example setup_timing [rounds]`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_network::{Endpoint, Ipam, NetnsRef, NetworkConfig, NetworkManager, PortMapping};

struct Ns(String);
impl Ns {
    fn new(name: String) -> Ns {
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ip netns add {name} failed");
        Ns(name)
    }
    fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.0))
    }
}
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let tag = format!("{:04x}", std::process::id() & 0xffff);
    let host = Ns::new(format!("bnx{tag}h"));
    let dir = std::env::temp_dir().join(format!("berth-net-timing-{tag}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let ipam = Arc::new(Ipam::open(dir.join("ipam.json")));
    let mgr =
        NetworkManager::new(Some(host.path()), &format!("berth_x{tag}"), ipam).expect("manager");
    let net = NetworkConfig {
        name: "timing".into(),
        id: format!("timing{tag}"),
        driver: "bridge".into(),
        subnet: "10.250.0.0/24".parse().expect("subnet"),
        gateway: None,
        ip_range: None,
        internal: false,
        labels: BTreeMap::new(),
        bridge: format!("bx{tag}"),
        mtu: None,
    };
    mgr.create_network(&net).expect("create network");
    let (mut setups, mut teardowns) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        let ns = Ns::new(format!("bnx{tag}c{i}"));
        let ep = Endpoint {
            container_id: format!("ctr{tag}{i}"),
            name: format!("c{i}"),
            netns: NetnsRef::Path(ns.path()),
            interface: "eth0".into(),
            requested_ip: None,
            aliases: vec![],
            mac: None,
            ports: PortMapping::parse(&format!("{}:80", 20000 + i)).expect("port"),
        };
        let t = Instant::now();
        let att = mgr.setup(&net, &ep).expect("setup");
        setups.push(t.elapsed());
        drop(att.proxy);
        let t = Instant::now();
        mgr.teardown(&net, &ep).expect("teardown");
        teardowns.push(t.elapsed());
    }
    let _ = mgr.remove_network(&net);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "rounds {rounds}: setup median {:?}, teardown median {:?}",
        median(setups),
        median(teardowns)
    );
}
