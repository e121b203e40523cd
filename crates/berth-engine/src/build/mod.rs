//! `docker build` (the classic builder's API): the context tar is unpacked under
//! `<data-root>/build/tmp/<build>`, the Dockerfile planned by `berth-build`, and every
//! step becomes an image (Docker's classic model): RUN in a real container through
//! `berth-runc` on an overlay of the parent's layers, COPY/ADD/WORKDIR as a layer written
//! directly, metadata steps as config-only images. The cache (`cache.rs`) maps each
//! step's content-addressed key to the image it produced and survives restarts.
//!
//! Progress is Docker's classic text stream (`Step 1/3 : FROM busybox`, ` ---> Using
//! cache`, ` ---> <id>`), sent as [`BuildMessage`]s the API wraps as JSON messages.

mod cache;
mod context;
mod exec;

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_build::{Base, BuildOptions, BuildPlan, ImageConfig, Op, Platform, Step};
use berth_image::{ImageStore, Lease, StoreError};
use berth_types::reference::{Digest, Reference};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::io::{ByteStream, StreamReader};
use crate::{Engine, EngineError};

pub use cache::BuildCache;

/// What `POST /build` asks for.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The Dockerfile's path inside the context (`Dockerfile` when empty).
    pub dockerfile: String,
    /// Tags for the result (`-t`, several).
    pub tags: Vec<String>,
    /// `--build-arg`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: refresh base images (needs a registry).
    pub pull: bool,
    /// `--label`: added to the final image as a last LABEL step (the classic builder).
    pub labels: BTreeMap<String, String>,
    /// `-q`: no step output.
    pub quiet: bool,
    /// `--network` for RUN steps (`host`, `none`, `default`).
    pub network: Option<String>,
    /// `--platform` (only the host's).
    pub platform: Option<String>,
}

/// One message of the build stream.
#[derive(Debug, Clone, PartialEq)]
pub enum BuildMessage {
    /// Text (`{"stream": …}`).
    Stream(String),
    /// `{"aux": …}` (the image id).
    Aux(Value),
    /// The build failed (`{"errorDetail": …}`); the last message.
    Error(String),
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile could not be parsed.
    #[error(transparent)]
    Parse(#[from] berth_build::ParseError),
    /// The Dockerfile could not be planned.
    #[error(transparent)]
    Plan(#[from] berth_build::PlanError),
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A RUN step exited non-zero (Docker's message).
    #[error("The command '{command}' returned a non-zero code: {code}")]
    RunFailed {
        /// The argv joined by spaces.
        command: String,
        /// Its exit code.
        code: i32,
    },
    /// A COPY/ADD source or option is wrong.
    #[error("{instruction} failed: {message}")]
    Copy {
        /// COPY or ADD.
        instruction: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A file system operation failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        /// What was done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// What the kernel said.
        source: std::io::Error,
    },
    /// Anything else, with its reason.
    #[error("{0}")]
    Other(String),
    /// The client went away.
    #[error("the build was cancelled: the client disconnected")]
    Cancelled,
}

impl BuildError {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| BuildError::Io { op, path, source }
    }
}

/// The RFC 3339 time a build stamps, clamped to `SOURCE_DATE_EPOCH` when given.
fn created(epoch: Option<i64>) -> String {
    match epoch.and_then(|e| jiff::Timestamp::from_second(e).ok()) {
        Some(t) => t.to_string(),
        None => jiff::Timestamp::now().to_string(),
    }
}

/// `config` object of an image → the builder's config (nulls dropped: Docker writes
/// `"Entrypoint": null`).
pub(crate) fn image_config_of(config: &Value) -> ImageConfig {
    let mut c = config.get("config").cloned().unwrap_or(json!({}));
    if let Some(m) = c.as_object_mut() {
        m.retain(|_, v| !v.is_null());
    }
    serde_json::from_value(c).unwrap_or_default()
}

fn short(id: &Digest) -> String {
    id.hex()[..12].to_owned()
}

/// The builder of one build, run on a blocking thread.
pub(crate) struct Builder {
    pub(crate) store: ImageStore,
    pub(crate) lease: Lease,
    pub(crate) req: BuildRequest,
    pub(crate) tx: mpsc::Sender<BuildMessage>,
    pub(crate) tmp: context::TempDir,
    pub(crate) context: context::Context,
    pub(crate) cache: BuildCache,
    /// `<data-root>/build`.
    pub(crate) root: PathBuf,
    pub(crate) runc: PathBuf,
    pub(crate) runc_root: PathBuf,
    pub(crate) cache_mounts: PathBuf,
    pub(crate) epoch: Option<i64>,
    /// The image each built stage ended with (None: an empty scratch stage).
    pub(crate) stage_images: BTreeMap<usize, Option<Digest>>,
    pub(crate) counter: usize,
    /// Read-only views of `COPY --from` images.
    pub(crate) views: exec::Views,
    /// Pulls an image by reference into the store (the engine's registry client).
    pub(crate) puller: Puller,
}

/// Pulls a reference into the store; blocking (called from the builder's threads).
pub(crate) type Puller = std::sync::Arc<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

impl Builder {
    pub(crate) fn say(&self, text: impl Into<String>) -> Result<(), BuildError> {
        if self.req.quiet {
            return Ok(());
        }
        self.tx
            .blocking_send(BuildMessage::Stream(text.into()))
            .map_err(|_| BuildError::Cancelled)
    }

    /// A fresh path under the build's temp dir.
    pub(crate) fn scratch_path(&mut self, what: &str) -> PathBuf {
        self.counter += 1;
        self.tmp.path().join(format!("{what}-{}", self.counter))
    }

    fn base_image(&self, name: &str) -> Result<Digest, BuildError> {
        if self.req.pull {
            self.say(format!("Pulling {name}\n"))?;
            (self.puller)(name).map_err(|e| BuildError::Other(format!("pull {name}: {e}")))?;
        } else if matches!(self.store.resolve(name), Err(StoreError::ImageNotFound(_))) {
            // as Docker: a missing base image is pulled
            self.say(format!("Pulling {name}\n"))?;
            if let Err(e) = (self.puller)(name) {
                return Err(BuildError::Other(format!(
                    "pull access denied for {name}: the image is not in the local store and pulling it failed: {e}"
                )));
            }
        }
        match self.store.resolve(name) {
            Ok(r) => {
                self.lease.add_image(&r.id);
                Ok(r.id)
            }
            Err(StoreError::ImageNotFound(_)) => Err(BuildError::Other(format!(
                "pull access denied for {name}: the image is not in the local store and no registry is reachable (load it first: berth load -i <archive>)"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    fn run(&mut self, dockerfile_text: &str) -> Result<Digest, BuildError> {
        let mut text = dockerfile_text.to_owned();
        if !self.req.labels.is_empty() {
            // the classic builder appends the --label values as a last LABEL instruction
            let pairs: Vec<String> = self
                .req
                .labels
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        berth_build::config::go_quote(k),
                        berth_build::config::go_quote(v)
                    )
                })
                .collect();
            text.push_str(&format!("\nLABEL {}\n", pairs.join(" ")));
        }
        let df = berth_build::parse(&text)?;
        let platform = match self.req.platform.as_deref().filter(|p| !p.is_empty()) {
            None => Platform::host(),
            Some(p) => Platform::parse(p).ok_or_else(|| {
                BuildError::Other(format!(
                    "invalid platform {p:?}: expected os/arch[/variant]"
                ))
            })?,
        };
        let plan = BuildPlan::new(
            &df,
            BuildOptions {
                build_args: self.req.build_args.clone(),
                target: self.req.target.clone(),
                platform,
            },
        )?;
        let total: usize = plan
            .needed
            .iter()
            .map(|&s| 1 + plan.stages[s].instructions.len())
            .sum();
        let platform_text = plan.platform().to_string();
        let mut offsets = BTreeMap::new();
        let mut acc = 0;
        for &s in &plan.needed {
            offsets.insert(s, acc);
            acc += 1 + plan.stages[s].instructions.len();
        }
        // stages of one level do not depend on each other: they build in parallel
        for level in plan.levels.clone() {
            let level: Vec<usize> = level
                .into_iter()
                .filter(|s| offsets.contains_key(s))
                .collect();
            if level.len() <= 1 {
                for &s in &level {
                    let img =
                        self.build_stage(&plan, &df, s, offsets[&s], total, &platform_text)?;
                    self.stage_images.insert(s, img);
                }
                continue;
            }
            let mut forks = level
                .iter()
                .map(|_| self.fork())
                .collect::<Result<Vec<_>, _>>()?;
            let (plan_r, df_r, offsets_r, pt) = (&plan, &df, &offsets, platform_text.as_str());
            let results: Vec<Result<Option<Digest>, BuildError>> = std::thread::scope(|sc| {
                let handles: Vec<_> = forks
                    .iter_mut()
                    .zip(&level)
                    .map(|(f, &s)| {
                        sc.spawn(move || f.build_stage(plan_r, df_r, s, offsets_r[&s], total, pt))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| {
                        h.join().unwrap_or_else(|_| {
                            Err(BuildError::Other("a stage's build thread panicked".into()))
                        })
                    })
                    .collect()
            });
            for (&s, r) in level.iter().zip(results) {
                let img = r?;
                if let Some(i) = &img {
                    self.lease.add_image(i);
                }
                self.stage_images.insert(s, img);
            }
        }
        let target = plan.needed.last().copied().unwrap_or(plan.target);
        self.stage_images
            .get(&target)
            .cloned()
            .flatten()
            .ok_or_else(|| {
                BuildError::Other("No image was generated. Is your Dockerfile empty?".into())
            })
    }

    /// A builder for one stage of a parallel level: its own temp dir, lease and views,
    /// the same context, cache file and output stream.
    fn fork(&self) -> Result<Builder, BuildError> {
        Ok(Builder {
            store: self.store.clone(),
            lease: self.store.lease(),
            req: self.req.clone(),
            tx: self.tx.clone(),
            tmp: context::TempDir::new(self.tmp.path())?,
            context: self.context.clone(),
            cache: BuildCache::open(&self.root)?,
            root: self.root.clone(),
            runc: self.runc.clone(),
            runc_root: self.runc_root.clone(),
            cache_mounts: self.cache_mounts.clone(),
            epoch: self.epoch,
            stage_images: self.stage_images.clone(),
            counter: 0,
            views: exec::Views::new(),
            puller: self.puller.clone(),
        })
    }

    /// Builds stage `s` (its FROM is step `offset + 1` of `total`); returns its image.
    fn build_stage(
        &mut self,
        plan: &BuildPlan,
        df: &berth_build::Dockerfile,
        s: usize,
        offset: usize,
        total: usize,
        platform_text: &str,
    ) -> Result<Option<Digest>, BuildError> {
        let platform_text = platform_text.to_owned();
        let stage = plan.stages[s].clone();
        let mut n = offset + 1;
        let from_text = df
            .instructions
            .iter()
            .find(|i| i.line == stage.line)
            .map(|i| i.original.clone())
            .unwrap_or_else(|| "FROM".into());
        self.say(format!("Step {n}/{total} : {from_text}\n"))?;
        let (root_key, mut image, base_config) = match &stage.base {
            Base::Scratch => (
                berth_build::cache::base_key("scratch", &platform_text),
                None,
                ImageConfig::default(),
            ),
            Base::Image(name) => {
                let id = self.base_image(name)?;
                let cfg = image_config_of(&self.store.config(&id)?);
                (
                    berth_build::cache::base_key(id.as_str(), &platform_text),
                    Some(id),
                    cfg,
                )
            }
            Base::Stage(b) => {
                let img = self.stage_images.get(b).cloned().ok_or_else(|| {
                    BuildError::Other(format!("stage {b} was not built before stage {s}"))
                })?;
                let cfg = match &img {
                    Some(id) => image_config_of(&self.store.config(id)?),
                    None => ImageConfig::default(),
                };
                let key = match &img {
                    Some(id) => berth_build::cache::base_key(id.as_str(), &platform_text),
                    None => berth_build::cache::base_key("scratch", &platform_text),
                };
                (key, img, cfg)
            }
        };
        match &image {
            Some(id) => self.say(format!(" ---> {}\n", short(id)))?,
            None => self.say(" ---> \n")?,
        }
        let sp = plan.stage_steps(s, &base_config)?;
        if sp.steps.iter().any(|st| st.from_onbuild) {
            let k = sp.steps.iter().filter(|st| st.from_onbuild).count();
            self.say(format!(
                "# Executing {k} build trigger{}\n",
                if k == 1 { "" } else { "s" }
            ))?;
        }
        let mut parent_key = root_key;
        let mut probing = !self.req.no_cache;
        let mut author: Option<String> = None;
        for step in &sp.steps {
            if !step.from_onbuild {
                n += 1;
                self.say(format!(
                    "Step {n}/{total} : {}\n",
                    step.instruction.original
                ))?;
            }
            if let berth_build::Kind::Maintainer { name } = &step.instruction.kind {
                author = Some(name.clone());
            }
            let digest = match &step.op {
                Op::Copy(c) | Op::Add(c) => Some(self.sources_digest(s, step, c)?),
                _ => None,
            };
            let key = berth_build::cache::step_key(
                &parent_key,
                step,
                digest.as_ref().map(|d| d.0.as_str()),
            );
            let hit = if probing {
                self.cache.get(&key).filter(|id| {
                    self.store.resolve(id.as_str()).is_ok_and(|r| {
                        self.lease.add_image(&r.id);
                        true
                    })
                })
            } else {
                None
            };
            let id = match hit {
                Some(id) => {
                    self.say(" ---> Using cache\n")?;
                    id
                }
                None => {
                    probing = false;
                    let id =
                        self.execute(s, step, image.as_ref(), digest.as_ref(), author.as_deref())?;
                    self.cache.put(&key, &id)?;
                    id
                }
            };
            self.say(format!(" ---> {}\n", short(&id)))?;
            image = Some(id);
            parent_key = key;
        }
        Ok(image)
    }

    /// Runs one step on top of `parent` and records the resulting image.
    fn execute(
        &mut self,
        stage: usize,
        step: &Step,
        parent: Option<&Digest>,
        digest: Option<&exec::SourcesDigest>,
        author: Option<&str>,
    ) -> Result<Digest, BuildError> {
        let (parent_config, parent_layers) = match parent {
            Some(id) => {
                let rec = self.store.resolve(id.as_str())?;
                (self.store.config(id)?, rec.layers)
            }
            None => {
                let p = Platform::host();
                (
                    json!({"architecture": p.architecture, "os": p.os, "config": {}, "rootfs": {"type": "layers", "diff_ids": []}, "history": []}),
                    Vec::new(),
                )
            }
        };
        let layer = match &step.op {
            Op::Config => None,
            Op::Workdir { path } => self.workdir_layer(&parent_layers, path, &step.config.user)?,
            Op::Copy(c) | Op::Add(c) => self.copy_layer(stage, step, c, &parent_layers)?,
            Op::Run { .. } => self.run_layer(step, &parent_layers)?,
        };
        let created_by = match (&step.op, digest) {
            (Op::Copy(_) | Op::Add(_), Some(d)) => step
                .copy_created_by(d.1, d.0.trim_start_matches("sha256:"))
                .unwrap_or_else(|| step.history.created_by.clone()),
            _ => step.history.created_by.clone(),
        };
        let now = created(self.epoch);
        let mut config = parent_config;
        if let Some(m) = config.as_object_mut() {
            m.remove("container");
            m.remove("container_config");
            m.remove("id");
            m.remove("parent");
        }
        config["created"] = json!(now);
        config["config"] = serde_json::to_value(&step.config).unwrap_or(json!({}));
        if let Some(a) = author {
            config["author"] = json!(a);
        }
        let mut h = json!({"created": now, "created_by": created_by});
        if layer.is_none() {
            h["empty_layer"] = json!(true);
        }
        match config.get_mut("history").and_then(Value::as_array_mut) {
            Some(list) => list.push(h),
            None => config["history"] = json!([h]),
        }
        let mut layers = parent_layers;
        if let Some(l) = &layer {
            if !config["rootfs"]["diff_ids"].is_array() {
                config["rootfs"] = json!({"type": "layers", "diff_ids": []});
            }
            if let Some(d) = config["rootfs"]["diff_ids"].as_array_mut() {
                d.push(json!(l.diff_id.to_string()));
            }
            layers.push(l.clone());
        }
        Ok(self
            .store
            .create_image(&config, layers, parent, &[], &self.lease)?)
    }
}

/// `<data-root>/build`.
fn build_root(engine: &Engine) -> PathBuf {
    engine.config().data_root.join("build")
}

/// The `berth-runc` binary: next to the running executable (berthd), or `$PATH`.
pub fn default_runc_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("berth-runc")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("berth-runc"))
}

impl Engine {
    /// The checks `build_image` makes before it reads the context: the API layer runs them
    /// first so that a refused build still reads (and discards) the request body, and the
    /// client gets the error instead of a broken pipe.
    pub fn check_build_request(req: &BuildRequest) -> Result<(), EngineError> {
        if let Some(p) = req.platform.as_deref().filter(|p| !p.is_empty()) {
            let host = Platform::host();
            let want = Platform::parse(p).ok_or_else(|| {
                EngineError::InvalidParameter(format!(
                    "invalid platform {p:?}: expected os/arch[/variant]"
                ))
            })?;
            if want.os != host.os || want.architecture != host.architecture {
                return Err(EngineError::InvalidParameter(format!(
                    "platform {p:?} is not supported: this engine builds only for the host platform {host}"
                )));
            }
        }
        for t in &req.tags {
            Reference::parse(t)
                .map_err(|e| EngineError::InvalidParameter(format!("invalid tag {t:?}: {e}")))?;
        }
        Ok(())
    }

    /// `POST /build`: builds from a context tar stream. Returns the message stream; the
    /// build runs in the background and its last message is the result.
    pub async fn build_image(
        self: &std::sync::Arc<Self>,
        context: ByteStream,
        req: BuildRequest,
    ) -> Result<mpsc::Receiver<BuildMessage>, EngineError> {
        Self::check_build_request(&req)?;
        let root = build_root(self);
        let (tx, rx) = mpsc::channel(64);
        let reader = StreamReader::new(context);
        let store = self.images.clone();
        let runc_root = self.config().exec_root.join("build-runc");
        let events = self.events.clone();
        let handle = tokio::runtime::Handle::current();
        let engine = self.clone();
        let puller: Puller = std::sync::Arc::new(move |name: &str| {
            let r = Reference::parse(name).map_err(|e| e.to_string())?;
            let tag = match r.digest() {
                Some(d) => d.to_string(),
                None => r.tag().unwrap_or("latest").to_owned(),
            };
            let (tx, _rx) = mpsc::unbounded_channel();
            handle
                .block_on(engine.pull_image(
                    &r.name(),
                    Some(&tag),
                    None,
                    &crate::distribution::RegistryAuth::default(),
                    tx,
                ))
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        tokio::task::spawn_blocking(move || {
            let err_tx = tx.clone();
            let result = (|| -> Result<(Digest, Vec<Reference>), BuildError> {
                let tmp = context::TempDir::new(&root.join("tmp"))?;
                let ctx_dir = tmp.path().join("context");
                let t0 = std::time::Instant::now();
                let df_name = if req.dockerfile.is_empty() {
                    "Dockerfile".to_owned()
                } else {
                    req.dockerfile.clone()
                };
                let context::Received {
                    dockerfile,
                    index,
                    small,
                    raw,
                } = context::receive(
                    reader,
                    &tmp.path().join("context.tar"),
                    &req.dockerfile,
                    &[format!(
                        "{}.dockerignore",
                        berth_build::copy::clean(df_name.trim_start_matches('/'))
                    )],
                )?;
                let t1 = std::time::Instant::now();
                let context = context::Context::new(ctx_dir, &dockerfile.rel, index, &small, raw)?;
                tracing::debug!(
                    receive_ms = (t1 - t0).as_millis() as u64,
                    index_ms = t1.elapsed().as_millis() as u64,
                    files = context.entries.len(),
                    "build context ready"
                );
                let epoch = req
                    .build_args
                    .get("SOURCE_DATE_EPOCH")
                    .and_then(|v| v.parse::<i64>().ok());
                let mut b = Builder {
                    lease: store.lease(),
                    store: store.clone(),
                    req: req.clone(),
                    tx: tx.clone(),
                    tmp,
                    context,
                    cache: BuildCache::open(&root)?,
                    root: root.clone(),
                    runc: default_runc_path(),
                    runc_root,
                    cache_mounts: root.join("cache-mounts"),
                    epoch,
                    stage_images: BTreeMap::new(),
                    counter: 0,
                    views: exec::Views::new(),
                    puller,
                };
                let t2 = std::time::Instant::now();
                let id = b.run(&dockerfile.text)?;
                tracing::debug!(
                    steps_ms = t2.elapsed().as_millis() as u64,
                    "build steps done"
                );
                let mut tags = Vec::new();
                for t in &req.tags {
                    tags.push(store.tag(id.as_str(), t)?);
                }
                if req.quiet {
                    // moby: with -q the output is just the image id
                    let _ = tx.blocking_send(BuildMessage::Aux(json!({"ID": id.to_string()})));
                    let _ = tx.blocking_send(BuildMessage::Stream(format!("{id}\n")));
                } else {
                    let _ = tx.blocking_send(BuildMessage::Aux(json!({"ID": id.to_string()})));
                    b.say(format!("Successfully built {}\n", short(&id)))?;
                    for t in &tags {
                        b.say(format!("Successfully tagged {}\n", t.familiar()))?;
                    }
                }
                Ok((id, tags))
            })();
            match result {
                Ok((id, tags)) => {
                    for t in &tags {
                        events.publish(
                            crate::events::Event::new("image", "tag", id.as_str())
                                .attr("name", &t.familiar()),
                        );
                    }
                }
                Err(e) => {
                    let _ = err_tx.blocking_send(BuildMessage::Error(e.to_string()));
                }
            }
        });
        Ok(rx)
    }

    /// `POST /build/prune`: forgets the build cache and removes its untagged images
    /// that no container uses. Returns the removed ids and the bytes reclaimed.
    pub async fn prune_build_cache(&self) -> Result<(Vec<String>, u64), EngineError> {
        let root = build_root(self);
        let store = self.images.clone();
        tokio::task::spawn_blocking(move || -> Result<(Vec<String>, u64), EngineError> {
            let cache = BuildCache::open(&root).map_err(|e| EngineError::Task(e.to_string()))?;
            let ids = cache
                .clear()
                .map_err(|e| EngineError::Task(e.to_string()))?;
            let (removed, space) = store.remove_untagged(&ids)?;
            let mounts = root.join("cache-mounts");
            let mut space = space;
            if mounts.exists() {
                space += context::dir_size(&mounts);
                let _ = std::fs::remove_dir_all(&mounts);
            }
            Ok((removed.iter().map(|d| d.to_string()).collect(), space))
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))?
    }
}
