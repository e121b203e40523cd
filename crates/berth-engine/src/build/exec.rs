//! Executing steps: COPY/ADD and WORKDIR write their layer directly into a staging dir
//! (parents copied from the image with their metadata, so a layer changes only what the
//! step changed); RUN runs in a container (`berth-runc run`) on an overlay of the parent's
//! layers, and its upper dir becomes the layer.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_build::cache::SourceEntry;
use berth_build::copy::{Archive, ContextEntry, detect_archive, is_url, plan_copy, resolve_chown};
use berth_build::plan::{CopyOp, Source};
use berth_build::{Op, Step};
use berth_image::LayerRecord;
use berth_image::diff::DiffOptions;
use berth_types::reference::Digest;
use berth_types::spec::{ContainerSpec, NetworkMode};
use serde_json::json;

use super::context::{file_digest, list_tree};
use super::{BuildError, BuildMessage, Builder};

/// A COPY/ADD's source digest and Docker's `created_by` kind (`file`, `dir`, `multi`).
#[derive(Debug, Clone)]
pub struct SourcesDigest(pub String, pub &'static str);

fn copy_err(c: &'static str) -> impl Fn(berth_build::copy::CopyError) -> BuildError {
    move |e| BuildError::Copy {
        instruction: c,
        message: e.to_string(),
    }
}

fn name_of(step: &Step) -> &'static str {
    match step.op {
        Op::Add(_) => "ADD",
        _ => "COPY",
    }
}

/// The lowerdirs (top first) of a list of layers (bottom first).
fn lowers_of(b: &Builder, layers: &[LayerRecord]) -> Vec<PathBuf> {
    layers
        .iter()
        .rev()
        .map(|l| b.store.layers().diff_path(&l.chain_id))
        .collect()
}

fn is_whiteout(md: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt as _;
    md.file_type().is_char_device() && md.rdev() == 0
}

/// Finds `rel` in a stack of layer dirs (top first), as the merged view shows it.
fn lookup(lowers: &[PathBuf], rel: &str) -> Option<(PathBuf, std::fs::Metadata)> {
    let rel = rel.trim_start_matches('/');
    if rel.is_empty() {
        return lowers
            .first()
            .and_then(|l| std::fs::symlink_metadata(l).ok().map(|m| (l.clone(), m)));
    }
    for l in lowers {
        let p = l.join(rel);
        if let Ok(md) = std::fs::symlink_metadata(&p) {
            if is_whiteout(&md) {
                return None;
            }
            return Some((p, md));
        }
    }
    None
}

fn read_in(lowers: &[PathBuf], rel: &str) -> Option<String> {
    lookup(lowers, rel).and_then(|(p, _)| std::fs::read_to_string(p).ok())
}

fn set_mtime(p: &Path, md: &std::fs::Metadata) {
    if let Ok(t) = md.modified()
        && let Ok(f) = std::fs::File::open(p)
    {
        let _ = f.set_modified(t);
    }
}

/// Ownership of copied files.
#[derive(Debug, Clone, Copy)]
enum Owner {
    /// These ids.
    Set(u32, u32),
    /// These ids, for files of the build's own unpacked context (which may be linked).
    Context(u32, u32),
    /// The source's (COPY --from without --chown).
    Keep,
}

struct Stager<'a> {
    root: &'a Path,
    lowers: &'a [PathBuf],
    new_owner: (u32, u32),
    /// Directories whose mtime to restore at the end (they are written into).
    dir_times: Vec<(PathBuf, std::fs::Metadata)>,
}

impl Stager<'_> {
    /// Creates the parents of `rel` (and `rel` itself with `include_self`) in the staging
    /// dir: copies of the image's directories, or new 0755 ones.
    fn parents(&mut self, rel: &str, include_self: bool) -> Result<(), BuildError> {
        let parts: Vec<&str> = rel.split('/').filter(|s| !s.is_empty()).collect();
        let upto = if include_self {
            parts.len()
        } else {
            parts.len().saturating_sub(1)
        };
        let mut cur = String::new();
        for p in &parts[..upto] {
            if !cur.is_empty() {
                cur.push('/');
            }
            cur.push_str(p);
            let dst = self.root.join(&cur);
            if std::fs::symlink_metadata(&dst).is_ok() {
                continue;
            }
            std::fs::create_dir(&dst).map_err(BuildError::io("create", &dst))?;
            match lookup(self.lowers, &cur) {
                Some((_, md)) if md.is_dir() => {
                    std::fs::set_permissions(
                        &dst,
                        std::fs::Permissions::from_mode(md.mode() & 0o7777),
                    )
                    .map_err(BuildError::io("chmod", &dst))?;
                    std::os::unix::fs::lchown(&dst, Some(md.uid()), Some(md.gid()))
                        .map_err(BuildError::io("chown", &dst))?;
                    self.dir_times.push((dst, md));
                }
                _ => {
                    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755))
                        .map_err(BuildError::io("chmod", &dst))?;
                    std::os::unix::fs::lchown(&dst, Some(self.new_owner.0), Some(self.new_owner.1))
                        .map_err(BuildError::io("chown", &dst))?;
                }
            }
        }
        Ok(())
    }

    fn finish(mut self) {
        self.dir_times
            .sort_by_key(|(p, _)| std::cmp::Reverse(p.as_os_str().len()));
        for (p, md) in &self.dir_times {
            set_mtime(p, md);
        }
    }
}

/// Copies `src` (file, symlink or directory, recursively) to `dst`.
fn copy_entry(src: &Path, dst: &Path, owner: Owner, chmod: Option<u32>) -> Result<(), BuildError> {
    let md = std::fs::symlink_metadata(src).map_err(BuildError::io("stat", src))?;
    let (uid, gid) = match owner {
        Owner::Set(u, g) | Owner::Context(u, g) => (u, g),
        Owner::Keep => (md.uid(), md.gid()),
    };
    let ft = md.file_type();
    if ft.is_symlink() {
        let t = std::fs::read_link(src).map_err(BuildError::io("read link", src))?;
        if std::fs::symlink_metadata(dst).is_ok() {
            let _ = std::fs::remove_file(dst);
        }
        std::os::unix::fs::symlink(&t, dst).map_err(BuildError::io("symlink", dst))?;
        std::os::unix::fs::lchown(dst, Some(uid), Some(gid))
            .map_err(BuildError::io("chown", dst))?;
        return Ok(());
    }
    if ft.is_dir() {
        if !dst.is_dir() {
            std::fs::create_dir(dst).map_err(BuildError::io("create", dst))?;
        }
        let mut names: Vec<_> = std::fs::read_dir(src)
            .map_err(BuildError::io("read directory", src))?
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        names.sort();
        for n in names {
            copy_entry(&src.join(&n), &dst.join(&n), owner, chmod)?;
        }
    } else if ft.is_file() {
        if std::fs::symlink_metadata(dst).is_ok_and(|m| !m.is_dir()) {
            let _ = std::fs::remove_file(dst);
        }
        // a context file that already has the wanted owner and mode is linked, not copied:
        // the build's unpacked context is private and removed after the build
        let linkable = matches!(owner, Owner::Context(..))
            && md.uid() == uid
            && md.gid() == gid
            && chmod.is_none_or(|m| m == md.mode() & 0o7777);
        if linkable && std::fs::hard_link(src, dst).is_ok() {
            return Ok(());
        }
        std::fs::copy(src, dst).map_err(BuildError::io("copy", src))?;
    } else {
        // devices, fifos and sockets are not copied (BuildKit copies only these kinds)
        return Ok(());
    }
    std::os::unix::fs::lchown(dst, Some(uid), Some(gid)).map_err(BuildError::io("chown", dst))?;
    let mode = chmod.unwrap_or(md.mode() & 0o7777);
    std::fs::set_permissions(dst, std::fs::Permissions::from_mode(mode))
        .map_err(BuildError::io("chmod", dst))?;
    set_mtime(dst, &md);
    Ok(())
}

fn fetch_url_error(url: &str) -> BuildError {
    use std::net::ToSocketAddrs as _;
    let rest = url.split_once("://").map(|x| x.1).unwrap_or(url);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let default_port = if url.to_ascii_lowercase().starts_with("https") {
        443
    } else {
        80
    };
    let addr = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:{default_port}")
    };
    let why = match addr.to_socket_addrs() {
        Err(e) => format!("cannot resolve {hostport}: {e}"),
        Ok(mut addrs) => match addrs.next() {
            None => format!("cannot resolve {hostport}: no addresses"),
            Some(a) => match std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(3)) {
                Err(e) => format!("cannot connect to {a}: {e}"),
                Ok(_) => "downloading remote ADD sources is not supported by this builder; download the file into the build context and ADD it from there".to_owned(),
            },
        },
    };
    BuildError::Copy {
        instruction: "ADD",
        message: format!("failed to fetch {url}: {why}"),
    }
}

/// Extracts a (gzip) tar archive into `dst`.
fn extract(
    src: &Path,
    dst: &Path,
    kind: Archive,
    owner: Option<(u32, u32)>,
) -> Result<(), BuildError> {
    let f = std::fs::File::open(src).map_err(BuildError::io("open", src))?;
    let r: Box<dyn std::io::Read> = match kind {
        Archive::Tar => Box::new(BufReader::new(f)),
        Archive::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(f))),
        other => {
            return Err(BuildError::Copy {
                instruction: "ADD",
                message: format!(
                    "cannot extract {}: {other:?} compression is not supported (tar and gzip are)",
                    src.display()
                ),
            });
        }
    };
    let mut a = tar::Archive::new(r);
    a.set_preserve_permissions(true);
    a.set_preserve_ownerships(owner.is_none());
    a.set_preserve_mtime(true);
    a.unpack(dst).map_err(|e| BuildError::Copy {
        instruction: "ADD",
        message: format!("extracting {}: {e}", src.display()),
    })?;
    if let Some((u, g)) = owner {
        chown_tree(dst, u, g)?;
    }
    Ok(())
}

fn chown_tree(p: &Path, u: u32, g: u32) -> Result<(), BuildError> {
    std::os::unix::fs::lchown(p, Some(u), Some(g)).map_err(BuildError::io("chown", p))?;
    if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        for e in std::fs::read_dir(p)
            .map_err(BuildError::io("read directory", p))?
            .flatten()
        {
            chown_tree(&e.path(), u, g)?;
        }
    }
    Ok(())
}

fn mount_view(lowers: &[PathBuf], at: &Path) -> Result<(), BuildError> {
    std::fs::create_dir_all(at).map_err(BuildError::io("create", at))?;
    let list: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
    let data = std::ffi::CString::new(format!("lowerdir={}", list.join(":")))
        .map_err(|e| BuildError::Other(format!("overlay options: {e}")))?;
    rustix::mount::mount(
        "overlay",
        at,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        data.as_c_str(),
    )
    .map_err(|e| BuildError::Io {
        op: "mount overlay",
        path: at.to_owned(),
        source: e.into(),
    })
}

impl Builder {
    /// The root a COPY reads from: the context, or a read-only view of a stage's or an
    /// image's file system, and whether it is the context.
    fn source_root(&mut self, c: &CopyOp) -> Result<(PathBuf, bool), BuildError> {
        let image = match &c.from {
            None => return Ok((self.context.root.clone(), true)),
            Some(Source::Stage(i)) => self.stage_images.get(i).cloned().ok_or_else(|| {
                BuildError::Other(format!("COPY --from: stage {i} was not built"))
            })?,
            Some(Source::Image(name)) => Some(self.base_image(name)?),
        };
        let Some(id) = image else {
            let empty = self.scratch_path("empty");
            std::fs::create_dir_all(&empty).map_err(BuildError::io("create", &empty))?;
            return Ok((empty, false));
        };
        if let Some(p) = self.views.get(&id) {
            return Ok((p.clone(), false));
        }
        let rec = self.store.resolve(id.as_str())?;
        let lowers = lowers_of(self, &rec.layers);
        let root = match lowers.len() {
            0 => {
                let empty = self.scratch_path("empty");
                std::fs::create_dir_all(&empty).map_err(BuildError::io("create", &empty))?;
                empty
            }
            1 => lowers[0].clone(),
            _ => {
                let at = self.scratch_path("view");
                mount_view(&lowers, &at)?;
                at
            }
        };
        self.views.insert(id, root.clone());
        Ok((root, false))
    }

    /// Context entries under the literal prefix of each source (for `--from` roots).
    fn entries_for(
        &self,
        root: &Path,
        from_context: bool,
        sources: &[String],
    ) -> Result<Vec<ContextEntry>, BuildError> {
        if from_context {
            return Ok(self.context.entries.clone());
        }
        let mut out = Vec::new();
        for s in sources {
            let p = berth_build::copy::clean(s.trim_start_matches('/'));
            let literal: Vec<&str> = p
                .split('/')
                .take_while(|seg| !berth_build::copy::has_wildcards(seg))
                .collect();
            let has_wild = literal.len() < p.split('/').count();
            let base = if has_wild {
                literal.join("/")
            } else {
                // the entry itself and its parent listing
                p.rsplit_once('/')
                    .map(|x| x.0.to_owned())
                    .unwrap_or_default()
            };
            let base = if base == "." { String::new() } else { base };
            let dir = root.join(&base);
            let Ok(md) = std::fs::symlink_metadata(&dir) else {
                continue;
            };
            if !md.is_dir() {
                continue;
            }
            for mut e in list_tree(&dir)? {
                if !base.is_empty() {
                    e.path = format!("{base}/{}", e.path);
                }
                out.push(e);
            }
            if !base.is_empty() {
                out.push(ContextEntry {
                    path: base.clone(),
                    is_dir: true,
                });
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn copy_actions(
        &mut self,
        c: &CopyOp,
        step: &Step,
        lowers: &[PathBuf],
    ) -> Result<(PathBuf, bool, Vec<berth_build::copy::CopyAction>), BuildError> {
        let name = name_of(step);
        if let Some(u) = c.sources.iter().find(|s| is_url(s)) {
            if matches!(step.op, Op::Add(_)) {
                return Err(fetch_url_error(u));
            }
            return Err(BuildError::Copy {
                instruction: name,
                message: format!("source can't be a URL for COPY: {u}"),
            });
        }
        let (root, from_ctx) = self.source_root(c)?;
        if c.sources.is_empty() {
            return Ok((root, from_ctx, Vec::new()));
        }
        let entries = self.entries_for(&root, from_ctx, &c.sources)?;
        let exists_dir = |abs: &str| lookup(lowers, abs).is_some_and(|(_, m)| m.is_dir());
        let actions = plan_copy(
            &c.sources,
            &c.dest,
            &step.config.working_dir,
            &entries,
            &exists_dir,
        )
        .map_err(copy_err(name))?;
        Ok((root, from_ctx, actions))
    }

    /// The digest of what a COPY/ADD reads.
    pub(crate) fn sources_digest(
        &mut self,
        _stage: usize,
        step: &Step,
        c: &CopyOp,
    ) -> Result<SourcesDigest, BuildError> {
        let (root, from_ctx, actions) = self.copy_actions(c, step, &[])?;
        if from_ctx {
            // from the context's index: no file is read or written for a cache hit
            let mut list = Vec::new();
            for a in &actions {
                let prefix = format!("{}/", a.src);
                for (p, e) in &self.context.index {
                    if *p == a.src || a.src.is_empty() || p.starts_with(&prefix) {
                        list.push(SourceEntry {
                            path: p.clone(),
                            mode: e.mode,
                            uid: 0,
                            gid: 0,
                            size: e.size,
                            digest: e.digest.clone(),
                            link_target: e.link.clone(),
                        });
                    }
                }
            }
            let kind = match actions.as_slice() {
                [a] if !a.src_is_dir => "file",
                [_] => "dir",
                _ => "multi",
            };
            return Ok(SourcesDigest(
                berth_build::cache::sources_digest(&list),
                kind,
            ));
        }
        let mut list = Vec::new();
        for a in &actions {
            let base = root.join(&a.src);
            let mut stack = vec![(base, a.src.clone())];
            while let Some((p, rel)) = stack.pop() {
                let md = std::fs::symlink_metadata(&p).map_err(BuildError::io("stat", &p))?;
                let mut e = SourceEntry {
                    path: rel.clone(),
                    mode: md.mode(),
                    uid: if from_ctx { 0 } else { md.uid() },
                    gid: if from_ctx { 0 } else { md.gid() },
                    size: 0,
                    digest: String::new(),
                    link_target: None,
                };
                if md.file_type().is_symlink() {
                    e.link_target = std::fs::read_link(&p).ok().map(|t| t.display().to_string());
                } else if md.is_dir() {
                    for c in std::fs::read_dir(&p)
                        .map_err(BuildError::io("read directory", &p))?
                        .flatten()
                    {
                        let n = c.file_name().to_string_lossy().into_owned();
                        stack.push((
                            c.path(),
                            if rel.is_empty() {
                                n
                            } else {
                                format!("{rel}/{n}")
                            },
                        ));
                    }
                } else if md.is_file() {
                    e.size = md.len();
                    e.digest = if from_ctx {
                        self.context.digest(&p)?
                    } else {
                        file_digest(&p)?
                    };
                }
                list.push(e);
            }
        }
        let kind = match actions.as_slice() {
            [a] if !a.src_is_dir => "file",
            [_] => "dir",
            _ => "multi",
        };
        Ok(SourcesDigest(
            berth_build::cache::sources_digest(&list),
            kind,
        ))
    }

    fn commit_staging(
        &self,
        dir: &Path,
        parent: &[LayerRecord],
        overlay: bool,
    ) -> Result<Option<LayerRecord>, BuildError> {
        let opts = DiffOptions {
            source_date_epoch: self.epoch,
            overlay,
            keep_source: false,
        };
        Ok(self.store.commit_dir_layer(
            dir,
            parent.last().map(|l| &l.chain_id),
            &opts,
            &self.lease,
        )?)
    }

    /// COPY/ADD: the copied files (and the parents they need) as a layer.
    pub(crate) fn copy_layer(
        &mut self,
        _stage: usize,
        step: &Step,
        c: &CopyOp,
        parent: &[LayerRecord],
    ) -> Result<Option<LayerRecord>, BuildError> {
        let name = name_of(step);
        let lowers = lowers_of(self, parent);
        if c.from.is_none() {
            self.context.materialize()?;
        }
        let (root, from_ctx, actions) = self.copy_actions(c, step, &lowers)?;
        let ids = match &c.chown {
            Some(ch) => Some(
                resolve_chown(
                    ch,
                    read_in(&lowers, "etc/passwd").as_deref(),
                    read_in(&lowers, "etc/group").as_deref(),
                )
                .map_err(copy_err(name))?,
            ),
            None => None,
        };
        let owner = match (ids, from_ctx) {
            (Some((u, g)), true) => Owner::Context(u, g),
            (Some((u, g)), false) => Owner::Set(u, g),
            (None, true) => Owner::Context(0, 0),
            (None, false) => Owner::Keep,
        };
        let staging = self.scratch_path("copy");
        std::fs::create_dir_all(&staging).map_err(BuildError::io("create", &staging))?;
        let mut st = Stager {
            root: &staging,
            lowers: &lowers,
            new_owner: ids.unwrap_or((0, 0)),
            dir_times: Vec::new(),
        };
        let is_add = matches!(step.op, Op::Add(_));
        for a in &actions {
            let src = root.join(&a.src);
            let rel = a.dest.trim_start_matches('/').to_owned();
            let dst = staging.join(&rel);
            if a.src_is_dir {
                st.parents(&rel, true)?;
                copy_entry_contents(&src, &dst, owner, c.chmod)?;
                continue;
            }
            if is_add && from_ctx {
                let mut head = vec![0u8; 512];
                let n = std::fs::File::open(&src)
                    .and_then(|mut f| f.read(&mut head))
                    .map_err(BuildError::io("read", &src))?;
                if let Some(kind) = detect_archive(&head[..n]) {
                    // an archive is extracted into the destination directory
                    let dir_rel = if c.dest_resolved.ends_with('/') {
                        c.dest_resolved
                            .trim_start_matches('/')
                            .trim_end_matches('/')
                            .to_owned()
                    } else {
                        rel.clone()
                    };
                    st.parents(&dir_rel, true)?;
                    extract(&src, &staging.join(&dir_rel), kind, ids)?;
                    continue;
                }
            }
            st.parents(&rel, false)?;
            copy_entry(&src, &dst, owner, c.chmod)?;
        }
        for (hname, content) in &c.heredocs {
            let dest = if c.dest_resolved.ends_with('/') {
                format!("{}{hname}", c.dest_resolved)
            } else {
                c.dest_resolved.clone()
            };
            let rel = dest.trim_start_matches('/').to_owned();
            st.parents(&rel, false)?;
            let p = staging.join(&rel);
            std::fs::write(&p, content).map_err(BuildError::io("write", &p))?;
            let (u, g) = ids.unwrap_or((0, 0));
            std::os::unix::fs::lchown(&p, Some(u), Some(g)).map_err(BuildError::io("chown", &p))?;
            std::fs::set_permissions(
                &p,
                std::fs::Permissions::from_mode(c.chmod.unwrap_or(0o644)),
            )
            .map_err(BuildError::io("chmod", &p))?;
        }
        st.finish();
        self.commit_staging(&staging, parent, false)
    }

    /// WORKDIR: a layer with the directory when the image lacks it.
    pub(crate) fn workdir_layer(
        &mut self,
        parent: &[LayerRecord],
        path: &str,
        user: &str,
    ) -> Result<Option<LayerRecord>, BuildError> {
        let lowers = lowers_of(self, parent);
        if lookup(&lowers, path).is_some_and(|(_, m)| m.is_dir()) {
            return Ok(None);
        }
        // the directories are created for the current USER (moby and BuildKit)
        let owner = match user.split_once(':') {
            _ if user.is_empty() => (0, 0),
            Some((u, g)) => resolve_chown(
                &berth_build::copy::Chown {
                    user: u.to_owned(),
                    group: Some(g.to_owned()),
                },
                read_in(&lowers, "etc/passwd").as_deref(),
                read_in(&lowers, "etc/group").as_deref(),
            )
            .map_err(copy_err("WORKDIR"))?,
            None => {
                let uid = resolve_chown(
                    &berth_build::copy::Chown {
                        user: user.to_owned(),
                        group: None,
                    },
                    read_in(&lowers, "etc/passwd").as_deref(),
                    None,
                )
                .map_err(copy_err("WORKDIR"))?
                .0;
                let gid = read_in(&lowers, "etc/passwd")
                    .and_then(|t| {
                        t.lines().find_map(|l| {
                            let f: Vec<&str> = l.split(':').collect();
                            (f.len() > 3 && (f[0] == user || f[2] == user))
                                .then(|| f[3].parse().ok())
                                .flatten()
                        })
                    })
                    .unwrap_or(uid);
                (uid, gid)
            }
        };
        let staging = self.scratch_path("workdir");
        std::fs::create_dir_all(&staging).map_err(BuildError::io("create", &staging))?;
        let mut st = Stager {
            root: &staging,
            lowers: &lowers,
            new_owner: owner,
            dir_times: Vec::new(),
        };
        st.parents(path.trim_start_matches('/'), true)?;
        st.finish();
        self.commit_staging(&staging, parent, false)
    }

    /// RUN: a container on an overlay of the parent's layers; its upper dir is the layer.
    pub(crate) fn run_layer(
        &mut self,
        step: &Step,
        parent: &[LayerRecord],
    ) -> Result<Option<LayerRecord>, BuildError> {
        let Op::Run {
            argv,
            script,
            env,
            working_dir,
            user,
            mounts,
            network,
            ..
        } = &step.op
        else {
            return Ok(None);
        };
        let id = crate::containers::names::random_id();
        let dir = self.scratch_path("run");
        std::fs::create_dir_all(dir.join("bundle")).map_err(BuildError::io("create", &dir))?;
        let lowers = lowers_of(self, parent);
        // a build step's upper becomes a layer through the image store (which syncs it);
        // the overlay itself is thrown away
        let overlay = crate::containers::rootfs::Overlay::new(&dir, lowers.clone()).volatile(true);
        overlay
            .mount()
            .map_err(|e| BuildError::Other(format!("mount the build container's rootfs: {e}")))?;
        let net = network
            .as_deref()
            .or(self.req.network.as_deref())
            .unwrap_or("default");
        let network = match net {
            "host" => NetworkMode::Host,
            "none" | "default" | "" | "bridge" => NetworkMode::None,
            other => {
                return Err(BuildError::Other(format!(
                    "network mode {other:?} is not supported for RUN (use host or none)"
                )));
            }
        };
        let mut args = argv.clone();
        if script.is_some() {
            args = vec!["/dev/.berth-run-script".to_owned()];
        }
        let spec = ContainerSpec {
            image: "build".into(),
            cmd: args.clone(),
            entrypoint: Some(Vec::new()),
            env: env.clone(),
            workdir: if working_dir.is_empty() {
                "/".into()
            } else {
                working_dir.clone()
            },
            user: user.clone(),
            network,
            ..Default::default()
        };
        let mut resolved = crate::containers::oci::build(
            &id,
            &spec,
            &json!({"config": {}}),
            &overlay.merged,
            crate::containers::oci::own_bounding_set(),
        )
        .map_err(|e| BuildError::Other(format!("RUN {}: {e}", args.join(" "))))?;
        let mut extra = Vec::new();
        // /etc/hosts and /etc/resolv.conf as a container gets them, where the image has them
        let etc = crate::containers::etcfiles::write(
            &dir,
            &id,
            &spec,
            &crate::containers::etcfiles::HostFiles::default(),
        )
        .map_err(|e| BuildError::Other(format!("write /etc files: {e}")))?;
        for m in etc.mounts() {
            let dest = m["destination"].as_str().unwrap_or_default().to_owned();
            if dest != "/etc/hostname" && lookup(&lowers, &dest).is_some() {
                extra.push(m);
            }
        }
        if let Some(body) = script {
            let p = dir.join("script");
            std::fs::write(&p, body).map_err(BuildError::io("write", &p))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .map_err(BuildError::io("chmod", &p))?;
            extra.push(json!({"destination": "/dev/.berth-run-script", "type": "bind", "source": p, "options": ["rbind", "ro"]}));
        }
        for m in mounts {
            match m.kind.as_str() {
                "cache" => {
                    let key = m.id.clone().unwrap_or_else(|| m.target.clone());
                    let hex = berth_build::cache::content_digest(key.as_bytes());
                    let src = self.cache_mounts.join(&hex["sha256:".len()..]);
                    std::fs::create_dir_all(&src).map_err(BuildError::io("create", &src))?;
                    if let Some(mode) = m.mode {
                        let _ = std::fs::set_permissions(&src, std::fs::Permissions::from_mode(mode));
                    }
                    if m.uid.is_some() || m.gid.is_some() {
                        let _ = std::os::unix::fs::chown(&src, m.uid, m.gid);
                    }
                    extra.push(json!({"destination": m.target, "type": "bind", "source": src, "options": ["rbind", if m.readonly { "ro" } else { "rw" }]}));
                }
                "tmpfs" => extra.push(json!({"destination": m.target, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]})),
                other => {
                    return Err(BuildError::Other(format!(
                        "RUN --mount=type={other} is not supported by this builder (cache and tmpfs are)"
                    )));
                }
            }
        }
        if let Some(list) = resolved.spec["mounts"].as_array_mut() {
            list.extend(extra);
        }
        let cfg = dir.join("bundle/config.json");
        std::fs::write(
            &cfg,
            serde_json::to_vec_pretty(&resolved.spec).unwrap_or_default(),
        )
        .map_err(BuildError::io("write", &cfg))?;
        self.say(format!(" ---> Running in {}\n", &id[..12]))?;
        let code = self.spawn_runc(&dir.join("bundle"), &id)?;
        overlay
            .unmount()
            .map_err(|e| BuildError::Other(format!("unmount the build container's rootfs: {e}")))?;
        self.say(format!("Removing intermediate container {}\n", &id[..12]))?;
        if code != 0 {
            return Err(BuildError::RunFailed {
                command: argv.join(" "),
                code,
            });
        }
        let upper = overlay.upper.clone();
        self.commit_staging(&upper, parent, true)
    }

    /// `berth-runc run`, its stdout and stderr streamed into the build output.
    fn spawn_runc(&mut self, bundle: &Path, id: &str) -> Result<i32, BuildError> {
        let mut child = Command::new(&self.runc)
            .arg("--root")
            .arg(&self.runc_root)
            .arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| BuildError::Other(format!("cannot run {}: {e}", self.runc.display())))?;
        let mut readers = Vec::new();
        for r in [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|o| Box::new(o) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = self.tx.clone();
            let quiet = self.req.quiet;
            readers.push(std::thread::spawn(move || {
                let mut r = BufReader::new(r);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match r.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if !quiet {
                                let _ = tx.blocking_send(BuildMessage::Stream(
                                    String::from_utf8_lossy(&line).into_owned(),
                                ));
                            }
                        }
                    }
                }
            }));
        }
        let status = child
            .wait()
            .map_err(|e| BuildError::Other(format!("wait for {}: {e}", self.runc.display())))?;
        for r in readers {
            let _ = r.join();
        }
        use std::os::unix::process::ExitStatusExt as _;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }
}

/// Copies the contents of directory `src` into `dst` (created if missing).
fn copy_entry_contents(
    src: &Path,
    dst: &Path,
    owner: Owner,
    chmod: Option<u32>,
) -> Result<(), BuildError> {
    if !dst.is_dir() {
        std::fs::create_dir_all(dst).map_err(BuildError::io("create", dst))?;
    }
    let mut names: Vec<_> = std::fs::read_dir(src)
        .map_err(BuildError::io("read directory", src))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for n in names {
        copy_entry(&src.join(&n), &dst.join(&n), owner, chmod)?;
    }
    Ok(())
}

/// Views of `--from` images mounted for this build, by image id.
pub type Views = HashMap<Digest, PathBuf>;
