//! A few of BuildKit's build checks, as warnings the CLI prints (`# check=skip=...` honoured).

use crate::instruction::{CommandLine, Kind};
use crate::parser::Dockerfile;

/// One warning with BuildKit's rule name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Warning {
    pub line: usize,
    pub rule: &'static str,
    pub message: String,
}

fn skipped(df: &Dockerfile) -> Vec<String> {
    let Some(check) = &df.directives.check else {
        return Vec::new();
    };
    check
        .split(';')
        .filter_map(|part| part.trim().strip_prefix("skip="))
        .flat_map(|v| v.split(',').map(|s| s.trim().to_string()))
        .collect()
}

/// Runs the checks: JSONArgsRecommended, MaintainerDeprecated, FromAsCasing,
/// StageNameCasing, MultipleInstructionsDisallowed (CMD/ENTRYPOINT/HEALTHCHECK repeated
/// in one stage).
pub fn lint(df: &Dockerfile) -> Vec<Warning> {
    let skip = skipped(df);
    let mut out = Vec::new();
    let mut seen: Vec<(&'static str, usize)> = Vec::new();
    for ins in &df.instructions {
        let kw = ins.original.split_whitespace().next().unwrap_or("");
        match &ins.kind {
            Kind::From { .. } => {
                seen.clear();
                let words: Vec<&str> = ins.original.split_whitespace().collect();
                if let Some(pos) = words.iter().position(|w| w.eq_ignore_ascii_case("as")) {
                    let as_kw = words[pos];
                    let upper_from = kw.chars().all(|c| c.is_ascii_uppercase());
                    let upper_as = as_kw.chars().all(|c| c.is_ascii_uppercase());
                    if upper_from != upper_as {
                        out.push(Warning {
                            line: ins.line,
                            rule: "FromAsCasing",
                            message: format!("'{as_kw}' and '{kw}' keywords' casing do not match"),
                        });
                    }
                    if let Some(name) = words.get(pos + 1)
                        && name.chars().any(|c| c.is_ascii_uppercase())
                    {
                        out.push(Warning {
                            line: ins.line,
                            rule: "StageNameCasing",
                            message: format!("Stage name '{name}' should be lowercase"),
                        });
                    }
                }
            }
            Kind::Cmd { cmd } | Kind::Entrypoint { cmd } => {
                let name = ins.name();
                if matches!(cmd, CommandLine::Shell(_)) {
                    out.push(Warning {
                        line: ins.line,
                        rule: "JSONArgsRecommended",
                        message: format!(
                            "JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"
                        ),
                    });
                }
                repeated(&mut seen, &mut out, name, ins.line);
            }
            Kind::Healthcheck { .. } => repeated(&mut seen, &mut out, "HEALTHCHECK", ins.line),
            Kind::Maintainer { .. } => out.push(Warning {
                line: ins.line,
                rule: "MaintainerDeprecated",
                message: "Maintainer instruction is deprecated in favor of using label".to_string(),
            }),
            _ => {}
        }
    }
    if skip.iter().any(|s| s == "all") {
        return Vec::new();
    }
    out.retain(|w| !skip.iter().any(|s| s == w.rule));
    out
}

fn repeated(
    seen: &mut Vec<(&'static str, usize)>,
    out: &mut Vec<Warning>,
    name: &'static str,
    line: usize,
) {
    if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
        out.push(Warning {
            line: *first,
            rule: "MultipleInstructionsDisallowed",
            message: format!("Multiple {name} instructions should not be used in the same stage because only the last one will be used"),
        });
    }
    seen.retain(|(n, _)| *n != name);
    seen.push((name, line));
}
