//! Volumes: the store under `<data-root>/volumes/<name>/` (`_data` plus a versioned
//! `volume.json`), the `local` driver (plain directories, or `-o type=… device=… o=…`
//! mounted on `_data` while a container uses the volume), and who uses each volume.
//!
//! A volume is published atomically: it is made in `.tmp-<random>/` and renamed to its
//! name, so a crash never leaves a half volume under a real name (leftover `.tmp-*`
//! directories are removed when the store opens). Users ("in use by") are rebuilt from
//! the container records at open, never persisted on their own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use berth_types::mounts::{MountKind, MountPoint, valid_volume_name, volume_name_error};
use rustix::mount::{MountFlags, UnmountFlags};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::events::{Event, EventBus};
use crate::{Engine, EngineError};

/// The store format version of volume.json.
pub const VOLUME_VERSION: u32 = 1;

/// The label Docker (≥ 23) puts on anonymous volumes; `volume prune` without `all`
/// only removes volumes that carry it.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// The local driver's options.
const LOCAL_OPTIONS: [&str; 4] = ["type", "device", "o", "size"];

/// Everything volume operations fail with (moby's messages).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// No volume by that name.
    #[error("get {0}: no such volume")]
    NotFound(String),
    /// Removal of a volume containers use.
    #[error("remove {name}: volume is in use - [{}]", .ids.join(", "))]
    InUse {
        /// The volume.
        name: String,
        /// The containers using it.
        ids: Vec<String>,
    },
    /// A name the local driver refuses.
    #[error("create {name}: {}", volume_name_error(.name))]
    Name {
        /// The name given.
        name: String,
    },
    /// A driver other than `local`.
    #[error("error looking up volume plugin {0}: plugin \"{0}\" not found")]
    Driver(String),
    /// An option the local driver does not know.
    #[error("create {name}: invalid option: \"{key}\"")]
    Option {
        /// The volume.
        name: String,
        /// The option.
        key: String,
    },
    /// Mounting the driver's filesystem failed.
    #[error("error while mounting volume '{path}': {source}")]
    Mount {
        /// `_data`.
        path: String,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// A file operation failed.
    #[error("failed to {op} {path}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// On what.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

impl VolumeError {
    /// The class of this error.
    pub fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind as K;
        match self {
            VolumeError::NotFound(_) | VolumeError::Driver(_) => K::NotFound,
            VolumeError::InUse { .. } => K::Conflict,
            VolumeError::Name { .. } | VolumeError::Option { .. } => K::InvalidParameter,
            _ => K::Internal,
        }
    }

    fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError {
        let path = path.display().to_string();
        move |source| VolumeError::Io { op, path, source }
    }
}

/// One volume, as `volume.json` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Store format version.
    pub version: u32,
    /// The name (64 hex for anonymous volumes).
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Driver options (`type`, `device`, `o`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// RFC 3339.
    pub created_at: String,
}

impl Volume {
    /// Whether it was made for one container's anonymous mount.
    pub fn anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }

    /// Whether the local driver mounts something on `_data`.
    pub fn needs_mount(&self) -> bool {
        self.options.contains_key("type") || self.options.contains_key("device")
    }
}

/// What `volume create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Empty: a random 64-hex name.
    pub name: String,
    /// Empty or `local`.
    pub driver: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Driver options.
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Inner {
    vols: BTreeMap<String, Volume>,
    users: BTreeMap<String, BTreeSet<String>>,
}

/// The volume store.
#[derive(Debug)]
pub struct Volumes {
    root: PathBuf,
    events: Arc<EventBus>,
    inner: Mutex<Inner>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn random_hex() -> String {
    let mut raw = [0u8; 32];
    if getrandom::fill(&mut raw).is_err() {
        // the clock is a poor but sufficient fallback for a name
        let t = crate::events::now_nanos().to_le_bytes();
        raw[..8].copy_from_slice(&t);
    }
    hex::encode(raw)
}

impl Volumes {
    /// Opens the store under `root`, removes unpublished leftovers, and rebuilds who uses
    /// which volume from the container records under `containers_root`
    /// (`<id>/config.json`, field `mounts`). Volumes with driver options are mounted
    /// when in use and unmounted when not.
    pub fn open(
        root: PathBuf,
        containers_root: &Path,
        events: Arc<EventBus>,
    ) -> Result<Arc<Volumes>, VolumeError> {
        std::fs::create_dir_all(&root).map_err(VolumeError::io("create", &root))?;
        let mut inner = Inner::default();
        let rd = std::fs::read_dir(&root).map_err(VolumeError::io("list", &root))?;
        for e in rd.flatten() {
            let dir = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name == PENDING {
                continue;
            }
            let meta = std::fs::read(dir.join("volume.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<Volume>(&b).ok());
            match meta {
                Some(v) if !name.starts_with('.') => {
                    inner.vols.insert(name, v);
                }
                _ => {
                    // never published (or its metadata is gone): nothing refers to it
                    let _ = unmount_data(&dir.join("_data"));
                    let _ = std::fs::remove_dir_all(&dir);
                }
            }
        }
        for (id, names) in users_from_records(containers_root) {
            for n in names {
                if inner.vols.contains_key(&n) {
                    inner.users.entry(n).or_default().insert(id.clone());
                }
            }
        }
        let pending = root.join(PENDING);
        let pending_names = std::fs::read_to_string(&pending).unwrap_or_default();
        let v = Arc::new(Volumes {
            root,
            events,
            inner: Mutex::new(inner),
        });
        for name in pending_names.lines().filter(|n| !n.is_empty()) {
            let anonymous = v.get(name).is_ok_and(|vol| vol.anonymous());
            if anonymous && let Err(e) = v.remove(name, true) {
                tracing::debug!(volume = %name, error = %e, "anonymous volume kept");
            }
        }
        let _ = std::fs::remove_file(&pending);
        let inner = lock(&v.inner);
        for (name, vol) in &inner.vols {
            if !vol.needs_mount() {
                continue;
            }
            let data = v.data_path(name);
            let used = inner.users.get(name).is_some_and(|u| !u.is_empty());
            if used && !crate::containers::rootfs::is_mounted(&data) {
                if let Err(e) = mount_local(vol, &data) {
                    tracing::warn!(volume = %name, error = %e, "cannot remount volume");
                }
            } else if !used {
                let _ = unmount_data(&data);
            }
        }
        drop(inner);
        Ok(v)
    }

    /// `<root>/<name>/_data`.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    fn publish(&self, action: &str, name: &str, attrs: &[(&str, &str)]) {
        let mut e = Event::new("volume", action, name).attr("driver", "local");
        for (k, v) in attrs {
            e = e.attr(k, v);
        }
        self.events.publish(e);
    }

    /// Publishes a `mount`/`unmount` event for a container's volume.
    pub fn mount_event(&self, action: &str, m: &MountPoint, container: &str) {
        let rw = if m.rw { "true" } else { "false" };
        let mut attrs = vec![("container", container)];
        if action == "mount" {
            attrs.push(("destination", &m.destination));
            attrs.push(("propagation", &m.propagation));
            attrs.push(("read/write", rw));
        }
        self.publish(action, &m.name, &attrs);
    }

    /// Creates a volume, or returns the existing one of that name (as Docker does).
    pub fn create(&self, opts: CreateOptions) -> Result<Volume, VolumeError> {
        let mut inner = lock(&self.inner);
        self.create_locked(&mut inner, opts)
    }

    fn create_locked(&self, inner: &mut Inner, opts: CreateOptions) -> Result<Volume, VolumeError> {
        let name = if opts.name.is_empty() {
            random_hex()
        } else {
            opts.name
        };
        if let Some(v) = inner.vols.get(&name) {
            return Ok(v.clone());
        }
        if !valid_volume_name(&name) {
            return Err(VolumeError::Name { name });
        }
        if !opts.driver.is_empty() && opts.driver != "local" {
            return Err(VolumeError::Driver(opts.driver));
        }
        if let Some(k) = opts
            .options
            .keys()
            .find(|k| !LOCAL_OPTIONS.contains(&k.as_str()))
        {
            return Err(VolumeError::Option {
                name,
                key: k.clone(),
            });
        }
        let vol = Volume {
            version: VOLUME_VERSION,
            name: name.clone(),
            driver: "local".into(),
            labels: opts.labels,
            options: opts.options,
            created_at: jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .map_or_else(|_| jiff::Timestamp::now().to_string(), |t| t.to_string()),
        };
        let tmp = self.root.join(format!(".tmp-{}", random_hex()));
        let made = (|| -> Result<(), VolumeError> {
            let data = tmp.join("_data");
            std::fs::create_dir_all(&data).map_err(VolumeError::io("create", &data))?;
            let meta = tmp.join("volume.json");
            let bytes = serde_json::to_vec_pretty(&vol).map_err(|e| VolumeError::Io {
                op: "encode",
                path: meta.display().to_string(),
                source: std::io::Error::other(e),
            })?;
            crate::containers::record::write_atomic(&tmp.join(".volume.json.tmp"), &meta, &bytes)
                .map_err(|e| VolumeError::Io {
                op: "write",
                path: meta.display().to_string(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let dst = self.root.join(&name);
            std::fs::rename(&tmp, &dst).map_err(VolumeError::io("publish", &dst))
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        inner.vols.insert(name.clone(), vol.clone());
        self.publish("create", &name, &[]);
        Ok(vol)
    }

    /// One volume.
    pub fn get(&self, name: &str) -> Result<Volume, VolumeError> {
        lock(&self.inner)
            .vols
            .get(name)
            .cloned()
            .ok_or_else(|| VolumeError::NotFound(name.to_owned()))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<Volume> {
        lock(&self.inner).vols.values().cloned().collect()
    }

    /// The containers using `name`.
    pub fn users(&self, name: &str) -> Vec<String> {
        lock(&self.inner)
            .users
            .get(name)
            .map(|u| u.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Container `id` starts using volume `name`, which is created (labelled anonymous
    /// when `anonymous`) if missing. Returns the volume and whether it was created now.
    /// The driver's filesystem is mounted for its first user.
    pub fn acquire(
        &self,
        name: &str,
        id: &str,
        anonymous: bool,
        labels: &BTreeMap<String, String>,
        options: &BTreeMap<String, String>,
        driver: &str,
    ) -> Result<(Volume, bool), VolumeError> {
        let mut inner = lock(&self.inner);
        let existed = !name.is_empty() && inner.vols.contains_key(name);
        let vol = if existed {
            inner.vols[name].clone()
        } else {
            let mut labels = labels.clone();
            if anonymous {
                labels.insert(ANONYMOUS_LABEL.into(), String::new());
            }
            self.create_locked(
                &mut inner,
                CreateOptions {
                    name: name.to_owned(),
                    driver: driver.to_owned(),
                    labels,
                    options: options.clone(),
                },
            )?
        };
        let users = inner.users.entry(vol.name.clone()).or_default();
        let first = users.is_empty();
        users.insert(id.to_owned());
        if first && vol.needs_mount() {
            let data = self.data_path(&vol.name);
            if let Err(e) = mount_local(&vol, &data) {
                if let Some(u) = inner.users.get_mut(&vol.name) {
                    u.remove(id);
                }
                return Err(e);
            }
        }
        Ok((vol, !existed))
    }

    /// Container `id` stops using `name`; the driver's filesystem is unmounted after its
    /// last user.
    pub fn release(&self, name: &str, id: &str) {
        let mut inner = lock(&self.inner);
        let Some(u) = inner.users.get_mut(name) else {
            return;
        };
        u.remove(id);
        if u.is_empty() {
            inner.users.remove(name);
            if inner.vols.get(name).is_some_and(Volume::needs_mount)
                && let Err(e) = unmount_data(&self.data_path(name))
            {
                tracing::warn!(volume = %name, error = %e, "cannot unmount volume");
            }
        }
    }

    /// Container `id` stops using every volume; returns their names.
    pub fn release_all(&self, id: &str) -> Vec<String> {
        let names: Vec<String> = lock(&self.inner)
            .users
            .iter()
            .filter(|(_, u)| u.contains(id))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &names {
            self.release(n, id);
        }
        names
    }

    /// Removes a volume nobody uses. `force` only ignores a missing volume (a volume in
    /// use is refused even then, as Docker does).
    pub fn remove(&self, name: &str, force: bool) -> Result<(), VolumeError> {
        let mut inner = lock(&self.inner);
        if !inner.vols.contains_key(name) {
            return if force {
                Ok(())
            } else {
                Err(VolumeError::NotFound(name.to_owned()))
            };
        }
        if let Some(u) = inner.users.get(name).filter(|u| !u.is_empty()) {
            return Err(VolumeError::InUse {
                name: name.to_owned(),
                ids: u.iter().cloned().collect(),
            });
        }
        self.destroy_locked(&mut inner, name)
    }

    fn destroy_locked(&self, inner: &mut Inner, name: &str) -> Result<(), VolumeError> {
        let dir = self.root.join(name);
        // never delete through a mount (a bind-form volume's data is the host's)
        unmount_data(&dir.join("_data"))?;
        if crate::containers::rootfs::is_mounted(&dir.join("_data")) {
            return Err(VolumeError::Mount {
                path: dir.join("_data").display().to_string(),
                source: std::io::Error::other("still mounted"),
            });
        }
        // unpublish first (rename away), then delete: a crash in between leaves a
        // `.tmp-*` directory that the next open removes
        let trash = self.root.join(format!(".tmp-{}", random_hex()));
        std::fs::rename(&dir, &trash).map_err(VolumeError::io("remove", &dir))?;
        inner.vols.remove(name);
        inner.users.remove(name);
        if let Err(e) = std::fs::remove_dir_all(&trash) {
            tracing::warn!(volume = %name, error = %e, "remove volume data");
        }
        self.publish("destroy", name, &[]);
        Ok(())
    }

    /// Removes the volumes nobody uses that `keep` does not keep; returns their names
    /// and the bytes freed.
    pub fn prune(&self, mut select: impl FnMut(&Volume) -> bool) -> (Vec<String>, u64) {
        let mut inner = lock(&self.inner);
        let names: Vec<String> = inner
            .vols
            .values()
            .filter(|v| inner.users.get(&v.name).is_none_or(BTreeSet::is_empty))
            .filter(|v| select(v))
            .map(|v| v.name.clone())
            .collect();
        let mut deleted = Vec::new();
        let mut space = 0;
        for n in names {
            let size = dir_size(&self.data_path(&n));
            if self.destroy_locked(&mut inner, &n).is_ok() {
                space += size;
                deleted.push(n);
            }
        }
        (deleted, space)
    }

    /// Docker's JSON for a volume (`volume inspect`, list entries).
    pub fn view(&self, v: &Volume) -> Value {
        let null_if_empty = |m: &BTreeMap<String, String>| {
            if m.is_empty() { Value::Null } else { json!(m) }
        };
        json!({
            "CreatedAt": v.created_at,
            "Driver": v.driver,
            "Labels": null_if_empty(&v.labels),
            "Mountpoint": self.data_path(&v.name),
            "Name": v.name,
            "Options": null_if_empty(&v.options),
            "Scope": "local",
        })
    }
}

/// The note of anonymous volumes whose auto-removed container went while the store was
/// not open yet (read and deleted by [`Volumes::open`]).
const PENDING: &str = ".pending-anonymous-removal";

/// Adds `names` to the note of anonymous volumes to remove when the store opens.
pub fn note_pending_removal(root: &Path, names: &[&str]) {
    use std::io::Write as _;
    if names.is_empty() {
        return;
    }
    let _ = std::fs::create_dir_all(root);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join(PENDING))
    {
        let _ = f.write_all(format!("{}\n", names.join("\n")).as_bytes());
        let _ = f.sync_all();
    }
}

/// (container id, volume names) from every container record under `root`.
fn users_from_records(root: &Path) -> Vec<(String, Vec<String>)> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let bytes = std::fs::read(e.path().join("config.json")).ok()?;
            let v: Value = serde_json::from_slice(&bytes).ok()?;
            let id = v.get("id")?.as_str()?.to_owned();
            let mounts: Vec<MountPoint> =
                serde_json::from_value(v.get("mounts").cloned().unwrap_or(Value::Null))
                    .unwrap_or_default();
            let names = mounts
                .into_iter()
                .filter(|m| m.kind == MountKind::Volume && !m.name.is_empty())
                .map(|m| m.name)
                .collect();
            Some((id, names))
        })
        .collect()
}

/// Bytes under `path` (files only, not following symlinks).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !md.is_dir() {
        return md.len();
    }
    std::fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

/// Mounts the local driver's `type`/`device`/`o` on `data` (as moby's local driver:
/// flag words of `o` become mount flags, the rest is filesystem data).
fn mount_local(v: &Volume, data: &Path) -> Result<(), VolumeError> {
    if crate::containers::rootfs::is_mounted(data) {
        return Ok(());
    }
    let fstype = v.options.get("type").cloned().unwrap_or_default();
    let device = v.options.get("device").cloned().unwrap_or_default();
    let mut flags = MountFlags::empty();
    let mut rest = Vec::new();
    for o in v
        .options
        .get("o")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
        .filter(|o| !o.is_empty())
    {
        match o {
            "ro" => flags |= MountFlags::RDONLY,
            "rw" => {}
            "nosuid" => flags |= MountFlags::NOSUID,
            "nodev" => flags |= MountFlags::NODEV,
            "noexec" => flags |= MountFlags::NOEXEC,
            "noatime" => flags |= MountFlags::NOATIME,
            "bind" => flags |= MountFlags::BIND,
            "rbind" => flags |= MountFlags::BIND | MountFlags::REC,
            other => rest.push(other.to_owned()),
        }
    }
    if let Some(size) = v.options.get("size") {
        rest.push(format!("size={size}"));
    }
    let err = |source: std::io::Error| VolumeError::Mount {
        path: data.display().to_string(),
        source,
    };
    let data_str =
        std::ffi::CString::new(rest.join(",")).map_err(|e| err(std::io::Error::other(e)))?;
    let fstype = if fstype.is_empty() && flags.contains(MountFlags::BIND) {
        "none".to_owned()
    } else {
        fstype
    };
    rustix::mount::mount(
        device.as_str(),
        data,
        fstype.as_str(),
        flags,
        data_str.as_c_str(),
    )
    .map_err(|e| err(e.into()))
}

fn unmount_data(data: &Path) -> Result<(), VolumeError> {
    if !crate::containers::rootfs::is_mounted(data) {
        return Ok(());
    }
    match rustix::mount::unmount(data, UnmountFlags::DETACH) {
        Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(VolumeError::Mount {
            path: data.display().to_string(),
            source: e.into(),
        }),
    }
}

/// `volume ls` / `volume prune` filters.
#[derive(Debug, Default)]
pub struct VolumeFilter {
    dangling: Option<bool>,
    names: Vec<String>,
    drivers: Vec<String>,
    labels: Vec<String>,
    not_labels: Vec<String>,
    all: Option<bool>,
}

fn truthy(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

fn label_matches(v: &Volume, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
        None => v.labels.contains_key(want),
    }
}

impl VolumeFilter {
    /// From the decoded `filters` query.
    pub fn new(map: BTreeMap<String, Vec<String>>) -> Result<VolumeFilter, EngineError> {
        let mut f = VolumeFilter::default();
        for (k, vals) in map {
            for v in vals {
                match k.as_str() {
                    "dangling" => {
                        f.dangling = Some(truthy(&v).ok_or_else(|| {
                            EngineError::InvalidParameter(format!("invalid filter 'dangling={v}'"))
                        })?)
                    }
                    "name" => f.names.push(v),
                    "driver" => f.drivers.push(v),
                    "label" => f.labels.push(v),
                    "label!" => f.not_labels.push(v),
                    "all" => f.all = truthy(&v),
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

    /// Whether `v` (with `in_use`) passes.
    pub fn matches(&self, v: &Volume, in_use: bool) -> bool {
        self.dangling.is_none_or(|d| d != in_use)
            && (self.names.is_empty() || self.names.iter().any(|n| v.name.contains(n.as_str())))
            && (self.drivers.is_empty() || self.drivers.contains(&v.driver))
            && self.labels.iter().all(|l| label_matches(v, l))
            && !self.not_labels.iter().any(|l| label_matches(v, l))
    }
}

/// The volume operations, as the API calls them.
impl Engine {
    /// The volume store.
    pub fn volumes(&self) -> &Arc<Volumes> {
        &self.volumes
    }

    /// `POST /volumes/create`.
    pub async fn create_volume(&self, opts: CreateOptions) -> Result<Value, EngineError> {
        let v = self.volumes.create(opts)?;
        Ok(self.volumes.view(&v))
    }

    /// `GET /volumes/{name}`.
    pub async fn inspect_volume(&self, name: &str) -> Result<Value, EngineError> {
        let v = self.volumes.get(name)?;
        Ok(self.volumes.view(&v))
    }

    /// `GET /volumes?filters=`.
    pub async fn list_volumes(
        &self,
        filters: BTreeMap<String, Vec<String>>,
    ) -> Result<Value, EngineError> {
        let f = VolumeFilter::new(filters)?;
        let vols: Vec<Value> = self
            .volumes
            .list()
            .iter()
            .filter(|v| f.matches(v, !self.volumes.users(&v.name).is_empty()))
            .map(|v| self.volumes.view(v))
            .collect();
        Ok(json!({"Volumes": vols, "Warnings": null}))
    }

    /// `system df`'s volumes: each with `UsageData {Size, RefCount}`.
    pub async fn df_volumes(&self) -> Result<Value, EngineError> {
        let v = self.volumes.clone();
        let list = tokio::task::spawn_blocking(move || {
            v.list()
                .iter()
                .map(|vol| {
                    let mut j = v.view(vol);
                    j["UsageData"] = json!({
                        "Size": dir_size(&v.data_path(&vol.name)),
                        "RefCount": v.users(&vol.name).len(),
                    });
                    j
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))?;
        Ok(json!(list))
    }

    /// `DELETE /volumes/{name}?force=`.
    pub async fn remove_volume(&self, name: &str, force: bool) -> Result<(), EngineError> {
        let v = self.volumes.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || v.remove(&name, force))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))??;
        Ok(())
    }

    /// `POST /volumes/prune?filters=`: anonymous volumes only unless `all=true` (API ≥
    /// 1.42; older API versions prune every unused volume, `all_by_default`).
    pub async fn prune_volumes(
        &self,
        filters: BTreeMap<String, Vec<String>>,
        all_by_default: bool,
    ) -> Result<Value, EngineError> {
        let f = VolumeFilter::new(filters)?;
        let all = f.all.unwrap_or(all_by_default);
        let v = self.volumes.clone();
        let (deleted, space) = tokio::task::spawn_blocking(move || {
            v.prune(|vol| (all || vol.anonymous()) && f.matches(vol, false))
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))?;
        Ok(json!({"VolumesDeleted": deleted, "SpaceReclaimed": space}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Arc<Volumes>) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("containers")).unwrap();
        let v = Volumes::open(
            dir.path().join("volumes"),
            &dir.path().join("containers"),
            Arc::new(EventBus::new()),
        )
        .unwrap();
        (dir, v)
    }

    #[test]
    fn create_is_atomic_idempotent_and_checked() {
        let (dir, v) = store();
        let a = v
            .create(CreateOptions {
                name: "data".into(),
                ..Default::default()
            })
            .unwrap();
        assert!(dir.path().join("volumes/data/_data").is_dir());
        assert!(dir.path().join("volumes/data/volume.json").is_file());
        let again = v
            .create(CreateOptions {
                name: "data".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(a, again);
        let anon = v.create(CreateOptions::default()).unwrap();
        assert_eq!(anon.name.len(), 64);
        let e = v
            .create(CreateOptions {
                name: "b@d".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("create b@d: \"b@d\" includes invalid characters")
        );
        let e = v
            .create(CreateOptions {
                name: "x1".into(),
                options: [("bogus".to_owned(), "1".to_owned())].into(),
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.to_string(), "create x1: invalid option: \"bogus\"");
        let e = v
            .create(CreateOptions {
                name: "x2".into(),
                driver: "nfsplug".into(),
                ..Default::default()
            })
            .unwrap_err();
        assert!(matches!(e, VolumeError::Driver(_)));
        // no half volumes: nothing but the two published ones
        let names: BTreeSet<String> = std::fs::read_dir(dir.path().join("volumes"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, [a.name.clone(), anon.name.clone()].into());
    }

    #[test]
    fn users_block_removal_and_are_rebuilt_from_records() {
        let (dir, v) = store();
        let none = BTreeMap::new();
        v.acquire("db", "c1", false, &none, &none, "").unwrap();
        let e = v.remove("db", true).unwrap_err();
        assert_eq!(e.to_string(), "remove db: volume is in use - [c1]");
        // a record naming the volume rebuilds the user after a restart
        let cdir = dir.path().join("containers/c1");
        std::fs::create_dir(&cdir).unwrap();
        std::fs::write(
            cdir.join("config.json"),
            serde_json::to_vec(&json!({"id": "c1", "mounts": [{"kind": "volume", "name": "db", "destination": "/d"}]})).unwrap(),
        )
        .unwrap();
        // a leftover of an interrupted create
        std::fs::create_dir_all(dir.path().join("volumes/.tmp-x/_data")).unwrap();
        drop(v);
        let v = Volumes::open(
            dir.path().join("volumes"),
            &dir.path().join("containers"),
            Arc::new(EventBus::new()),
        )
        .unwrap();
        assert!(!dir.path().join("volumes/.tmp-x").exists());
        assert_eq!(v.users("db"), vec!["c1".to_string()]);
        v.release("db", "c1");
        v.remove("db", false).unwrap();
        assert!(!dir.path().join("volumes/db").exists());
        assert!(matches!(
            v.remove("db", false),
            Err(VolumeError::NotFound(_))
        ));
        v.remove("db", true).unwrap();
    }

    #[test]
    fn prune_takes_anonymous_unused_volumes_unless_all() {
        let (_dir, v) = store();
        let none = BTreeMap::new();
        let (anon, created) = v.acquire("", "c1", true, &none, &none, "").unwrap();
        assert!(created && anon.anonymous());
        v.release(&anon.name, "c1");
        v.create(CreateOptions {
            name: "keep".into(),
            ..Default::default()
        })
        .unwrap();
        std::fs::write(v.data_path(&anon.name).join("f"), b"12345").unwrap();
        let (gone, space) = v.prune(|x| x.anonymous());
        assert_eq!((gone, space), (vec![anon.name.clone()], 5));
        let (gone, _) = v.prune(|_| true);
        assert_eq!(gone, vec!["keep".to_string()]);
    }

    #[test]
    fn pending_anonymous_removals_happen_at_open() {
        let (dir, v) = store();
        let none = BTreeMap::new();
        let (anon, _) = v.acquire("", "gone", true, &none, &none, "").unwrap();
        v.acquire("named", "gone", false, &none, &none, "").unwrap();
        drop(v);
        note_pending_removal(&dir.path().join("volumes"), &[anon.name.as_str(), "named"]);
        let v = Volumes::open(
            dir.path().join("volumes"),
            &dir.path().join("containers"),
            Arc::new(EventBus::new()),
        )
        .unwrap();
        assert!(v.get(&anon.name).is_err());
        assert!(v.get("named").is_ok());
        assert!(!dir.path().join("volumes").join(PENDING).exists());
    }

    #[test]
    fn filters() {
        let f = VolumeFilter::new(
            [
                ("dangling".to_owned(), vec!["true".to_owned()]),
                ("label".to_owned(), vec!["a=b".to_owned()]),
            ]
            .into(),
        )
        .unwrap();
        let v = Volume {
            version: 1,
            name: "x".into(),
            driver: "local".into(),
            labels: [("a".to_owned(), "b".to_owned())].into(),
            options: BTreeMap::new(),
            created_at: String::new(),
        };
        assert!(f.matches(&v, false));
        assert!(!f.matches(&v, true));
        assert!(VolumeFilter::new([("bogus".to_owned(), vec![])].into()).is_ok());
        assert!(VolumeFilter::new([("bogus".to_owned(), vec!["1".to_owned()])].into()).is_err());
    }
}
