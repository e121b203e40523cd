//! `GET /containers/{id}/stats`: moby's stats JSON (`cpu_stats`, `precpu_stats`,
//! `memory_stats`, `pids_stats`, `blkio_stats`, `networks`) from the container's cgroup
//! (through berth-runtime), /proc/stat and the container's /proc/<pid>/net/dev; one
//! sample, or a stream of one per second.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use super::{ContainerError, Containers, Record, Status};
use crate::io::ByteStream;
use crate::{Engine, EngineError};

/// One reading.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// RFC 3339 (nanoseconds).
    pub read: String,
    /// cgroup CPU time.
    pub cpu_total_ns: u64,
    /// In user mode.
    pub cpu_user_ns: u64,
    /// In kernel mode.
    pub cpu_system_ns: u64,
    /// Throttled periods.
    pub throttled_periods: u64,
    /// Throttled time.
    pub throttled_ns: u64,
    /// The host's CPU time (/proc/stat, ns).
    pub system_ns: u64,
    /// Online CPUs.
    pub online_cpus: u64,
    /// Memory in use.
    pub mem_usage: u64,
    /// Peak.
    pub mem_max: u64,
    /// The limit (capped at the host's memory, as moby shows it).
    pub mem_limit: u64,
    /// Page cache.
    pub mem_cache: u64,
    /// Processes.
    pub pids: u64,
    /// The pids limit (0 = none).
    pub pids_limit: u64,
    /// Bytes read.
    pub io_read: u64,
    /// Bytes written.
    pub io_write: u64,
    /// Per interface (not lo): rx/tx bytes, packets, errors, dropped.
    pub networks: Vec<(String, [u64; 8])>,
}

/// The host's CPU time in ns and the number of CPUs, from /proc/stat (moby's
/// `getSystemCPUUsage`: user..steal ticks at 100 Hz).
pub fn system_cpu() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let mut total = 0;
    let mut cpus = 0;
    for l in text.lines() {
        let mut f = l.split_whitespace();
        match f.next() {
            Some("cpu") => {
                total = f.take(8).filter_map(|x| x.parse::<u64>().ok()).sum::<u64>()
                    * (1_000_000_000 / 100);
            }
            Some(c) if c.starts_with("cpu") => cpus += 1,
            _ => {}
        }
    }
    (total, cpus.max(1))
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("MemTotal:")
                    .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(u64::MAX)
}

/// Interfaces of `/proc/<pid>/net/dev` except lo.
pub fn net_dev(pid: i32) -> Vec<(String, [u64; 8])> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let n: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            if n.len() < 12 {
                return None;
            }
            // rx: bytes packets errs drop; tx: bytes packets errs drop (fields 8..12)
            Some((
                name.to_owned(),
                [n[0], n[1], n[2], n[3], n[8], n[9], n[10], n[11]],
            ))
        })
        .collect()
}

impl Containers {
    /// A reading of a running container (zeros for one that is not running).
    pub fn sample(&self, r: &Record) -> Result<Sample, ContainerError> {
        let read = jiff::Timestamp::now().to_string();
        if r.state.status != Status::Running {
            return Ok(Sample {
                read,
                ..Default::default()
            });
        }
        let c = berth_runtime::Container::load(&self.runtime_root, &r.id)?;
        let s = c.stats()?;
        let (system_ns, online_cpus) = system_cpu();
        Ok(Sample {
            read,
            cpu_total_ns: s.cpu_usage_ns,
            cpu_user_ns: s.cpu_user_ns,
            cpu_system_ns: s.cpu_system_ns,
            throttled_periods: s.cpu_throttled_periods,
            throttled_ns: s.cpu_throttled_ns,
            system_ns,
            online_cpus,
            mem_usage: s.memory_usage_bytes,
            mem_max: s.memory_max_usage_bytes,
            mem_limit: s.memory_limit_bytes.min(mem_total()),
            mem_cache: s.memory_cache_bytes,
            pids: s.pids_current,
            pids_limit: s.pids_limit,
            io_read: s.io_read_bytes,
            io_write: s.io_write_bytes,
            networks: net_dev(r.state.pid),
        })
    }
}

fn cpu_json(s: &Sample) -> Value {
    if s.system_ns == 0 {
        return json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                      "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}});
    }
    json!({
        "cpu_usage": {
            "total_usage": s.cpu_total_ns,
            "usage_in_kernelmode": s.cpu_system_ns,
            "usage_in_usermode": s.cpu_user_ns,
        },
        "system_cpu_usage": s.system_ns,
        "online_cpus": s.online_cpus,
        "throttling_data": {"periods": 0, "throttled_periods": s.throttled_periods, "throttled_time": s.throttled_ns},
    })
}

/// moby's `StatsResponse` for `cur` (and the previous reading, `precpu_stats`).
pub fn stats_json(r: &Record, cur: &Sample, prev: Option<&Sample>) -> Value {
    let zero = Sample::default();
    let prev = prev.unwrap_or(&zero);
    let mut v = json!({
        "name": format!("/{}", r.name),
        "id": r.id,
        "read": cur.read,
        "preread": if prev.read.is_empty() { "0001-01-01T00:00:00Z" } else { prev.read.as_str() },
        "pids_stats": if cur.pids_limit > 0 { json!({"current": cur.pids, "limit": cur.pids_limit}) } else { json!({"current": cur.pids}) },
        "blkio_stats": {
            "io_service_bytes_recursive": if cur.system_ns == 0 { Value::Null } else { json!([
                {"major": 0, "minor": 0, "op": "read", "value": cur.io_read},
                {"major": 0, "minor": 0, "op": "write", "value": cur.io_write},
            ]) },
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_json(cur),
        "precpu_stats": cpu_json(prev),
        "memory_stats": if cur.system_ns == 0 { json!({}) } else { json!({
            "usage": cur.mem_usage,
            "max_usage": cur.mem_max,
            "stats": {"cache": cur.mem_cache},
            "limit": cur.mem_limit,
        }) },
    });
    if !cur.networks.is_empty() {
        let mut nets = serde_json::Map::new();
        for (name, n) in &cur.networks {
            nets.insert(
                name.clone(),
                json!({"rx_bytes": n[0], "rx_packets": n[1], "rx_errors": n[2], "rx_dropped": n[3],
                       "tx_bytes": n[4], "tx_packets": n[5], "tx_errors": n[6], "tx_dropped": n[7]}),
            );
        }
        v["networks"] = Value::Object(nets);
    }
    v
}

fn line(v: &Value) -> io::Result<Bytes> {
    let mut b = serde_json::to_vec(v).map_err(io::Error::other)?;
    b.push(b'\n');
    Ok(Bytes::from(b))
}

impl Engine {
    /// `GET /containers/{id}/stats?stream=&one-shot=`: a stream of JSON lines, one per
    /// second, or one reading (with `precpu_stats` a second earlier unless `one_shot`).
    pub async fn container_stats(
        &self,
        name: &str,
        stream: bool,
        one_shot: bool,
    ) -> Result<ByteStream, EngineError> {
        let c: Arc<Containers> = self.containers().clone();
        let rec = c.get(name)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
        let first = c.sample(&rec)?;
        tokio::spawn(async move {
            let mut prev: Option<Sample> = None;
            let mut cur = first;
            if !stream && !one_shot && rec.state.status == Status::Running {
                tokio::time::sleep(Duration::from_secs(1)).await;
                prev = Some(cur);
                cur = match c.sample(&rec) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                        return;
                    }
                };
            }
            loop {
                let rec_now = c.get(&rec.id).unwrap_or_else(|_| rec.clone());
                if tx
                    .send(line(&stats_json(&rec_now, &cur, prev.as_ref())))
                    .await
                    .is_err()
                    || !stream
                {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = tx.closed() => return,
                }
                let Ok(r) = c.get(&rec.id) else { return };
                let next = c.sample(&r).unwrap_or_else(|_| Sample {
                    read: jiff::Timestamp::now().to_string(),
                    ..Default::default()
                });
                prev = Some(std::mem::replace(&mut cur, next));
            }
        });
        Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|x| (x, rx)) },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cpu_and_json_shape() {
        let (ns, cpus) = system_cpu();
        assert!(ns > 0 && cpus >= 1);
        let r: Record = serde_json::from_value(json!({
            "version": 1, "id": "ab", "name": "n", "created": "", "image_id": "",
            "spec": {"image": "busybox", "cmd": [], "entrypoint": null, "env": [], "workdir": "",
                     "user": "", "hostname": "", "tty": false, "open_stdin": false, "labels": {},
                     "name": "n", "auto_remove": false, "network": "none",
                     "resources": {"memory": 0, "pids_limit": 0, "nano_cpus": 0},
                     "cap_add": [], "cap_drop": [], "privileged": false, "read_only": false},
            "path": "", "args": [], "env": [], "cmd": [], "entrypoint": [], "workdir": "",
            "lowerdirs": [], "state": {"status": "running", "pid": 0, "shim_pid": 0,
            "shim_start_time": 0, "exit_code": 0, "error": "", "started_at": "", "finished_at": "", "exits": 0}
        }))
        .unwrap();
        let cur = Sample {
            read: "2026-01-01T00:00:01Z".into(),
            cpu_total_ns: 10,
            system_ns: 100,
            online_cpus: 2,
            mem_usage: 5,
            mem_limit: 50,
            pids: 3,
            networks: vec![("eth0".into(), [1, 2, 3, 4, 5, 6, 7, 8])],
            ..Default::default()
        };
        let v = stats_json(&r, &cur, None);
        assert_eq!(v["name"], "/n");
        assert_eq!(v["cpu_stats"]["cpu_usage"]["total_usage"], 10);
        assert_eq!(v["cpu_stats"]["online_cpus"], 2);
        assert_eq!(v["precpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert_eq!(v["memory_stats"]["limit"], 50);
        assert_eq!(v["pids_stats"]["current"], 3);
        assert_eq!(v["networks"]["eth0"]["tx_bytes"], 5);
        assert_eq!(v["preread"], "0001-01-01T00:00:00Z");
    }
}
