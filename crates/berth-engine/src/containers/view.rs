//! Docker's JSON for containers: `GET /containers/{id}/json` (inspect) and
//! `GET /containers/json` (summaries, with filters).

use std::collections::BTreeMap;
use std::path::Path;

use berth_types::spec::NetworkMode;
use serde_json::{Value, json};

use super::{Record, Status};
use crate::EngineError;

/// go-units `HumanDuration`, which `ps` shows ("Up 5 seconds", "Exited (0) 2 minutes ago").
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if m == 1 {
        "About a minute".into()
    } else if m < 60 {
        format!("{m} minutes")
    } else if h == 1 {
        "About an hour".into()
    } else if h < 48 {
        format!("{h} hours")
    } else if h < 24 * 7 * 2 {
        format!("{d} days")
    } else if h < 24 * 30 * 2 {
        format!("{} weeks", d / 7)
    } else if h < 24 * 365 * 2 {
        format!("{} months", d / 30)
    } else {
        format!("{} years", d / 365)
    }
}

fn secs_since(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| jiff::Timestamp::now().as_second() - t.as_second())
        .unwrap_or(0)
}

/// `ps`'s STATUS column.
pub fn status_text(r: &Record) -> String {
    if let Some(t) = super::ops::status_override(r) {
        return t;
    }
    match r.state.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", human_duration(secs_since(&r.state.started_at))),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.state.exit_code,
            human_duration(secs_since(&r.state.finished_at))
        ),
        Status::Removing => "Removal In Progress".into(),
    }
}

const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn or_zero(s: &str) -> &str {
    if s.is_empty() { ZERO_TIME } else { s }
}

fn host_config(r: &Record) -> Value {
    let s = &r.spec;
    let mut hc = json!({
        "NetworkMode": s.network.as_str(),
        "AutoRemove": s.auto_remove,
        "Memory": s.resources.memory,
        "NanoCpus": s.resources.nano_cpus,
        "PidsLimit": if s.resources.pids_limit > 0 { json!(s.resources.pids_limit) } else { Value::Null },
        "CapAdd": s.cap_add,
        "CapDrop": s.cap_drop,
        "Privileged": s.privileged,
        "ReadonlyRootfs": s.read_only,
        "ExtraHosts": if s.extra_hosts.is_empty() { Value::Null } else { json!(s.extra_hosts) },
        "Dns": s.dns,
        "DnsSearch": s.dns_search,
        "DnsOptions": s.dns_options,
        "ShmSize": super::oci::SHM_SIZE,
        "LogConfig": {"Type": "json-file", "Config": {}},
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "PortBindings": {},
    });
    for (k, v) in super::mounts::host_config_json(r) {
        hc[k] = v;
    }
    hc
}

/// `GET /containers/{id}/json`.
pub fn inspect(r: &Record, dir: &Path) -> Value {
    let s = &r.spec;
    let etc = super::etcfiles::EtcPaths::new(dir);
    let st = &r.state;
    let running = st.status == Status::Running;
    let lower: Vec<String> = r
        .lowerdirs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut v = json!({
        "Id": r.id,
        "Created": r.created,
        "Path": r.path,
        "Args": r.args,
        "State": {
            "Status": st.status.as_str(),
            "Running": running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": if running { st.pid } else { 0 },
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": or_zero(&st.started_at),
            "FinishedAt": or_zero(&st.finished_at),
        },
        "Image": r.image_id,
        "ResolvConfPath": etc.resolv_conf,
        "HostnamePath": etc.hostname,
        "HostsPath": etc.hosts,
        "LogPath": dir.join(format!("{}-json.log", r.id)),
        "Name": format!("/{}", r.name),
        "RestartCount": 0,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": host_config(r),
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {
                "LowerDir": lower.join(":"),
                "UpperDir": dir.join("upper"),
                "WorkDir": dir.join("work"),
                "MergedDir": dir.join("rootfs"),
            },
        },
        "Mounts": super::mounts::mounts_json(r),
        "Config": {
            "Hostname": if s.hostname.is_empty() { r.id[..12].to_owned() } else { s.hostname.clone() },
            "Domainname": "",
            "User": s.user,
            "AttachStdin": false,
            "AttachStdout": !s.auto_remove,
            "AttachStderr": !s.auto_remove,
            "Tty": s.tty,
            "OpenStdin": s.open_stdin,
            "StdinOnce": false,
            "Env": r.env,
            "Cmd": r.cmd,
            "Image": s.image,
            "Volumes": super::mounts::config_volumes_json(r),
            "WorkingDir": s.workdir,
            "Entrypoint": if r.entrypoint.is_empty() { Value::Null } else { json!(r.entrypoint) },
            "OnBuild": null,
            "Labels": s.labels,
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": "",
            "Ports": {},
            "Networks": { s.network.as_str(): {"NetworkID": "", "IPAddress": "", "Gateway": "", "MacAddress": ""} },
        },
    });
    super::ops::decorate_inspect(&mut v, r);
    v
}

/// One entry of `GET /containers/json`: moby's `container.Summary`, its fields in moby's
/// order, borrowed from the record it describes. Serialized straight to bytes while the
/// store is locked (no record clone, no `serde_json::Value` tree per entry).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Summary<'a> {
    /// 64 hex.
    pub id: &'a str,
    /// `/name`.
    pub names: [Slashed<'a>; 1],
    /// The image as the user gave it.
    pub image: &'a str,
    /// `sha256:…`.
    #[serde(rename = "ImageID")]
    pub image_id: &'a str,
    /// Path and args, joined with spaces.
    pub command: CommandLine<'a>,
    /// Unix seconds.
    pub created: i64,
    /// Published ports (`IP`, `PrivatePort`, `PublicPort`, `Type`).
    pub ports: Value,
    /// Bytes in the writable layer (`size=1` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<u64>,
    /// Bytes of the whole root file system (`size=1` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<u64>,
    /// Labels.
    pub labels: &'a BTreeMap<String, String>,
    /// `created`, `running`, `paused`, `restarting`, `exited`, `removing`.
    pub state: &'static str,
    /// `ps`'s STATUS column.
    pub status: String,
    /// `{"NetworkMode": …}`.
    pub host_config: SummaryHostConfig<'a>,
    /// `{"Networks": {name: endpoint}}`.
    pub network_settings: SummaryNetworks,
    /// Mount points.
    pub mounts: Value,
}

/// A name serialized with a leading `/` (moby's `Names`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slashed<'a>(pub &'a str);

impl serde::Serialize for Slashed<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("/{}", self.0))
    }
}

/// A command line serialized as path and args joined with spaces (moby's `Command`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandLine<'a> {
    /// The executable.
    pub path: &'a str,
    /// Its arguments.
    pub args: &'a [String],
}

impl std::fmt::Display for CommandLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.path)?;
        for a in self.args {
            f.write_str(" ")?;
            f.write_str(a)?;
        }
        Ok(())
    }
}

impl serde::Serialize for CommandLine<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `HostConfig` of a [`Summary`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryHostConfig<'a> {
    /// `none`, `host`, `bridge`, a network name, `container:<id>`.
    pub network_mode: &'a str,
}

/// `NetworkSettings` of a [`Summary`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SummaryNetworks {
    /// Endpoints by network name.
    pub networks: Value,
}

fn unix_seconds(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .unwrap_or(0)
}

impl<'a> Summary<'a> {
    /// The summary of `r` without its networking (`Ports` empty, `Networks` empty).
    pub fn of(r: &'a Record) -> Summary<'a> {
        Summary {
            id: &r.id,
            names: [Slashed(&r.name)],
            image: &r.spec.image,
            image_id: &r.image_id,
            command: CommandLine {
                path: &r.path,
                args: &r.args,
            },
            created: unix_seconds(&r.created),
            ports: Value::Array(Vec::new()),
            size_rw: None,
            size_root_fs: None,
            labels: &r.spec.labels,
            state: super::ops::state_word(r),
            status: status_text(r),
            host_config: SummaryHostConfig {
                network_mode: r.spec.network.as_str(),
            },
            network_settings: SummaryNetworks {
                networks: Value::Object(serde_json::Map::new()),
            },
            mounts: if r.mounts.is_empty() {
                Value::Array(Vec::new())
            } else {
                super::mounts::mounts_json(r)
            },
        }
    }
}

/// One entry of `GET /containers/json` as a JSON value (without networking), for callers
/// that decorate it (`system df`).
pub fn summary(r: &Record) -> Value {
    serde_json::to_value(Summary::of(r)).unwrap_or(Value::Null)
}

/// Docker's order for `GET /containers/json`: newest first (ties by id, so it is stable).
pub fn newest_first(a: &Record, b: &Record) -> std::cmp::Ordering {
    b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id))
}

impl super::Containers {
    /// The ids of the containers `keep` accepts, newest first, at most `limit`.
    pub fn list_ids(&self, keep: impl Fn(&Record) -> bool, limit: Option<usize>) -> Vec<String> {
        let inner = super::lock(&self.inner);
        pick(&inner, keep, limit)
            .into_iter()
            .map(|r| r.id.clone())
            .collect()
    }

    /// The JSON array of the summaries of the containers `keep` accepts, newest first, at
    /// most `limit`, with the sizes in `sizes` (by id): one pass over the in-memory records
    /// under one lock, written into one buffer (no record cloned, no file read).
    pub fn summaries_json(
        &self,
        keep: impl Fn(&Record) -> bool,
        limit: Option<usize>,
        sizes: Option<&std::collections::HashMap<String, (u64, u64)>>,
    ) -> Vec<u8> {
        let inner = super::lock(&self.inner);
        let picked = pick(&inner, keep, limit);
        let mut out = Vec::with_capacity(64 + picked.len() * 512);
        out.push(b'[');
        for (i, r) in picked.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let mut s = Summary::of(r);
            // the networks' own lock is taken inside the containers' one elsewhere too
            // (network connect/disconnect), so this order cannot deadlock
            let (ports, mut networks) = self.net_summary(r);
            if let Value::Object(m) = &mut networks
                && m.is_empty()
                && matches!(r.spec.network, NetworkMode::None | NetworkMode::Host)
            {
                // moby joins such a container to its `none`/`host` network, which the
                // docker CLI's NETWORKS column shows (as inspect does here)
                m.insert(
                    r.spec.network.as_str().to_owned(),
                    json!({"IPAddress": "", "Gateway": ""}),
                );
            }
            s.ports = ports;
            s.network_settings.networks = networks;
            if let Some(sizes) = sizes {
                let (rw, root) = sizes.get(&r.id).copied().unwrap_or((0, 0));
                s.size_rw = Some(rw);
                s.size_root_fs = Some(root);
            }
            // strings, numbers, maps with string keys and JSON values: writing them into
            // a Vec cannot fail
            let _ = serde_json::to_writer(&mut out, &s);
        }
        out.push(b']');
        out
    }
}

/// The records `keep` accepts, newest first, at most `limit`.
fn pick(
    inner: &super::Inner,
    keep: impl Fn(&Record) -> bool,
    limit: Option<usize>,
) -> Vec<&Record> {
    let mut picked: Vec<&Record> = inner.map.values().filter(|r| keep(r)).collect();
    picked.sort_unstable_by(|a, b| newest_first(a, b));
    if let Some(n) = limit {
        picked.truncate(n);
    }
    picked
}

/// `filters` of `GET /containers/json`: id, name, label, status, exited, ancestor.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    map: BTreeMap<String, Vec<String>>,
    /// The `name` values, compiled once (a value that is no regex matches as a substring).
    names: Vec<Result<regex::Regex, String>>,
}

const KEYS: [&str; 8] = [
    "id", "name", "label", "status", "exited", "ancestor", "volume", "health",
];

impl ListFilter {
    /// Checks the keys (Docker: `invalid filter 'x'`).
    pub fn new(map: BTreeMap<String, Vec<String>>) -> Result<ListFilter, EngineError> {
        for k in map.keys() {
            if !KEYS.contains(&k.as_str()) {
                return Err(EngineError::InvalidParameter(format!(
                    "invalid filter '{k}'"
                )));
            }
        }
        if let Some(st) = map.get("status") {
            for s in st {
                if ![
                    "created",
                    "restarting",
                    "running",
                    "removing",
                    "paused",
                    "exited",
                    "dead",
                ]
                .contains(&s.as_str())
                {
                    return Err(EngineError::InvalidParameter(format!(
                        "invalid filter 'status={s}'"
                    )));
                }
            }
        }
        let names = map
            .get("name")
            .into_iter()
            .flatten()
            .map(|v| {
                let v = v.trim_start_matches('/');
                regex::Regex::new(v).map_err(|_| v.to_owned())
            })
            .collect();
        Ok(ListFilter { map, names })
    }

    fn any(&self, key: &str, f: impl Fn(&str) -> bool) -> bool {
        match self.map.get(key) {
            None => true,
            Some(v) if v.is_empty() => true,
            Some(v) => v.iter().any(|x| f(x)),
        }
    }

    /// Whether `r` passes every filter (values of one key are alternatives, except labels:
    /// every `label` filter must hold, as Docker's `MatchKVList`).
    pub fn matches(&self, r: &Record) -> bool {
        self.any("id", |v| r.id.starts_with(v))
            && (self.names.is_empty()
                || self.names.iter().any(|n| match n {
                    Ok(re) => re.is_match(&r.name),
                    Err(v) => r.name.contains(v.as_str()),
                }))
            && self
                .map
                .get("label")
                .into_iter()
                .flatten()
                .all(|v| match v.split_once('=') {
                    Some((k, val)) => r.spec.labels.get(k).is_some_and(|x| x == val),
                    None => r.spec.labels.contains_key(v.as_str()),
                })
            && self.any("status", |v| v == super::ops::state_word(r))
            && self.any("exited", |v| {
                r.state.status == Status::Exited && v.parse() == Ok(r.state.exit_code)
            })
            && self.any("health", |v| {
                let h = r.state.health.as_ref().map(|h| h.status.as_str());
                v == h.unwrap_or("none")
            })
            && self.any("ancestor", |v| {
                r.spec.image == v
                    || r.image_id.starts_with(v)
                    || r.image_id.trim_start_matches("sha256:").starts_with(v)
            })
            && self.any("volume", |v| {
                // Docker: a volume name or a mount destination
                r.mounts.iter().any(|m| m.name == v || m.destination == v)
            })
    }

    /// Whether a status filter was given (then `all` is implied, as Docker does).
    pub fn has_status(&self) -> bool {
        self.map.contains_key("status") || self.map.contains_key("exited")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_units() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(61), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3700), "About an hour");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }

    #[test]
    fn names_and_command_lines_serialize_as_moby() {
        let args = vec!["-c".to_owned(), "echo \"hi\"".to_owned()];
        let c = CommandLine {
            path: "sh",
            args: &args,
        };
        assert_eq!(serde_json::to_string(&c).unwrap(), r#""sh -c echo \"hi\"""#);
        assert_eq!(
            serde_json::to_string(&[Slashed("web")]).unwrap(),
            r#"["/web"]"#
        );
    }

    #[test]
    fn unknown_filters_are_refused() {
        let mut m = BTreeMap::new();
        m.insert("bogus".to_string(), vec!["1".to_string()]);
        assert_eq!(
            ListFilter::new(m).unwrap_err().to_string(),
            "invalid filter 'bogus'"
        );
        let mut m = BTreeMap::new();
        m.insert("status".to_string(), vec!["sleeping".to_string()]);
        assert!(ListFilter::new(m).is_err());
    }
}
