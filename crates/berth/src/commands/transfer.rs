//! `pull`, `push`, `save`, `load`, `import`: streamed bodies both ways, Docker's JSON
//! progress shown as bars on a TTY (indicatif) and as plain lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use berth_api::client::{Client, body_chunks, empty, for_each_json_line, streaming};
use berth_api::jsonmessage::JsonMessage;
use berth_types::reference::Reference;
use futures_util::StreamExt as _;
use hyper::Method;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::AsyncWriteExt as _;

use crate::cli::{ImportArgs, LoadArgs, PullArgs, PushArgs, SaveArgs};
use crate::commands::login::registry_auth_header;
use crate::commands::out;

/// A layer line without a bar: `<id>: <status>`.
fn text_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg}").unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// A layer line with Docker's bar: `<id>: Downloading [====>    ]  1.2MiB/2.2MiB`.
fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix}: {msg} [{bar:50}] {bytes}/{total_bytes}")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// Renders a progress stream: bars per layer on a terminal, plain `id: status` lines
/// otherwise (transfer updates skipped), nothing when quiet. An error message in the
/// stream becomes the command's error.
struct Display {
    quiet: bool,
    /// Write to stderr (the pull `run` does), not stdout.
    to_stderr: bool,
    tty: bool,
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
}

impl Display {
    fn new(quiet: bool) -> Display {
        Display::on(quiet, false)
    }

    fn on(quiet: bool, to_stderr: bool) -> Display {
        let (tty, target) = if to_stderr {
            (
                std::io::stderr().is_terminal(),
                ProgressDrawTarget::stderr(),
            )
        } else {
            (
                std::io::stdout().is_terminal(),
                ProgressDrawTarget::stdout(),
            )
        };
        let multi = (tty && !quiet).then(|| MultiProgress::with_draw_target(target));
        Display {
            quiet,
            to_stderr,
            tty,
            multi,
            bars: HashMap::new(),
        }
    }

    fn bar(&mut self, id: &str) -> ProgressBar {
        if let Some(b) = self.bars.get(id) {
            return b.clone();
        }
        let pb = ProgressBar::new(0);
        pb.set_style(text_style());
        pb.set_prefix(id.to_owned());
        let pb = match &self.multi {
            Some(m) => m.add(pb),
            None => pb,
        };
        self.bars.insert(id.to_owned(), pb.clone());
        pb
    }

    /// Stops drawing: every bar is left as its last line.
    fn finish(mut self) {
        for (_, b) in self.bars.drain() {
            if !b.is_finished() {
                b.abandon();
            }
        }
        drop(self.multi.take());
    }

    fn emit(&self, s: &str) -> anyhow::Result<()> {
        if self.to_stderr {
            use std::io::Write as _;
            let mut e = std::io::stderr().lock();
            e.write_all(s.as_bytes())?;
            e.flush()?;
            return Ok(());
        }
        out(s)
    }

    fn show(&mut self, m: &JsonMessage) -> anyhow::Result<()> {
        if let Some(e) = m.error_message() {
            bail!("{e}");
        }
        if self.quiet {
            return Ok(());
        }
        let status = m.status.as_deref().unwrap_or_default();
        if let Some(s) = &m.stream {
            self.emit(s)?;
            return Ok(());
        }
        if status.is_empty() {
            return Ok(());
        }
        match (&m.id, self.tty) {
            (Some(id), true) => {
                let pb = self.bar(id);
                match &m.progress_detail {
                    Some(d) if d.total.is_some_and(|t| t > 0) => {
                        pb.set_style(bar_style());
                        pb.set_length(d.total.unwrap_or(0));
                        pb.set_position(d.current.unwrap_or(0));
                    }
                    _ => pb.set_style(text_style()),
                }
                pb.set_message(status.to_owned());
                if matches!(
                    status,
                    "Pull complete" | "Already exists" | "Pushed" | "Layer already exists"
                ) {
                    pb.finish();
                }
            }
            (Some(id), false) => {
                let transfer_update = m
                    .progress_detail
                    .as_ref()
                    .is_some_and(|d| d.current.unwrap_or(0) > 0)
                    || (matches!(status, "Downloading" | "Pushing" | "Extracting")
                        && m.progress_detail.is_some());
                if !transfer_update {
                    self.emit(&format!("{id}: {status}\n"))?;
                }
            }
            (None, _) => match &self.multi {
                Some(multi) => {
                    let _ = multi.println(status);
                }
                None => self.emit(&format!("{status}\n"))?,
            },
        }
        Ok(())
    }
}

/// `berth pull`.
pub async fn pull(c: &Client, a: &PullArgs) -> anyhow::Result<()> {
    let named = Reference::parse_named(&a.name).map_err(|e| anyhow!("{e}"))?;
    if a.all_tags && (named.tag().is_some() || named.digest().is_some()) {
        bail!("tag can't be used with --all-tags/-a");
    }
    let full = if a.all_tags {
        named.clone()
    } else {
        Reference::parse(&a.name).map_err(|e| anyhow!("{e}"))?
    };
    if !a.all_tags && named.tag().is_none() && named.digest().is_none() && !a.quiet {
        out("Using default tag: latest\n")?;
    }
    let tag = tag_param(&full, a.all_tags);
    stream_pull(c, &full, tag, a.platform.as_deref(), Display::new(a.quiet)).await?;
    out(&format!(
        "{}\n",
        if a.all_tags {
            full.name()
        } else {
            full.to_string()
        }
    ))
}

/// The `tag` of `POST /images/create`: the digest, else the tag (`latest` when none), or
/// nothing for every tag.
fn tag_param(r: &Reference, all_tags: bool) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        _ if all_tags => String::new(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    }
}

/// `POST /images/create` for `full` (`tag`: a tag, a digest, or empty for every tag),
/// its progress shown by `d`; an error in the stream is the error.
async fn stream_pull(
    c: &Client,
    full: &Reference,
    tag: String,
    platform: Option<&str>,
    mut d: Display,
) -> anyhow::Result<()> {
    let mut q = vec![("fromImage", full.repository().name()), ("tag", tag)];
    if let Some(p) = platform {
        q.push(("platform", p.to_owned()));
    }
    let auth = registry_auth_header(full.domain())?;
    let resp = c
        .send(
            Method::POST,
            "/images/create",
            &q,
            empty(),
            &[("X-Registry-Auth", auth)],
        )
        .await?;
    let mut failure = None;
    for_each_json_line::<JsonMessage>(resp, "pull", |m| {
        if let Err(e) = d.show(&m) {
            failure = Some(e);
        }
        Ok(())
    })
    .await?;
    d.finish();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The pull of `run`/`create` (docker's `pullImage`): progress on stderr (nothing when
/// quiet), so that stdout holds only what the container prints (or its id).
pub async fn pull_for_run(
    c: &Client,
    image: &Reference,
    platform: Option<&str>,
    quiet: bool,
) -> anyhow::Result<()> {
    stream_pull(
        c,
        image,
        tag_param(image, false),
        platform,
        Display::on(quiet, true),
    )
    .await
}

/// `berth push`.
pub async fn push(c: &Client, a: &PushArgs) -> anyhow::Result<()> {
    let named = Reference::parse_named(&a.name).map_err(|e| anyhow!("{e}"))?;
    if a.all_tags && named.tag().is_some() {
        bail!("tag can't be used with --all-tags/-a");
    }
    let tag = if a.all_tags {
        String::new()
    } else {
        named.tag().unwrap_or("latest").to_owned()
    };
    if !a.all_tags && named.tag().is_none() && !a.quiet {
        out("Using default tag: latest\n")?;
    }
    let auth = registry_auth_header(named.domain())?;
    let path = format!("/images/{}/push", named.repository().familiar_name());
    let resp = c
        .send(
            Method::POST,
            &path,
            &[("tag", tag)],
            empty(),
            &[("X-Registry-Auth", auth)],
        )
        .await?;
    let mut d = Display::new(a.quiet);
    let mut failure = None;
    for_each_json_line::<JsonMessage>(resp, "push", |m| {
        if let Err(e) = d.show(&m) {
            failure = Some(e);
        }
        Ok(())
    })
    .await?;
    d.finish();
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `berth save`.
pub async fn save(c: &Client, a: &SaveArgs) -> anyhow::Result<()> {
    if a.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let q: Vec<(&str, String)> = a.images.iter().map(|i| ("names", i.clone())).collect();
    let resp = c.send(Method::GET, "/images/get", &q, empty(), &[]).await?;
    let mut chunks = Box::pin(body_chunks(resp));
    match &a.output {
        Some(p) => {
            let tmp = p.with_file_name(format!(
                ".{}.tmp-{}",
                p.file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                std::process::id()
            ));
            let res = async {
                let mut f = tokio::fs::File::create(&tmp)
                    .await
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                while let Some(ch) = chunks.next().await {
                    f.write_all(&ch?).await?;
                }
                f.sync_all().await?;
                tokio::fs::rename(&tmp, p)
                    .await
                    .with_context(|| format!("cannot rename into {}", p.display()))?;
                anyhow::Ok(())
            }
            .await;
            if res.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            res
        }
        None => {
            let mut o = tokio::io::stdout();
            while let Some(ch) = chunks.next().await {
                o.write_all(&ch?).await?;
            }
            o.flush().await?;
            Ok(())
        }
    }
}

async fn file_or_stdin(input: Option<&Path>) -> anyhow::Result<berth_api::client::ReqBody> {
    Ok(match input {
        Some(p) if p != Path::new("-") => {
            let f = tokio::fs::File::open(p)
                .await
                .with_context(|| format!("open {}", p.display()))?;
            streaming(tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024))
        }
        _ => streaming(tokio_util::io::ReaderStream::with_capacity(
            tokio::io::stdin(),
            256 * 1024,
        )),
    })
}

/// `berth load`.
pub async fn load(c: &Client, a: &LoadArgs) -> anyhow::Result<()> {
    if a.input.is_none() && std::io::stdin().is_terminal() {
        bail!("requested load from stdin, but stdin is empty");
    }
    let body = file_or_stdin(a.input.as_deref()).await?;
    let q = vec![("quiet", if a.quiet { "1" } else { "0" }.to_owned())];
    let resp = c
        .send(
            Method::POST,
            "/images/load",
            &q,
            body,
            &[("Content-Type", "application/x-tar".to_owned())],
        )
        .await?;
    let mut failure = None;
    for_each_json_line::<JsonMessage>(resp, "load", |m| {
        if let Some(e) = m.error_message() {
            failure = Some(anyhow!("{e}"));
        } else if let Some(s) = &m.stream {
            out(s).map_err(|e| berth_api::client::ClientError::Request(e.to_string()))?;
        }
        Ok(())
    })
    .await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `berth import`.
pub async fn import(c: &Client, a: &ImportArgs) -> anyhow::Result<()> {
    if a.source == "-" && std::io::stdin().is_terminal() {
        bail!("import from stdin needs a tarball piped in");
    }
    let body = file_or_stdin(Some(Path::new(&a.source))).await?;
    let mut q = vec![("fromSrc", "-".to_owned())];
    if let Some(r) = &a.repository {
        Reference::parse(r).map_err(|e| anyhow!("{e}"))?;
        q.push(("repo", r.clone()));
    }
    for ch in &a.change {
        q.push(("changes", ch.clone()));
    }
    if let Some(m) = &a.message {
        q.push(("message", m.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    let resp = c
        .send(
            Method::POST,
            "/images/create",
            &q,
            body,
            &[("Content-Type", "text/plain".to_owned())],
        )
        .await?;
    let mut failure = None;
    for_each_json_line::<JsonMessage>(resp, "import", |m| {
        if let Some(e) = m.error_message() {
            failure = Some(anyhow!("{e}"));
        } else if let Some(s) = &m.status {
            out(&format!("{s}\n"))
                .map_err(|e| berth_api::client::ClientError::Request(e.to_string()))?;
        }
        Ok(())
    })
    .await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
