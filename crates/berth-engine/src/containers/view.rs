//! Docker's JSON for containers: `GET /containers/{id}/json` (inspect) and
//! `GET /containers/json` (summaries, with filters).

use std::collections::BTreeMap;
use std::path::Path;

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

/// One entry of `GET /containers/json`.
pub fn summary(r: &Record) -> Value {
    let created = r
        .created
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .unwrap_or(0);
    let command = std::iter::once(r.path.clone())
        .chain(r.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    json!({
        "Id": r.id,
        "Names": [format!("/{}", r.name)],
        "Image": r.spec.image,
        "ImageID": r.image_id,
        "Command": command,
        "Created": created,
        "Ports": [],
        "Labels": r.spec.labels,
        "State": super::ops::state_word(r),
        "Status": status_text(r),
        "HostConfig": {"NetworkMode": r.spec.network.as_str()},
        "NetworkSettings": {"Networks": {}},
        "Mounts": super::mounts::mounts_json(r),
    })
}

/// `filters` of `GET /containers/json`: id, name, label, status, exited, ancestor.
#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    map: BTreeMap<String, Vec<String>>,
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
        Ok(ListFilter { map })
    }

    fn any(&self, key: &str, f: impl Fn(&str) -> bool) -> bool {
        match self.map.get(key) {
            None => true,
            Some(v) if v.is_empty() => true,
            Some(v) => v.iter().any(|x| f(x)),
        }
    }

    /// Whether `r` passes every filter (values of one key are alternatives).
    pub fn matches(&self, r: &Record) -> bool {
        self.any("id", |v| r.id.starts_with(v))
            && self.any("name", |v| {
                let v = v.trim_start_matches('/');
                regex::Regex::new(v)
                    .map(|re| re.is_match(&r.name))
                    .unwrap_or_else(|_| r.name.contains(v))
            })
            && self.any("label", |v| match v.split_once('=') {
                Some((k, val)) => r.spec.labels.get(k).is_some_and(|x| x == val),
                None => r.spec.labels.contains_key(v),
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
