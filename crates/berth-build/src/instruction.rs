//! Typed Dockerfile instructions (arguments as written, before variable expansion).

use crate::parser::{Flag, Heredoc, ParseError, ParseErrorKind, RawInstruction, parse_words};

/// Exec form (`["a","b"]`) or shell form (`a b`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandLine {
    Exec(Vec<String>),
    Shell(String),
}

impl CommandLine {
    /// The argv Docker stores: exec form as is, shell form wrapped in `shell`.
    pub fn to_argv(&self, shell: &[String]) -> Vec<String> {
        match self {
            CommandLine::Exec(v) => v.clone(),
            CommandLine::Shell(s) => {
                let mut v = shell.to_vec();
                v.push(s.clone());
                v
            }
        }
    }
}

/// HEALTHCHECK arguments.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthcheckArgs {
    None,
    Cmd(CommandLine),
}

/// The typed part of an instruction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    From {
        image: String,
        name: Option<String>,
    },
    Run {
        cmd: CommandLine,
    },
    Cmd {
        cmd: CommandLine,
    },
    Entrypoint {
        cmd: CommandLine,
    },
    Copy {
        sources: Vec<String>,
        dest: String,
    },
    Add {
        sources: Vec<String>,
        dest: String,
    },
    Env {
        pairs: Vec<(String, String)>,
    },
    Arg {
        args: Vec<(String, Option<String>)>,
    },
    Workdir {
        path: String,
    },
    User {
        user: String,
    },
    Expose {
        ports: Vec<String>,
    },
    Volume {
        paths: Vec<String>,
    },
    Label {
        pairs: Vec<(String, String)>,
    },
    Healthcheck {
        check: HealthcheckArgs,
    },
    Shell {
        shell: Vec<String>,
    },
    Stopsignal {
        signal: String,
    },
    Onbuild {
        /// The trigger text as written after ONBUILD.
        expression: String,
        trigger: Box<Instruction>,
    },
    Maintainer {
        name: String,
    },
}

/// One instruction with its location, flags and heredocs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Instruction {
    pub line: usize,
    pub end_line: usize,
    pub original: String,
    pub flags: Vec<Flag>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub heredocs: Vec<Heredoc>,
    #[serde(flatten)]
    pub kind: Kind,
}

impl Instruction {
    /// Upper-case instruction name.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::From { .. } => "FROM",
            Kind::Run { .. } => "RUN",
            Kind::Cmd { .. } => "CMD",
            Kind::Entrypoint { .. } => "ENTRYPOINT",
            Kind::Copy { .. } => "COPY",
            Kind::Add { .. } => "ADD",
            Kind::Env { .. } => "ENV",
            Kind::Arg { .. } => "ARG",
            Kind::Workdir { .. } => "WORKDIR",
            Kind::User { .. } => "USER",
            Kind::Expose { .. } => "EXPOSE",
            Kind::Volume { .. } => "VOLUME",
            Kind::Label { .. } => "LABEL",
            Kind::Healthcheck { .. } => "HEALTHCHECK",
            Kind::Shell { .. } => "SHELL",
            Kind::Stopsignal { .. } => "STOPSIGNAL",
            Kind::Onbuild { .. } => "ONBUILD",
            Kind::Maintainer { .. } => "MAINTAINER",
        }
    }

    /// The value of a flag given once (`--from=x` → `Some("x")`); `--link` → `Some("")`.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|f| f.name == name)
            .map(|f| f.value.as_deref().unwrap_or(""))
    }

    /// Every value of a repeatable flag (`--mount`).
    pub fn flag_values(&self, name: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|f| f.name == name)
            .map(|f| f.value.as_deref().unwrap_or(""))
            .collect()
    }
}

fn err(line: usize, kind: ParseErrorKind) -> ParseError {
    ParseError { line, kind }
}

/// Parses a JSON array of strings. `None` when it is not JSON (shell form applies);
/// `Some(Err)` when it is a JSON array holding non-strings.
pub fn parse_json(rest: &str) -> Option<Result<Vec<String>, ()>> {
    let t = rest.trim_start();
    if !t.starts_with('[') {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(t).ok()?;
    let arr = v.as_array()?;
    let mut out = Vec::with_capacity(arr.len());
    for item in arr {
        match item.as_str() {
            Some(s) => out.push(s.to_string()),
            None => return Some(Err(())),
        }
    }
    Some(Ok(out))
}

fn maybe_json(rest: &str, line: usize) -> Result<CommandLine, ParseError> {
    match parse_json(rest) {
        Some(Ok(v)) => Ok(CommandLine::Exec(v)),
        Some(Err(())) => Err(err(line, ParseErrorKind::JsonNotStrings)),
        None => Ok(CommandLine::Shell(rest.to_string())),
    }
}

fn maybe_json_list(rest: &str, line: usize) -> Result<Vec<String>, ParseError> {
    match parse_json(rest) {
        Some(Ok(v)) => Ok(v),
        Some(Err(())) => Err(err(line, ParseErrorKind::JsonNotStrings)),
        None => Ok(whitespace_split(rest)),
    }
}

fn whitespace_split(rest: &str) -> Vec<String> {
    rest.split([' ', '\t', '\x0b', '\x0c', '\r'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn name_val(
    rest: &str,
    key: &str,
    escape: char,
    line: usize,
) -> Result<Vec<(String, String)>, ParseError> {
    let words = parse_words(rest, escape);
    if words.is_empty() {
        return Err(err(line, ParseErrorKind::AtLeastOneArgument(key.into())));
    }
    if !words[0].contains('=') {
        let t = rest.trim();
        let Some(p) = t.find(char::is_whitespace) else {
            return Err(err(line, ParseErrorKind::TwoArguments(key.into())));
        };
        return Ok(vec![(t[..p].to_string(), t[p..].trim_start().to_string())]);
    }
    let mut out = Vec::new();
    for w in words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(err(line, ParseErrorKind::MissingEquals(w)));
        };
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

const FLAGS_NONE: &[&str] = &[];

fn allowed_flags(keyword: &str) -> &'static [&'static str] {
    match keyword {
        "from" => &["platform"],
        "run" => &["mount", "network", "security"],
        "copy" => &["from", "chown", "chmod", "link", "parents", "exclude"],
        "add" => &[
            "chown",
            "chmod",
            "link",
            "checksum",
            "keep-git-dir",
            "exclude",
            "unpack",
        ],
        "healthcheck" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        _ => FLAGS_NONE,
    }
}

const BOOL_FLAGS: &[&str] = &["link", "parents", "keep-git-dir", "unpack"];
const REPEATABLE: &[&str] = &["mount", "exclude"];

fn check_flags(raw: &RawInstruction) -> Result<(), ParseError> {
    let allowed = allowed_flags(&raw.keyword);
    let mut seen = std::collections::BTreeSet::new();
    for f in &raw.flags {
        if !allowed.contains(&f.name.as_str()) {
            return Err(err(
                raw.line,
                ParseErrorKind::UnknownFlag {
                    instruction: raw.keyword.to_ascii_uppercase(),
                    flag: f.name.clone(),
                },
            ));
        }
        if f.value.is_none() && !BOOL_FLAGS.contains(&f.name.as_str()) {
            return Err(err(raw.line, ParseErrorKind::FlagValue(f.name.clone())));
        }
        if !REPEATABLE.contains(&f.name.as_str()) && !seen.insert(f.name.clone()) {
            return Err(err(raw.line, ParseErrorKind::DuplicateFlag(f.name.clone())));
        }
    }
    Ok(())
}

/// Types one raw instruction.
pub fn from_raw(raw: RawInstruction, escape: char) -> Result<Instruction, ParseError> {
    check_flags(&raw)?;
    let line = raw.line;
    let upper = raw.keyword.to_ascii_uppercase();
    let rest = raw.rest.as_str();
    let need_args = |n: &str| -> Result<(), ParseError> {
        if rest.trim().is_empty() {
            Err(err(line, ParseErrorKind::AtLeastOneArgument(n.into())))
        } else {
            Ok(())
        }
    };
    let kind = match raw.keyword.as_str() {
        "from" => {
            let w = whitespace_split(rest);
            match w.len() {
                1 => Kind::From {
                    image: w[0].clone(),
                    name: None,
                },
                3 if w[1].eq_ignore_ascii_case("as") => Kind::From {
                    image: w[0].clone(),
                    name: Some(w[2].to_ascii_lowercase()),
                },
                _ => return Err(err(line, ParseErrorKind::FromArguments)),
            }
        }
        "run" => {
            need_args("RUN")?;
            Kind::Run {
                cmd: maybe_json(rest, line)?,
            }
        }
        "cmd" => {
            need_args("CMD")?;
            Kind::Cmd {
                cmd: maybe_json(rest, line)?,
            }
        }
        "entrypoint" => {
            need_args("ENTRYPOINT")?;
            Kind::Entrypoint {
                cmd: maybe_json(rest, line)?,
            }
        }
        "copy" | "add" => {
            let mut list = maybe_json_list(rest, line)?;
            if list.is_empty() {
                return Err(err(line, ParseErrorKind::AtLeastOneArgument(upper)));
            }
            if list.len() < 2 {
                return Err(err(line, ParseErrorKind::AtLeastTwoArguments(upper)));
            }
            let dest = list.pop().unwrap_or_default();
            if raw.keyword == "copy" {
                Kind::Copy {
                    sources: list,
                    dest,
                }
            } else {
                Kind::Add {
                    sources: list,
                    dest,
                }
            }
        }
        "env" => Kind::Env {
            pairs: name_val(rest, "ENV", escape, line)?,
        },
        "label" => Kind::Label {
            pairs: name_val(rest, "LABEL", escape, line)?,
        },
        "arg" => {
            let words = parse_words(rest, escape);
            if words.is_empty() {
                return Err(err(line, ParseErrorKind::AtLeastOneArgument("ARG".into())));
            }
            Kind::Arg {
                args: words
                    .into_iter()
                    .map(|w| match w.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (w, None),
                    })
                    .collect(),
            }
        }
        "workdir" | "user" | "stopsignal" | "maintainer" => {
            let v = rest.trim().to_string();
            if v.is_empty() {
                return Err(err(line, ParseErrorKind::ExactlyOneArgument(upper)));
            }
            match raw.keyword.as_str() {
                "workdir" => Kind::Workdir { path: v },
                "user" => Kind::User { user: v },
                "stopsignal" => Kind::Stopsignal { signal: v },
                _ => Kind::Maintainer { name: v },
            }
        }
        "expose" => {
            need_args("EXPOSE")?;
            Kind::Expose {
                ports: whitespace_split(rest),
            }
        }
        "volume" => {
            need_args("VOLUME")?;
            Kind::Volume {
                paths: maybe_json_list(rest, line)?,
            }
        }
        "shell" => {
            need_args("SHELL")?;
            match parse_json(rest) {
                Some(Ok(v)) if !v.is_empty() => Kind::Shell { shell: v },
                Some(Err(())) => return Err(err(line, ParseErrorKind::JsonNotStrings)),
                _ => return Err(err(line, ParseErrorKind::JsonRequired("SHELL".into()))),
            }
        }
        "healthcheck" => {
            need_args("HEALTHCHECK")?;
            let t = rest.trim_start();
            let (ty, args) = match t.find(char::is_whitespace) {
                Some(p) => (&t[..p], t[p..].trim_start()),
                None => (t, ""),
            };
            match ty.to_ascii_uppercase().as_str() {
                "NONE" => {
                    if !args.is_empty() || !raw.flags.is_empty() {
                        return Err(err(line, ParseErrorKind::HealthcheckNoneArgs));
                    }
                    Kind::Healthcheck {
                        check: HealthcheckArgs::None,
                    }
                }
                "CMD" => {
                    if args.is_empty() {
                        return Err(err(
                            line,
                            ParseErrorKind::AtLeastOneArgument("HEALTHCHECK CMD".into()),
                        ));
                    }
                    Kind::Healthcheck {
                        check: HealthcheckArgs::Cmd(maybe_json(args, line)?),
                    }
                }
                other => {
                    return Err(err(
                        line,
                        ParseErrorKind::HealthcheckType(other.to_string()),
                    ));
                }
            }
        }
        "onbuild" => {
            need_args("ONBUILD")?;
            let inner = crate::parser::raw_from_line(rest, line, raw.end_line, escape)?;
            match inner.keyword.as_str() {
                "onbuild" | "from" | "maintainer" => {
                    return Err(err(
                        line,
                        ParseErrorKind::OnbuildTrigger(inner.keyword.to_ascii_uppercase()),
                    ));
                }
                _ => {}
            }
            let trigger = from_raw(inner, escape)?;
            Kind::Onbuild {
                expression: rest.trim().to_string(),
                trigger: Box::new(trigger),
            }
        }
        _ => {
            let shown = raw
                .original
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            return Err(err(line, ParseErrorKind::UnknownInstruction(shown)));
        }
    };
    Ok(Instruction {
        line: raw.line,
        end_line: raw.end_line,
        original: raw.original,
        flags: raw.flags,
        heredocs: raw.heredocs,
        kind,
    })
}
