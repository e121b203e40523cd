//! Address allocation inside a subnet, persisted in a state file.
//!
//! One lease per (network, address), owned by a container id. Every call takes an in-process
//! `Mutex` and an exclusive `flock` on `<state>.lock`, re-reads the state file, changes it and
//! writes it back atomically (temp file, fsync, rename), so concurrent callers — threads or
//! processes — never receive one address twice.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ipnet::Ipv4Net;
use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use crate::config::NetworkConfig;

const STATE_VERSION: u32 = 1;

/// IPAM failures.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("failed to {op} ipam state {path:?}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ipam state {path:?} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("ipam state {path:?} has version {found}, this build reads version {STATE_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("no free address left in {range} of network {network:?}")]
    Exhausted { network: String, range: Ipv4Net },
    #[error("requested address {ip} is not usable in subnet {subnet}{}", if *.reserved { " (network, gateway or broadcast address)" } else { "" })]
    NotInSubnet {
        ip: Ipv4Addr,
        subnet: Ipv4Net,
        reserved: bool,
    },
    #[error("address {ip} on network {network:?} is already in use by {owner}")]
    InUse {
        ip: Ipv4Addr,
        network: String,
        owner: String,
    },
}

#[derive(Default, Serialize, Deserialize)]
struct State {
    version: u32,
    /// network id -> address -> owner (container id)
    networks: BTreeMap<String, BTreeMap<Ipv4Addr, String>>,
}

/// The allocator. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Ipam {
    path: PathBuf,
    lock_path: PathBuf,
    mutex: Mutex<()>,
    durable: bool,
}

impl Ipam {
    /// Use the state file at `path` (created on first write; its directory must exist).
    pub fn open(path: impl Into<PathBuf>) -> Ipam {
        let path = path.into();
        let mut lock = path.clone().into_os_string();
        lock.push(".lock");
        Ipam {
            path,
            lock_path: PathBuf::from(lock),
            mutex: Mutex::new(()),
            durable: true,
        }
    }

    /// Skip the fsyncs: for state under a runtime directory that a reboot empties anyway
    /// (leases only matter while their containers run). Writes stay atomic (rename).
    pub fn volatile(mut self) -> Ipam {
        self.durable = false;
        self
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with_state<T>(
        &self,
        write: bool,
        f: impl FnOnce(&mut State) -> Result<T, IpamError>,
    ) -> Result<T, IpamError> {
        let _guard = self.mutex.lock().unwrap_or_else(|p| p.into_inner());
        let io = |op, source| IpamError::Io {
            op,
            path: self.lock_path.clone(),
            source,
        };
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| io("open", e))?;
        flock(&lock, FlockOperation::LockExclusive).map_err(|e| io("lock", e.into()))?;
        let mut state = self.load()?;
        let out = f(&mut state)?;
        if write {
            self.store(&state)?;
        }
        Ok(out)
    }

    fn load(&self) -> Result<State, IpamError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(State {
                    version: STATE_VERSION,
                    ..State::default()
                });
            }
            Err(source) => {
                return Err(IpamError::Io {
                    op: "read",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let state: State = serde_json::from_slice(&bytes).map_err(|source| IpamError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        if state.version != STATE_VERSION {
            return Err(IpamError::Version {
                path: self.path.clone(),
                found: state.version,
            });
        }
        Ok(state)
    }

    fn store(&self, state: &State) -> Result<(), IpamError> {
        let io = |op, source| IpamError::Io {
            op,
            path: self.path.clone(),
            source,
        };
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let bytes = serde_json::to_vec_pretty(state).map_err(|e| io("encode", e.into()))?;
        let mut f = File::create(&tmp).map_err(|e| io("create", e))?;
        f.write_all(&bytes).map_err(|e| io("write", e))?;
        if self.durable {
            f.sync_all().map_err(|e| io("fsync", e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| io("rename", e))?;
        if self.durable
            && let Some(dir) = self.path.parent()
            && let Ok(d) = File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Give `owner` an address on `net`: `requested` if given (and free), otherwise the lowest
    /// free address of the ip range (or subnet), skipping the network, gateway and broadcast
    /// addresses. An owner that already holds an address on this network gets the same one back.
    pub fn allocate(
        &self,
        net: &NetworkConfig,
        owner: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, IpamError> {
        let subnet = net.subnet;
        let gateway = net.gateway();
        self.with_state(true, |state| {
            let leases = state.networks.entry(net.id.clone()).or_default();
            if let Some((ip, _)) = leases
                .iter()
                .find(|(ip, o)| o.as_str() == owner && requested.is_none_or(|r| r == **ip))
            {
                return Ok(*ip);
            }
            let reserved =
                |ip: Ipv4Addr| ip == subnet.network() || ip == subnet.broadcast() || ip == gateway;
            if let Some(ip) = requested {
                if !subnet.contains(&ip) || reserved(ip) {
                    return Err(IpamError::NotInSubnet {
                        ip,
                        subnet,
                        reserved: subnet.contains(&ip),
                    });
                }
                if let Some(o) = leases.get(&ip) {
                    return Err(IpamError::InUse {
                        ip,
                        network: net.name.clone(),
                        owner: o.clone(),
                    });
                }
                leases.insert(ip, owner.to_owned());
                return Ok(ip);
            }
            let range = net.ip_range.unwrap_or(subnet);
            let (lo, hi) = (u32::from(range.network()), u32::from(range.broadcast()));
            for n in lo..=hi {
                let ip = Ipv4Addr::from(n);
                if reserved(ip) || leases.contains_key(&ip) {
                    continue;
                }
                leases.insert(ip, owner.to_owned());
                return Ok(ip);
            }
            Err(IpamError::Exhausted {
                network: net.name.clone(),
                range,
            })
        })
    }

    /// Release every address `owner` holds on `network_id`; returns them. Nothing held is fine.
    pub fn release(&self, network_id: &str, owner: &str) -> Result<Vec<Ipv4Addr>, IpamError> {
        self.with_state(true, |state| {
            let Some(leases) = state.networks.get_mut(network_id) else {
                return Ok(Vec::new());
            };
            let gone: Vec<Ipv4Addr> = leases
                .iter()
                .filter(|(_, o)| o.as_str() == owner)
                .map(|(ip, _)| *ip)
                .collect();
            for ip in &gone {
                leases.remove(ip);
            }
            if leases.is_empty() {
                state.networks.remove(network_id);
            }
            Ok(gone)
        })
    }

    /// Current leases of a network: address -> owner.
    pub fn leases(&self, network_id: &str) -> Result<BTreeMap<Ipv4Addr, String>, IpamError> {
        self.with_state(false, |state| {
            Ok(state.networks.get(network_id).cloned().unwrap_or_default())
        })
    }

    /// Release every lease of `network_id` whose owner is not in `keep` (reconciliation after a
    /// crash); returns what was released as (address, owner).
    pub fn retain_owners(
        &self,
        network_id: &str,
        keep: &[&str],
    ) -> Result<Vec<(Ipv4Addr, String)>, IpamError> {
        self.with_state(true, |state| {
            let Some(leases) = state.networks.get_mut(network_id) else {
                return Ok(Vec::new());
            };
            let gone: Vec<(Ipv4Addr, String)> = leases
                .iter()
                .filter(|(_, o)| !keep.contains(&o.as_str()))
                .map(|(ip, o)| (*ip, o.clone()))
                .collect();
            for (ip, _) in &gone {
                leases.remove(ip);
            }
            Ok(gone)
        })
    }

    /// Forget a network and all its leases (`network rm`).
    pub fn remove_network(&self, network_id: &str) -> Result<(), IpamError> {
        self.with_state(true, |state| {
            state.networks.remove(network_id);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn net(subnet: &str, range: Option<&str>) -> NetworkConfig {
        NetworkConfig {
            name: "n1".into(),
            id: "id1".into(),
            driver: "bridge".into(),
            subnet: subnet.parse().unwrap(),
            gateway: None,
            ip_range: range.map(|r| r.parse().unwrap()),
            internal: false,
            labels: BTreeMap::new(),
            bridge: "b".into(),
            mtu: None,
        }
    }

    #[test]
    fn allocates_skipping_reserved_and_reuses_released() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path().join("ipam.json"));
        let n = net("10.9.0.0/30", None);
        assert_eq!(
            ipam.allocate(&n, "a", None).unwrap(),
            Ipv4Addr::new(10, 9, 0, 2)
        );
        assert_eq!(
            ipam.allocate(&n, "a", None).unwrap(),
            Ipv4Addr::new(10, 9, 0, 2),
            "same owner, same address"
        );
        let err = ipam.allocate(&n, "b", None).unwrap_err();
        assert!(
            err.to_string()
                .contains("no free address left in 10.9.0.0/30"),
            "{err}"
        );
        assert_eq!(
            ipam.release("id1", "a").unwrap(),
            vec![Ipv4Addr::new(10, 9, 0, 2)]
        );
        assert_eq!(
            ipam.allocate(&n, "b", None).unwrap(),
            Ipv4Addr::new(10, 9, 0, 2)
        );
        // persisted: a second allocator on the same file sees the lease
        let again = Ipam::open(dir.path().join("ipam.json"));
        assert_eq!(
            again
                .leases("id1")
                .unwrap()
                .get(&Ipv4Addr::new(10, 9, 0, 2))
                .map(String::as_str),
            Some("b")
        );
    }

    #[test]
    fn requested_ip_and_ip_range() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path().join("s.json"));
        let n = net("10.9.1.0/24", Some("10.9.1.128/25"));
        assert_eq!(
            ipam.allocate(&n, "a", None).unwrap(),
            Ipv4Addr::new(10, 9, 1, 128)
        );
        assert_eq!(
            ipam.allocate(&n, "b", Some(Ipv4Addr::new(10, 9, 1, 5)))
                .unwrap(),
            Ipv4Addr::new(10, 9, 1, 5)
        );
        let e = ipam
            .allocate(&n, "c", Some(Ipv4Addr::new(10, 9, 1, 5)))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "address 10.9.1.5 on network \"n1\" is already in use by b"
        );
        let e = ipam
            .allocate(&n, "c", Some(Ipv4Addr::new(10, 9, 1, 1)))
            .unwrap_err();
        assert!(e.to_string().contains("gateway"), "{e}");
        let e = ipam
            .allocate(&n, "c", Some(Ipv4Addr::new(10, 9, 2, 1)))
            .unwrap_err();
        assert!(matches!(
            e,
            IpamError::NotInSubnet {
                reserved: false,
                ..
            }
        ));
    }

    #[test]
    fn fifty_concurrent_allocations_are_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let shared = Arc::new(Ipam::open(&path));
        let n = net("10.9.2.0/24", None);
        let handles: Vec<_> = (0..50)
            .map(|i| {
                // half share one allocator (mutex), half open their own (flock)
                let ipam = if i % 2 == 0 {
                    shared.clone()
                } else {
                    Arc::new(Ipam::open(&path))
                };
                let n = n.clone();
                std::thread::spawn(move || ipam.allocate(&n, &format!("c{i}"), None).unwrap())
            })
            .collect();
        let mut ips: Vec<Ipv4Addr> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 50);
        assert_eq!(shared.leases("id1").unwrap().len(), 50);
    }

    #[test]
    fn retain_owners_releases_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path().join("r.json"));
        let n = net("10.9.4.0/24", None);
        for o in ["a", "b", "c"] {
            ipam.allocate(&n, o, None).unwrap();
        }
        let gone = ipam.retain_owners("id1", &["b"]).unwrap();
        assert_eq!(
            gone.iter().map(|(_, o)| o.as_str()).collect::<Vec<_>>(),
            vec!["a", "c"]
        );
        assert_eq!(
            ipam.leases("id1").unwrap().values().collect::<Vec<_>>(),
            vec!["b"]
        );
    }

    #[test]
    fn corrupt_state_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.json");
        std::fs::write(&path, b"{nope").unwrap();
        let e = Ipam::open(&path)
            .allocate(&net("10.9.3.0/24", None), "a", None)
            .unwrap_err();
        assert!(
            e.to_string().contains("bad.json") && e.to_string().contains("corrupt"),
            "{e}"
        );
    }
}
