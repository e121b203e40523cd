//! Stages, ARG/ENV scoping, expansion and the image config each step produces.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{History, ImageConfig};
use crate::copy::{Chown, CopyError};
use crate::instruction::{Instruction, Kind};
use crate::lex::{LexError, Lexer};
use crate::parser::{Dockerfile, ParseError};

/// Errors of planning a build.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("dockerfile line {line}: {source}")]
    Expand { line: usize, source: LexError },
    #[error("dockerfile line {line}: {instruction} {source}")]
    Copy {
        line: usize,
        instruction: &'static str,
        source: CopyError,
    },
    #[error("dockerfile line {line}: {message}")]
    Invalid { line: usize, message: String },
    #[error("no build stage in the dockerfile (no FROM instruction)")]
    NoStages,
    #[error(
        "dockerfile line {line}: {instruction} is not allowed before the first FROM (only ARG is)"
    )]
    BeforeFrom {
        line: usize,
        instruction: &'static str,
    },
    #[error("dockerfile line {line}: duplicate stage name {name:?}")]
    DuplicateStage { line: usize, name: String },
    #[error(
        "dockerfile line {line}: invalid name for build stage: {name:?}, name can't start with a number or contain symbols"
    )]
    InvalidStageName { line: usize, name: String },
    #[error("target stage {0:?} could not be found")]
    TargetNotFound(String),
    #[error(
        "dockerfile line {line}: platform {platform:?} is not supported, only the host platform {host:?} is"
    )]
    Platform {
        line: usize,
        platform: String,
        host: String,
    },
    #[error("stage index {0} is out of range")]
    NoSuchStage(usize),
    #[error("onbuild trigger {trigger:?} of the base image: {source}")]
    Onbuild { trigger: String, source: ParseError },
}

/// A platform (`linux/amd64`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on.
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        }
        .to_string();
        Self {
            os: "linux".to_string(),
            architecture,
            variant: None,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.split('/');
        let os = it.next()?.to_ascii_lowercase();
        let architecture = it.next()?.to_ascii_lowercase();
        let variant = it.next().map(str::to_string);
        if os.is_empty() || architecture.is_empty() || it.next().is_some() {
            return None;
        }
        Some(Self {
            os,
            architecture,
            variant,
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What a build is asked to do.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub platform: Platform,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            build_args: BTreeMap::new(),
            target: None,
            platform: Platform::host(),
        }
    }
}

/// Proxy build args usable in RUN without an ARG and kept out of history.
pub const PROXY_ARGS: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The base of a stage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Base {
    Scratch,
    Image(String),
    Stage(usize),
}

/// Where `COPY --from` / `RUN --mount from=` reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Stage(usize),
    Image(String),
}

/// A build stage.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Stage {
    pub index: usize,
    pub name: Option<String>,
    pub base: Base,
    pub platform: Option<String>,
    pub line: usize,
    pub instructions: Vec<Instruction>,
    /// Earlier stages this one needs (base and `--from`).
    pub deps: BTreeSet<usize>,
    /// Images read by `COPY --from=<image>` or `--mount from=<image>`.
    pub images: BTreeSet<String>,
}

/// The stages of a Dockerfile and which of them a target needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BuildPlan {
    pub stages: Vec<Stage>,
    pub target: usize,
    /// Stages the target needs, in dependency order (the target last).
    pub needed: Vec<usize>,
    /// `needed` grouped so that the stages of one group do not depend on each other and
    /// every group depends only on earlier groups: build a group in parallel.
    pub levels: Vec<Vec<usize>>,
    /// Global (before the first FROM) ARG values after build-arg overrides.
    pub meta_args: BTreeMap<String, String>,
    #[serde(skip)]
    pub(crate) options: BuildOptions,
    #[serde(skip)]
    escape: char,
}

/// A `RUN --mount=...`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Mount {
    #[serde(rename = "type")]
    pub kind: String,
    pub target: String,
    pub source: Option<String>,
    pub from: Option<String>,
    pub id: Option<String>,
    pub sharing: Option<String>,
    pub readonly: bool,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub other: BTreeMap<String, String>,
    /// `from` resolved to an earlier stage or an image (filled in by the planner).
    pub from_source: Option<Source>,
}

/// Parses one `--mount` value.
pub fn parse_mount(value: &str) -> Result<Mount, String> {
    let mut m = Mount {
        kind: "bind".to_string(),
        ..Default::default()
    };
    for field in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let need =
            |v: Option<String>| v.ok_or_else(|| format!("mount option {k:?} requires a value"));
        let num = |v: Option<String>, radix: u32| -> Result<u32, String> {
            let v = v.ok_or_else(|| format!("mount option {k:?} requires a value"))?;
            u32::from_str_radix(&v, radix)
                .map_err(|_| format!("invalid value {v:?} for mount option {k:?}"))
        };
        match k.as_str() {
            "type" => m.kind = need(v)?,
            "target" | "dst" | "destination" => m.target = need(v)?,
            "source" | "src" => m.source = Some(need(v)?),
            "from" => m.from = Some(need(v)?),
            "id" => m.id = Some(need(v)?),
            "sharing" => m.sharing = Some(need(v)?),
            "readonly" | "ro" => m.readonly = v.as_deref().is_none_or(|x| x == "true" || x == "1"),
            "rw" | "readwrite" => {
                m.readonly = !v.as_deref().is_none_or(|x| x == "true" || x == "1")
            }
            "mode" => m.mode = Some(num(v, 8)?),
            "uid" => m.uid = Some(num(v, 10)?),
            "gid" => m.gid = Some(num(v, 10)?),
            _ => {
                m.other.insert(k, v.unwrap_or_default());
            }
        }
    }
    if !matches!(
        m.kind.as_str(),
        "bind" | "cache" | "tmpfs" | "secret" | "ssh"
    ) {
        return Err(format!("mount type {:?} not supported", m.kind));
    }
    if let Some(s) = &m.sharing
        && !matches!(s.as_str(), "shared" | "private" | "locked")
    {
        return Err(format!("unsupported sharing value {s:?}"));
    }
    if m.target.is_empty() && !matches!(m.kind.as_str(), "secret" | "ssh") {
        return Err("mount target is required".to_string());
    }
    Ok(m)
}

/// A COPY or ADD after expansion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyOp {
    /// Source paths/patterns relative to the context (or to `from`); heredoc sources excluded.
    pub sources: Vec<String>,
    /// Heredoc sources: the file name and its (expanded) content.
    pub heredocs: Vec<(String, String)>,
    /// The destination as written after expansion.
    pub dest: String,
    /// The destination resolved against WORKDIR (trailing `/` kept).
    pub dest_resolved: String,
    pub from: Option<Source>,
    pub chown: Option<Chown>,
    pub chmod: Option<u32>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    /// ADD only.
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
}

/// What the engine does for a step.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Run `argv` in a container of the current image state.
    Run {
        argv: Vec<String>,
        /// A `RUN <<EOF` whose body starts with `#!`: write it to a file and execute it.
        script: Option<String>,
        shell_form: bool,
        /// Image Env plus the ARGs in scope (build args reach RUN as environment).
        env: Vec<String>,
        working_dir: String,
        user: String,
        mounts: Vec<Mount>,
        network: Option<String>,
    },
    Copy(CopyOp),
    Add(CopyOp),
    /// Create `path` if missing (the classic builder commits a container for WORKDIR;
    /// the layer is empty, and `empty_layer` stays true, when the directory existed).
    Workdir {
        path: String,
    },
    /// Only the image config changes (no layer).
    Config,
}

/// One step of a stage: the expanded operation and the config after it. `history.empty_layer`
/// is the planner's expectation; Docker derives it from the real diff (`NewChildImage`), so
/// the engine sets it from the layer it produced for `Run`/`Copy`/`Add`/`Workdir`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Step {
    pub line: usize,
    pub instruction: Instruction,
    pub op: Op,
    /// The image config after this step.
    pub config: ImageConfig,
    pub history: History,
    /// Build args (ARG values) this step depends on.
    pub used_args: BTreeMap<String, String>,
    /// True for a trigger inherited from the base image's ONBUILD.
    pub from_onbuild: bool,
}

impl Step {
    /// The instruction after expansion as the cache key sees it.
    pub fn cache_text(&self) -> String {
        serde_json::json!({ "op": self.op, "config": self.config }).to_string()
    }

    /// Docker classic `created_by` for a COPY/ADD once the engine knows the source hash:
    /// `/bin/sh -c #(nop) COPY file:<hex> in /dest `. `kind` is `file`, `dir` or `multi`.
    pub fn copy_created_by(&self, kind: &str, hex: &str) -> Option<String> {
        let (name, c) = match &self.op {
            Op::Copy(c) => ("COPY", c),
            Op::Add(c) => ("ADD", c),
            _ => return None,
        };
        let shell = self.config.shell_or_default().join(" ");
        Some(format!("{shell} #(nop) {name} {kind}:{hex} in {} ", c.dest))
    }
}

/// The steps of one stage and its final config.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StagePlan {
    pub index: usize,
    pub steps: Vec<Step>,
    pub config: ImageConfig,
    /// MAINTAINER (the image's `author`).
    pub author: Option<String>,
}

pub(crate) fn platform_args(p: &Platform, prefix: &str) -> Vec<(String, String)> {
    vec![
        (format!("{prefix}PLATFORM"), p.to_string()),
        (format!("{prefix}OS"), p.os.clone()),
        (format!("{prefix}ARCH"), p.architecture.clone()),
        (
            format!("{prefix}VARIANT"),
            p.variant.clone().unwrap_or_default(),
        ),
    ]
}

fn is_valid_stage_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || matches!(x, '-' | '_' | '.'))
}

pub(crate) fn expand_err(line: usize) -> impl Fn(LexError) -> PlanError {
    move |source| PlanError::Expand { line, source }
}

impl BuildPlan {
    /// Splits the Dockerfile into stages, resolves FROM and `--from` references and
    /// computes the stages `options.target` needs.
    pub fn new(df: &Dockerfile, options: BuildOptions) -> Result<Self, PlanError> {
        let escape = df.directives.escape;
        let lexer = Lexer::new(escape);
        let mut meta: BTreeMap<String, String> = BTreeMap::new();
        let mut auto: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in platform_args(&options.platform, "TARGET")
            .into_iter()
            .chain(platform_args(&Platform::host(), "BUILD"))
        {
            auto.insert(k, v);
        }
        let mut stages: Vec<Stage> = Vec::new();
        for ins in &df.instructions {
            match &ins.kind {
                Kind::Arg { args } if stages.is_empty() => {
                    for (k, default) in args {
                        let env = |n: &str| meta.get(n).cloned().or_else(|| auto.get(n).cloned());
                        let key = lexer
                            .process_word(k, &env)
                            .map_err(expand_err(ins.line))?
                            .value;
                        let value = match options.build_args.get(&key) {
                            Some(v) => Some(v.clone()),
                            None => match default {
                                Some(d) => Some(
                                    lexer
                                        .process_word(d, &env)
                                        .map_err(expand_err(ins.line))?
                                        .value,
                                ),
                                None => None,
                            },
                        };
                        match value {
                            Some(v) => {
                                meta.insert(key, v);
                            }
                            None => {
                                meta.remove(&key);
                            }
                        }
                    }
                }
                Kind::From { image, name } => {
                    let env = |n: &str| meta.get(n).cloned().or_else(|| auto.get(n).cloned());
                    let img = lexer
                        .process_word(image, &env)
                        .map_err(expand_err(ins.line))?
                        .value;
                    if img.is_empty() {
                        return Err(PlanError::Invalid {
                            line: ins.line,
                            message: format!("base name ({image}) should not be blank"),
                        });
                    }
                    let platform = match ins.flag("platform") {
                        Some(p) => {
                            let p = lexer
                                .process_word(p, &env)
                                .map_err(expand_err(ins.line))?
                                .value;
                            let ok = Platform::parse(&p).is_some_and(|pp| {
                                pp.os == options.platform.os
                                    && pp.architecture == options.platform.architecture
                            });
                            if !ok {
                                return Err(PlanError::Platform {
                                    line: ins.line,
                                    platform: p,
                                    host: options.platform.to_string(),
                                });
                            }
                            Some(p)
                        }
                        None => None,
                    };
                    if let Some(n) = name {
                        if !is_valid_stage_name(n) {
                            return Err(PlanError::InvalidStageName {
                                line: ins.line,
                                name: n.clone(),
                            });
                        }
                        if stages.iter().any(|s| s.name.as_deref() == Some(n)) {
                            return Err(PlanError::DuplicateStage {
                                line: ins.line,
                                name: n.clone(),
                            });
                        }
                    }
                    let lower = img.to_ascii_lowercase();
                    let base = if lower == "scratch" {
                        Base::Scratch
                    } else if let Some(s) = stages
                        .iter()
                        .find(|s| s.name.as_deref() == Some(lower.as_str()))
                    {
                        Base::Stage(s.index)
                    } else {
                        Base::Image(img)
                    };
                    let mut deps = BTreeSet::new();
                    if let Base::Stage(i) = base {
                        deps.insert(i);
                    }
                    stages.push(Stage {
                        index: stages.len(),
                        name: name.clone(),
                        base,
                        platform,
                        line: ins.line,
                        instructions: Vec::new(),
                        deps,
                        images: BTreeSet::new(),
                    });
                }
                _ => match stages.last_mut() {
                    Some(s) => s.instructions.push(ins.clone()),
                    None => {
                        return Err(PlanError::BeforeFrom {
                            line: ins.line,
                            instruction: ins.name(),
                        });
                    }
                },
            }
        }
        if stages.is_empty() {
            return Err(PlanError::NoStages);
        }
        // --from references, expanded with the ARGs visible at that point (no ENV)
        for idx in 0..stages.len() {
            let mut args: BTreeMap<String, String> = BTreeMap::new();
            let mut refs: Vec<(usize, String)> = Vec::new();
            for ins in &stages[idx].instructions {
                if let Kind::Arg { args: decl } = &ins.kind {
                    for (k, d) in decl {
                        let v = options
                            .build_args
                            .get(k)
                            .cloned()
                            .or_else(|| d.clone())
                            .or_else(|| meta.get(k).cloned())
                            .or_else(|| auto.get(k).cloned());
                        if let Some(v) = v {
                            args.insert(k.clone(), v);
                        }
                    }
                }
                let env = |n: &str| args.get(n).cloned();
                let mut from_values: Vec<String> = Vec::new();
                if matches!(ins.kind, Kind::Copy { .. })
                    && let Some(f) = ins.flag("from")
                {
                    from_values.push(f.to_string());
                }
                if matches!(ins.kind, Kind::Run { .. }) {
                    for m in ins.flag_values("mount") {
                        let mv = lexer
                            .process_word(m, &env)
                            .map_err(expand_err(ins.line))?
                            .value;
                        if let Ok(mm) = parse_mount(&mv)
                            && let Some(f) = mm.from
                        {
                            from_values.push(f);
                        }
                    }
                }
                for f in from_values {
                    let v = lexer
                        .process_word(&f, &env)
                        .map_err(expand_err(ins.line))?
                        .value;
                    refs.push((ins.line, v));
                }
            }
            for (line, r) in refs {
                match resolve_source(&stages[..idx], &r, idx, line)? {
                    Source::Stage(i) => {
                        stages[idx].deps.insert(i);
                    }
                    Source::Image(img) => {
                        stages[idx].images.insert(img);
                    }
                }
            }
        }
        let target = match &options.target {
            Some(t) => {
                let tl = t.to_ascii_lowercase();
                stages
                    .iter()
                    .find(|s| s.name.as_deref() == Some(tl.as_str()))
                    .map(|s| s.index)
                    .ok_or_else(|| PlanError::TargetNotFound(t.clone()))?
            }
            None => stages.len() - 1,
        };
        // transitive closure; deps always point to earlier stages, so index order is topological
        let mut need = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(s) = todo.pop() {
            if need.insert(s) {
                todo.extend(stages[s].deps.iter().copied());
            }
        }
        let needed: Vec<usize> = need.into_iter().collect();
        let mut level: BTreeMap<usize, usize> = BTreeMap::new();
        for &s in &needed {
            let l = stages[s]
                .deps
                .iter()
                .map(|d| level.get(d).copied().unwrap_or(0) + 1)
                .max()
                .unwrap_or(0);
            level.insert(s, l);
        }
        let depth = level.values().copied().max().unwrap_or(0);
        let mut levels = vec![Vec::new(); depth + 1];
        for (&s, &l) in &level {
            levels[l].push(s);
        }
        Ok(Self {
            stages,
            target,
            needed,
            levels,
            meta_args: meta,
            options,
            escape,
        })
    }

    /// The target platform of the build.
    pub fn platform(&self) -> &Platform {
        &self.options.platform
    }

    /// Build args given but declared by no ARG in the stages built (Docker warns about them).
    pub fn unused_build_args(&self) -> Vec<String> {
        let mut declared: BTreeSet<&str> = self.meta_args.keys().map(String::as_str).collect();
        for &s in &self.needed {
            for ins in &self.stages[s].instructions {
                if let Kind::Arg { args } = &ins.kind {
                    declared.extend(args.iter().map(|(k, _)| k.as_str()));
                }
            }
        }
        self.options
            .build_args
            .keys()
            .filter(|k| !declared.contains(k.as_str()) && !PROXY_ARGS.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    /// Images the needed stages pull: FROM bases and `--from` images.
    pub fn external_images(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for &s in &self.needed {
            if let Base::Image(i) = &self.stages[s].base {
                out.insert(i.clone());
            }
            out.extend(self.stages[s].images.iter().cloned());
        }
        out
    }

    /// Plans the steps of stage `index` on top of `base` (the config of the base image,
    /// or the final config of the base stage; default for `scratch`).
    pub fn stage_steps(&self, index: usize, base: &ImageConfig) -> Result<StagePlan, PlanError> {
        let stage = self
            .stages
            .get(index)
            .ok_or(PlanError::NoSuchStage(index))?;
        let mut st = crate::step::StageState {
            plan: self,
            stage,
            lexer: Lexer::new(self.escape),
            config: base.clone(),
            args: BTreeMap::new(),
            cmd_set: false,
            author: None,
        };
        st.config.on_build.clear();
        let mut steps = Vec::new();
        // ONBUILD triggers of the base run first
        for trigger in &base.on_build {
            let lines: Vec<&str> = trigger.lines().collect();
            let raws =
                crate::parser::split_instructions(&lines, self.escape).map_err(|source| {
                    PlanError::Onbuild {
                        trigger: trigger.clone(),
                        source,
                    }
                })?;
            for raw in raws {
                let ins = crate::instruction::from_raw(raw, self.escape).map_err(|source| {
                    PlanError::Onbuild {
                        trigger: trigger.clone(),
                        source,
                    }
                })?;
                let mut step = st.step(&ins)?;
                step.from_onbuild = true;
                steps.push(step);
            }
        }
        for ins in &stage.instructions {
            steps.push(st.step(ins)?);
        }
        Ok(StagePlan {
            index,
            steps,
            config: st.config,
            author: st.author,
        })
    }

    /// Plans every needed stage, asking `base_config` for the config of external base
    /// images (called once per FROM image). Returns plans in `needed` order.
    pub fn plan_all<E>(
        &self,
        base_config: &mut dyn FnMut(&str) -> Result<ImageConfig, E>,
    ) -> Result<Vec<StagePlan>, PlanAllError<E>> {
        let mut done: BTreeMap<usize, StagePlan> = BTreeMap::new();
        let mut out = Vec::new();
        for &s in &self.needed {
            let base = match &self.stages[s].base {
                Base::Scratch => ImageConfig::default(),
                Base::Image(i) => base_config(i).map_err(PlanAllError::Base)?,
                Base::Stage(b) => done
                    .get(b)
                    .map(|p| p.config.clone())
                    .ok_or(PlanAllError::Plan(PlanError::NoSuchStage(*b)))?,
            };
            let p = self.stage_steps(s, &base).map_err(PlanAllError::Plan)?;
            done.insert(s, p.clone());
            out.push(p);
        }
        Ok(out)
    }
}

impl BuildPlan {
    /// BuildKit's progress label for step `step` of stage `stage` (step 0 is the FROM):
    /// `[build 2/5] RUN npm ci`, `[stage-1 1/3] FROM alpine`, or `[2/3] ...` for a
    /// single-stage Dockerfile. `instruction` is the text to show.
    pub fn progress_label(
        &self,
        stage: usize,
        step: usize,
        total_steps: usize,
        instruction: &str,
    ) -> String {
        let n = total_steps + 1;
        let i = step + 1;
        if self.stages.len() == 1 {
            return format!("[{i}/{n}] {instruction}");
        }
        let name = self
            .stages
            .get(stage)
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| format!("stage-{stage}"));
        format!("[{name} {i}/{n}] {instruction}")
    }
}

/// Errors of [`BuildPlan::plan_all`].
#[derive(Debug, thiserror::Error)]
pub enum PlanAllError<E> {
    #[error("{0}")]
    Plan(PlanError),
    #[error("base image config: {0}")]
    Base(E),
}

pub(crate) fn resolve_source(
    earlier: &[Stage],
    r: &str,
    current: usize,
    line: usize,
) -> Result<Source, PlanError> {
    let lower = r.to_ascii_lowercase();
    if let Some(s) = earlier
        .iter()
        .find(|s| s.name.as_deref() == Some(lower.as_str()))
    {
        return Ok(Source::Stage(s.index));
    }
    if !r.is_empty() && r.chars().all(|c| c.is_ascii_digit()) {
        let i: usize = r.parse().map_err(|_| PlanError::Invalid {
            line,
            message: format!("invalid from flag value {r:?}"),
        })?;
        if i >= current {
            return Err(PlanError::Invalid {
                line,
                message: format!(
                    "invalid from flag value {r}: refers to current or future build stage"
                ),
            });
        }
        return Ok(Source::Stage(i));
    }
    if r.is_empty() {
        return Err(PlanError::Invalid {
            line,
            message: "from flag value must not be empty".to_string(),
        });
    }
    Ok(Source::Image(r.to_string()))
}
