//! The cgroup v2 (unified) manager: one directory.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use oci_spec::runtime::LinuxResources;

use crate::fsutil::{self, read, write};
use crate::{Cgroup, CgroupVersion, Error, FreezerState, Placement, Result, Stats};

const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// cpu.shares (v1, 2..262144) to cpu.weight (v2, 1..10000), the linear map
/// runc uses (newer crun maps logarithmically instead); 0 means "unset".
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio.weight (10..1000) to io.weight (1..10000), as runc converts; 0 means "unset".
pub fn blkio_weight_to_io_weight(weight: u16) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = u64::from(weight.clamp(10, 1000));
    1 + ((w - 10) * 9999) / 990
}

/// OCI's `memory.swap` is memory+swap (v1's memsw); v2's `memory.swap.max` is
/// swap alone. Returns the v2 value (-1 = max, 0 = leave unset), as runc does.
pub fn swap_to_v2(swap: i64, memory: i64) -> Result<i64> {
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if memory == 0 || memory == -1 {
        return Err(Error::InvalidResource {
            what: "memory swap",
            why: format!("swap limit {swap} needs a memory limit"),
        });
    }
    if memory < 0 || swap < 0 {
        return Err(Error::InvalidResource {
            what: "memory swap",
            why: format!("negative value memory={memory} swap={swap}"),
        });
    }
    if swap < memory {
        return Err(Error::InvalidResource {
            what: "memory swap",
            why: format!("memory+swap {swap} is below the memory limit {memory}"),
        });
    }
    Ok(swap - memory)
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// A container cgroup in the unified hierarchy.
#[derive(Debug)]
pub struct V2Cgroup {
    mount: PathBuf,
    own: String,
    cg: String,
    dir: PathBuf,
    /// Where controller delegation starts: the caller's own cgroup, or the root
    /// for an absolute placement.
    start: PathBuf,
    created: Mutex<Vec<PathBuf>>,
}

impl V2Cgroup {
    /// The cgroup for `placement` in the cgroup2 mount at `mount_point`, where
    /// the caller's own cgroup is `own` (nothing is created yet).
    pub fn new(mount_point: &Path, own: &str, placement: &Placement) -> Result<V2Cgroup> {
        let (cg, start) = match placement {
            Placement::UnderOwn(rel) => {
                fsutil::check_rel(rel)?;
                (fsutil::cg_join(own, rel), fsutil::join_cg(mount_point, own))
            }
            Placement::Absolute(p) => {
                if p.split('/').any(|c| c == "." || c == "..") {
                    return Err(Error::InvalidPath(
                        p.clone(),
                        "components must not be . or ..",
                    ));
                }
                (
                    format!("/{}", p.trim_matches('/')),
                    mount_point.to_path_buf(),
                )
            }
        };
        Ok(V2Cgroup {
            mount: mount_point.to_path_buf(),
            own: own.to_string(),
            dir: fsutil::join_cg(mount_point, &cg),
            cg,
            start,
            created: Mutex::new(Vec::new()),
        })
    }

    /// The cgroup's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn is_own_or_ancestor(&self) -> bool {
        let own = self.own.trim_end_matches('/');
        let cg = self.cg.trim_end_matches('/');
        cg.is_empty() || own == cg || own.starts_with(&format!("{cg}/"))
    }

    /// Make `controller` available in this cgroup by enabling it in
    /// `cgroup.subtree_control` from the delegation start down to the parent.
    /// Nothing above the caller's own cgroup is touched.
    fn ensure_controller(&self, controller: &'static str, what: &'static str) -> Result<()> {
        let have = read(&self.file("cgroup.controllers")).unwrap_or_default();
        if have.split_whitespace().any(|c| c == controller) {
            return Ok(());
        }
        let avail = read(&self.start.join("cgroup.controllers")).unwrap_or_default();
        if !avail.split_whitespace().any(|c| c == controller) {
            return Err(Error::ControllerMissing { controller, what });
        }
        let mut chain = Vec::new();
        let mut d = self.dir.parent();
        while let Some(p) = d {
            if !p.starts_with(&self.start) {
                break;
            }
            chain.push(p.to_path_buf());
            if p == self.start {
                break;
            }
            d = p.parent();
        }
        chain.reverse();
        for p in chain {
            let sc = p.join("cgroup.subtree_control");
            let cur = read(&sc)?;
            if !cur.split_whitespace().any(|c| c == controller) {
                write(&sc, &format!("+{controller}"))?;
            }
        }
        Ok(())
    }

    fn apply_memory(&self, m: &oci_spec::runtime::LinuxMemory) -> Result<()> {
        let limit = m.limit().unwrap_or(0);
        let swap = m.swap().unwrap_or(0);
        if m.swappiness().is_some_and(|s| s != 0) {
            return Err(Error::InvalidResource {
                what: "memory swappiness",
                why: "cgroup v2 has no per-cgroup swappiness".into(),
            });
        }
        if m.disable_oom_killer() == Some(true) {
            return Err(Error::InvalidResource {
                what: "disable oom killer",
                why: "cgroup v2 cannot disable the oom killer".into(),
            });
        }
        if limit == 0 && swap == 0 && m.reservation().is_none() {
            return Ok(()); // kernel and kernel_tcp alone: deprecated, ignored
        }
        self.ensure_controller("memory", "memory limits")?;
        let swap_v2 = swap_to_v2(swap, limit)?;
        if swap_v2 != 0 {
            let f = self.file("memory.swap.max");
            if !f.exists() {
                return Err(Error::ControllerMissing {
                    controller: "memory.swap (swap accounting)",
                    what: "a swap limit",
                });
            }
            write(&f, &max_or(swap_v2))?;
        }
        if limit != 0 {
            write(&self.file("memory.max"), &max_or(limit))?;
        }
        if let Some(r) = m.reservation() {
            write(&self.file("memory.low"), &max_or(r))?;
        }
        Ok(())
    }

    fn apply_cpu(&self, c: &oci_spec::runtime::LinuxCpu) -> Result<()> {
        if c.realtime_runtime().is_some_and(|v| v != 0)
            || c.realtime_period().is_some_and(|v| v != 0)
        {
            return Err(Error::InvalidResource {
                what: "cpu realtime",
                why: "cgroup v2 has no realtime cpu limits".into(),
            });
        }
        let weight = c.shares().map(shares_to_weight).filter(|w| *w != 0);
        let quota = c.quota().filter(|q| *q != 0);
        let period = c.period().filter(|p| *p != 0);
        if weight.is_some()
            || quota.is_some()
            || period.is_some()
            || c.burst().is_some()
            || c.idle().is_some()
        {
            self.ensure_controller("cpu", "cpu weight/max")?;
            if let Some(w) = weight {
                write(&self.file("cpu.weight"), &w.to_string())?;
            }
            if quota.is_some() || period.is_some() {
                let q = match quota {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".to_string(),
                };
                let line = match period {
                    Some(p) => format!("{q} {p}"),
                    None => q,
                };
                write(&self.file("cpu.max"), &line)?;
            }
            if let Some(b) = c.burst() {
                write(&self.file("cpu.max.burst"), &b.to_string())?;
            }
            if let Some(i) = c.idle() {
                write(&self.file("cpu.idle"), &i.to_string())?;
            }
        }
        let cpus = c.cpus().as_deref().filter(|s| !s.is_empty());
        let mems = c.mems().as_deref().filter(|s| !s.is_empty());
        if cpus.is_some() || mems.is_some() {
            self.ensure_controller("cpuset", "cpuset cpus/mems")?;
            if let Some(v) = cpus {
                write(&self.file("cpuset.cpus"), v)?;
            }
            if let Some(v) = mems {
                write(&self.file("cpuset.mems"), v)?;
            }
        }
        Ok(())
    }

    fn apply_io(&self, b: &oci_spec::runtime::LinuxBlockIo) -> Result<()> {
        let throttles = [
            (b.throttle_read_bps_device(), "rbps"),
            (b.throttle_write_bps_device(), "wbps"),
            (b.throttle_read_iops_device(), "riops"),
            (b.throttle_write_iops_device(), "wiops"),
        ];
        let any = b.weight().is_some_and(|w| w != 0)
            || b.weight_device().as_ref().is_some_and(|v| !v.is_empty())
            || throttles
                .iter()
                .any(|(t, _)| t.as_ref().is_some_and(|v| !v.is_empty()));
        if !any {
            return Ok(());
        }
        self.ensure_controller("io", "block io limits")?;
        if let Some(w) = b.weight().filter(|w| *w != 0) {
            // BFQ takes the v1 scale directly; io.weight wants the converted one.
            let bfq = self.file("io.bfq.weight");
            if bfq.exists() {
                write(&bfq, &w.to_string())?;
            } else {
                write(
                    &self.file("io.weight"),
                    &blkio_weight_to_io_weight(w).to_string(),
                )?;
            }
        }
        for wd in b.weight_device().iter().flatten() {
            if let Some(w) = wd.weight() {
                write(
                    &self.file("io.weight"),
                    &format!(
                        "{}:{} {}",
                        wd.major(),
                        wd.minor(),
                        blkio_weight_to_io_weight(w)
                    ),
                )?;
            }
        }
        for (list, key) in throttles {
            for t in list.iter().flatten() {
                write(
                    &self.file("io.max"),
                    &format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()),
                )?;
            }
        }
        Ok(())
    }

    fn frozen_event(&self) -> Result<bool> {
        let ev = read(&self.file("cgroup.events"))?;
        Ok(fsutil::flat_key(&ev, "frozen") == 1)
    }
}

impl Cgroup for V2Cgroup {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn create(&self) -> Result<()> {
        let made = fsutil::mkdir_all(&self.dir)?;
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(made);
        Ok(())
    }

    fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(m) = r.memory() {
            self.apply_memory(m)?;
        }
        if let Some(c) = r.cpu() {
            self.apply_cpu(c)?;
        }
        if let Some(p) = r.pids() {
            self.ensure_controller("pids", "a pids limit")?;
            write(
                &self.file("pids.max"),
                &max_or(if p.limit() > 0 { p.limit() } else { -1 }),
            )?;
        }
        if let Some(b) = r.block_io() {
            self.apply_io(b)?;
        }
        // Device rules: cgroup v2 enforces them only through an eBPF program,
        // which this manager does not load; the runtime's /dev (only the allowed
        // nodes are created) is the barrier there.
        for h in r.hugepage_limits().iter().flatten() {
            self.ensure_controller("hugetlb", "hugepage limits")?;
            write(
                &self.file(&format!("hugetlb.{}.max", h.page_size())),
                &max_or(h.limit()),
            )?;
        }
        if let Some(n) = r.network()
            && (n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()))
        {
            return Err(Error::ControllerMissing {
                controller: "net_cls/net_prio",
                what: "network class or priorities (v1 only)",
            });
        }
        if let Some(u) = r.unified() {
            let mut keys: Vec<_> = u.iter().collect();
            keys.sort();
            for (k, v) in keys {
                if k.contains('/') || k.starts_with('.') || k.is_empty() {
                    return Err(Error::InvalidResource {
                        what: "unified key",
                        why: format!("{k:?} is not a file name"),
                    });
                }
                if let Some((ctrl, _)) = k.split_once('.')
                    && ctrl != "cgroup"
                {
                    let have = read(&self.file("cgroup.controllers")).unwrap_or_default();
                    if !have.split_whitespace().any(|c| c == ctrl) {
                        let avail =
                            read(&self.start.join("cgroup.controllers")).unwrap_or_default();
                        if let Some(c) = avail.split_whitespace().find(|c| *c == ctrl) {
                            for known in [
                                "memory", "cpu", "cpuset", "io", "pids", "hugetlb", "rdma", "misc",
                            ] {
                                if known == c {
                                    self.ensure_controller(known, "a unified resource")?;
                                }
                            }
                        }
                    }
                }
                write(&self.file(k), v)?;
            }
        }
        Ok(())
    }

    fn add_task(&self, pid: i32) -> Result<()> {
        write(&self.file("cgroup.procs"), &pid.to_string())
    }

    fn dir_fd_for_clone(&self) -> Result<Option<OwnedFd>> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(
            &self.dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| {
            fsutil::io_err(
                &self.dir,
                std::io::Error::from_raw_os_error(e.raw_os_error()),
            )
        })?;
        Ok(Some(fd))
    }

    fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        for d in fsutil::walk_dirs(&self.dir)? {
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
        write(&self.file("cgroup.freeze"), "1")?;
        let ev = self.file("cgroup.events");
        let res = fsutil::poll_until(&ev, "cgroup.events to say frozen 1", FREEZE_TIMEOUT, || {
            self.frozen_event()
        });
        if res.is_err() {
            let _ = write(&self.file("cgroup.freeze"), "0");
        }
        res
    }

    fn thaw(&self) -> Result<()> {
        write(&self.file("cgroup.freeze"), "0")?;
        let ev = self.file("cgroup.events");
        fsutil::poll_until(&ev, "cgroup.events to say frozen 0", FREEZE_TIMEOUT, || {
            Ok(!self.frozen_event()?)
        })
    }

    fn freezer_state(&self) -> Result<FreezerState> {
        let want = read(&self.file("cgroup.freeze"))?.trim() == "1";
        let is = self.frozen_event()?;
        Ok(match (want, is) {
            (true, true) => FreezerState::Frozen,
            (true, false) => FreezerState::Freezing,
            // thawing: the kernel still reports frozen until every task woke
            (false, _) => FreezerState::Thawed,
        })
    }

    fn kill_all(&self, signal: i32) -> Result<()> {
        let kill = self.file("cgroup.kill");
        if signal == 9 && kill.exists() {
            return write(&kill, "1");
        }
        let frozen = self.freeze().is_ok();
        let res = fsutil::signal_all(|| self.pids(), signal, frozen);
        if frozen {
            self.thaw()?;
        }
        res
    }

    fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        let opt = |name: &str| -> Result<Option<String>> {
            match read(&self.file(name)) {
                Ok(t) => Ok(Some(t)),
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    Ok(None)
                }
                Err(e) => Err(e),
            }
        };
        if let Some(t) = opt("cpu.stat")? {
            s.cpu_usage_ns = fsutil::flat_key(&t, "usage_usec").saturating_mul(1000);
            s.cpu_user_ns = fsutil::flat_key(&t, "user_usec").saturating_mul(1000);
            s.cpu_system_ns = fsutil::flat_key(&t, "system_usec").saturating_mul(1000);
            s.cpu_throttled_periods = fsutil::flat_key(&t, "nr_throttled");
            s.cpu_throttled_ns = fsutil::flat_key(&t, "throttled_usec").saturating_mul(1000);
        }
        if self.file("memory.current").exists() {
            s.memory_usage_bytes = fsutil::read_u64(&self.file("memory.current"))?;
            if self.file("memory.peak").exists() {
                s.memory_max_usage_bytes = fsutil::read_u64(&self.file("memory.peak"))?;
            }
            s.memory_limit_bytes = fsutil::read_u64(&self.file("memory.max"))?;
            if let Some(t) = opt("memory.stat")? {
                s.memory_cache_bytes = fsutil::flat_key(&t, "file");
            }
        } else {
            s.memory_limit_bytes = u64::MAX;
        }
        if let Some(t) = opt("memory.events")? {
            s.oom_kills = fsutil::flat_key(&t, "oom_kill");
        }
        if self.file("pids.current").exists() {
            s.pids_current = fsutil::read_u64(&self.file("pids.current"))?;
            s.pids_limit = fsutil::read_u64_or_max(&self.file("pids.max"))?.unwrap_or(0);
        }
        if let Some(t) = opt("io.stat")? {
            let (r, w) = parse_io_stat(&t);
            s.io_read_bytes = r;
            s.io_write_bytes = w;
        }
        Ok(s)
    }

    fn oom_kills(&self) -> Result<u64> {
        let f = self.file("memory.events");
        if !f.exists() {
            return Err(Error::ControllerMissing {
                controller: "memory",
                what: "oom kill counting",
            });
        }
        Ok(fsutil::flat_key(&read(&f)?, "oom_kill"))
    }

    fn keep_parents(&self) {
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn destroy(&self) -> Result<()> {
        let mut errs = Vec::new();
        if !self.is_own_or_ancestor()
            && let Err(e) = fsutil::remove_tree(&self.dir)
        {
            errs.push(e);
        }
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        for d in created.iter().rev() {
            if *d != self.dir && d.starts_with(&self.mount) && *d != self.mount {
                let _ = std::fs::remove_dir(d);
            }
        }
        match errs.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn path(&self) -> &str {
        &self.cg
    }

    fn dir_of(&self, _controller: &str) -> Option<PathBuf> {
        Some(self.dir.clone())
    }
}

/// Sum `rbytes=` and `wbytes=` over the devices of an `io.stat` text.
pub(crate) fn parse_io_stat(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for line in text.lines() {
        for kv in line.split_whitespace().skip(1) {
            if let Some(v) = kv.strip_prefix("rbytes=") {
                r += v.parse::<u64>().unwrap_or(0);
            } else if let Some(v) = kv.strip_prefix("wbytes=") {
                w += v.parse::<u64>().unwrap_or(0);
            }
        }
    }
    (r, w)
}
