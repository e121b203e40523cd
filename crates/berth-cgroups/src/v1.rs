//! The cgroup v1 manager: one directory per hierarchy.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use crate::detect::Hierarchy;
use crate::fsutil::{self, read, write};
use crate::{Cgroup, CgroupVersion, Error, FreezerState, Placement, Result, Stats};

/// v1 reports "no limit" as the largest page-aligned i64.
const V1_UNLIMITED_FLOOR: u64 = 0x7FFF_FFFF_FFFF_0000;
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// A container cgroup spread over the v1 hierarchies.
#[derive(Debug)]
pub struct V1Cgroup {
    parts: Vec<Part>,
    path: String,
    /// Directories this value created (parents first), removed again by `destroy`.
    created: Mutex<Vec<PathBuf>>,
}

#[derive(Debug, Clone)]
struct Part {
    hierarchy: Hierarchy,
    /// The container's cgroup, from the hierarchy's root.
    cg: String,
    dir: PathBuf,
}

impl Part {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// True when this part's cgroup is the caller's own or one of its ancestors.
    fn is_own_or_ancestor(&self) -> bool {
        let own = self.hierarchy.own.trim_end_matches('/');
        let cg = self.cg.trim_end_matches('/');
        own == cg || own.starts_with(&format!("{cg}/")) || cg.is_empty()
    }
}

fn check_abs(p: &str) -> Result<()> {
    if p.split('/').any(|c| c == "." || c == "..") {
        return Err(Error::InvalidPath(
            p.to_string(),
            "components must not be . or ..",
        ));
    }
    Ok(())
}

impl V1Cgroup {
    /// The cgroup for `placement` in `hierarchies` (nothing is created yet).
    pub fn new(hierarchies: &[Hierarchy], placement: &Placement) -> Result<V1Cgroup> {
        match placement {
            Placement::UnderOwn(rel) => fsutil::check_rel(rel)?,
            Placement::Absolute(p) => check_abs(p)?,
        }
        let parts: Vec<Part> = hierarchies
            .iter()
            .map(|h| {
                let cg = match placement {
                    Placement::UnderOwn(rel) => fsutil::cg_join(&h.own, rel),
                    Placement::Absolute(p) => format!("/{}", p.trim_matches('/')),
                };
                Part {
                    hierarchy: h.clone(),
                    dir: h.dir_of(&cg),
                    cg,
                }
            })
            .collect();
        let path = parts
            .iter()
            .find(|p| p.hierarchy.has("memory"))
            .or(parts.first())
            .map(|p| p.cg.clone())
            .ok_or_else(|| Error::NoOwnCgroup("no v1 hierarchy".into()))?;
        Ok(V1Cgroup {
            parts,
            path,
            created: Mutex::new(Vec::new()),
        })
    }

    /// The cgroup at exactly `entries` (controllers key → path), as
    /// [`Cgroup::saved_path`] wrote them; hierarchies without an entry are not used.
    pub fn exact(hierarchies: &[Hierarchy], entries: &[(String, String)]) -> Result<V1Cgroup> {
        let mut parts = Vec::new();
        for (key, cg) in entries {
            check_abs(cg)?;
            let ctrls: Vec<&str> = key.split(',').collect();
            let h = hierarchies
                .iter()
                .find(|h| ctrls.iter().any(|c| h.has(c)))
                .ok_or_else(|| Error::NoOwnCgroup(format!("no mounted hierarchy for {key}")))?;
            let cg = format!("/{}", cg.trim_matches('/'));
            parts.push(Part {
                hierarchy: h.clone(),
                dir: h.dir_of(&cg),
                cg,
            });
        }
        let path = parts
            .iter()
            .find(|p| p.hierarchy.has("memory"))
            .or(parts.first())
            .map(|p| p.cg.clone())
            .ok_or_else(|| Error::InvalidPath(String::new(), "no hierarchy in saved path"))?;
        Ok(V1Cgroup {
            parts,
            path,
            created: Mutex::new(Vec::new()),
        })
    }

    fn part(&self, controller: &'static str, what: &'static str) -> Result<&Part> {
        self.parts
            .iter()
            .find(|p| p.hierarchy.has(controller))
            .ok_or(Error::ControllerMissing { controller, what })
    }

    fn try_part(&self, controller: &str) -> Option<&Part> {
        self.parts.iter().find(|p| p.hierarchy.has(controller))
    }

    /// The directory of this cgroup in the hierarchy with `controller`.
    pub fn dir(&self, controller: &str) -> Option<&Path> {
        self.try_part(controller).map(|p| p.dir.as_path())
    }

    /// Fill empty `cpuset.cpus`/`cpuset.mems` from the parent, top down, so tasks can join.
    fn init_cpuset(part: &Part) -> Result<()> {
        let mut chain = Vec::new();
        let own_dir = part.hierarchy.dir_of(&part.hierarchy.own);
        let mut d = part.dir.as_path();
        while d != own_dir
            && d.starts_with(&part.hierarchy.mount_point)
            && d != part.hierarchy.mount_point
        {
            chain.push(d.to_path_buf());
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
        chain.reverse();
        for dir in chain {
            let Some(parent) = dir.parent() else { continue };
            for f in ["cpuset.cpus", "cpuset.mems"] {
                let mine = read(&dir.join(f))?;
                if mine.trim().is_empty() {
                    let theirs = read(&parent.join(f))?;
                    write(&dir.join(f), theirs.trim())?;
                }
            }
        }
        Ok(())
    }

    fn apply_memory(&self, m: &oci_spec::runtime::LinuxMemory) -> Result<()> {
        let wants = m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some();
        if !wants {
            return Ok(()); // kernel and kernel_tcp alone: deprecated, ignored
        }
        let p = self.part("memory", "memory limits")?;
        let limit = m.limit().unwrap_or(0);
        let mut swap = m.swap().unwrap_or(0);
        if limit == -1 && swap == 0 {
            swap = -1; // as runc: unlimited memory with no swap asked means both unlimited
        }
        if limit < -1 {
            return Err(Error::InvalidResource {
                what: "memory limit",
                why: format!("{limit} is negative"),
            });
        }
        if swap < -1 {
            return Err(Error::InvalidResource {
                what: "memory swap",
                why: format!("{swap} is negative"),
            });
        }
        let memsw = p.file("memory.memsw.limit_in_bytes");
        if swap != 0 && !memsw.exists() {
            return Err(Error::ControllerMissing {
                controller: "memory.memsw (swap accounting)",
                what: "a memory+swap limit",
            });
        }
        let lim_file = p.file("memory.limit_in_bytes");
        if limit != 0 && swap != 0 {
            let cur = fsutil::read_u64(&lim_file)?;
            // The kernel insists memsw >= limit at every moment: order the writes.
            if swap == -1 || (cur as i128) < swap as i128 {
                write(&memsw, &swap.to_string())?;
                write(&lim_file, &limit.to_string())?;
            } else {
                write(&lim_file, &limit.to_string())?;
                write(&memsw, &swap.to_string())?;
            }
        } else {
            if limit != 0 {
                write(&lim_file, &limit.to_string())?;
            }
            if swap != 0 {
                write(&memsw, &swap.to_string())?;
            }
        }
        if let Some(r) = m.reservation() {
            write(&p.file("memory.soft_limit_in_bytes"), &r.to_string())?;
        }
        if let Some(s) = m.swappiness() {
            if s > 100 {
                return Err(Error::InvalidResource {
                    what: "memory swappiness",
                    why: format!("{s} is above 100"),
                });
            }
            write(&p.file("memory.swappiness"), &s.to_string())?;
        }
        if let Some(d) = m.disable_oom_killer() {
            write(&p.file("memory.oom_control"), if d { "1" } else { "0" })?;
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &oci_spec::runtime::LinuxCpu) -> Result<()> {
        let wants_cpu = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
            || c.idle().is_some()
            || c.burst().is_some();
        if wants_cpu {
            let p = self.part("cpu", "cpu shares/quota/period")?;
            if let Some(s) = c.shares().filter(|s| *s != 0) {
                write(&p.file("cpu.shares"), &s.to_string())?;
            }
            let period = c.period().filter(|p| *p != 0);
            let quota = c.quota().filter(|q| *q != 0);
            let pf = p.file("cpu.cfs_period_us");
            let qf = p.file("cpu.cfs_quota_us");
            match (period, quota) {
                (Some(per), Some(q)) => {
                    if write(&pf, &per.to_string()).is_err() {
                        // a smaller period can clash with the old quota: quota first then
                        write(&qf, &q.to_string())?;
                        write(&pf, &per.to_string())?;
                    } else {
                        write(&qf, &q.to_string())?;
                    }
                }
                (Some(per), None) => write(&pf, &per.to_string())?,
                (None, Some(q)) => write(&qf, &q.to_string())?,
                (None, None) => {}
            }
            if let Some(b) = c.burst() {
                write(&p.file("cpu.cfs_burst_us"), &b.to_string())?;
            }
            if let Some(rp) = c.realtime_period().filter(|v| *v != 0) {
                write(&p.file("cpu.rt_period_us"), &rp.to_string())?;
            }
            if let Some(rr) = c.realtime_runtime().filter(|v| *v != 0) {
                write(&p.file("cpu.rt_runtime_us"), &rr.to_string())?;
            }
            if let Some(i) = c.idle() {
                write(&p.file("cpu.idle"), &i.to_string())?;
            }
        }
        let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = c.mems().as_deref().filter(|s| !s.is_empty());
        if cpus.is_some() || mems.is_some() {
            let p = self.part("cpuset", "cpuset cpus/mems")?;
            if let Some(v) = cpus {
                write(&p.file("cpuset.cpus"), v)?;
            }
            if let Some(v) = mems {
                write(&p.file("cpuset.mems"), v)?;
            }
        }
        Ok(())
    }

    fn apply_blkio(&self, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
        let throttles = [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
            ),
        ];
        let any = b.weight().is_some()
            || b.leaf_weight().is_some()
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || throttles
                .iter()
                .any(|(t, _)| t.as_ref().is_some_and(|v| !v.is_empty()));
        if !any {
            return Ok(());
        }
        let p = self.part("blkio", "block io limits")?;
        // blkio.weight is CFQ's; with BFQ the kernel offers blkio.bfq.weight instead.
        let weight_file = ["blkio.weight", "blkio.bfq.weight"]
            .into_iter()
            .map(|f| p.file(f))
            .find(|f| f.exists());
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            let f = weight_file.clone().ok_or(Error::ControllerMissing {
                controller: "blkio.weight (CFQ or BFQ scheduler)",
                what: "a block io weight",
            })?;
            write(&f, &w.to_string())?;
        }
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            let f = p.file("blkio.leaf_weight");
            if !f.exists() {
                return Err(Error::ControllerMissing {
                    controller: "blkio.leaf_weight",
                    what: "a block io leaf weight",
                });
            }
            write(&f, &w.to_string())?;
        }
        // the per-device file sits beside the weight file: blkio.weight_device or
        // blkio.bfq.weight_device (runc picks them the same way)
        let weight_device_file = weight_file
            .as_ref()
            .and_then(|f| {
                f.file_name()
                    .and_then(|n| n.to_str())
                    .map(|n| p.file(&format!("{n}_device")))
            })
            .filter(|f| f.exists());
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight() {
                let f = weight_device_file
                    .as_ref()
                    .ok_or(Error::ControllerMissing {
                        controller: "blkio.weight_device",
                        what: "a per-device block io weight",
                    })?;
                write(f, &format!("{}:{} {}", wd.major(), wd.minor(), w))?;
            }
        }
        for (list, file) in throttles {
            for t in list.iter().flatten() {
                write(
                    &p.file(file),
                    &format!("{}:{} {}", t.major(), t.minor(), t.rate()),
                )?;
            }
        }
        Ok(())
    }

    fn apply_devices(&self, rules: &[oci_spec::runtime::LinuxDeviceCgroup]) -> Result<()> {
        if rules.is_empty() {
            return Ok(());
        }
        let p = self.part("devices", "device rules")?;
        // one open file per list, one write per rule (a new cgroup gets a dozen)
        let (mut allow, mut deny) = (None, None);
        for r in rules {
            let typ = r
                .typ()
                .map(|t| t.as_str().to_string())
                .unwrap_or_else(|| "a".into());
            let major = r
                .major()
                .map(|m| m.to_string())
                .unwrap_or_else(|| "*".into());
            let minor = r
                .minor()
                .map(|m| m.to_string())
                .unwrap_or_else(|| "*".into());
            let access = r
                .access()
                .clone()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "rwm".into());
            if access.chars().any(|c| !matches!(c, 'r' | 'w' | 'm')) {
                return Err(Error::InvalidResource {
                    what: "device rule access",
                    why: format!("{access:?} is not a subset of rwm"),
                });
            }
            let line = if typ == "a" {
                "a *:* rwm".to_string()
            } else {
                format!("{typ} {major}:{minor} {access}")
            };
            let (slot, file) = if r.allow() {
                (&mut allow, "devices.allow")
            } else {
                (&mut deny, "devices.deny")
            };
            let w = match slot {
                Some(w) => w,
                None => slot.insert(fsutil::LineWriter::open(&p.file(file))?),
            };
            w.write(&line)?;
        }
        Ok(())
    }
}

impl Cgroup for V1Cgroup {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn create(&self) -> Result<()> {
        for p in &self.parts {
            let made = fsutil::mkdir_all(&p.dir)?;
            self.created
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(made);
            if p.hierarchy.has("cpuset") {
                Self::init_cpuset(p)?;
            }
        }
        Ok(())
    }

    fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            self.apply_memory(m)?;
        }
        if let Some(c) = r.cpu() {
            self.apply_cpu(c)?;
        }
        if let Some(pids) = r.pids() {
            let p = self.part("pids", "a pids limit")?;
            let v = if pids.limit() > 0 {
                pids.limit().to_string()
            } else {
                "max".into()
            };
            write(&p.file("pids.max"), &v)?;
        }
        if let Some(b) = r.block_io() {
            self.apply_blkio(b)?;
        }
        if let Some(d) = r.devices() {
            self.apply_devices(d)?;
        }
        for h in r.hugepage_limits().iter().flatten() {
            let p = self.part("hugetlb", "hugepage limits")?;
            write(
                &p.file(&format!("hugetlb.{}.limit_in_bytes", h.page_size())),
                &h.limit().to_string(),
            )?;
        }
        if let Some(n) = r.network() {
            if let Some(id) = n.class_id() {
                let p = self.part("net_cls", "a network class id")?;
                write(&p.file("net_cls.classid"), &id.to_string())?;
            }
            for prio in n.priorities().iter().flatten() {
                let p = self.part("net_prio", "network interface priorities")?;
                write(
                    &p.file("net_prio.ifpriomap"),
                    &format!("{} {}", prio.name(), prio.priority()),
                )?;
            }
        }
        if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(Error::InvalidResource {
                what: "unified",
                why: "cgroup v2 files cannot be set on a cgroup v1 host".into(),
            });
        }
        if r.rdma().as_ref().is_some_and(|u| !u.is_empty()) {
            return Err(Error::ControllerMissing {
                controller: "rdma",
                what: "rdma limits",
            });
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        for p in &self.parts {
            write(&p.file("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn dir_fd_for_clone(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        Ok(None)
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let p = self
            .try_part("freezer")
            .or_else(|| self.try_part("pids"))
            .or_else(|| self.try_part("memory"))
            .or(self.parts.first())
            .ok_or_else(|| Error::NoOwnCgroup("no v1 hierarchy".into()))?;
        let mut out = Vec::new();
        for d in fsutil::walk_dirs(&p.dir)? {
            match fsutil::read_pids(&d.join("cgroup.procs")) {
                Ok(v) => out.extend(v),
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn freeze(&self) -> Result<()> {
        let p = self.part("freezer", "freeze")?;
        let f = p.file("freezer.state");
        write(&f, "FROZEN")?;
        let res = fsutil::poll_until(&f, "the freezer to report FROZEN", FREEZE_TIMEOUT, || {
            let s = read(&f)?;
            if s.trim() == "FROZEN" {
                return Ok(true);
            }
            // a task that was forking can make the kernel give up: ask again
            write(&f, "FROZEN")?;
            Ok(false)
        });
        if res.is_err() {
            let _ = write(&f, "THAWED");
        }
        res
    }

    fn thaw(&self) -> Result<()> {
        let p = self.part("freezer", "thaw")?;
        let f = p.file("freezer.state");
        write(&f, "THAWED")?;
        fsutil::poll_until(&f, "the freezer to report THAWED", FREEZE_TIMEOUT, || {
            Ok(read(&f)?.trim() == "THAWED")
        })
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        let p = self.part("freezer", "freezer state")?;
        let f = p.file("freezer.state");
        match read(&f)?.trim() {
            "THAWED" => Ok(FreezerState::Thawed),
            "FREEZING" => Ok(FreezerState::Freezing),
            "FROZEN" => Ok(FreezerState::Frozen),
            other => Err(fsutil::parse_err(
                &f,
                format!("unknown freezer state {other:?}"),
            )),
        }
    }

    fn kill_all(&self, signal: i32) -> Result<()> {
        // Freeze first so nothing forks away between reading the list and signalling.
        let frozen = self.try_part("freezer").is_some() && self.freeze().is_ok();
        let res = fsutil::signal_all(|| self.pids(), signal, frozen);
        if frozen {
            self.thaw()?;
        }
        res
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        let opt = |path: PathBuf| -> Result<Option<String>> {
            match read(&path) {
                Ok(t) => Ok(Some(t)),
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        };
        if let Some(p) = self.try_part("cpuacct") {
            if let Some(t) = opt(p.file("cpuacct.usage"))? {
                s.cpu_usage_ns = t.trim().parse().unwrap_or(0);
            }
            if let Some(t) = opt(p.file("cpuacct.stat"))? {
                let hz = rustix::param::clock_ticks_per_second().max(1);
                let to_ns = |ticks: u64| ticks.saturating_mul(1_000_000_000 / hz);
                s.cpu_user_ns = to_ns(fsutil::flat_key(&t, "user"));
                s.cpu_system_ns = to_ns(fsutil::flat_key(&t, "system"));
            }
        }
        if let Some(p) = self.try_part("cpu")
            && let Some(t) = opt(p.file("cpu.stat"))?
        {
            s.cpu_throttled_periods = fsutil::flat_key(&t, "nr_throttled");
            s.cpu_throttled_ns = fsutil::flat_key(&t, "throttled_time");
        }
        if let Some(p) = self.try_part("memory") {
            s.memory_usage_bytes = fsutil::read_u64(&p.file("memory.usage_in_bytes"))?;
            s.memory_max_usage_bytes = fsutil::read_u64(&p.file("memory.max_usage_in_bytes"))?;
            let lim = fsutil::read_u64(&p.file("memory.limit_in_bytes"))?;
            s.memory_limit_bytes = if lim >= V1_UNLIMITED_FLOOR {
                u64::MAX
            } else {
                lim
            };
            let st = read(&p.file("memory.stat"))?;
            s.memory_cache_bytes =
                fsutil::flat_key(&st, "total_cache").max(fsutil::flat_key(&st, "cache"));
            s.oom_kills = self.oom_kills()?;
        }
        if let Some(p) = self.try_part("pids") {
            s.pids_current = fsutil::read_u64(&p.file("pids.current"))?;
            s.pids_limit = fsutil::read_u64_or_max(&p.file("pids.max"))?.unwrap_or(0);
        }
        if let Some(p) = self.try_part("blkio")
            && let Some(t) = opt(p.file("blkio.throttle.io_service_bytes"))?
        {
            for l in t.lines() {
                let f: Vec<&str> = l.split_whitespace().collect();
                if f.len() == 3 {
                    let v: u64 = f[2].parse().unwrap_or(0);
                    match f[1] {
                        "Read" => s.io_read_bytes += v,
                        "Write" => s.io_write_bytes += v,
                        _ => {}
                    }
                }
            }
        }
        Ok(s)
    }

    fn oom_kills(&self) -> Result<u64> {
        let p = self.part("memory", "oom kill counting")?;
        let t = read(&p.file("memory.oom_control"))?;
        Ok(fsutil::flat_key(&t, "oom_kill"))
    }

    fn keep_parents(&self) {
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn destroy(&self) -> Result<()> {
        let mut errs = Vec::new();
        for p in &self.parts {
            if p.is_own_or_ancestor() {
                continue; // never remove the caller's own cgroup or its parents
            }
            if let Err(e) = fsutil::remove_tree(&p.dir) {
                errs.push(e);
            }
        }
        // Parents this value created, deepest first; one still in use stays.
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        for d in created.iter().rev() {
            if self.parts.iter().any(|p| &p.dir == d) {
                continue;
            }
            let _ = std::fs::remove_dir(d);
        }
        match errs.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn path(&self) -> &str {
        &self.path
    }

    fn saved_path(&self) -> String {
        if self.parts.iter().all(|p| p.cg == self.path) {
            return self.path.clone();
        }
        self.parts
            .iter()
            .map(|p| format!("{}={}", p.hierarchy.controllers.join(","), p.cg))
            .collect::<Vec<_>>()
            .join(";")
    }

    fn dir_of(&self, controller: &str) -> Option<PathBuf> {
        self.dir(controller).map(Path::to_path_buf)
    }
}

/// The per-hierarchy form of a saved path (`cpu,cpuacct=/a;memory=/b/a`), or
/// `None` for a plain path.
pub(crate) fn parse_saved(saved: &str) -> Result<Option<Vec<(String, String)>>> {
    if saved.starts_with('/') || !saved.contains('=') {
        return Ok(None);
    }
    saved
        .split(';')
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (k, v) = e.split_once('=').ok_or(Error::InvalidPath(
                saved.to_string(),
                "expected controllers=path entries",
            ))?;
            if k.is_empty() || !v.starts_with('/') {
                return Err(Error::InvalidPath(
                    saved.to_string(),
                    "expected controllers=/path entries",
                ));
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}
