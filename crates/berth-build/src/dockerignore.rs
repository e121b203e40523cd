//! `.dockerignore` as Docker's `moby/patternmatcher` and `ignorefile` implement it.

use std::path::{Path, PathBuf};

use crate::copy::clean;

/// Errors of pattern compilation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    #[error("syntax error in pattern {0:?}")]
    BadPattern(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchType {
    Exact,
    Prefix,
    Suffix,
    Regexp,
}

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    exclusion: bool,
    match_type: MatchType,
    regex: regex::Regex,
}

impl Pattern {
    /// The pattern after `filepath.Clean`, without `!`.
    pub fn pattern(&self) -> &str {
        &self.cleaned
    }

    /// True for `!` patterns.
    pub fn exclusion(&self) -> bool {
        self.exclusion
    }

    fn compile(cleaned: String, exclusion: bool) -> Result<Self, IgnoreError> {
        let chars: Vec<char> = cleaned.chars().collect();
        let mut re = String::from("^");
        let mut mt = MatchType::Exact;
        let mut i = 0usize;
        let mut idx = 0usize;
        let mut in_class = false;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            if in_class {
                // class bodies pass through as Go's regexp sees them
                match ch {
                    ']' => {
                        in_class = false;
                        re.push(']');
                    }
                    '\\' if i < chars.len() => {
                        re.push('\\');
                        re.push(chars[i]);
                        i += 1;
                    }
                    '[' | '&' | '~' => {
                        re.push('\\');
                        re.push(ch);
                    }
                    c => re.push(c),
                }
                idx += 1;
                continue;
            }
            if ch == '*' {
                if chars.get(i) == Some(&'*') {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i >= chars.len() {
                        if mt == MatchType::Exact {
                            mt = MatchType::Prefix;
                        } else {
                            re.push_str(".*");
                            mt = MatchType::Regexp;
                        }
                    } else {
                        re.push_str("(.*/)?");
                        mt = MatchType::Regexp;
                    }
                    if idx == 0 {
                        mt = MatchType::Suffix;
                    }
                } else {
                    re.push_str("[^/]*");
                    mt = MatchType::Regexp;
                }
            } else if ch == '?' {
                re.push_str("[^/]");
                mt = MatchType::Regexp;
            } else if ".+()|{}$".contains(ch) {
                re.push('\\');
                re.push(ch);
            } else if ch == '\\' {
                if i < chars.len() {
                    re.push_str(&regex::escape(&chars[i].to_string()));
                    i += 1;
                    mt = MatchType::Regexp;
                } else {
                    re.push_str("\\\\");
                }
            } else if ch == '[' {
                re.push('[');
                if chars.get(i) == Some(&'^') {
                    re.push('^');
                    i += 1;
                }
                in_class = true;
                mt = MatchType::Regexp;
            } else if ch == ']' {
                re.push_str("\\]");
                mt = MatchType::Regexp;
            } else {
                re.push_str(&regex::escape(&ch.to_string()));
            }
            idx += 1;
        }
        re.push('$');
        // Go validates with filepath.Match(p, "."); an unbalanced class is the usual error
        crate::copy::go_pattern_regex(&cleaned)
            .map_err(|_| IgnoreError::BadPattern(cleaned.clone()))?;
        let regex = regex::Regex::new(&re).map_err(|_| IgnoreError::BadPattern(cleaned.clone()))?;
        Ok(Self {
            cleaned,
            exclusion,
            match_type: mt,
            regex,
        })
    }

    fn matches(&self, path: &str) -> bool {
        match self.match_type {
            MatchType::Exact => path == self.cleaned,
            MatchType::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            MatchType::Suffix => {
                let suffix = &self.cleaned[2..];
                if path.ends_with(suffix) {
                    return true;
                }
                suffix.starts_with('/') && path == &suffix[1..]
            }
            MatchType::Regexp => self.regex.is_match(path),
        }
    }
}

/// A compiled list of patterns.
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl PatternMatcher {
    /// Compiles patterns (each trimmed and cleaned; empty ones skipped).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, IgnoreError> {
        let mut pm = Self::default();
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let p = clean(p);
            let (exclusion, body) = match p.strip_prefix('!') {
                Some("") => return Err(IgnoreError::IllegalExclusion),
                Some(rest) => (true, rest.to_string()),
                None => (false, p),
            };
            if exclusion {
                pm.exclusions = true;
            }
            pm.patterns.push(Pattern::compile(body, exclusion)?);
        }
        Ok(pm)
    }

    /// The compiled patterns.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// True when some pattern is a `!` exception.
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    /// Docker's `MatchesOrParentMatches`: the path or one of its parents matches, with
    /// `!` patterns evaluated in order.
    pub fn matches_or_parent_matches(&self, file: &str) -> bool {
        let parent = parent_of(file);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(file);
            if !m && parent != "." {
                for i in 0..parent_dirs.len() {
                    if p.matches(&parent_dirs[..=i].join("/")) {
                        m = true;
                        break;
                    }
                }
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Docker's `MatchesExact`: only the path itself, parents not considered.
    pub fn matches_exact(&self, file: &str) -> bool {
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            if p.matches(file) {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Docker's deprecated `Matches`: parents are compared only at the pattern's depth.
    pub fn matches(&self, file: &str) -> bool {
        let parent = parent_of(file);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(file);
            let depth = p.cleaned.split('/').count();
            if !m && parent != "." && depth <= parent_dirs.len() {
                m = p.matches(&parent_dirs[..depth].join("/"));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether a walker must descend into an ignored directory because a `!` pattern may
    /// re-include something below it (Docker's archive walker: an exclusion pattern whose
    /// text starts with `<dir>/`).
    pub fn may_include_below(&self, dir: &str) -> bool {
        if !self.exclusions {
            return false;
        }
        let dir_slash = format!("{}/", clean(dir));
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", p.cleaned).starts_with(&dir_slash))
    }

    /// Whether a context path is left out of the build context.
    pub fn excludes(&self, path: &str) -> bool {
        let p = clean(path);
        p != "." && self.matches_or_parent_matches(&p)
    }
}

/// Docker's package-level `MatchesOrParentMatches(file, patterns)`: the file is cleaned
/// first and `.` (the whole context) never matches.
pub fn matches_or_parent_matches<S: AsRef<str>>(
    file: &str,
    patterns: &[S],
) -> Result<bool, IgnoreError> {
    let pm = PatternMatcher::new(patterns)?;
    let file = clean(file);
    if file == "." {
        return Ok(false);
    }
    Ok(pm.matches_or_parent_matches(&file))
}

/// Go's `filepath.Dir`.
fn parent_of(file: &str) -> String {
    match file.rfind('/') {
        Some(i) => clean(&file[..=i]),
        None => ".".to_string(),
    }
}

/// Reads `.dockerignore` text into patterns as Docker's `ignorefile.ReadAll` does.
pub fn read_patterns(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let invert = p.starts_with('!');
        if invert {
            p = p[1..].trim();
        }
        let mut pat = String::new();
        if !p.is_empty() {
            pat = clean(p);
            if pat.len() > 1 && pat.starts_with('/') {
                pat = pat[1..].to_string();
            }
        }
        if invert {
            pat.insert(0, '!');
        }
        out.push(pat);
    }
    out
}

/// Adds Docker's client-side rule that the Dockerfile and `.dockerignore` are always sent:
/// `!.dockerignore` and `!<dockerfile>` (when the Dockerfile lies inside the context;
/// `dockerfile_rel` is relative to the context root).
pub fn keep_build_files(mut patterns: Vec<String>, dockerfile_rel: Option<&str>) -> Vec<String> {
    if patterns.is_empty() {
        return patterns;
    }
    patterns.push("!.dockerignore".to_string());
    if let Some(df) = dockerfile_rel {
        let c = clean(df);
        if !c.starts_with("../") && c != ".." {
            patterns.push(format!("!{}", c.trim_start_matches('/')));
        }
    }
    patterns
}

/// Chooses the ignore file: `<Dockerfile>.dockerignore` next to the Dockerfile wins over
/// `<context>/.dockerignore`. `exists` says whether a path is a file.
pub fn ignore_file_for(
    context: &Path,
    dockerfile: &Path,
    exists: &dyn Fn(&Path) -> bool,
) -> Option<PathBuf> {
    if let Some(name) = dockerfile.file_name() {
        let mut n = name.to_os_string();
        n.push(".dockerignore");
        let specific = dockerfile.with_file_name(n);
        if exists(&specific) {
            return Some(specific);
        }
    }
    let general = context.join(".dockerignore");
    exists(&general).then_some(general)
}
