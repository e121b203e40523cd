//! `cp`: copies between a container and the host through the archive API
//! (`HEAD` to stat, `GET` for a tar out, `PUT` for a tar in), with the docker CLI's
//! naming rules (a missing destination takes the source's content under its own name,
//! `src/.` copies a directory's content, `-` is a tar on stdin/stdout).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use berth_api::client::{Client, ClientError, body_chunks, full};
use clap::Args;
use futures_util::StreamExt as _;
use hyper::Method;
use serde_json::Value;

// `cp`.
#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow: bool,
    /// Suppress progress output during copy
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH or SRC_PATH|-
    pub src: String,
    /// DEST_PATH|- or CONTAINER:DEST_PATH
    pub dst: String,
}

/// `ctr:/p` → (Some(ctr), "/p"); a local path (absolute, `.`-relative, or without `:`)
/// → (None, path), as the docker CLI's `splitCpArg`.
pub fn split_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') || arg.starts_with('.') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() => (Some(c), p),
        _ => (None, arg),
    }
}

/// The stat the daemon sends in `X-Docker-Container-Path-Stat`.
#[derive(Debug, Clone)]
struct Stat {
    mode: u32,
    link_target: String,
}

impl Stat {
    fn is_dir(&self) -> bool {
        self.mode & (1 << 31) != 0
    }
    fn is_symlink(&self) -> bool {
        self.mode & (1 << 27) != 0
    }
}

async fn stat(c: &Client, ctr: &str, path: &str) -> Result<Stat, ClientError> {
    let resp = c
        .send(
            Method::HEAD,
            &format!("/containers/{ctr}/archive"),
            &[("path", path.to_owned())],
            berth_api::client::empty(),
            &[],
        )
        .await?;
    let raw = resp
        .headers()
        .get("X-Docker-Container-Path-Stat")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let json: Value = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    Ok(Stat {
        mode: json["mode"].as_u64().unwrap_or(0) as u32,
        link_target: json["linkTarget"].as_str().unwrap_or_default().to_owned(),
    })
}

fn daemon_err(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Daemon { .. } => {
            eprintln!("{e}");
            crate::Exit(1).into()
        }
        e => e.into(),
    }
}

/// `berth cp`.
pub async fn cp(c: &Client, a: &CpArgs) -> anyhow::Result<()> {
    match (split_arg(&a.src), split_arg(&a.dst)) {
        ((Some(_), _), (Some(_), _)) => {
            anyhow::bail!("copying between containers is not supported")
        }
        ((None, _), (None, _)) => {
            anyhow::bail!("must specify at least one container source")
        }
        ((Some(ctr), src), (None, dst)) => from_container(c, a, ctr, src, dst).await,
        ((None, src), (Some(ctr), dst)) => to_container(c, a, src, ctr, dst).await,
    }
}

async fn from_container(
    c: &Client,
    a: &CpArgs,
    ctr: &str,
    src: &str,
    dst: &str,
) -> anyhow::Result<()> {
    let mut src = src.to_owned();
    // as the docker CLI: a failed stat is not fatal here, the GET says what is wrong
    let st = stat(c, ctr, &src).await.unwrap_or(Stat {
        mode: 0,
        link_target: String::new(),
    });
    if a.follow && st.is_symlink() && !st.link_target.is_empty() {
        src = st.link_target.clone();
    }
    let resp = c
        .send(
            Method::GET,
            &format!("/containers/{ctr}/archive"),
            &[("path", src.clone())],
            berth_api::client::empty(),
            &[],
        )
        .await
        .map_err(daemon_err)?;
    let mut body = Vec::new();
    let mut chunks = Box::pin(body_chunks(resp));
    while let Some(ch) = chunks.next().await {
        body.extend_from_slice(&ch?);
    }
    if dst == "-" {
        let mut o = std::io::stdout().lock();
        o.write_all(&body)?;
        return Ok(o.flush()?);
    }
    let dst = PathBuf::from(dst);
    let contents_only = src.ends_with("/.");
    // `into`: the host directory entries land in; `rename`: the name the archive's top
    // entry takes there (`None`: its own; contents-only archives have no top entry)
    let (into, rename) = if dst.is_dir() {
        (dst.clone(), None)
    } else if dst.exists() && st.is_dir() {
        anyhow::bail!("cannot copy a directory to a file: {}", dst.display());
    } else {
        if a.dst.ends_with('/') {
            anyhow::bail!("destination directory {} doesn't exist", dst.display());
        }
        let parent = dst
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        if !parent.is_dir() {
            anyhow::bail!("destination directory {} doesn't exist", parent.display());
        }
        if contents_only {
            std::fs::create_dir(&dst)?;
            (dst.clone(), None)
        } else {
            let name = dst
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (parent, Some(name))
        }
    };
    let mut ar = tar::Archive::new(&body[..]);
    ar.set_preserve_ownerships(a.archive);
    ar.set_preserve_permissions(true);
    ar.set_overwrite(true);
    for entry in ar.entries()? {
        let mut e = entry?;
        let p = e.path()?.into_owned();
        if p.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        }) {
            anyhow::bail!("invalid archive entry {}", p.display());
        }
        let rel: PathBuf = p
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        let target = match (&rename, contents_only) {
            (_, true) | (None, false) => into.join(&rel),
            (Some(n), false) => {
                let mut comps = rel.components();
                comps.next();
                let rest: PathBuf = comps.collect();
                let t = into.join(n);
                if rest.as_os_str().is_empty() {
                    t
                } else {
                    t.join(rest)
                }
            }
        };
        if rel.as_os_str().is_empty() || e.header().entry_type().is_dir() {
            std::fs::create_dir_all(&target)?;
            continue;
        }
        e.unpack(&target)?;
    }
    Ok(())
}

async fn to_container(
    c: &Client,
    a: &CpArgs,
    src: &str,
    ctr: &str,
    dst: &str,
) -> anyhow::Result<()> {
    let (put_path, tar) = if src == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf)?;
        (dst.to_owned(), buf)
    } else {
        let mut src_path = PathBuf::from(src);
        let md = std::fs::symlink_metadata(&src_path)
            .map_err(|e| anyhow::anyhow!("could not stat {src}: {e}"))?;
        if a.follow && md.file_type().is_symlink() {
            src_path = std::fs::canonicalize(&src_path)?;
        }
        let contents_only = src.ends_with("/.");
        let src_is_dir = src_path.is_dir()
            && !std::fs::symlink_metadata(&src_path)?
                .file_type()
                .is_symlink();
        let base = src_path
            .components()
            .rfind(|c| !matches!(c, std::path::Component::CurDir))
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_else(|| ".".into());
        let (put_path, name) = match stat(c, ctr, dst).await {
            Ok(st) if st.is_dir() => (
                dst.to_owned(),
                if contents_only { None } else { Some(base) },
            ),
            Ok(_) if src_is_dir => anyhow::bail!("cannot copy a directory to a file"),
            Ok(_) | Err(ClientError::Daemon { status: 404, .. }) => {
                if dst.ends_with('/') {
                    anyhow::bail!("destination directory {dst} doesn't exist");
                }
                let trimmed = dst.trim_end_matches('/');
                let (parent, name) = trimmed.rsplit_once('/').unwrap_or((".", trimmed));
                let parent = if parent.is_empty() { "/" } else { parent };
                (parent.to_owned(), Some(name.to_owned()))
            }
            Err(e) => return Err(daemon_err(e)),
        };
        let mut b = tar::Builder::new(Vec::new());
        b.follow_symlinks(false);
        match name {
            Some(n) if src_is_dir => b.append_dir_all(&n, &src_path)?,
            Some(n) => b.append_path_with_name(&src_path, &n)?,
            None => b.append_dir_all(".", &src_path)?,
        }
        (put_path, b.into_inner()?)
    };
    let q = [
        ("path", put_path),
        ("noOverwriteDirNonDir", "true".to_owned()),
        (
            "copyUIDGID",
            if a.archive { "true" } else { "false" }.to_owned(),
        ),
    ];
    c.send(
        Method::PUT,
        &format!("/containers/{ctr}/archive"),
        &q,
        full(tar),
        &[("Content-Type", "application/x-tar".to_owned())],
    )
    .await
    .map_err(|e| match e {
        e @ ClientError::Daemon { .. } => {
            eprintln!("{e}");
            crate::Exit(1).into()
        }
        e => anyhow::Error::from(e),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_like_the_docker_cli() {
        assert_eq!(split_arg("web:/etc/hosts"), (Some("web"), "/etc/hosts"));
        assert_eq!(split_arg("/abs:x"), (None, "/abs:x"));
        assert_eq!(split_arg("./rel"), (None, "./rel"));
        assert_eq!(split_arg("-"), (None, "-"));
        assert_eq!(split_arg("file"), (None, "file"));
    }
}
