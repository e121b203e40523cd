//! A container's mounts, resolved once at create: binds (a missing `-v` source is
//! created, a missing `--mount` source refused), named and anonymous volumes (created
//! on demand, the image's content copied into an empty one unless `nocopy`), the
//! image's `VOLUME`s as anonymous volumes, `--volumes-from`, tmpfs. The result is
//! recorded in the container's [`Record`] (`mounts`), appended to its OCI spec, and
//! released (anonymous volumes removed with `rm -v`/`--rm`) when it goes.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use berth_types::mounts::{
    MountKind, MountPoint, MountSpec, clean_path, parse_volumes_from, tmpfs_size_option,
};
use berth_types::spec::ContainerSpec;
use serde_json::{Value, json};

use super::{Containers, Inner, Record};
use crate::{Engine, EngineError};

fn bad(msg: String) -> EngineError {
    EngineError::InvalidParameter(msg)
}

impl Containers {
    /// Resolves the mounts of container `id` (rootfs mounted at `rootfs`), creating
    /// volumes as needed. On failure every volume acquired here is released and the
    /// anonymous ones made here are removed again.
    pub(super) fn resolve_mounts(
        &self,
        id: &str,
        spec: &ContainerSpec,
        image_config: &Value,
        rootfs: &Path,
        inner: &Inner,
    ) -> Result<Vec<MountPoint>, EngineError> {
        let vols = self.vols()?;
        let mut acquired: Vec<(String, bool)> = Vec::new();
        let r = self.resolve_mounts_inner(id, spec, image_config, rootfs, inner, &mut acquired);
        if r.is_err() {
            for (name, created) in acquired {
                vols.release(&name, id);
                if created {
                    let _ = vols.remove(&name, false);
                }
            }
        }
        r
    }

    fn resolve_mounts_inner(
        &self,
        id: &str,
        spec: &ContainerSpec,
        image_config: &Value,
        rootfs: &Path,
        inner: &Inner,
        acquired: &mut Vec<(String, bool)>,
    ) -> Result<Vec<MountPoint>, EngineError> {
        let vols = self.vols()?;
        let mut specs = spec.storage.mount_specs().map_err(|e| bad(e.to_string()))?;
        let mut dests: BTreeSet<String> = specs.iter().map(MountSpec::destination).collect();
        dests.extend(spec.storage.tmpfs.keys().map(|d| clean_path(d)));
        let mut out: Vec<MountPoint> = Vec::new();
        // --volumes-from: the other container's mounts, minus the destinations given here
        for from in &spec.storage.volumes_from {
            let (name, mode) = parse_volumes_from(from).map_err(|e| bad(e.to_string()))?;
            let src_id = Self::resolve_in(inner, &name)?;
            let rw_mode = !mode.split(',').any(|o| o == "ro");
            for m in &inner.map[&src_id].mounts {
                if !dests.insert(m.destination.clone()) {
                    continue;
                }
                let mut m = m.clone();
                m.rw = m.rw && rw_mode;
                m.anonymous = false;
                if m.kind == MountKind::Volume {
                    let none = BTreeMap::new();
                    vols.acquire(&m.name, id, false, &none, &none, "")?;
                    acquired.push((m.name.clone(), false));
                }
                out.push(m);
            }
        }
        // the image's VOLUMEs become anonymous volumes
        if let Some(vols) = image_config
            .get("config")
            .and_then(|c| c.get("Volumes"))
            .and_then(Value::as_object)
        {
            for dst in vols.keys() {
                if dests.insert(clean_path(dst)) {
                    specs.push(MountSpec {
                        kind: MountKind::Volume,
                        target: dst.clone(),
                        origin: berth_types::mounts::MountOrigin::Config,
                        ..Default::default()
                    });
                }
            }
        }
        for s in &specs {
            let destination = s.destination();
            let mp = match s.kind {
                MountKind::Bind => {
                    let src = Path::new(&s.source);
                    if !src.exists() {
                        if s.origin == berth_types::mounts::MountOrigin::Mount {
                            return Err(bad(format!(
                                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                                s.source
                            )));
                        }
                        // `-v /missing:/x` creates the host directory, as Docker does
                        std::fs::create_dir_all(src).map_err(|source| EngineError::Io {
                            op: "create bind source",
                            path: s.source.clone(),
                            source,
                        })?;
                    }
                    MountPoint {
                        kind: MountKind::Bind,
                        source: s.source.clone(),
                        destination,
                        mode: s.mode.clone(),
                        rw: !s.read_only,
                        propagation: if s.propagation.is_empty() {
                            "rprivate".into()
                        } else {
                            s.propagation.clone()
                        },
                        ..Default::default()
                    }
                }
                MountKind::Volume => {
                    let anonymous = s.source.is_empty();
                    let (vol, created) = vols.acquire(
                        &s.source,
                        id,
                        anonymous,
                        &s.volume_labels,
                        &s.volume_options,
                        &s.driver,
                    )?;
                    acquired.push((vol.name.clone(), created && anonymous));
                    let data = vols.data_path(&vol.name);
                    if !s.nocopy {
                        copy_up(rootfs, &destination, &data)?;
                    }
                    MountPoint {
                        kind: MountKind::Volume,
                        name: vol.name.clone(),
                        source: data.display().to_string(),
                        destination,
                        driver: vol.driver.clone(),
                        // Docker shows "z" for named volumes, "" for `-v /path` and
                        // image volumes
                        mode: if s.mode.is_empty() {
                            if s.origin == berth_types::mounts::MountOrigin::Config {
                                String::new()
                            } else {
                                "z".into()
                            }
                        } else {
                            s.mode.clone()
                        },
                        rw: !s.read_only,
                        anonymous,
                        ..Default::default()
                    }
                }
                MountKind::Tmpfs => {
                    let mut opts = Vec::new();
                    if s.tmpfs_size > 0 {
                        opts.push(tmpfs_size_option(s.tmpfs_size));
                    }
                    if s.tmpfs_mode > 0 {
                        opts.push(format!("mode={:o}", s.tmpfs_mode));
                    }
                    MountPoint {
                        kind: MountKind::Tmpfs,
                        destination,
                        rw: !s.read_only,
                        tmpfs_options: opts.join(","),
                        ..Default::default()
                    }
                }
            };
            out.push(mp);
        }
        Ok(out)
    }

    /// The container's volumes are no longer used by it; with `remove_anonymous`, its
    /// anonymous volumes are removed too (unless another container still uses them).
    pub(super) fn release_mounts(&self, rec: &Record, remove_anonymous: bool) {
        // before the engine hands over the store (reconcile at open), there is nothing to
        // release: the store rebuilds its users from the records left afterwards
        let Some(vols) = self.volumes.get() else {
            // reconcile at open (auto-removed containers whose shim died): leave the
            // anonymous volumes to remove in a note the volume store reads when it opens
            if remove_anonymous {
                let names: Vec<&str> = rec
                    .mounts
                    .iter()
                    .filter(|m| m.anonymous)
                    .map(|m| m.name.as_str())
                    .collect();
                if let Some(data_root) = self.root.parent() {
                    crate::volumes::note_pending_removal(&data_root.join("volumes"), &names);
                }
            }
            return;
        };
        for m in rec.mounts.iter().filter(|m| m.kind == MountKind::Volume) {
            vols.release(&m.name, &rec.id);
            if remove_anonymous
                && m.anonymous
                && let Err(e) = vols.remove(&m.name, true)
            {
                tracing::debug!(volume = %m.name, error = %e, "anonymous volume kept");
            }
        }
    }

    /// A create failed after its mounts were resolved: container `id` uses no volume
    /// any more, and the anonymous volumes nobody else uses are removed.
    pub(super) fn abort_mounts(&self, id: &str) {
        let Some(vols) = self.volumes.get() else {
            return;
        };
        for name in vols.release_all(id) {
            if vols.get(&name).is_ok_and(|v| v.anonymous()) {
                let _ = vols.remove(&name, true);
            }
        }
    }

    /// Publishes `volume mount`/`unmount` events for the container's volumes.
    pub(super) fn mount_events(&self, rec: &Record, action: &str) {
        let Some(vols) = self.volumes.get() else {
            return;
        };
        for m in rec.mounts.iter().filter(|m| m.kind == MountKind::Volume) {
            vols.mount_event(action, m, &rec.id);
        }
    }

    /// Hands the volume store to the containers (once, when the engine opens).
    pub fn set_volumes(&self, v: std::sync::Arc<crate::volumes::Volumes>) {
        let _ = self.volumes.set(v);
    }

    fn vols(&self) -> Result<&std::sync::Arc<crate::volumes::Volumes>, EngineError> {
        self.volumes
            .get()
            .ok_or_else(|| EngineError::Task("the volume store is not open yet".into()))
    }
}

/// Appends the container's mounts to its OCI spec: binds and volumes as `rbind` with
/// their propagation, tmpfs with Docker's `nosuid,nodev,noexec` defaults; parents
/// before children (sorted by depth, as moby does).
pub fn add_oci_mounts(spec: &mut Value, mounts: &[MountPoint], tmpfs: &BTreeMap<String, String>) {
    let mut entries: Vec<(usize, Value)> = Vec::new();
    let depth = |d: &str| d.split('/').filter(|c| !c.is_empty()).count();
    for m in mounts {
        let v = match m.kind {
            MountKind::Bind | MountKind::Volume => {
                let prop = if m.propagation.is_empty() {
                    "rprivate"
                } else {
                    m.propagation.as_str()
                };
                json!({
                    "destination": m.destination,
                    "type": "bind",
                    "source": m.source,
                    "options": ["rbind", if m.rw { "rw" } else { "ro" }, prop],
                })
            }
            MountKind::Tmpfs => {
                let mut opts = vec!["nosuid".to_owned(), "nodev".into(), "noexec".into()];
                if !m.rw {
                    opts.push("ro".into());
                }
                opts.extend(
                    m.tmpfs_options
                        .split(',')
                        .filter(|o| !o.is_empty())
                        .map(str::to_owned),
                );
                json!({"destination": m.destination, "type": "tmpfs", "source": "tmpfs", "options": opts})
            }
        };
        entries.push((depth(&m.destination), v));
    }
    for (dst, o) in tmpfs {
        let mut opts = vec!["nosuid".to_owned(), "nodev".into(), "noexec".into()];
        opts.extend(o.split(',').filter(|o| !o.is_empty()).map(str::to_owned));
        entries.push((
            depth(dst),
            json!({"destination": clean_path(dst), "type": "tmpfs", "source": "tmpfs", "options": opts}),
        ));
    }
    entries.sort_by_key(|(d, _)| *d);
    if let Some(list) = spec.get_mut("mounts").and_then(Value::as_array_mut) {
        list.extend(entries.into_iter().map(|(_, v)| v));
    }
}

/// Copies the image's content at `dst` (inside `rootfs`, resolved without leaving it)
/// into the volume directory `data` when that is empty, ownership and modes kept
/// (Docker's copy-up on the first mount of an empty volume).
fn copy_up(rootfs: &Path, dst: &str, data: &Path) -> Result<(), EngineError> {
    let io = |op: &'static str, p: &Path| {
        let path = p.display().to_string();
        move |source| EngineError::Io { op, path, source }
    };
    if std::fs::read_dir(data)
        .map_err(io("read", data))?
        .next()
        .is_some()
    {
        return Ok(());
    }
    let Some(src) = super::archive::open_in_root(rootfs, dst).ok() else {
        return Ok(());
    };
    let src_path = std::path::PathBuf::from(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd as _;
        src.as_raw_fd()
    }));
    let Ok(md) = std::fs::metadata(&src_path) else {
        return Ok(());
    };
    if !md.is_dir() {
        return Ok(());
    }
    copy_tree(&src_path, data).map_err(io("copy image content into", data))?;
    // the volume's root takes the directory's owner and mode
    std::os::unix::fs::lchown(data, Some(md.uid()), Some(md.gid())).map_err(io("chown", data))?;
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(md.mode() & 0o7777))
        .map_err(io("chmod", data))?;
    Ok(())
}

/// Copies the entries of directory `src` into `dst` without following symlinks.
fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let from = e.path();
        let to = dst.join(e.file_name());
        let md = std::fs::symlink_metadata(&from)?;
        let ft = md.file_type();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if ft.is_dir() {
            std::fs::create_dir(&to)?;
            copy_tree(&from, &to)?;
        } else if ft.is_file() {
            std::fs::copy(&from, &to)?;
        } else {
            // devices, fifos, sockets are not copied (Docker copies them; images rarely
            // carry them under a VOLUME)
            continue;
        }
        std::os::unix::fs::lchown(&to, Some(md.uid()), Some(md.gid()))?;
        if !ft.is_symlink() {
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(md.mode() & 0o7777))?;
        }
    }
    Ok(())
}

/// Docker's `Mounts` (inspect and `ps` summaries).
pub(crate) fn mounts_json(r: &Record) -> Value {
    let list: Vec<Value> = r
        .mounts
        .iter()
        .map(|m| {
            let mut v = json!({
                "Type": m.kind.as_str(),
                "Source": m.source,
                "Destination": m.destination,
                "Mode": m.mode,
                "RW": m.rw,
                "Propagation": m.propagation,
            });
            if m.kind == MountKind::Volume {
                v["Name"] = json!(m.name);
                v["Driver"] = json!(m.driver);
            }
            v
        })
        .collect();
    json!(list)
}

/// The storage fields of inspect's `HostConfig`: `Binds`, `Mounts`, `Tmpfs`,
/// `VolumesFrom`, as they were given (null when not).
pub(crate) fn host_config_json(r: &Record) -> [(&'static str, Value); 4] {
    let s = &r.spec.storage;
    let or_null = |empty: bool, v: Value| if empty { Value::Null } else { v };
    let mounts: Vec<Value> = s
        .mounts
        .iter()
        .map(|m| {
            let mut v = json!({
                "Type": m.kind.as_str(),
                "Source": m.source,
                "Target": m.target,
                "ReadOnly": m.read_only,
            });
            match m.kind {
                MountKind::Bind if !m.propagation.is_empty() => {
                    v["BindOptions"] = json!({"Propagation": m.propagation});
                }
                MountKind::Volume if m.nocopy => {
                    v["VolumeOptions"] = json!({"NoCopy": true});
                }
                MountKind::Tmpfs => {
                    v["TmpfsOptions"] = json!({"SizeBytes": m.tmpfs_size, "Mode": m.tmpfs_mode});
                }
                _ => {}
            }
            v
        })
        .collect();
    [
        ("Binds", or_null(s.binds.is_empty(), json!(s.binds))),
        ("Mounts", or_null(mounts.is_empty(), json!(mounts))),
        ("Tmpfs", or_null(s.tmpfs.is_empty(), json!(s.tmpfs))),
        (
            "VolumesFrom",
            or_null(s.volumes_from.is_empty(), json!(s.volumes_from)),
        ),
    ]
}

/// inspect's `Config.Volumes`: the anonymous-volume destinations asked for plus the
/// image's (`{"/data": {}}`), null when none.
pub(crate) fn config_volumes_json(r: &Record) -> Value {
    let m: BTreeMap<String, Value> = r
        .mounts
        .iter()
        .filter(|m| m.anonymous)
        .map(|m| (m.destination.clone(), json!({})))
        .collect();
    if m.is_empty() { Value::Null } else { json!(m) }
}

/// The container operations volumes add.
impl Engine {
    /// `DELETE /containers/{id}?force=&v=`: removes the container, then with `v` its
    /// anonymous volumes (named ones stay, as Docker does).
    pub async fn remove_container_with_volumes(
        &self,
        name: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), EngineError> {
        let rec = self.containers.get(name)?;
        self.containers.remove(name, force).await?;
        if volumes {
            for m in rec.mounts.iter().filter(|m| m.anonymous) {
                if let Err(e) = self.volumes.remove(&m.name, true) {
                    tracing::debug!(volume = %m.name, error = %e, "anonymous volume kept");
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_mounts_are_sorted_and_carry_docker_options() {
        let mut spec = json!({"mounts": [{"destination": "/proc"}]});
        let mounts = vec![
            MountPoint {
                kind: MountKind::Bind,
                source: "/h/sub".into(),
                destination: "/data/sub".into(),
                rw: false,
                propagation: "rslave".into(),
                ..Default::default()
            },
            MountPoint {
                kind: MountKind::Volume,
                name: "v".into(),
                source: "/vols/v/_data".into(),
                destination: "/data".into(),
                rw: true,
                ..Default::default()
            },
        ];
        let tmpfs = [("/run".to_owned(), "size=1m,exec".to_owned())].into();
        add_oci_mounts(&mut spec, &mounts, &tmpfs);
        let m = spec["mounts"].as_array().unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[1]["destination"], "/data");
        assert_eq!(m[1]["options"], json!(["rbind", "rw", "rprivate"]));
        assert_eq!(m[2]["destination"], "/run");
        assert_eq!(
            m[2]["options"],
            json!(["nosuid", "nodev", "noexec", "size=1m", "exec"])
        );
        assert_eq!(m[3]["options"], json!(["rbind", "ro", "rslave"]));
    }

    #[test]
    fn copy_up_fills_only_an_empty_volume() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("srv/www/sub")).unwrap();
        std::fs::write(root.path().join("srv/www/index.html"), b"hi").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.path().join("srv/www/link")).unwrap();
        let vol = tempfile::tempdir().unwrap();
        copy_up(root.path(), "/srv/www", vol.path()).unwrap();
        assert_eq!(std::fs::read(vol.path().join("index.html")).unwrap(), b"hi");
        assert!(vol.path().join("sub").is_dir());
        assert_eq!(
            std::fs::read_link(vol.path().join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        std::fs::write(root.path().join("srv/www/new"), b"x").unwrap();
        copy_up(root.path(), "/srv/www", vol.path()).unwrap();
        assert!(!vol.path().join("new").exists());
        // a path that is missing in the image copies nothing
        let empty = tempfile::tempdir().unwrap();
        copy_up(root.path(), "/nope", empty.path()).unwrap();
        assert!(std::fs::read_dir(empty.path()).unwrap().next().is_none());
    }
}
