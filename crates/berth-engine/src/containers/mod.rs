//! Containers: create (rootfs overlay + OCI spec), start (through a `berth-shim` per
//! container), wait, kill, stop, remove, list, inspect, logs; state persisted under
//! `<data-root>/containers/<id>/config.json` and reconciled when the engine opens.
//!
//! One file per concern: `record.rs` (persisted state and the state machine), `oci.rs`
//! (ContainerSpec → OCI spec), `rootfs.rs` (overlay), `shim.rs` (spawning and watching
//! shims), `logs.rs` (json-file log → Docker stream frames), `view.rs` (Docker's
//! inspect/list JSON).

pub mod archive;
pub mod attach;
pub mod commit;
pub mod error;
pub mod etcfiles;
pub mod exec;
mod fastsave;
pub mod health;
pub mod logs;
mod mounts;
pub mod names;
pub mod net;
pub mod oci;
pub mod ops;
pub mod record;
pub mod restart;
pub mod rootfs;
pub mod seccomp;
mod shim;
mod spare;
pub mod stats;
pub mod view;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use berth_image::ImageStore;
use berth_types::spec::ContainerSpec;
use tokio::sync::watch;

use crate::events::{Event, EventBus};
use crate::{Engine, EngineError};
pub use error::ContainerError;
pub use record::{Record, RunState, Status};

/// `POST /containers/{id}/wait?condition=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Return when it is not running (at once for created/exited containers).
    NotRunning,
    /// Return after its next exit.
    NextExit,
    /// Return once it has been removed.
    Removed,
}

impl WaitCondition {
    /// Parses Docker's query value (empty = not-running).
    pub fn parse(s: &str) -> Result<WaitCondition, EngineError> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(EngineError::InvalidParameter(format!(
                "invalid condition: \"{other}\""
            ))),
        }
    }
}

/// The outcome of a wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitResult {
    /// The exit code.
    pub status_code: i32,
    /// Why the last start failed, if it did.
    pub error: Option<String>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Record>,
    /// Exit codes of removed containers, for `wait?condition=removed`.
    gone: HashMap<String, i32>,
}

/// The container store, shared with shim watcher threads.
#[derive(Debug)]
pub struct Containers {
    root: PathBuf,
    runtime_root: PathBuf,
    shim: PathBuf,
    images: ImageStore,
    events: Arc<EventBus>,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    /// Networking (set by the engine once the network store is open).
    net: std::sync::OnceLock<Arc<crate::networks::Networks>>,
    /// Volumes (set by the engine once the volume store is open).
    volumes: std::sync::OnceLock<Arc<crate::volumes::Volumes>>,
    /// Attaches waiting for a start (`attach.rs`).
    attach: attach::Pending,
    /// Exec records (`exec.rs`).
    execs: exec::Execs,
    /// Shims that reported an exit and are still cleaning up (`shim.rs`).
    draining: shim::Draining,
    /// `<data-root>/trash`: removed containers' directories, deleted in the background.
    trash: berth_image::purge::Trash,
    /// `<data-root>/spare`: container directories made ahead (`spare.rs`).
    spares: spare::Spares,
    /// Ports each image exposes, by image id (`ps` lists them for running containers).
    exposed: Mutex<std::collections::HashMap<String, Vec<(u16, String)>>>,
}

/// How long a removal or start waits for a shim that reported its container's exit to
/// finish its cleanup before doing it itself.
const SHIM_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// The shim binary: `berth-shim` next to the running executable (berthd).
pub fn default_shim_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("berth-shim")))
        .unwrap_or_else(|| PathBuf::from("berth-shim"))
}

impl Containers {
    /// Opens the store under `root` (`<data-root>/containers`) and reconciles: finishes
    /// interrupted removals, drops half-made containers, remounts rootfs, re-holds images,
    /// records exits of shims that died, and watches the live ones again.
    pub fn open(
        root: PathBuf,
        runtime_root: PathBuf,
        shim: PathBuf,
        images: ImageStore,
        events: Arc<EventBus>,
    ) -> Result<Arc<Containers>, ContainerError> {
        std::fs::create_dir_all(&root).map_err(ContainerError::io("create", &root))?;
        // each container's directory is an independent tree, made and removed often: on
        // ext4 each goes to a block group of its own rather than next to the one just
        // removed (see berth_image::mark_topdir)
        berth_image::mark_topdir(&root);
        let data_root = root.parent().unwrap_or(&root).to_owned();
        // removed containers are deleted once removals pause for a second: a loop of
        // `run --rm` is not slowed by deletes beside it (see Trash::open_settled)
        let trash = berth_image::purge::Trash::open_settled(&data_root, Duration::from_secs(1))
            .map_err(|e| ContainerError::Io {
                op: "open",
                path: data_root.join("trash").display().to_string(),
                source: std::io::Error::other(e),
            })?;
        let spare_dir = data_root.join("spare");
        let spares =
            spare::Spares::open(&spare_dir).map_err(ContainerError::io("open", &spare_dir))?;
        let (changed, _) = watch::channel(0);
        let c = Arc::new(Containers {
            root,
            runtime_root,
            shim,
            images,
            events,
            inner: Mutex::new(Inner::default()),
            changed,
            net: std::sync::OnceLock::new(),
            volumes: std::sync::OnceLock::new(),
            attach: attach::Pending::default(),
            execs: exec::Execs::default(),
            draining: shim::Draining::default(),
            trash,
            spares,
            exposed: Mutex::default(),
        });
        c.reconcile()?;
        Ok(c)
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    fn bump(&self) {
        self.changed.send_modify(|g| *g += 1);
    }

    fn publish(&self, r: &Record, action: &str, extra: &[(&str, String)]) {
        let mut e = Event::new("container", action, &r.id)
            .attr("image", &r.spec.image)
            .attr("name", &r.name);
        for (k, v) in &r.spec.labels {
            e = e.attr(k, v);
        }
        for (k, v) in extra {
            e = e.attr(k, v);
        }
        self.events.publish(e);
    }

    fn reconcile(self: &Arc<Self>) -> Result<(), ContainerError> {
        let rd = std::fs::read_dir(&self.root).map_err(ContainerError::io("list", &self.root))?;
        for entry in rd.flatten() {
            let dir = entry.path();
            let Ok(rec) = Record::load(&dir) else {
                // half-made (no config.json yet) or unreadable: nothing refers to it
                if !dir.join("config.json").exists() {
                    let _ = rootfs::unmount(&dir.join("rootfs"));
                    let _ = std::fs::remove_dir_all(&dir);
                }
                continue;
            };
            let shim_alive = record::alive(rec.state.shim_pid, rec.state.shim_start_time);
            // moby: an AutoRemove container that is not running when the daemon starts is
            // removed; one created but not started yet stays unless its volatile upper is
            // gone with a reboot (it cannot be trusted, nor mounted again, after that)
            let stale_auto_remove = rec.spec.auto_remove
                && !(rec.state.status == Status::Running && shim_alive)
                && (rec.state.status != Status::Created
                    || !rootfs::is_mounted(&dir.join("rootfs")));
            if rec.state.status == Status::Removing || stale_auto_remove {
                self.finish_removal(&rec);
                continue;
            }
            let overlay =
                rootfs::Overlay::new(&dir, rec.lowerdirs.clone()).volatile(rec.spec.auto_remove);
            if let Err(e) = overlay.mount() {
                tracing::warn!(id = %rec.id, error = %e, "cannot remount rootfs");
            }
            if let Ok(d) = rec.image_id.parse() {
                self.images.hold_image(&d, &rec.id);
            }
            let id = rec.id.clone();
            let running = rec.state.status == Status::Running;
            lock(&self.inner).map.insert(id.clone(), rec);
            if running {
                if shim_alive {
                    self.start_health(&id);
                    shim::watch_adopted(self.clone(), id);
                } else {
                    self.finish(&id);
                }
            }
        }
        // restart policies run once networks and volumes are attached and the network
        // state of the stopped containers is torn down (`Engine::open`)
        Ok(())
    }

    /// Resolves a full id, a unique id prefix or a name (with or without `/`).
    pub fn resolve(&self, name: &str) -> Result<String, ContainerError> {
        let inner = lock(&self.inner);
        Self::resolve_in(&inner, name)
    }

    fn resolve_in(inner: &Inner, name: &str) -> Result<String, ContainerError> {
        if inner.map.contains_key(name) {
            return Ok(name.to_owned());
        }
        let bare = name.trim_start_matches('/');
        if let Some(r) = inner.map.values().find(|r| r.name == bare) {
            return Ok(r.id.clone());
        }
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hits: Vec<&String> = inner.map.keys().filter(|k| k.starts_with(name)).collect();
            match hits.len() {
                1 => return Ok(hits[0].clone()),
                0 => {}
                _ => return Err(ContainerError::Ambiguous(name.to_owned())),
            }
        }
        Err(ContainerError::NoSuchContainer(name.to_owned()))
    }

    /// A copy of one container's record.
    pub fn get(&self, name: &str) -> Result<Record, ContainerError> {
        let inner = lock(&self.inner);
        let id = Self::resolve_in(&inner, name)?;
        Ok(inner.map[&id].clone())
    }

    /// Every container, newest first.
    pub fn all(&self) -> Vec<Record> {
        let mut v: Vec<Record> = lock(&self.inner).map.values().cloned().collect();
        v.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        v
    }

    /// Creates a container: validates, resolves the image, mounts the rootfs, writes the
    /// OCI bundle and the record, holds the image. Returns the id and warnings.
    pub fn create(&self, spec: ContainerSpec) -> Result<(String, Vec<String>), EngineError> {
        spec.validate().map_err(ContainerError::from)?;
        let spec = self.net_create(spec)?;
        let image = self
            .images
            .resolve(&spec.image)
            .map_err(|e| EngineError::from_store(e, &spec.image))?;
        let image_config = self.images.config(&image.id)?;
        let lowerdirs = self
            .images
            .lowerdirs(&image.id.to_string())
            .map_err(|e| EngineError::from_store(e, &spec.image))?;
        let mut inner = lock(&self.inner);
        let name = if spec.name.is_empty() {
            let mut retry = 0;
            loop {
                let n = names::random_name(retry);
                if !inner.map.values().any(|r| r.name == n) {
                    break n;
                }
                retry += 1;
            }
        } else {
            let n = spec.name.trim_start_matches('/').to_owned();
            if let Some(r) = inner.map.values().find(|r| r.name == n) {
                return Err(ContainerError::NameInUse {
                    name: n,
                    id: r.id.clone(),
                }
                .into());
            }
            n
        };
        let id = names::random_id();
        let dir = self.dir(&id);
        if !self.spares.take(&dir) {
            std::fs::create_dir_all(dir.join("bundle"))
                .map_err(ContainerError::io("create", &dir))?;
        }
        let overlay = rootfs::Overlay::new(&dir, lowerdirs.clone()).volatile(spec.auto_remove);
        let made = (|| -> Result<Record, EngineError> {
            overlay.mount()?;
            let mounts = self.resolve_mounts(&id, &spec, &image_config, &overlay.merged, &inner)?;
            let mut resolved = oci::build(
                &id,
                &spec,
                &image_config,
                &overlay.merged,
                oci::own_bounding_set(),
            )
            .map_err(ContainerError::from)?;
            let etc = etcfiles::write(&dir, &id, &spec, &etcfiles::HostFiles::default())?;
            self.net_patch_oci(&id, &spec, &mut resolved.spec);
            oci::add_etc_mounts(&mut resolved.spec, &etc);
            mounts::add_oci_mounts(&mut resolved.spec, &mounts, &spec.storage.tmpfs);
            let bundle_cfg = dir.join("bundle/config.json");
            let bytes =
                serde_json::to_vec_pretty(&resolved.spec).map_err(|e| ContainerError::Io {
                    op: "encode",
                    path: bundle_cfg.display().to_string(),
                    source: std::io::Error::other(e),
                })?;
            // a fresh directory: nothing reads it before the record makes it a container
            // (reconcile removes a directory without one), so no temp file and rename
            std::fs::write(&bundle_cfg, &bytes)
                .map_err(ContainerError::io("write", &bundle_cfg))?;
            let log = dir.join(format!("{id}-json.log"));
            std::fs::File::create(&log).map_err(ContainerError::io("create", &log))?;
            ops::prepare_logging(&dir, &log, &spec)?;
            let rec = Record {
                version: record::RECORD_VERSION,
                seq: 0,
                id: id.clone(),
                name: name.clone(),
                created: now(),
                image_id: image.id.to_string(),
                spec: ContainerSpec {
                    name: name.clone(),
                    ..spec.clone()
                },
                path: resolved.path,
                args: resolved.args,
                env: resolved.env,
                cmd: resolved.cmd,
                entrypoint: resolved.entrypoint,
                workdir: resolved.workdir,
                lowerdirs,
                state: RunState::default(),
                mounts,
            };
            if spec.auto_remove {
                // a power loss removes an AutoRemove container anyway (reconcile): its
                // record needs no fsync
                rec.save_unsynced(&dir)?;
            } else {
                rec.save(&dir)?;
            }
            Ok(rec)
        })();
        let rec = match made {
            Ok(r) => r,
            Err(e) => {
                let _ = overlay.unmount();
                let _ = std::fs::remove_dir_all(&dir);
                self.abort_mounts(&id);
                return Err(e);
            }
        };
        self.images.hold_image(&image.id, &id);
        self.publish(&rec, "create", &[]);
        inner.map.insert(id.clone(), rec);
        drop(inner);
        self.bump();
        Ok((id, Vec::new()))
    }

    /// Starts a container through a new shim. `Ok(false)` when it is already running
    /// (304).
    pub fn start(self: &Arc<Self>, name: &str) -> Result<bool, EngineError> {
        // the shim of its last run may still be removing the runtime state
        let id = Self::resolve_in(&lock(&self.inner), name)?;
        self.wait_shim_gone(&id);
        let started = self.start_resolved(&id);
        if started.is_err() {
            // moby: an AutoRemove container whose start failed is removed (its client
            // waits for `condition=removed`)
            let auto_remove = lock(&self.inner)
                .map
                .get(&id)
                .is_some_and(|r| r.spec.auto_remove && r.state.status == Status::Created);
            if auto_remove {
                let _ = self.remove_now(&id);
                self.bump();
            }
        }
        started
    }

    fn start_resolved(self: &Arc<Self>, id: &str) -> Result<bool, EngineError> {
        let mut inner = lock(&self.inner);
        let id = Self::resolve_in(&inner, id)?;
        let rec = inner.map[&id].clone();
        match rec.state.status {
            Status::Running => return Ok(false),
            Status::Removing => return Err(ContainerError::Removing(id).into()),
            _ => {}
        }
        let dir = self.dir(&id);
        rootfs::Overlay::new(&dir, rec.lowerdirs.clone())
            .volatile(rec.spec.auto_remove)
            .mount()?;
        let _ = std::fs::remove_file(dir.join("exit.json"));
        // leftovers of a shim that died mid-way
        if let Ok(c) = berth_runtime::Container::load(&self.runtime_root, &id) {
            let _ = c.delete(true);
        }
        self.net_start(&inner, &rec)?;
        let io = self.prepare_attach(&rec, &dir)?;
        let outcome = shim::spawn(self, &id, &dir, io);
        let r = inner
            .map
            .get_mut(&id)
            .ok_or_else(|| ContainerError::NoSuchContainer(id.clone()))?;
        match outcome {
            Ok(shim::Started {
                pid,
                child,
                reports,
            }) => {
                r.state.status = Status::Running;
                r.state.paused = false;
                r.state.restarting = false;
                r.state.pid = pid;
                r.state.shim_pid = child.id() as i32;
                r.state.shim_start_time = record::start_time(child.id() as i32).unwrap_or(0);
                r.state.error.clear();
                r.state.exit_code = 0;
                r.state.started_at = now();
                r.state.finished_at.clear();
                let rec = r.clone();
                rec.save_hot(&dir)?;
                self.publish(&rec, "start", &[]);
                self.mount_events(&rec, "mount");
                drop(inner);
                self.start_health(&id);
                shim::watch_child(self.clone(), id, child, reports);
                self.bump();
                Ok(true)
            }
            Err(ContainerError::StartFailed { message, exit_code }) => {
                // Docker leaves a container whose start failed "created", with the
                // exit code and the error recorded
                r.state.status = Status::Created;
                r.state.exit_code = exit_code;
                r.state.error = message.clone();
                r.state.exits += 1;
                let rec = r.clone();
                let _ = rec.save(&dir);
                drop(inner);
                self.net_stop(&id);
                if rec.spec.auto_remove {
                    let _ = self.remove_now(&id);
                }
                self.bump();
                Err(ContainerError::StartFailed { message, exit_code }.into())
            }
            Err(e) => {
                drop(inner);
                self.net_stop(&id);
                Err(e.into())
            }
        }
    }

    /// The shim of `id` is gone: read exit.json (written first by the shim), record
    /// the exit, remove an auto-remove container.
    fn finish(self: &Arc<Self>, id: &str) {
        if let Some(rec) = self.record_exit(id) {
            self.after_shim(id, &rec);
        }
    }

    /// Records the exit of a running container from its exit.json (the shim reported
    /// it, or is gone): state, network, events, waiters. `None` if it was not running.
    fn record_exit(&self, id: &str) -> Option<Record> {
        let dir = self.dir(id);
        let exit = record::ExitFile::read(&dir);
        let mut inner = lock(&self.inner);
        let r = inner.map.get_mut(id)?;
        if r.state.status != Status::Running {
            return None;
        }
        match exit {
            Some(e) => {
                r.state.exit_code = e.exit_code;
                r.state.finished_at = e.finished_at;
            }
            None => {
                r.state.exit_code = 255;
                r.state.error = "container monitor exited without recording an exit status".into();
                r.state.finished_at = now();
            }
        }
        r.state.status = Status::Exited;
        r.state.pid = 0;
        r.state.exits += 1;
        r.state.paused = false;
        let rec = r.clone();
        // saved before anyone hears of the exit: a stop, then a crash of berthd, must find
        // the container exited (restart policies on boot look at the saved status)
        if let Err(e) = rec.save_hot(&dir) {
            tracing::warn!(id, error = %e, "cannot persist exit");
        }
        drop(inner);
        self.net_stop(id);
        self.mount_events(&rec, "unmount");
        self.publish(
            &rec,
            "die",
            &[("exitCode", rec.state.exit_code.to_string())],
        );
        self.bump();
        Some(rec)
    }

    /// What follows an exit once the shim is gone: leftover runtime state, auto-remove,
    /// the restart policy.
    fn after_shim(self: &Arc<Self>, id: &str, rec: &Record) {
        // a shim that died before cleaning up leaves runtime state and a cgroup
        if let Ok(c) = berth_runtime::Container::load(&self.runtime_root, id) {
            let _ = c.delete(true);
        }
        if rec.spec.auto_remove {
            let _ = self.remove_now(id);
            self.bump();
        }
        self.after_exit(id);
    }

    /// Removes a stopped container now.
    fn remove_now(&self, id: &str) -> Result<(), ContainerError> {
        let rec = {
            let mut inner = lock(&self.inner);
            let Some(r) = inner.map.get_mut(id) else {
                return Ok(());
            };
            // in memory only: the directory leaves in one rename (to the trash) once the
            // network, mounts and runtime state are gone; a crash before that leaves the
            // container as it was, to be removed again
            r.state.status = Status::Removing;
            r.clone()
        };
        self.finish_removal(&rec);
        Ok(())
    }

    /// Tears a container down (reverse order, keeps going, "already gone" is fine).
    fn finish_removal(&self, rec: &Record) {
        let dir = self.dir(&rec.id);
        self.net_stop(&rec.id);
        if let Err(e) = rootfs::unmount(&dir.join("rootfs")) {
            tracing::warn!(id = %rec.id, error = %e, "unmount");
        }
        // a shim that reported the exit may still be removing the runtime state
        self.wait_shim_gone(&rec.id);
        if let Ok(c) = berth_runtime::Container::load(&self.runtime_root, &rec.id) {
            let _ = c.delete(true);
        }
        // the directory leaves at once (one rename); its files go in the background
        if let Err(e) = self.trash.discard(&dir) {
            tracing::warn!(id = %rec.id, error = %e, "move container dir to the trash");
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(id = %rec.id, error = %e, "remove container dir");
            }
        }
        if let Ok(d) = rec.image_id.parse() {
            self.images.release_image(&d, &rec.id);
        }
        self.release_mounts(rec, rec.spec.auto_remove);
        let mut inner = lock(&self.inner);
        inner.map.remove(&rec.id);
        self.attach.forget(&rec.id);
        inner.gone.insert(rec.id.clone(), rec.state.exit_code);
        drop(inner);
        self.publish(rec, "destroy", &[]);
        self.bump();
    }

    /// Sends `signal` to a running container's init.
    pub fn kill(&self, name: &str, signal: i32) -> Result<(), ContainerError> {
        let rec = self.get(name)?;
        if rec.state.status != Status::Running {
            return Err(ContainerError::NotRunning(rec.id));
        }
        // the process may have exited a moment ago while its shim has not reported yet:
        // the runtime then says stopped (or its state is gone), which is "not running"
        let refused = match berth_runtime::Container::load(&self.runtime_root, &rec.id) {
            Ok(c) => {
                self.before_signal(&rec, signal);
                match c.kill(signal, false) {
                    Ok(()) => None,
                    Err(e @ berth_runtime::Error::BadStatus { .. }) => Some(e.to_string()),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = refused {
            // the runtime's view says not running; if the recorded init is still there,
            // a child of our live shim, it is signalled directly
            if !self.signal_recorded_init(&rec, signal) {
                return Err(ContainerError::NotRunning(rec.id));
            }
            tracing::warn!(id = %rec.id, pid = rec.state.pid, why, "signalled the init directly");
        }
        self.after_signal(&rec);
        self.publish(&rec, "kill", &[("signal", signal.to_string())]);
        Ok(())
    }

    /// Waits (bounded) until the shim of `id`'s last run is gone: ours after it reported
    /// the exit, or one of a previous daemon that was still cleaning up when that daemon
    /// stopped (its pid and start time are in the record).
    fn wait_shim_gone(&self, id: &str) {
        self.draining.wait(id, SHIM_DRAIN_TIMEOUT);
        let shim = lock(&self.inner).map.get(id).and_then(|r| {
            (r.state.status != Status::Running)
                .then_some((r.state.shim_pid, r.state.shim_start_time))
        });
        if let Some((pid, start)) = shim {
            let deadline = std::time::Instant::now() + SHIM_DRAIN_TIMEOUT;
            while record::alive(pid, start) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// After a SIGKILL: waits for the exit to be recorded; a shim that has not reported it
    /// within 10 s is killed itself (its exit is then recorded, as for any dead shim) and
    /// waited for 10 s more.
    async fn wait_killed(&self, rec: &Record) -> bool {
        let not_running = |r: Option<&Record>| r.is_none_or(|r| r.state.status != Status::Running);
        if self
            .wait_until(&rec.id, Duration::from_secs(10), not_running)
            .await
        {
            return true;
        }
        let (pid, start) = (rec.state.shim_pid, rec.state.shim_start_time);
        if record::alive(pid, start)
            && let Some(p) = rustix::process::Pid::from_raw(pid)
            && let Ok(fd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
            && record::alive(pid, start)
        {
            tracing::warn!(id = %rec.id, shim = pid, "the shim did not report the exit after SIGKILL: killing it");
            let _ = rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL);
        }
        self.wait_until(&rec.id, Duration::from_secs(10), not_running)
            .await
    }

    /// Signals the recorded init of a running container if it is still the child of the
    /// container's live shim (pid and start time recorded); false if it is not there.
    fn signal_recorded_init(&self, rec: &Record, signal: i32) -> bool {
        let st = &rec.state;
        if st.pid <= 0 || !record::alive(st.shim_pid, st.shim_start_time) {
            return false;
        }
        let Some(pid) = rustix::process::Pid::from_raw(st.pid) else {
            return false;
        };
        let Ok(pidfd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        else {
            return false;
        };
        // checked after the pidfd is held: the pid cannot be recycled under it
        if record::parent_pid(st.pid) != Some(st.shim_pid) {
            return false;
        }
        let Some(sig) = rustix::process::Signal::from_named_raw(signal) else {
            return false;
        };
        self.before_signal(rec, signal);
        rustix::process::pidfd_send_signal(&pidfd, sig).is_ok()
    }

    async fn wait_until(
        &self,
        id: &str,
        timeout: Duration,
        mut done: impl FnMut(Option<&Record>) -> bool,
    ) -> bool {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let inner = lock(&self.inner);
                if done(inner.map.get(id)) {
                    return true;
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    let inner = lock(&self.inner);
                    return done(inner.map.get(id));
                }
            }
        }
    }

    /// `stop`: SIGTERM, then SIGKILL after `timeout`. `Ok(false)` when not running (304).
    pub async fn stop(&self, name: &str, timeout: Duration) -> Result<bool, ContainerError> {
        self.stop_with(name, timeout, None).await
    }

    /// `stop` with an explicit signal (`stop -s`); `None`: the container's stop signal.
    pub async fn stop_with(
        &self,
        name: &str,
        timeout: Duration,
        signal: Option<i32>,
    ) -> Result<bool, ContainerError> {
        let rec = self.get(name)?;
        // a stop cancels policy restarts, also one waiting out its backoff
        self.mark_manually_stopped(&rec.id);
        if rec.state.status != Status::Running {
            return Ok(false);
        }
        let not_running = |r: Option<&Record>| r.is_none_or(|r| r.state.status != Status::Running);
        match self.kill(&rec.id, signal.unwrap_or_else(|| self.stop_signal(&rec))) {
            Ok(()) | Err(ContainerError::NotRunning(_)) => {}
            Err(e) => return Err(e),
        }
        if !self.wait_until(&rec.id, timeout, not_running).await {
            match self.kill(&rec.id, 9) {
                Ok(()) | Err(ContainerError::NotRunning(_)) => {}
                Err(e) => return Err(e),
            }
            if !self.wait_killed(&rec).await {
                return Err(ContainerError::Shim {
                    id: rec.id,
                    why: "the container did not exit after SIGKILL".into(),
                });
            }
        }
        self.publish(&rec, "stop", &[]);
        Ok(true)
    }

    /// `rm`: 409 when running without force; with force, SIGKILL and wait first.
    pub async fn remove(&self, name: &str, force: bool) -> Result<(), ContainerError> {
        let rec = self.get(name)?;
        if rec.state.status == Status::Running {
            if !force {
                return Err(ContainerError::Running(rec.name));
            }
            match self.kill(&rec.id, 9) {
                Ok(()) | Err(ContainerError::NotRunning(_)) => {}
                Err(e) => return Err(e),
            }
            if !self.wait_killed(&rec).await {
                return Err(ContainerError::Shim {
                    id: rec.id,
                    why: "the container did not exit after SIGKILL".into(),
                });
            }
        }
        self.remove_now(&rec.id)
    }

    /// `wait`.
    pub async fn wait(
        &self,
        name: &str,
        cond: WaitCondition,
    ) -> Result<WaitResult, ContainerError> {
        let rec = self.get(name)?;
        let id = rec.id.clone();
        let exits = rec.state.exits;
        let mut rx = self.changed.subscribe();
        loop {
            {
                let inner = lock(&self.inner);
                match inner.map.get(&id) {
                    None => {
                        return Ok(WaitResult {
                            status_code: inner.gone.get(&id).copied().unwrap_or(0),
                            error: None,
                        });
                    }
                    Some(r) => {
                        let ready = match cond {
                            WaitCondition::NotRunning => r.state.status != Status::Running,
                            WaitCondition::NextExit => r.state.exits > exits,
                            WaitCondition::Removed => false,
                        };
                        if ready {
                            return Ok(WaitResult {
                                status_code: r.state.exit_code,
                                error: (!r.state.error.is_empty()).then(|| r.state.error.clone()),
                            });
                        }
                    }
                }
            }
            if rx.changed().await.is_err() {
                return Err(ContainerError::Shim {
                    id,
                    why: "the engine is shutting down".into(),
                });
            }
        }
    }

    /// The path of a container's json-file log.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(format!("{id}-json.log"))
    }

    /// A receiver that changes whenever any container's state does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// The container operations, as the API calls them.
impl Engine {
    fn containers_arc(&self) -> Arc<Containers> {
        self.containers.clone()
    }

    /// `POST /containers/create`.
    pub async fn create_container(
        &self,
        spec: ContainerSpec,
    ) -> Result<(String, Vec<String>), EngineError> {
        let c = self.containers_arc();
        tokio::task::spawn_blocking(move || c.create(spec))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?
    }

    /// `POST /containers/{id}/start`: `false` when already running.
    pub async fn start_container(&self, name: &str) -> Result<bool, EngineError> {
        let c = self.containers_arc();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || c.start_by_user(&name))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?
    }

    /// `POST /containers/{id}/wait`.
    pub async fn wait_container(
        &self,
        name: &str,
        cond: WaitCondition,
    ) -> Result<WaitResult, EngineError> {
        Ok(self.containers.wait(name, cond).await?)
    }

    /// `POST /containers/{id}/kill`.
    pub async fn kill_container(&self, name: &str, signal: i32) -> Result<(), EngineError> {
        Ok(self.containers.kill(name, signal)?)
    }

    /// `POST /containers/{id}/stop?t=`: `false` when not running.
    pub async fn stop_container(&self, name: &str, timeout: Duration) -> Result<bool, EngineError> {
        Ok(self.containers.stop(name, timeout).await?)
    }

    /// `DELETE /containers/{id}?force=`.
    pub async fn remove_container(&self, name: &str, force: bool) -> Result<(), EngineError> {
        Ok(self.containers.remove(name, force).await?)
    }

    /// `GET /containers/{id}/json`.
    pub async fn inspect_container(&self, name: &str) -> Result<serde_json::Value, EngineError> {
        let r = self.containers.get(name)?;
        let mut v = view::inspect(&r, &self.containers.dir(&r.id));
        self.containers.net_patch_inspect(&r, &mut v);
        self.containers.image_patch_inspect(&r, &mut v);
        Ok(v)
    }

    /// `GET /containers/json?all=&filters=&limit=&size=`: the JSON array, newest first,
    /// from memory (only `size` reads the disk, outside the store's lock).
    pub async fn list_containers(
        &self,
        all: bool,
        filters: std::collections::BTreeMap<String, Vec<String>>,
        limit: Option<usize>,
        size: bool,
    ) -> Result<Vec<u8>, EngineError> {
        let f = view::ListFilter::new(filters)?;
        let limit = limit.filter(|n| *n > 0);
        // as moby: a status filter or a limit (`ps -n`, `-l`) lists stopped ones too
        let all = all || f.has_status() || limit.is_some();
        // as Docker: a container waiting for its policy restart is listed too
        let keep = |r: &Record| {
            (all || r.state.status == Status::Running || r.state.restarting) && f.matches(r)
        };
        let sizes = if size {
            let c = self.containers.clone();
            let ids = c.list_ids(keep, limit);
            Some(
                tokio::task::spawn_blocking(move || {
                    ids.into_iter()
                        .filter_map(|id| {
                            let r = c.get(&id).ok()?;
                            Some((id, c.sizes(&r)))
                        })
                        .collect::<HashMap<_, _>>()
                })
                .await
                .map_err(|e| EngineError::Task(e.to_string()))?,
            )
        } else {
            None
        };
        Ok(self.containers.summaries_json(keep, limit, sizes.as_ref()))
    }

    /// `GET /containers/{id}/logs`: the stream and whether the container has a tty
    /// (raw stream) or not (multiplexed).
    pub async fn container_logs(
        &self,
        name: &str,
        opts: logs::LogOptions,
    ) -> Result<(crate::io::ByteStream, bool), EngineError> {
        if !opts.stdout && !opts.stderr {
            return Err(EngineError::InvalidParameter(
                "Bad parameters: you must choose at least one stream".into(),
            ));
        }
        let r = self.containers.get(name)?;
        if r.spec.run.log_driver() == "none" {
            // Docker's answer (501) for a driver it cannot read back
            return Err(EngineError::NotSupported(
                "configured logging driver does not support reading".into(),
            ));
        }
        let tty = r.spec.tty;
        Ok((logs::stream(self.containers.clone(), &r, opts), tty))
    }

    /// The container store.
    pub fn containers(&self) -> &Arc<Containers> {
        &self.containers
    }
}
