//! Dockerfile text → raw instructions, following BuildKit's `frontend/dockerfile/parser`:
//! parser directives, comments, line continuations, heredocs and builder flags.

use crate::instruction::{self, Instruction};
use crate::lex::Lexer;

/// An error while parsing a Dockerfile; `line` is 1-based.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {kind}")]
pub struct ParseError {
    pub line: usize,
    pub kind: ParseErrorKind,
}

/// What was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("invalid escape token {0:?} does not match ` or \\")]
    InvalidEscape(String),
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    #[error("{0} requires at least one argument")]
    AtLeastOneArgument(String),
    #[error("{0} requires exactly one argument")]
    ExactlyOneArgument(String),
    #[error(
        "{0} requires at least two arguments, but only one was provided. Destination could not be determined"
    )]
    AtLeastTwoArguments(String),
    #[error("FROM requires either one or three arguments")]
    FromArguments,
    #[error("{0} must have two arguments")]
    TwoArguments(String),
    #[error("syntax error - can't find = in {0:?}. Must be of the form: name=value")]
    MissingEquals(String),
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStrings,
    #[error("{0} requires the arguments to be in JSON form")]
    JsonRequired(String),
    #[error("unterminated heredoc {0:?}")]
    UnterminatedHeredoc(String),
    #[error("heredocs with a file descriptor ({0}) are not supported")]
    HeredocFd(String),
    #[error("unknown flag: --{flag} for {instruction}")]
    UnknownFlag { instruction: String, flag: String },
    #[error("flag --{0} requires a value")]
    FlagValue(String),
    #[error("duplicate flag specified: --{0}")]
    DuplicateFlag(String),
    #[error("{0} isn't allowed as an ONBUILD trigger")]
    OnbuildTrigger(String),
    #[error("unknown type {0:?} in HEALTHCHECK (try CMD)")]
    HealthcheckType(String),
    #[error("HEALTHCHECK NONE takes no arguments")]
    HealthcheckNoneArgs,
    #[error("{0}")]
    Lex(#[from] crate::lex::LexError),
    #[error(
        "no build stage in the dockerfile: the first instruction must be FROM (or ARG), found {0}"
    )]
    NoFrom(String),
    #[error("the dockerfile is empty")]
    Empty,
}

/// Parser directives at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Directives {
    pub syntax: Option<String>,
    pub escape: char,
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Self {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Heredoc {
    pub name: String,
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`): no expansion of the body.
    pub expand: bool,
    /// `<<-EOF`: leading tabs stripped from the body (already applied to `content`).
    pub chomp: bool,
}

/// A builder flag such as `--from=build` (`value` is None for `--link`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
}

/// One logical instruction line before typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawInstruction {
    pub line: usize,
    pub end_line: usize,
    /// Lower-case keyword.
    pub keyword: String,
    /// The instruction as written (continuations joined).
    pub original: String,
    pub flags: Vec<Flag>,
    /// The arguments after the flags.
    pub rest: String,
    pub heredocs: Vec<Heredoc>,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Dockerfile {
    pub directives: Directives,
    pub instructions: Vec<Instruction>,
}

impl Dockerfile {
    /// Parses Dockerfile text.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        parse(text)
    }
}

fn err(line: usize, kind: ParseErrorKind) -> ParseError {
    ParseError { line, kind }
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Parses directives; returns them and the number of lines they occupy.
fn parse_directives(lines: &[&str]) -> Result<Directives, ParseError> {
    let re = directive_regex();
    let mut d = Directives::default();
    let mut seen = std::collections::BTreeSet::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(c) = re.captures(line) else { break };
        let key = c[1].to_ascii_lowercase();
        let value = c[2].to_string();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            break;
        }
        if !seen.insert(key.clone()) {
            return Err(err(i + 1, ParseErrorKind::DuplicateDirective(key)));
        }
        match key.as_str() {
            "escape" => {
                d.escape = match value.as_str() {
                    "`" => '`',
                    "\\" => '\\',
                    _ => return Err(err(i + 1, ParseErrorKind::InvalidEscape(value))),
                }
            }
            "syntax" => d.syntax = Some(value),
            _ => d.check = Some(value),
        }
    }
    Ok(d)
}

fn directive_regex() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| {
        regex::Regex::new(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$").expect("static regex")
    })
}

fn heredoc_regex() -> &'static regex::Regex {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"^(\d*)<<(-?)([^<]*)$").expect("static regex"))
}

/// Removes a trailing escape character (and whitespace after it). Returns the line and
/// whether the logical line ends here.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(s) => (s, false),
        None => (line, true),
    }
}

/// Parses Dockerfile text into typed (unexpanded) instructions.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    // a trailing newline does not make an extra line
    let lines = if lines.last() == Some(&"") {
        &lines[..lines.len() - 1]
    } else {
        &lines[..]
    };
    let directives = parse_directives(lines)?;
    let escape = directives.escape;
    let raws = split_instructions(lines, escape)?;
    let mut instructions = Vec::with_capacity(raws.len());
    for raw in raws {
        instructions.push(instruction::from_raw(raw, escape)?);
    }
    Ok(Dockerfile {
        directives,
        instructions,
    })
}

/// Joins continuation lines, drops comments, reads heredoc bodies.
pub fn split_instructions(lines: &[&str], escape: char) -> Result<Vec<RawInstruction>, ParseError> {
    let mut out = Vec::new();
    let mut i = 0usize;
    while i < lines.len() {
        let first = lines[i];
        i += 1;
        let start_line = i;
        if is_comment(first) {
            continue;
        }
        let trimmed = first.trim_start();
        let (part, mut end) = trim_continuation(trimmed, escape);
        if end && part.trim().is_empty() {
            continue;
        }
        let mut line = part.to_string();
        while !end && i < lines.len() {
            let next = lines[i];
            i += 1;
            if is_comment(next) {
                continue;
            }
            if next.trim().is_empty() {
                continue;
            }
            let (p, e) = trim_continuation(next, escape);
            line.push_str(p);
            end = e;
        }
        let end_line = i;
        let mut raw = raw_from_line(&line, start_line, end_line, escape)?;
        if raw.keyword.is_empty() {
            continue;
        }
        if matches!(raw.keyword.as_str(), "run" | "copy" | "add") {
            let names = heredoc_names(&raw.rest, start_line)?;
            for (name, expand, chomp) in names {
                let mut content = String::new();
                let mut terminated = false;
                while i < lines.len() {
                    let body = lines[i];
                    i += 1;
                    let candidate = if chomp {
                        body.trim_start_matches('\t')
                    } else {
                        body
                    };
                    if candidate == name {
                        terminated = true;
                        break;
                    }
                    content.push_str(candidate);
                    content.push('\n');
                }
                if !terminated {
                    return Err(err(start_line, ParseErrorKind::UnterminatedHeredoc(name)));
                }
                raw.heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                    chomp,
                });
            }
            raw.end_line = i;
        }
        out.push(raw);
    }
    Ok(out)
}

/// Splits a logical line into keyword, flags and the rest.
pub fn raw_from_line(
    line: &str,
    start_line: usize,
    end_line: usize,
    escape: char,
) -> Result<RawInstruction, ParseError> {
    let line_t = line.trim();
    let (kw, args) = match line_t.find(char::is_whitespace) {
        Some(p) => (&line_t[..p], line_t[p..].trim_start()),
        None => (line_t, ""),
    };
    let (flags_words, rest) = extract_builder_flags(args);
    let mut flags = Vec::new();
    for w in flags_words {
        let body = w.strip_prefix("--").unwrap_or(&w);
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        flags.push(Flag { name, value });
    }
    let _ = escape;
    Ok(RawInstruction {
        line: start_line,
        end_line,
        keyword: kw.to_ascii_lowercase(),
        original: line_t.to_string(),
        flags,
        rest: rest.trim_end().to_string(),
        heredocs: Vec::new(),
    })
}

/// BuildKit's `extractBuilderFlags`: leading `--name[=value]` words (quotes honoured).
fn extract_builder_flags(line: &str) -> (Vec<String>, String) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut k = 0usize;
    loop {
        let at_end = k >= chars.len();
        let (pos, ch) = if at_end { (line.len(), '\0') } else { chars[k] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                k += 1;
                continue;
            }
            let next_dash = chars.get(k + 1).map(|c| c.1) == Some('-');
            if ch != '-' || !next_dash {
                return (words, line[pos..].to_string());
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (words, line[pos..].trim_start().to_string());
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                k += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                k += 1;
                continue;
            }
            if ch == '\\' {
                if k + 1 == chars.len() {
                    k += 1;
                    continue;
                }
                k += 1;
                word.push(chars[k].1);
                k += 1;
                continue;
            }
            word.push(ch);
            k += 1;
            continue;
        }
        // in quote
        if ch == quote {
            phase = Phase::Word;
            k += 1;
            continue;
        }
        if ch == '\\' {
            if k + 1 == chars.len() {
                phase = Phase::Word;
                k += 1;
                continue;
            }
            k += 1;
            word.push(chars[k].1);
            k += 1;
            continue;
        }
        word.push(ch);
        k += 1;
    }
    (words, String::new())
}

/// Finds heredoc markers (`<<EOF`, `<<-EOF`, `<<"EOF"`) in the words of a command line.
fn heredoc_names(rest: &str, line: usize) -> Result<Vec<(String, bool, bool)>, ParseError> {
    if rest.trim_start().starts_with('[') && crate::instruction::parse_json(rest).is_some() {
        return Ok(Vec::new());
    }
    let raw = Lexer {
        escape: '\\',
        raw_quotes: true,
        raw_escapes: true,
    };
    let env = |_: &str| None;
    let Ok((words, _)) = raw.process_words(rest, &env) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for w in words {
        let Some(c) = heredoc_regex().captures(&w) else {
            continue;
        };
        let fd = c[1].to_string();
        let chomp = &c[2] == "-";
        let body = c[3].to_string();
        if body.is_empty() {
            continue;
        }
        if !fd.is_empty() {
            return Err(err(line, ParseErrorKind::HeredocFd(fd)));
        }
        let plain = Lexer::new('\\');
        let Ok((ws, _)) = plain.process_words(&body, &env) else {
            continue;
        };
        if ws.len() != 1 {
            continue;
        }
        let Ok((wr, _)) = raw.process_words(&body, &env) else {
            continue;
        };
        let count = |s: &str| s.matches(['\'', '"']).count();
        let expand = wr.len() == 1 && count(&ws[0]) == count(&wr[0]);
        out.push((ws[0].clone(), expand, chomp));
    }
    Ok(out)
}

/// BuildKit's `parseWords`: split on whitespace, keeping quotes and escapes.
pub fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut k = 0usize;
    loop {
        let at_end = k >= chars.len();
        let ch = if at_end { '\0' } else { chars[k] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                k += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                k += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if k + 1 == chars.len() {
                    k += 1;
                    continue;
                }
                word.push(ch);
                k += 1;
                word.push(chars[k]);
                k += 1;
                continue;
            }
            word.push(ch);
            k += 1;
            continue;
        }
        // quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if k + 1 == chars.len() {
                phase = Phase::Word;
                k += 1;
                continue;
            }
            word.push(ch);
            k += 1;
            word.push(chars[k]);
            k += 1;
            continue;
        }
        word.push(ch);
        k += 1;
    }
    words
}
