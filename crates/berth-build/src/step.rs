//! One instruction → one [`Step`]: expansion with ARG/ENV scoping, the config it produces
//! and its classic-builder history.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{self, Healthcheck, History, ImageConfig};
use crate::copy::{self, CopyError};
use crate::instruction::{CommandLine, HealthcheckArgs, Instruction, Kind};
use crate::lex::Lexer;
use crate::parser::Heredoc;
use crate::plan::{
    BuildPlan, CopyOp, Op, PROXY_ARGS, PlanError, Platform, Stage, Step, expand_err, parse_mount,
    platform_args, resolve_source,
};

pub(crate) struct StageState<'a> {
    pub(crate) plan: &'a BuildPlan,
    pub(crate) stage: &'a Stage,
    pub(crate) lexer: Lexer,
    pub(crate) config: ImageConfig,
    /// ARGs declared in this stage with their values (None = declared, no value).
    pub(crate) args: BTreeMap<String, Option<String>>,
    pub(crate) cmd_set: bool,
    pub(crate) author: Option<String>,
}

fn nop(config: &ImageConfig, text: &str, two_arg: bool) -> History {
    let shell = config.shell_or_default().join(" ");
    let sep = if two_arg { "  " } else { " " };
    History {
        created_by: format!("{shell} #(nop){sep}{text}"),
        empty_layer: true,
    }
}

fn parse_ports(p: &str) -> Result<Vec<String>, String> {
    let (range, proto) = match p.split_once('/') {
        Some((r, pr)) => (r, pr.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    // "ip:host:container" forms are not allowed in EXPOSE; take the container part
    let range = range.rsplit(':').next().unwrap_or(range);
    let bad = || format!("invalid containerPort: {range}");
    let (a, b) = match range.split_once('-') {
        Some((a, b)) => (a, b),
        None => (range, range),
    };
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if b < a {
        return Err(format!("invalid range specified for container: {range}"));
    }
    Ok((a..=b).map(|x| format!("{x}/{proto}")).collect())
}

impl StageState<'_> {
    /// Value of an ARG in scope (ENV does not count).
    fn arg_value(&self, name: &str) -> Option<String> {
        self.args.get(name).cloned().flatten()
    }

    /// Lookup for expansion: ENV wins over ARG.
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.config.env_get(name) {
            return Some(v.to_string());
        }
        self.arg_value(name)
    }

    fn expand(
        &self,
        word: &str,
        line: usize,
        used: &mut BTreeMap<String, String>,
    ) -> Result<String, PlanError> {
        let env = |n: &str| self.lookup(n);
        let e = self
            .lexer
            .process_word(word, &env)
            .map_err(expand_err(line))?;
        self.record(&e.used, used);
        Ok(e.value)
    }

    fn expand_words(
        &self,
        word: &str,
        line: usize,
        used: &mut BTreeMap<String, String>,
    ) -> Result<Vec<String>, PlanError> {
        let env = |n: &str| self.lookup(n);
        let (w, u) = self
            .lexer
            .process_words(word, &env)
            .map_err(expand_err(line))?;
        self.record(&u, used);
        Ok(w)
    }

    /// Notes the ARGs an expansion read (names served by ENV are not build args).
    fn record(&self, names: &BTreeSet<String>, used: &mut BTreeMap<String, String>) {
        for n in names {
            if self.config.env_get(n).is_none()
                && let Some(v) = self.arg_value(n)
            {
                used.insert(n.clone(), v);
            }
        }
    }

    /// ARGs with values not shadowed by ENV, as RUN sees them.
    fn run_args(&self) -> BTreeMap<String, String> {
        self.args
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .filter(|(k, _)| self.config.env_get(k).is_none())
            .collect()
    }

    pub(crate) fn step(&mut self, ins: &Instruction) -> Result<Step, PlanError> {
        let line = ins.line;
        let mut used = BTreeMap::new();
        let invalid = |message: String| PlanError::Invalid { line, message };
        let mut op = Op::Config;
        let history: History;
        match &ins.kind {
            Kind::From { .. } => {
                return Err(invalid("FROM inside a stage".to_string()));
            }
            Kind::Arg { args } => {
                let mut parts = Vec::new();
                for (k, default) in args {
                    let key = self.expand(k, line, &mut used)?;
                    let value = match self.plan.options.build_args.get(&key) {
                        Some(v) => Some(v.clone()),
                        None => match default {
                            Some(d) => Some(self.expand(d, line, &mut used)?),
                            None => self.plan.meta_args.get(&key).cloned().or_else(|| {
                                platform_args(&self.plan.options.platform, "TARGET")
                                    .into_iter()
                                    .chain(platform_args(&Platform::host(), "BUILD"))
                                    .find(|(n, _)| *n == key)
                                    .map(|(_, v)| v)
                            }),
                        },
                    };
                    parts.push(match default {
                        Some(d) => format!("{key}={d}"),
                        None => key.clone(),
                    });
                    self.args.insert(key, value);
                }
                history = nop(&self.config, &format!("ARG {}", parts.join(" ")), true);
            }
            Kind::Env { pairs } => {
                let mut expanded = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(k, line, &mut used)?;
                    if k.is_empty() {
                        return Err(invalid("ENV names can not be blank".to_string()));
                    }
                    let v = self.expand(v, line, &mut used)?;
                    expanded.push((k, v));
                }
                let mut text = String::from("ENV");
                for (k, v) in &expanded {
                    self.config.env_set(k, v);
                    text.push_str(&format!(" {k}={v}"));
                }
                history = nop(&self.config, &text, true);
            }
            Kind::Label { pairs } => {
                let mut text = String::from("LABEL");
                for (k, v) in pairs {
                    let k = self.expand(k, line, &mut used)?;
                    if k.is_empty() {
                        return Err(invalid("LABEL names can not be blank".to_string()));
                    }
                    let v = self.expand(v, line, &mut used)?;
                    text.push_str(&format!(" {k}={v}"));
                    self.config.labels.insert(k, v);
                }
                history = nop(&self.config, &text, true);
            }
            Kind::Maintainer { name } => {
                self.author = Some(name.clone());
                history = nop(&self.config, &format!("MAINTAINER {name}"), true);
            }
            Kind::Workdir { path } => {
                let p = self.expand(path, line, &mut used)?;
                let wd = if p.starts_with('/') {
                    copy::clean(&p)
                } else {
                    copy::clean(&format!("/{}/{}", self.config.working_dir, p))
                };
                self.config.working_dir = wd.clone();
                history = nop(&self.config, &format!("WORKDIR {wd}"), false);
                op = Op::Workdir { path: wd };
            }
            Kind::User { user } => {
                let u = self.expand(user, line, &mut used)?;
                self.config.user = u.clone();
                history = nop(&self.config, &format!("USER {u}"), true);
            }
            Kind::Expose { ports } => {
                let mut written = Vec::new();
                for p in ports {
                    for w in self.expand_words(p, line, &mut used)? {
                        for port in parse_ports(&w).map_err(invalid)? {
                            self.config.exposed_ports.insert(port, config::Empty {});
                        }
                        written.push(w);
                    }
                }
                history = nop(&self.config, &format!("EXPOSE {}", written.join(" ")), true);
            }
            Kind::Volume { paths } => {
                let mut vols = Vec::new();
                for p in paths {
                    let v = self.expand(p, line, &mut used)?;
                    if v.trim().is_empty() {
                        return Err(invalid(
                            "VOLUME specified can not be an empty string".to_string(),
                        ));
                    }
                    self.config.volumes.insert(v.clone(), config::Empty {});
                    vols.push(v);
                }
                history = nop(&self.config, &format!("VOLUME [{}]", vols.join(" ")), true);
            }
            Kind::Stopsignal { signal } => {
                let s = self.expand(signal, line, &mut used)?;
                if !valid_signal(&s) {
                    return Err(invalid(format!("invalid signal: {s}")));
                }
                self.config.stop_signal = Some(s.clone());
                history = nop(&self.config, &format!("STOPSIGNAL {s}"), true);
            }
            Kind::Shell { shell } => {
                self.config.shell = Some(shell.clone());
                history = nop(&self.config, &format!("SHELL [{}]", shell.join(" ")), true);
            }
            Kind::Cmd { cmd } => {
                let argv = cmd.to_argv(&self.config.shell_or_default());
                history = nop(
                    &self.config,
                    &format!("CMD {}", config::go_quote_list(&argv)),
                    true,
                );
                self.config.cmd = Some(argv);
                self.cmd_set = true;
            }
            Kind::Entrypoint { cmd } => {
                let argv = match cmd {
                    CommandLine::Exec(v) => v.clone(),
                    CommandLine::Shell(s) if s.is_empty() => Vec::new(),
                    CommandLine::Shell(_) => cmd.to_argv(&self.config.shell_or_default()),
                };
                history = nop(
                    &self.config,
                    &format!("ENTRYPOINT {}", config::go_quote_list(&argv)),
                    true,
                );
                self.config.entrypoint = Some(argv);
                if !self.cmd_set {
                    self.config.cmd = None;
                }
            }
            Kind::Healthcheck { check } => {
                let h = match check {
                    HealthcheckArgs::None => Healthcheck {
                        test: vec!["NONE".to_string()],
                        ..Default::default()
                    },
                    HealthcheckArgs::Cmd(c) => {
                        let test = match c {
                            CommandLine::Exec(v) => {
                                let mut t = vec!["CMD".to_string()];
                                t.extend(v.iter().cloned());
                                t
                            }
                            CommandLine::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                        };
                        let mut h = Healthcheck {
                            test,
                            ..Default::default()
                        };
                        for (flag, slot, label) in [
                            ("interval", &mut h.interval, "Interval"),
                            ("timeout", &mut h.timeout, "Timeout"),
                            ("start-period", &mut h.start_period, "StartPeriod"),
                            ("start-interval", &mut h.start_interval, "StartInterval"),
                        ] {
                            if let Some(v) = ins.flag(flag) {
                                let v = self.expand(v, line, &mut used)?;
                                let d = config::parse_go_duration(&v)
                                    .map_err(|e| invalid(format!("--{flag}: {e}")))?;
                                if d != 0 && d < 1_000_000 {
                                    return Err(invalid(format!(
                                        "{label} {v:?} cannot be less than 1ms"
                                    )));
                                }
                                if d < 0 {
                                    return Err(invalid(format!(
                                        "{label} {v:?} cannot be negative"
                                    )));
                                }
                                *slot = d;
                            }
                        }
                        if let Some(v) = ins.flag("retries") {
                            let v = self.expand(v, line, &mut used)?;
                            let r: i64 = v
                                .parse()
                                .map_err(|_| invalid(format!("--retries: invalid number {v:?}")))?;
                            if r < 0 {
                                return Err(invalid("--retries cannot be negative".to_string()));
                            }
                            h.retries = r;
                        }
                        h
                    }
                };
                history = nop(&self.config, &config::healthcheck_history(&h), true);
                self.config.healthcheck = Some(h);
            }
            Kind::Onbuild { expression, .. } => {
                self.config.on_build.push(expression.clone());
                history = nop(&self.config, &format!("ONBUILD {expression}"), true);
            }
            Kind::Run { cmd } => {
                let shell = self.config.shell_or_default();
                let run_args = self.run_args();
                let (argv, script, shell_form) = run_argv(cmd, &shell, &ins.heredocs);
                let mut mounts = Vec::new();
                for m in ins.flag_values("mount") {
                    let mv = self.expand(m, line, &mut used)?;
                    let mut mount =
                        parse_mount(&mv).map_err(|e| invalid(format!("--mount={mv}: {e}")))?;
                    if let Some(f) = &mount.from {
                        let earlier = &self.plan.stages[..self.stage.index];
                        mount.from_source =
                            Some(resolve_source(earlier, f, self.stage.index, line)?);
                    }
                    mounts.push(mount);
                }
                let network = match ins.flag("network") {
                    Some(n) => {
                        let n = self.expand(n, line, &mut used)?;
                        if !matches!(n.as_str(), "default" | "none" | "host") {
                            return Err(invalid(format!("unsupported network mode {n:?}")));
                        }
                        Some(n)
                    }
                    None => None,
                };
                let mut env = self.config.env.clone();
                for (k, v) in &run_args {
                    env.push(format!("{k}={v}"));
                }
                for p in PROXY_ARGS {
                    if let Some(v) = self.plan.options.build_args.get(*p)
                        && !run_args.contains_key(*p)
                        && self.config.env_get(p).is_none()
                    {
                        env.push(format!("{p}={v}"));
                    }
                }
                let mut created = argv.join(" ");
                if script.is_some() {
                    created = format!("{} {}", shell.join(" "), ins.original);
                }
                let hist_args: Vec<String> = run_args
                    .iter()
                    .filter(|(k, _)| !PROXY_ARGS.contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                if !hist_args.is_empty() {
                    created = format!("|{} {} {created}", hist_args.len(), hist_args.join(" "));
                }
                used.extend(run_args);
                history = History {
                    created_by: created,
                    empty_layer: false,
                };
                op = Op::Run {
                    argv,
                    script,
                    shell_form,
                    env,
                    working_dir: self.config.working_dir.clone(),
                    user: self.config.user.clone(),
                    mounts,
                    network,
                };
            }
            Kind::Copy { sources, dest } | Kind::Add { sources, dest } => {
                let is_add = matches!(ins.kind, Kind::Add { .. });
                let name = if is_add { "ADD" } else { "COPY" };
                let cerr = |source: CopyError| PlanError::Copy {
                    line,
                    instruction: name,
                    source,
                };
                let mut srcs = Vec::new();
                let mut heredocs = Vec::new();
                for s in sources {
                    if let Some(h) = heredoc_for(s, &ins.heredocs) {
                        let content = if h.expand {
                            let raw = Lexer {
                                escape: '\\',
                                raw_quotes: true,
                                raw_escapes: true,
                            };
                            let env = |n: &str| self.lookup(n);
                            let e = raw
                                .process_word(&h.content, &env)
                                .map_err(expand_err(line))?;
                            self.record(&e.used, &mut used);
                            e.value
                        } else {
                            h.content.clone()
                        };
                        heredocs.push((h.name.clone(), content));
                    } else {
                        srcs.push(self.expand(s, line, &mut used)?);
                    }
                }
                let dest = self.expand(dest, line, &mut used)?;
                let dest_resolved = copy::resolve_dest(&self.config.working_dir, &dest);
                let from = match ins.flag("from") {
                    Some(f) => {
                        let f = self.expand(f, line, &mut used)?;
                        let earlier = &self.plan.stages[..self.stage.index];
                        Some(resolve_source(earlier, &f, self.stage.index, line)?)
                    }
                    None => None,
                };
                let chown = match ins.flag("chown") {
                    Some(c) => {
                        Some(copy::parse_chown(&self.expand(c, line, &mut used)?).map_err(cerr)?)
                    }
                    None => None,
                };
                let chmod = match ins.flag("chmod") {
                    Some(c) => {
                        Some(copy::parse_chmod(&self.expand(c, line, &mut used)?).map_err(cerr)?)
                    }
                    None => None,
                };
                let mut exclude = Vec::new();
                for e in ins.flag_values("exclude") {
                    exclude.push(self.expand(e, line, &mut used)?);
                }
                let checksum = match ins.flag("checksum") {
                    Some(c) => Some(self.expand(c, line, &mut used)?),
                    None => None,
                };
                let n_sources = srcs.len() + heredocs.len();
                if n_sources > 1 && !dest_resolved.ends_with('/') {
                    return Err(cerr(CopyError::DestNotDirectory {
                        dest: dest.clone(),
                        count: n_sources,
                    }));
                }
                let c = CopyOp {
                    sources: srcs,
                    heredocs,
                    dest: dest.clone(),
                    dest_resolved,
                    from,
                    chown,
                    chmod,
                    link: flag_bool(ins, "link", line)?,
                    parents: flag_bool(ins, "parents", line)?,
                    exclude,
                    checksum,
                    keep_git_dir: flag_bool(ins, "keep-git-dir", line)?,
                };
                let shell = self.config.shell_or_default().join(" ");
                history = History {
                    created_by: format!("{shell} #(nop) {name} {} in {dest} ", c.sources.join(" ")),
                    empty_layer: false,
                };
                op = if is_add { Op::Add(c) } else { Op::Copy(c) };
            }
        }
        Ok(Step {
            line,
            instruction: ins.clone(),
            op,
            config: self.config.clone(),
            history,
            used_args: used,
            from_onbuild: false,
        })
    }
}

pub(crate) fn heredoc_for<'h>(src: &str, heredocs: &'h [Heredoc]) -> Option<&'h Heredoc> {
    let rest = src.strip_prefix("<<")?;
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    let name = rest.trim_matches(['"', '\'']);
    heredocs.iter().find(|h| h.name == name)
}

/// The argv of a RUN, handling heredocs as BuildKit does.
fn run_argv(
    cmd: &CommandLine,
    shell: &[String],
    heredocs: &[Heredoc],
) -> (Vec<String>, Option<String>, bool) {
    match cmd {
        CommandLine::Exec(v) => (v.clone(), None, false),
        CommandLine::Shell(s) => {
            if heredocs.len() == 1 && heredoc_for(s.trim(), heredocs).is_some() {
                let body = &heredocs[0].content;
                if body.starts_with("#!") {
                    return (Vec::new(), Some(body.clone()), true);
                }
                let mut v = shell.to_vec();
                v.push(body.clone());
                return (v, None, true);
            }
            let mut script = s.clone();
            for h in heredocs {
                script.push('\n');
                script.push_str(&h.content);
                script.push_str(&h.name);
            }
            let mut v = shell.to_vec();
            v.push(script);
            (v, None, true)
        }
    }
}

fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
        "XFSZ",
    ];
    if NAMES.contains(&name) {
        return true;
    }
    // RTMIN+n / RTMAX-n
    name.starts_with("RTMIN") || name.starts_with("RTMAX")
}

/// A boolean flag: absent → false; `--x`, `--x=true` → true; `--x=false` → false.
fn flag_bool(ins: &Instruction, name: &str, line: usize) -> Result<bool, PlanError> {
    match ins.flag(name) {
        None => Ok(false),
        Some("" | "true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(PlanError::Invalid {
            line,
            message: format!("invalid value {other:?} for boolean flag --{name}"),
        }),
    }
}
