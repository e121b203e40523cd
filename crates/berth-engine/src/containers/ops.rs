//! The smaller verbs: `restart`, `pause`/`unpause` (the freezer), `rename`, `top`,
//! `container prune`, `update`, and the stop signal/timeout a container was given.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use berth_types::spec::valid_name;
use serde_json::{Value, json};

use super::{ContainerError, Containers, Record, Status, lock};
use crate::{Engine, EngineError};

/// Signal names Docker accepts for `--stop-signal` (with or without `SIG`), or numbers.
pub fn signal_number(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    const NAMES: [(&str, i32); 31] = [
        ("HUP", 1),
        ("INT", 2),
        ("QUIT", 3),
        ("ILL", 4),
        ("TRAP", 5),
        ("ABRT", 6),
        ("IOT", 6),
        ("BUS", 7),
        ("FPE", 8),
        ("KILL", 9),
        ("USR1", 10),
        ("SEGV", 11),
        ("USR2", 12),
        ("PIPE", 13),
        ("ALRM", 14),
        ("TERM", 15),
        ("STKFLT", 16),
        ("CHLD", 17),
        ("CONT", 18),
        ("STOP", 19),
        ("TSTP", 20),
        ("TTIN", 21),
        ("TTOU", 22),
        ("URG", 23),
        ("XCPU", 24),
        ("XFSZ", 25),
        ("VTALRM", 26),
        ("PROF", 27),
        ("WINCH", 28),
        ("IO", 29),
        ("PWR", 30),
    ];
    let up = s.to_ascii_uppercase();
    let bare = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(n) = bare
        .strip_prefix("RTMIN+")
        .and_then(|n| n.parse::<i32>().ok())
    {
        return Some(34 + n).filter(|n| *n <= 64);
    }
    NAMES.iter().find(|(n, _)| *n == bare).map(|(_, v)| *v)
}

/// The filters of `POST /containers/prune`.
#[derive(Debug, Default, Clone)]
pub struct PruneFilter {
    until: Option<i64>,
    labels: Vec<String>,
    not_labels: Vec<String>,
}

/// A Docker timestamp filter value: RFC 3339, a date, unix seconds (with fraction), or a
/// Go duration relative to now.
pub fn parse_timestamp(s: &str, now: i64) -> Option<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t.as_second());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp().as_second());
    }
    if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        return dt
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp().as_second());
    }
    if let Some(secs) = s.split('.').next().and_then(|x| x.parse::<i64>().ok()) {
        return Some(secs);
    }
    go_duration_secs(s).map(|d| now - d)
}

/// Go duration (`10m`, `1h30m`, `2.5s`) in whole seconds.
pub fn go_duration_secs(s: &str) -> Option<i64> {
    let mut rest = s;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        total += n * match &rest[..u_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u_end..];
    }
    Some(total as i64)
}

impl PruneFilter {
    /// Checks the keys (until, label, label!).
    pub fn new(map: &BTreeMap<String, Vec<String>>) -> Result<PruneFilter, EngineError> {
        let now = jiff::Timestamp::now().as_second();
        let mut f = PruneFilter::default();
        for (k, vs) in map {
            for v in vs {
                match k.as_str() {
                    "until" => {
                        f.until = Some(parse_timestamp(v, now).ok_or_else(|| {
                            EngineError::InvalidParameter(format!(
                                "failed to parse value for filter 'until': {v:?}"
                            ))
                        })?)
                    }
                    "label" => f.labels.push(v.clone()),
                    "label!" => f.not_labels.push(v.clone()),
                    other => {
                        return Err(EngineError::InvalidParameter(format!(
                            "invalid filter '{other}'"
                        )));
                    }
                }
            }
        }
        Ok(f)
    }

    fn label_hit(r: &Record, l: &str) -> bool {
        match l.split_once('=') {
            Some((k, v)) => r.spec.labels.get(k).is_some_and(|x| x == v),
            None => r.spec.labels.contains_key(l),
        }
    }

    /// Whether `r` is selected.
    pub fn matches(&self, r: &Record) -> bool {
        if let Some(u) = self.until {
            let created = r
                .created
                .parse::<jiff::Timestamp>()
                .map(|t| t.as_second())
                .unwrap_or(0);
            if created >= u {
                return false;
            }
        }
        self.labels.iter().all(|l| Self::label_hit(r, l))
            && !self.not_labels.iter().any(|l| Self::label_hit(r, l))
    }
}

/// Bytes used by the files under `p` (not following symlinks, other mounts skipped, a
/// hard-linked file counted once, as moby's `directory.Size`).
pub fn dir_size(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(root) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    let dev = root.dev();
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                if md.dev() == dev {
                    stack.push(e.path());
                }
            } else if md.nlink() <= 1 || seen.insert((md.dev(), md.ino())) {
                total += md.len();
            }
        }
    }
    total
}

/// The log settings the shim follows: `<container-dir>/log-config.json` =
/// `{"Type": driver, "Config": {"max-size": …, "max-file": …}}`. With the `none` driver
/// the json-file path is a symlink to /dev/null, so nothing is kept.
pub fn prepare_logging(
    dir: &std::path::Path,
    log: &std::path::Path,
    spec: &berth_types::spec::ContainerSpec,
) -> Result<(), ContainerError> {
    let o = &spec.run;
    let cfg = json!({"Type": o.log_driver(), "Config": o.log_opts});
    let path = dir.join("log-config.json");
    let bytes = serde_json::to_vec(&cfg).map_err(|e| ContainerError::Io {
        op: "encode",
        path: path.display().to_string(),
        source: std::io::Error::other(e),
    })?;
    // only at create, in its fresh directory (no temp file and rename needed)
    std::fs::write(&path, &bytes).map_err(ContainerError::io("write", &path))?;
    if o.log_driver() == "none" {
        std::fs::remove_file(log).map_err(ContainerError::io("remove", log))?;
        std::os::unix::fs::symlink("/dev/null", log)
            .map_err(ContainerError::io("symlink /dev/null to", log))?;
    }
    Ok(())
}

impl Containers {
    /// `Config.Healthcheck` and `Config.StopSignal` from the image when the container
    /// did not set them (Docker's container config is merged with the image's).
    pub fn image_patch_inspect(&self, r: &Record, v: &mut Value) {
        let Some(img) = r
            .image_id
            .parse()
            .ok()
            .and_then(|d| self.images.config(&d).ok())
        else {
            return;
        };
        let cfg = &img["config"];
        if v["Config"].get("Healthcheck").is_none()
            && let Some(h) = cfg.get("Healthcheck").filter(|h| h.is_object())
        {
            v["Config"]["Healthcheck"] = h.clone();
        }
        if v["Config"].get("StopSignal").is_none()
            && let Some(s) = cfg.get("StopSignal").filter(|s| s.is_string())
        {
            v["Config"]["StopSignal"] = s.clone();
        }
    }

    /// The signal `stop` sends: `--stop-signal`, else the image's `StopSignal`, else TERM.
    pub fn stop_signal(&self, r: &Record) -> i32 {
        if let Some(n) = signal_number(&r.spec.run.stop_signal) {
            return n;
        }
        r.image_id
            .parse()
            .ok()
            .and_then(|d| self.images.config(&d).ok())
            .and_then(|c| c["config"]["StopSignal"].as_str().and_then(signal_number))
            .unwrap_or(15)
    }

    /// Before a signal: a fatal one (KILL, TERM, INT, QUIT or the stop signal) cancels
    /// policy restarts until the next manual start, as Docker's `kill` does.
    pub(super) fn before_signal(&self, r: &Record, signal: i32) {
        if [9, 15, 2, 3].contains(&signal) || signal == self.stop_signal(r) {
            self.mark_manually_stopped(&r.id);
        }
    }

    /// After a signal: a paused container is thawed so the signal is delivered (as moby).
    pub(super) fn after_signal(&self, r: &Record) {
        if r.state.paused {
            let _ = self.set_paused(&r.id, false);
        }
    }

    fn set_paused(&self, id: &str, pause: bool) -> Result<Record, ContainerError> {
        let mut inner = lock(&self.inner);
        let r = inner
            .map
            .get_mut(id)
            .ok_or_else(|| ContainerError::NoSuchContainer(id.to_owned()))?;
        let mut c = berth_runtime::Container::load(&self.runtime_root, id)?;
        if pause {
            c.pause()?;
        } else {
            c.resume()?;
        }
        r.state.paused = pause;
        let rec = r.clone();
        rec.save(&self.dir(id))?;
        drop(inner);
        self.bump();
        Ok(rec)
    }

    /// `(SizeRw, SizeRootFs)`: bytes in the container's upper dir, and that plus its
    /// image's layers.
    pub fn sizes(&self, r: &Record) -> (u64, u64) {
        let rw = dir_size(&self.dir(&r.id).join("upper"));
        let lower: u64 = r.lowerdirs.iter().map(|d| dir_size(d)).sum();
        (rw, rw + lower)
    }

    /// `pause`: freezes every process of a running container.
    pub fn pause(&self, name: &str) -> Result<(), ContainerError> {
        let r = self.get(name)?;
        if r.state.status != Status::Running {
            return Err(ContainerError::NotRunning(r.id));
        }
        if r.state.paused {
            return Err(ContainerError::Paused(r.id));
        }
        let rec = self.set_paused(&r.id, true)?;
        self.publish(&rec, "pause", &[]);
        Ok(())
    }

    /// `unpause`.
    pub fn unpause(&self, name: &str) -> Result<(), ContainerError> {
        let r = self.get(name)?;
        if r.state.status != Status::Running || !r.state.paused {
            return Err(ContainerError::NotPaused(r.id));
        }
        let rec = self.set_paused(&r.id, false)?;
        self.publish(&rec, "unpause", &[]);
        Ok(())
    }

    /// `rename`: Docker's name rule, unique, event `rename` with `oldName`.
    pub fn rename(&self, name: &str, new_name: &str) -> Result<(), ContainerError> {
        let new = new_name.trim_start_matches('/');
        if new.is_empty() {
            return Err(ContainerError::BadRename(
                "Neither old nor new names may be empty".into(),
            ));
        }
        if !valid_name(new) {
            return Err(ContainerError::Spec(berth_types::spec::SpecError::Name(
                new.to_owned(),
            )));
        }
        let mut inner = lock(&self.inner);
        let id = Self::resolve_in(&inner, name)?;
        let old = inner.map[&id].name.clone();
        if old == new {
            return Err(ContainerError::BadRename(
                "Renaming a container with the same name as its current name".into(),
            ));
        }
        if let Some(other) = inner.map.values().find(|r| r.name == new) {
            return Err(ContainerError::NameInUse {
                name: new.to_owned(),
                id: other.id.clone(),
            });
        }
        let r = inner
            .map
            .get_mut(&id)
            .ok_or_else(|| ContainerError::NoSuchContainer(id.clone()))?;
        r.name = new.to_owned();
        r.spec.name = new.to_owned();
        let rec = r.clone();
        rec.save(&self.dir(&id))?;
        drop(inner);
        self.publish(&rec, "rename", &[("oldName", format!("/{old}"))]);
        self.bump();
        Ok(())
    }

    /// The host pids of a running container's processes.
    pub fn pids(&self, name: &str) -> Result<Vec<i32>, ContainerError> {
        let r = self.get(name)?;
        if r.state.status != Status::Running {
            return Err(ContainerError::NotRunning(r.id));
        }
        let c = berth_runtime::Container::load(&self.runtime_root, &r.id)?;
        Ok(c.ps()?)
    }

    /// `top`: the host's `ps` with `ps_args`, rows limited to the container's pids (as
    /// moby does), as `{Titles, Processes}`.
    pub fn top(&self, name: &str, ps_args: &str) -> Result<Value, ContainerError> {
        let r = self.get(name)?;
        let pids = self.pids(name)?;
        let args: Vec<&str> = if ps_args.is_empty() {
            vec!["-ef"]
        } else {
            ps_args.split_whitespace().collect()
        };
        let out = std::process::Command::new("ps")
            .args(&args)
            .output()
            .map_err(|e| ContainerError::Top(format!("cannot run ps: {e}")))?;
        if !out.status.success() {
            return Err(ContainerError::Top(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let header = lines.next().unwrap_or_default();
        let titles: Vec<&str> = header.split_whitespace().collect();
        let pid_col = titles
            .iter()
            .position(|t| *t == "PID")
            .ok_or_else(|| ContainerError::Top("Couldn't find PID field in ps output".into()))?;
        let mut procs = Vec::new();
        for l in lines {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let Some(p) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            if !pids.contains(&p) {
                continue;
            }
            // the last column keeps its spaces (the command line)
            let n = titles.len();
            let mut row: Vec<String> = fields.iter().take(n - 1).map(|s| (*s).to_owned()).collect();
            row.push(fields[n.min(fields.len()) - 1..].join(" "));
            procs.push(row);
        }
        let _ = r;
        Ok(json!({"Titles": titles, "Processes": procs}))
    }

    /// `container prune`: removes every stopped container the filter selects; returns the
    /// ids and the bytes reclaimed.
    pub fn prune(&self, f: &PruneFilter) -> (Vec<String>, u64) {
        let victims: Vec<Record> = self
            .all()
            .into_iter()
            .filter(|r| r.state.status != Status::Running && !r.state.restarting && f.matches(r))
            .collect();
        let mut ids = Vec::new();
        let mut reclaimed = 0;
        for r in victims {
            let size = dir_size(&self.dir(&r.id).join("upper"));
            if self.remove_now(&r.id).is_ok() {
                reclaimed += size;
                ids.push(r.id);
            }
        }
        (ids, reclaimed)
    }

    /// `update`: new cgroup limits for a container (applied at once when it runs, and
    /// kept in its spec and bundle for the next start).
    pub fn update(&self, name: &str, u: &UpdateRequest) -> Result<Vec<String>, ContainerError> {
        let mut inner = lock(&self.inner);
        let id = Self::resolve_in(&inner, name)?;
        let r = inner
            .map
            .get_mut(&id)
            .ok_or_else(|| ContainerError::NoSuchContainer(id.clone()))?;
        let mut spec = r.spec.clone();
        if let Some(m) = u.memory {
            spec.resources.memory = m;
        }
        if let Some(p) = u.pids_limit {
            spec.resources.pids_limit = p;
        }
        if let Some(c) = u.nano_cpus {
            spec.resources.nano_cpus = c;
        }
        if let Some(s) = u.memory_swap {
            spec.run.memory_swap = s;
        }
        if let Some(s) = u.cpu_shares {
            spec.run.cpu_shares = s;
        }
        if let Some(s) = &u.cpuset_cpus {
            spec.run.cpuset_cpus = s.clone();
        }
        if let Some(q) = u.cpu_quota {
            spec.run.cpu_quota = q;
        }
        if let Some(p) = u.cpu_period {
            spec.run.cpu_period = p;
        }
        if let Some(p) = &u.restart {
            spec.run.restart = p.clone();
        }
        spec.validate()?;
        // the OCI resources for these limits, from the same code create uses
        let mut oci = json!({"linux": {"resources": {}}, "process": {}});
        let res = &mut oci["linux"]["resources"];
        if spec.resources.memory > 0 {
            res["memory"]["limit"] = json!(spec.resources.memory);
        }
        if spec.run.memory_swap != 0 {
            res["memory"]["swap"] = json!(spec.run.memory_swap);
        }
        if spec.resources.pids_limit > 0 {
            res["pids"] = json!({"limit": spec.resources.pids_limit});
        }
        if spec.resources.nano_cpus > 0 {
            res["cpu"] = json!({"quota": spec.resources.nano_cpus / 10_000, "period": 100_000});
        }
        if spec.run.cpu_shares > 0 {
            res["cpu"]["shares"] = json!(spec.run.cpu_shares);
        }
        if !spec.run.cpuset_cpus.is_empty() {
            res["cpu"]["cpus"] = json!(spec.run.cpuset_cpus);
        }
        if spec.run.cpu_quota != 0 {
            res["cpu"]["quota"] = json!(spec.run.cpu_quota);
        }
        if spec.run.cpu_period > 0 {
            res["cpu"]["period"] = json!(spec.run.cpu_period);
        }
        if r.state.status == Status::Running {
            let resources: oci_spec::runtime::LinuxResources =
                serde_json::from_value(oci["linux"]["resources"].clone()).map_err(|e| {
                    ContainerError::Update(format!("cannot encode the new limits: {e}"))
                })?;
            let c = berth_runtime::Container::load(&self.runtime_root, &id)?;
            c.update(&resources)?;
        }
        // keep the bundle in step for the next start
        let dir = self.dir(&id);
        let bundle = dir.join("bundle/config.json");
        if let Ok(bytes) = std::fs::read(&bundle)
            && let Ok(mut b) = serde_json::from_slice::<Value>(&bytes)
        {
            for (k, v) in oci["linux"]["resources"].as_object().into_iter().flatten() {
                b["linux"]["resources"][k] = v.clone();
            }
            if let Ok(out) = serde_json::to_vec_pretty(&b) {
                super::record::write_atomic(&dir.join("bundle/.config.json.tmp"), &bundle, &out)?;
            }
        }
        r.spec = spec;
        let rec = r.clone();
        rec.save(&dir)?;
        drop(inner);
        self.publish(&rec, "update", &[]);
        self.bump();
        Ok(Vec::new())
    }
}

/// `POST /containers/{id}/update`.
#[derive(Debug, Default, Clone)]
pub struct UpdateRequest {
    /// Memory.
    pub memory: Option<i64>,
    /// MemorySwap.
    pub memory_swap: Option<i64>,
    /// PidsLimit.
    pub pids_limit: Option<i64>,
    /// NanoCpus.
    pub nano_cpus: Option<i64>,
    /// CpuShares.
    pub cpu_shares: Option<i64>,
    /// CpusetCpus.
    pub cpuset_cpus: Option<String>,
    /// CpuQuota.
    pub cpu_quota: Option<i64>,
    /// CpuPeriod.
    pub cpu_period: Option<i64>,
    /// RestartPolicy.
    pub restart: Option<berth_types::run::RestartPolicy>,
}

/// The lifecycle operations, as the API calls them.
impl Engine {
    /// `POST /containers/{id}/restart?t=&signal=`: stop (if running), then start; event
    /// `restart`.
    pub async fn restart_container(
        &self,
        name: &str,
        timeout: Option<Duration>,
        signal: Option<i32>,
    ) -> Result<(), EngineError> {
        let c: Arc<Containers> = self.containers().clone();
        let r = c.get(name)?;
        let t = timeout.unwrap_or(Duration::from_secs(r.spec.run.stop_timeout().max(0) as u64));
        c.stop_with(&r.id, t, signal).await?;
        let c2 = c.clone();
        let id = r.id.clone();
        tokio::task::spawn_blocking(move || c2.start_by_user(&id))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??;
        let rec = c.get(&r.id)?;
        c.publish(&rec, "restart", &[]);
        Ok(())
    }

    /// `POST /containers/{id}/stop?t=&signal=`: `false` when not running.
    pub async fn stop_container_with(
        &self,
        name: &str,
        timeout: Duration,
        signal: Option<i32>,
    ) -> Result<bool, EngineError> {
        Ok(self.containers().stop_with(name, timeout, signal).await?)
    }

    /// `POST /containers/{id}/pause`.
    pub async fn pause_container(&self, name: &str) -> Result<(), EngineError> {
        Ok(self.containers().pause(name)?)
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause_container(&self, name: &str) -> Result<(), EngineError> {
        Ok(self.containers().unpause(name)?)
    }

    /// `POST /containers/{id}/rename?name=`.
    pub async fn rename_container(&self, name: &str, new: &str) -> Result<(), EngineError> {
        Ok(self.containers().rename(name, new)?)
    }

    /// `GET /containers/{id}/top?ps_args=`.
    pub async fn top_container(&self, name: &str, ps_args: &str) -> Result<Value, EngineError> {
        let c = self.containers().clone();
        let (name, args) = (name.to_owned(), ps_args.to_owned());
        Ok(tokio::task::spawn_blocking(move || c.top(&name, &args))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??)
    }

    /// `POST /containers/prune?filters=`: `{ContainersDeleted, SpaceReclaimed}`; event
    /// `prune`.
    pub async fn prune_containers(
        &self,
        filters: BTreeMap<String, Vec<String>>,
    ) -> Result<Value, EngineError> {
        let f = PruneFilter::new(&filters)?;
        let c = self.containers().clone();
        let (ids, reclaimed) = tokio::task::spawn_blocking(move || c.prune(&f))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?;
        self.events().publish(
            crate::Event::new("container", "prune", "").attr("reclaimed", &reclaimed.to_string()),
        );
        Ok(
            json!({"ContainersDeleted": if ids.is_empty() { Value::Null } else { json!(ids) }, "SpaceReclaimed": reclaimed}),
        )
    }

    /// `GET /system/df?type=`: images (with their container counts), containers (with
    /// `SizeRw`/`SizeRootFs`), volumes and build cache (what this engine has of them).
    pub async fn system_df(&self, types: &[String]) -> Result<Value, EngineError> {
        let want = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
        let mut out = json!({"LayersSize": 0, "Images": [], "Containers": [], "Volumes": [], "BuildCache": []});
        if want("image") {
            let images = self.list_images(&BTreeMap::new(), true).await?;
            let layers: u64 = images.iter().map(|i| i.size).sum();
            out["LayersSize"] = json!(layers);
            out["Images"] =
                serde_json::to_value(&images).map_err(|e| EngineError::Task(e.to_string()))?;
            // moby computes SharedSize for df (the CLI skips -1); layers shared between
            // images are not tracked here, so none are counted as shared
            for i in out["Images"].as_array_mut().into_iter().flatten() {
                i["SharedSize"] = json!(0);
            }
        }
        if want("container") {
            let c = self.containers().clone();
            let list = tokio::task::spawn_blocking(move || {
                c.all()
                    .iter()
                    .map(|r| {
                        let mut v = super::view::summary(r);
                        let (rw, rootfs) = c.sizes(r);
                        v["SizeRw"] = json!(rw);
                        v["SizeRootFs"] = json!(rootfs);
                        v
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?;
            out["Containers"] = json!(list);
        }
        if want("volume") {
            out["Volumes"] = self.df_volumes().await?;
        }
        Ok(out)
    }

    /// `ps -s`: adds `SizeRw` and `SizeRootFs` to container summaries.
    pub async fn add_container_sizes(&self, list: &mut [Value]) -> Result<(), EngineError> {
        let c = self.containers().clone();
        let ids: Vec<String> = list
            .iter()
            .map(|v| v["Id"].as_str().unwrap_or_default().to_owned())
            .collect();
        let sizes = tokio::task::spawn_blocking(move || {
            ids.iter()
                .map(|id| c.get(id).map(|r| c.sizes(&r)).unwrap_or((0, 0)))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))?;
        for (v, (rw, root)) in list.iter_mut().zip(sizes) {
            v["SizeRw"] = json!(rw);
            v["SizeRootFs"] = json!(root);
        }
        Ok(())
    }

    /// `POST /containers/{id}/update`.
    pub async fn update_container(
        &self,
        name: &str,
        u: UpdateRequest,
    ) -> Result<Vec<String>, EngineError> {
        let c = self.containers().clone();
        let name = name.to_owned();
        Ok(tokio::task::spawn_blocking(move || c.update(&name, &u))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??)
    }
}

/// `ps`'s STATUS for the states this module adds (paused, restarting, health); `None`
/// for the plain ones.
pub fn status_override(r: &Record) -> Option<String> {
    use super::view::human_duration;
    let since = |t: &str| {
        t.parse::<jiff::Timestamp>()
            .map(|t| jiff::Timestamp::now().as_second() - t.as_second())
            .unwrap_or(0)
    };
    match r.state.status {
        Status::Running => {
            let up = format!("Up {}", human_duration(since(&r.state.started_at)));
            if r.state.paused {
                Some(format!("{up} (Paused)"))
            } else {
                r.state.health.as_ref().map(|h| {
                    let s = if h.status == "starting" {
                        "health: starting"
                    } else {
                        h.status.as_str()
                    };
                    format!("{up} ({s})")
                })
            }
        }
        Status::Exited if r.state.restarting => Some(format!(
            "Restarting ({}) {} ago",
            r.state.exit_code,
            human_duration(since(&r.state.finished_at))
        )),
        _ => None,
    }
}

/// Docker's `State.Status` word, with paused and restarting.
pub fn state_word(r: &Record) -> &'static str {
    if r.state.status == Status::Running && r.state.paused {
        "paused"
    } else if r.state.status == Status::Exited && r.state.restarting {
        "restarting"
    } else {
        r.state.status.as_str()
    }
}

/// Adds this module's fields to an inspect document: `State.Paused/Restarting/Health`,
/// `RestartCount`, the `HostConfig` and `Config` fields of [`berth_types::run::RunOptions`].
pub fn decorate_inspect(v: &mut Value, r: &Record) {
    let o = &r.spec.run;
    let st = &r.state;
    v["State"]["Status"] = json!(state_word(r));
    v["State"]["Paused"] = json!(st.paused);
    v["State"]["Restarting"] = json!(st.restarting);
    if st.restarting {
        // moby's SetRestarting: Running and Restarting both true
        v["State"]["Running"] = json!(true);
    }
    if let Some(h) = &st.health {
        v["State"]["Health"] = json!({
            "Status": h.status,
            "FailingStreak": h.failing_streak,
            "Log": h.log.iter().map(|l| json!({"Start": l.start, "End": l.end,
                "ExitCode": l.exit_code, "Output": l.output})).collect::<Vec<_>>(),
        });
    }
    v["RestartCount"] = json!(st.restart_count);
    let hc = &mut v["HostConfig"];
    hc["RestartPolicy"] =
        json!({"Name": o.restart.name.as_str(), "MaximumRetryCount": o.restart.max_retries});
    hc["LogConfig"] = json!({"Type": o.log_driver(), "Config": o.log_opts});
    hc["ShmSize"] = json!(if o.shm_size > 0 {
        o.shm_size as u64
    } else {
        super::oci::SHM_SIZE
    });
    hc["Init"] = if o.init { json!(true) } else { Value::Null };
    hc["Ulimits"] = if o.ulimits.is_empty() {
        Value::Null
    } else {
        json!(
            o.ulimits
                .iter()
                .map(|u| json!({"Name": u.name, "Hard": u.hard, "Soft": u.soft}))
                .collect::<Vec<_>>()
        )
    };
    hc["SecurityOpt"] = if o.security_opt.is_empty() {
        Value::Null
    } else {
        json!(o.security_opt)
    };
    hc["PidMode"] = json!(o.pid_mode.as_str(""));
    hc["IpcMode"] = json!(o.ipc_mode.as_str("private"));
    hc["UTSMode"] = json!(o.uts_mode.as_str(""));
    hc["MemorySwap"] = json!(o.memory_swap);
    hc["CpuShares"] = json!(o.cpu_shares);
    hc["CpusetCpus"] = json!(o.cpuset_cpus);
    hc["CpusetMems"] = json!(o.cpuset_mems);
    hc["CpuQuota"] = json!(o.cpu_quota);
    hc["CpuPeriod"] = json!(o.cpu_period);
    hc["OomKillDisable"] = json!(o.oom_kill_disable);
    hc["OomScoreAdj"] = json!(o.oom_score_adj);
    hc["CgroupParent"] = json!(o.cgroup_parent);
    hc["MemoryReservation"] = json!(o.memory_reservation);
    hc["Sysctls"] = if o.sysctls.is_empty() {
        Value::Null
    } else {
        json!(o.sysctls)
    };
    hc["GroupAdd"] = if o.group_add.is_empty() {
        Value::Null
    } else {
        json!(o.group_add)
    };
    hc["Devices"] = json!(
        o.devices
            .iter()
            .map(|d| json!({"PathOnHost": d.path_on_host,
        "PathInContainer": d.path_in_container, "CgroupPermissions": d.cgroup_permissions}))
            .collect::<Vec<_>>()
    );
    let cfg = &mut v["Config"];
    cfg["Domainname"] = json!(o.domainname);
    if !o.stop_signal.is_empty() {
        cfg["StopSignal"] = json!(o.stop_signal);
    }
    if let Some(t) = o.stop_timeout {
        cfg["StopTimeout"] = json!(t);
    }
    if let Some(h) = &o.healthcheck {
        cfg["Healthcheck"] = json!({"Test": h.test, "Interval": h.interval, "Timeout": h.timeout,
            "StartPeriod": h.start_period, "StartInterval": h.start_interval, "Retries": h.retries});
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_and_timestamps() {
        assert_eq!(signal_number("SIGUSR1"), Some(10));
        assert_eq!(signal_number("term"), Some(15));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("SIGRTMIN+3"), Some(37));
        assert_eq!(signal_number(""), None);
        assert_eq!(signal_number("NOPE"), None);
        let now = 1_000_000;
        assert_eq!(parse_timestamp("10m", now), Some(now - 600));
        assert_eq!(parse_timestamp("1700000000", now), Some(1_700_000_000));
        assert_eq!(parse_timestamp("1700000000.5", now), Some(1_700_000_000));
        assert_eq!(
            parse_timestamp("2026-01-01T00:00:00Z", now),
            Some(1_767_225_600)
        );
        assert_eq!(parse_timestamp("2026-01-01", now), Some(1_767_225_600));
        assert_eq!(parse_timestamp("bogus", now), None);
        assert_eq!(go_duration_secs("1h30m"), Some(5400));
    }

    #[test]
    fn prune_filters_check_keys() {
        let mut m = BTreeMap::new();
        m.insert("until".to_string(), vec!["1h".to_string()]);
        m.insert("label".to_string(), vec!["a=b".to_string()]);
        assert!(PruneFilter::new(&m).is_ok());
        m.insert("bogus".to_string(), vec!["x".to_string()]);
        assert_eq!(
            PruneFilter::new(&m).unwrap_err().to_string(),
            "invalid filter 'bogus'"
        );
    }

    #[test]
    fn dir_size_counts_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), [0u8; 100]).unwrap();
        std::fs::create_dir(d.path().join("s")).unwrap();
        std::fs::write(d.path().join("s/b"), [0u8; 23]).unwrap();
        std::fs::hard_link(d.path().join("a"), d.path().join("a2")).unwrap();
        assert_eq!(dir_size(d.path()), 123);
    }
}
