//! `berth commit`, `berth diff`, `berth export` (also under `berth container`).

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use berth_api::client::{Client, body_chunks, empty, read_json};
use clap::Args;
use futures_util::StreamExt as _;
use hyper::Method;

// `commit`.
#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long = "author")]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image (repeatable)
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long = "message")]
    pub message: Option<String>,
    /// Pause container during commit (accepted; the layer is read from the upper dir)
    #[arg(short = 'p', long = "pause", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    /// The container
    pub container: String,
    /// REPOSITORY[:TAG]
    pub repository: Option<String>,
}

// `diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The container
    pub container: String,
}

// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// The container
    pub container: String,
}

/// `berth commit`: prints the new image id.
pub async fn commit(c: &Client, a: &CommitArgs) -> anyhow::Result<()> {
    let mut q = vec![("container", a.container.clone())];
    if let Some(r) = &a.repository {
        berth_types::reference::Reference::parse(r)
            .map_err(|e| anyhow!("invalid reference format {r:?}: {e}"))?;
        match r.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => {
                q.push(("repo", repo.to_owned()));
                q.push(("tag", tag.to_owned()));
            }
            _ => q.push(("repo", r.clone())),
        }
    }
    if let Some(m) = &a.message {
        q.push(("comment", m.clone()));
    }
    if let Some(au) = &a.author {
        q.push(("author", au.clone()));
    }
    for ch in &a.change {
        q.push(("changes", ch.clone()));
    }
    q.push(("pause", if a.pause { "1" } else { "0" }.into()));
    let resp = c.send(Method::POST, "/commit", &q, empty(), &[]).await?;
    let v: serde_json::Value = read_json(resp, "commit").await?;
    let id = v
        .get("Id")
        .and_then(|i| i.as_str())
        .ok_or_else(|| anyhow!("the daemon's commit answer has no Id: {v}"))?;
    crate::commands::out(&format!("{id}\n"))
}

/// `berth diff`: `C /etc`, `A /etc/x`, `D /tmp/y`.
pub async fn diff(c: &Client, a: &DiffArgs) -> anyhow::Result<()> {
    let path = format!("/containers/{}/changes", a.container);
    let v: serde_json::Value = c.get_json(&path, &[]).await?;
    let mut s = String::new();
    for ch in v.as_array().cloned().unwrap_or_default() {
        let kind = match ch.get("Kind").and_then(|k| k.as_u64()) {
            Some(0) => "C",
            Some(1) => "A",
            Some(2) => "D",
            other => bail!("unknown change kind {other:?}"),
        };
        s.push_str(&format!(
            "{kind} {}\n",
            ch.get("Path").and_then(|p| p.as_str()).unwrap_or_default()
        ));
    }
    crate::commands::out(&s)
}

/// `berth export`.
pub async fn export(c: &Client, a: &ExportArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    if a.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let path = format!("/containers/{}/export", a.container);
    let resp = c.send(Method::GET, &path, &[], empty(), &[]).await?;
    let mut out: Box<dyn std::io::Write> = match &a.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut chunks = Box::pin(body_chunks(resp));
    while let Some(chunk) = chunks.next().await {
        out.write_all(&chunk?)?;
    }
    out.flush()?;
    Ok(())
}
