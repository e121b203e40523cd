//! `berth build` / `berth image build` and `berth builder prune`: the context is sent as a
//! tar that already honours `.dockerignore` (the Dockerfile travels inside it, under a
//! private name when it lies outside the context or comes from stdin), the classic
//! `POST /build` stream is rendered as BuildKit-style progress.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Read as _, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, anyhow, bail};
use berth_api::client::{Client, ClientError, for_each_json_line};
use berth_api::jsonmessage::JsonMessage;
use berth_build::dockerignore::{PatternMatcher, ignore_file_for, keep_build_files, read_patterns};
use clap::Args;
use hyper::Method;

use crate::Exit;

// `build`.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Skip image verification (Docker's default; accepted for its scripts)
    #[arg(long = "disable-content-trust", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", hide = true)]
    pub disable_content_trust: Option<bool>,
    /// Name and optionally a tag in the "name:tag" format (repeatable)
    #[arg(short = 't', long = "tag")]
    pub tag: Vec<String>,
    /// Name of the Dockerfile (default: "PATH/Dockerfile"; "-" reads it from stdin)
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Set build-time variables (NAME=value, or NAME to take it from the environment)
    #[arg(long = "build-arg")]
    pub build_arg: Vec<String>,
    /// Set the target build stage to build
    #[arg(long = "target")]
    pub target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long = "pull")]
    pub pull: bool,
    /// Remove intermediate containers after a successful build (always: Berth keeps none)
    #[arg(long = "rm", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub rm: Option<bool>,
    /// Always remove intermediate containers (Berth always does)
    #[arg(long = "force-rm")]
    pub force_rm: bool,
    /// Set metadata for an image (key=value, repeatable)
    #[arg(long = "label")]
    pub label: Vec<String>,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Set the networking mode for the RUN instructions during build (host, none, default)
    #[arg(long = "network")]
    pub network: Option<String>,
    /// Set target platform for build (only the host's)
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// Set type of progress output ("auto", "plain", "tty")
    #[arg(long = "progress", default_value = "auto")]
    pub progress: String,
    /// Write the image ID to the file
    #[arg(long = "iidfile")]
    pub iidfile: Option<PathBuf>,
    /// Build context: a directory, or "-" for a tar (or a Dockerfile) on stdin
    pub context: String,
}

// `builder prune`.
#[derive(Debug, Args)]
pub struct BuilderPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Remove all unused build cache, not just dangling ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,
}

fn random_hex() -> String {
    let mut b = [0u8; 8];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn append_dir<W: Write>(
    tar: &mut tar::Builder<W>,
    root: &Path,
    rel: &str,
    m: Option<&PatternMatcher>,
) -> anyhow::Result<()> {
    let dir = if rel.is_empty() {
        root.to_owned()
    } else {
        root.join(rel)
    };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("read directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for n in names {
        let name = n.to_string_lossy();
        let r = if rel.is_empty() {
            name.to_string()
        } else {
            format!("{rel}/{name}")
        };
        let p = root.join(&r);
        let md = std::fs::symlink_metadata(&p).with_context(|| format!("stat {}", p.display()))?;
        let excluded = m.is_some_and(|m| m.excludes(&r));
        if md.is_dir() {
            if excluded && !m.is_some_and(|m| m.may_include_below(&r)) {
                continue;
            }
            if !excluded {
                tar.append_dir(&r, &p)
                    .with_context(|| format!("add {}", p.display()))?;
            }
            append_dir(tar, root, &r, m)?;
        } else if !excluded {
            tar.append_path_with_name(&p, &r)
                .with_context(|| format!("add {}", p.display()))?;
        }
    }
    Ok(())
}

/// What the context tar holds, decided before any byte is sent.
pub struct ContextPlan {
    /// The `dockerfile` query parameter.
    pub dockerfile: String,
    source: ContextSource,
}

enum ContextSource {
    /// A tar (or gzip) read from stdin, sent as is.
    Raw(Vec<u8>),
    /// A directory, filtered, plus a Dockerfile from elsewhere under a private name.
    Dir {
        root: PathBuf,
        matcher: Option<PatternMatcher>,
        extra: Option<(String, Vec<u8>)>,
    },
}

fn single_file_tar(name: &str, data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    tar.append_data(&mut h, name, data)?;
    Ok(tar.into_inner()?)
}

/// Decides the context: reads stdin when it is `-`, finds the Dockerfile and the ignore file.
pub fn plan_context(a: &BuildArgs) -> anyhow::Result<ContextPlan> {
    let stdin_df = a.file.as_deref() == Some("-");
    if a.context == "-" {
        if stdin_df {
            bail!("invalid argument: can't use stdin for both build context and dockerfile");
        }
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .context("read the build context from stdin")?;
        let is_tar = data.len() >= 262 && &data[257..262] == b"ustar";
        let is_gz = data.starts_with(&[0x1f, 0x8b]);
        if is_tar || is_gz {
            return Ok(ContextPlan {
                dockerfile: a.file.clone().unwrap_or_default(),
                source: ContextSource::Raw(data),
            });
        }
        // a Dockerfile on stdin and no context
        return Ok(ContextPlan {
            dockerfile: "Dockerfile".into(),
            source: ContextSource::Raw(single_file_tar("Dockerfile", &data)?),
        });
    }
    let root = PathBuf::from(&a.context);
    if !root.is_dir() {
        bail!("unable to prepare context: path {:?} not found", a.context);
    }
    let root = root.canonicalize()?;
    // the Dockerfile: inside the context (sent as is) or outside / stdin (added under a
    // private name, as the docker CLI does)
    let (df_path, df_text): (Option<PathBuf>, Option<Vec<u8>>) = match a.file.as_deref() {
        Some("-") => {
            let mut d = Vec::new();
            std::io::stdin()
                .read_to_end(&mut d)
                .context("read the Dockerfile from stdin")?;
            (None, Some(d))
        }
        Some(f) => {
            let p = PathBuf::from(f);
            let p = if p.is_absolute() {
                p
            } else {
                std::env::current_dir()?.join(p)
            };
            let p = p.canonicalize().map_err(|e| {
                anyhow!("unable to prepare context: unable to evaluate symlinks in Dockerfile path: {f}: {e}")
            })?;
            (Some(p), None)
        }
        None => {
            let p = root.join("Dockerfile");
            let p = if p.exists() || !root.join("dockerfile").exists() {
                p
            } else {
                root.join("dockerfile")
            };
            if !p.exists() {
                bail!(
                    "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
                    p.display()
                );
            }
            (Some(p), None)
        }
    };
    let inside = df_path
        .as_ref()
        .and_then(|p| p.strip_prefix(&root).ok().map(|r| r.display().to_string()));
    let ignore = match &df_path {
        Some(p) => ignore_file_for(&root, p, &|x: &Path| x.is_file()),
        None => ignore_file_for(&root, &root.join("Dockerfile"), &|x: &Path| x.is_file()),
    };
    let matcher = match ignore {
        Some(f) => {
            let text =
                std::fs::read_to_string(&f).with_context(|| format!("read {}", f.display()))?;
            let pats = keep_build_files(read_patterns(&text), inside.as_deref());
            Some(PatternMatcher::new(&pats).map_err(|e| anyhow!("{}: {e}", f.display()))?)
        }
        None => None,
    };
    let (dockerfile, extra) = match (inside, df_text, df_path) {
        (Some(rel), _, _) => (rel, None),
        (None, text, path) => {
            let data = match (text, path) {
                (Some(t), _) => t,
                (None, Some(p)) => {
                    std::fs::read(&p).with_context(|| format!("read {}", p.display()))?
                }
                (None, None) => Vec::new(),
            };
            let name = format!(".dockerfile.{}", random_hex());
            (name.clone(), Some((name, data)))
        }
    };
    Ok(ContextPlan {
        dockerfile,
        source: ContextSource::Dir {
            root,
            matcher,
            extra,
        },
    })
}

/// Writes the context tar of `plan` to `out`.
pub fn write_context(plan: &ContextPlan, out: impl Write) -> anyhow::Result<()> {
    match &plan.source {
        ContextSource::Raw(data) => {
            let mut out = out;
            out.write_all(data)?;
            out.flush()?;
        }
        ContextSource::Dir {
            root,
            matcher,
            extra,
        } => {
            let mut tar = tar::Builder::new(out);
            tar.follow_symlinks(false);
            append_dir(&mut tar, root, "", matcher.as_ref())?;
            if let Some((name, data)) = extra {
                let mut h = tar::Header::new_gnu();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                tar.append_data(&mut h, name, data.as_slice())?;
            }
            tar.into_inner()?.flush()?;
        }
    }
    Ok(())
}

/// A blocking writer feeding a request body stream in 256 KiB chunks.
struct BodyWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
}

impl Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "the daemon stopped reading the build context",
                )
            })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn kv_map(items: &[String], from_env: bool) -> BTreeMap<String, Option<String>> {
    let mut m = BTreeMap::new();
    for i in items {
        match i.split_once('=') {
            Some((k, v)) => {
                m.insert(k.to_owned(), Some(v.to_owned()));
            }
            None if from_env => {
                m.insert(i.clone(), std::env::var(i).ok());
            }
            None => {
                m.insert(i.clone(), Some(String::new()));
            }
        }
    }
    m
}

/// Renders the classic stream as BuildKit-style progress.
struct Progress {
    tty: bool,
    start: Instant,
    step: usize,
    step_start: Instant,
    open: bool,
    cached: bool,
    out: std::io::Stderr,
}

impl Progress {
    fn line(&mut self, s: &str) {
        let _ = writeln!(self.out, "{s}");
    }

    fn close(&mut self) {
        if self.open {
            if !self.cached {
                let t = self.step_start.elapsed().as_secs_f64();
                let n = self.step;
                self.line(&format!("#{n} DONE {t:.1}s"));
            }
            self.open = false;
        }
    }

    fn text(&mut self, s: &str) {
        if let Some(rest) = s.strip_prefix("Step ") {
            self.close();
            self.step += 1;
            self.step_start = Instant::now();
            self.open = true;
            self.cached = false;
            let (frac, ins) = rest.split_once(" : ").unwrap_or((rest, ""));
            let n = self.step;
            let ins = ins.trim_end();
            if self.tty {
                self.line(&format!("\x1b[1m#{n} [{frac}] {ins}\x1b[0m"));
            } else {
                self.line(&format!("#{n} [{frac}] {ins}"));
            }
            return;
        }
        if s.starts_with(" ---> Using cache") {
            let n = self.step;
            self.line(&format!("#{n} CACHED"));
            self.cached = true;
            return;
        }
        if s.starts_with(" ---> ")
            || s.starts_with("Removing intermediate container")
            || s.starts_with("Successfully built")
            || s.starts_with("Successfully tagged")
            || s.starts_with("# Executing")
        {
            return;
        }
        let n = self.step;
        let t = self.step_start.elapsed().as_secs_f64();
        for l in s.lines() {
            self.line(&format!("#{n} {t:.3} {l}"));
        }
    }
}

/// `berth build`.
pub async fn build(c: &Client, a: &BuildArgs) -> anyhow::Result<()> {
    if a.rm == Some(false) {
        bail!(
            "--rm=false is not supported: berth build keeps no intermediate containers (each step's result is a layer of the build cache)"
        );
    }
    if !matches!(a.progress.as_str(), "auto" | "plain" | "tty" | "quiet") {
        bail!(
            "invalid --progress value {:?}: use auto, plain or tty",
            a.progress
        );
    }
    let args = clone_args(a);
    let plan = tokio::task::spawn_blocking(move || plan_context(&args)).await??;
    let dockerfile = plan.dockerfile.clone();
    // the tar is written while it is sent
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let writer = tokio::task::spawn_blocking(move || {
        let w = std::io::BufWriter::with_capacity(256 * 1024, BodyWriter { tx });
        write_context(&plan, w)
    });
    let body =
        berth_api::client::streaming(futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        }));
    let mut q: Vec<(&str, String)> = Vec::new();
    for t in &a.tag {
        berth_types::reference::Reference::parse(t)
            .map_err(|e| anyhow!("invalid argument {t:?} for \"-t, --tag\" flag: {e}"))?;
        q.push(("t", t.clone()));
    }
    if !dockerfile.is_empty() {
        q.push(("dockerfile", dockerfile));
    }
    let ba = kv_map(&a.build_arg, true);
    if !ba.is_empty() {
        q.push(("buildargs", serde_json::to_string(&ba)?));
    }
    let labels: BTreeMap<String, String> = kv_map(&a.label, false)
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    if !labels.is_empty() {
        q.push(("labels", serde_json::to_string(&labels)?));
    }
    if let Some(t) = &a.target {
        q.push(("target", t.clone()));
    }
    if a.no_cache {
        q.push(("nocache", "1".into()));
    }
    if a.pull {
        q.push(("pull", "1".into()));
    }
    if a.quiet {
        q.push(("q", "1".into()));
    }
    if let Some(n) = &a.network {
        q.push(("networkmode", n.clone()));
    }
    if let Some(p) = &a.platform {
        q.push(("platform", p.clone()));
    }
    q.push(("rm", "1".into()));
    let sent = c
        .send(
            Method::POST,
            "/build",
            &q,
            body,
            &[("Content-Type", "application/x-tar".to_owned())],
        )
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            // a failure while writing the context explains a cut request best
            if let Ok(Err(w)) = writer.await {
                return Err(w);
            }
            return Err(e.into());
        }
    };
    let tty = match a.progress.as_str() {
        "tty" => true,
        "plain" => false,
        _ => std::io::stderr().is_terminal(),
    };
    let mut p = Progress {
        tty,
        start: Instant::now(),
        step: 0,
        step_start: Instant::now(),
        open: false,
        cached: false,
        out: std::io::stderr(),
    };
    let quiet = a.quiet || a.progress == "quiet";
    let mut id: Option<String> = None;
    let mut failure: Option<String> = None;
    for_each_json_line::<JsonMessage>(resp, "build", |m| {
        if let Some(e) = m.error_message() {
            failure = Some(e.to_owned());
        } else if let Some(aux) = &m.aux {
            if let Some(i) = aux.get("ID").and_then(|v| v.as_str()) {
                id = Some(i.to_owned());
            }
        } else if let Some(s) = &m.stream
            && !quiet
        {
            p.text(s);
        }
        Ok::<(), ClientError>(())
    })
    .await?;
    if let Some(e) = failure {
        if !quiet {
            let n = p.step;
            p.line(&format!("#{n} ERROR: {e}"));
        }
        eprintln!("{e}");
        return Err(Exit(1).into());
    }
    p.close();
    let id = id.ok_or_else(|| anyhow!("the daemon did not report the built image's id"))?;
    if !quiet {
        let n = p.step + 1;
        p.line(&format!("#{n} exporting to image"));
        p.line(&format!("#{n} writing image {id} done"));
        for t in &a.tag {
            let full = berth_types::reference::Reference::parse(t)
                .map(|r| r.to_string())
                .unwrap_or_else(|_| t.clone());
            p.line(&format!("#{n} naming to {full} done"));
        }
        let total = p.start.elapsed().as_secs_f64();
        p.line(&format!("#{n} DONE {total:.1}s"));
    } else {
        crate::commands::out(&format!("{id}\n"))?;
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, &id).with_context(|| format!("write the image id to {}", f.display()))?;
    }
    Ok(())
}

fn clone_args(a: &BuildArgs) -> BuildArgs {
    BuildArgs {
        disable_content_trust: a.disable_content_trust,
        rm: a.rm,
        force_rm: a.force_rm,
        tag: a.tag.clone(),
        file: a.file.clone(),
        build_arg: a.build_arg.clone(),
        target: a.target.clone(),
        no_cache: a.no_cache,
        pull: a.pull,
        label: a.label.clone(),
        quiet: a.quiet,
        network: a.network.clone(),
        platform: a.platform.clone(),
        progress: a.progress.clone(),
        iidfile: a.iidfile.clone(),
        context: a.context.clone(),
    }
}

/// `berth builder prune`.
pub async fn prune(c: &Client, _a: &BuilderPruneArgs) -> anyhow::Result<()> {
    let resp = c
        .send(
            Method::POST,
            "/build/prune",
            &[],
            berth_api::client::empty(),
            &[],
        )
        .await?;
    let v: serde_json::Value = berth_api::client::read_json(resp, "build prune").await?;
    let mut s = String::new();
    if let Some(ids) = v.get("CachesDeleted").and_then(|x| x.as_array())
        && !ids.is_empty()
    {
        s.push_str("Deleted build cache objects:\n");
        for i in ids {
            s.push_str(i.as_str().unwrap_or_default());
            s.push('\n');
        }
        s.push('\n');
    }
    let space = v
        .get("SpaceReclaimed")
        .and_then(|x| x.as_u64())
        .unwrap_or(0);
    s.push_str(&format!(
        "Total reclaimed space: {}\n",
        berth_api::units::human_size(space)
    ));
    crate::commands::out(&s)
}
