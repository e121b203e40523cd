//! COPY/ADD source and destination rules as BuildKit applies them, as pure functions over
//! the list of paths in the build context.

/// Errors of COPY/ADD planning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    #[error("{0:?}: not found")]
    NotFound(String),
    #[error("no source files were specified (no match for {0:?})")]
    NoSources(String),
    #[error(
        "when using COPY with more than one source file, the destination must be a directory and end with a /: {dest:?} has {count} sources"
    )]
    DestNotDirectory { dest: String, count: usize },
    #[error("syntax error in pattern {0:?}")]
    BadPattern(String),
    #[error("invalid chmod parameter: {0:?}")]
    BadChmod(String),
    #[error("invalid chown parameter: {0:?}")]
    BadChown(String),
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoSuchUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoSuchGroup(String),
}

/// A path in the build context (relative, `/`-separated, no leading `/`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContextEntry {
    pub path: String,
    pub is_dir: bool,
}

/// One copy the engine performs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopyAction {
    /// Source path in the context ("" is the context root).
    pub src: String,
    /// True when the contents of directory `src` go into directory `dest`.
    pub src_is_dir: bool,
    /// Absolute destination: the file path, or the directory receiving a directory's contents.
    pub dest: String,
}

/// Go's `path.Clean`.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Go's `path.Join`.
pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => String::new(),
        (true, false) => clean(b),
        (false, true) => clean(a),
        (false, false) => clean(&format!("{a}/{b}")),
    }
}

/// A destination relative to WORKDIR becomes absolute; a trailing `/` (or a `.`
/// destination) is kept as a trailing `/` so it still means "a directory".
pub fn resolve_dest(workdir: &str, dest: &str) -> String {
    let dir_hint = dest.ends_with('/') || dest == "." || dest.ends_with("/.") || dest.is_empty();
    let abs = if dest.starts_with('/') {
        clean(dest)
    } else {
        clean(&format!("/{}/{}", workdir, dest))
    };
    if dir_hint && abs != "/" {
        format!("{abs}/")
    } else {
        abs
    }
}

/// True when a source names a pattern (`*`, `?`, `[`).
pub fn has_wildcards(s: &str) -> bool {
    let mut esc = false;
    for c in s.chars() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' => esc = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Compiles a Go `filepath.Match` pattern to an anchored regex.
pub fn go_pattern_regex(pattern: &str) -> Result<regex::Regex, CopyError> {
    let bad = || CopyError::BadPattern(pattern.to_string());
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => {
                i += 1;
                let n = *chars.get(i).ok_or_else(bad)?;
                re.push_str(&regex::escape(&n.to_string()));
            }
            '[' => {
                i += 1;
                re.push('[');
                if chars.get(i) == Some(&'^') {
                    re.push('^');
                    i += 1;
                }
                // Go's getEsc: '-' and ']' must be escaped; the class must end with ']'
                let get_esc = |i: &mut usize| -> Result<char, CopyError> {
                    let c = *chars.get(*i).ok_or_else(bad)?;
                    if c == '-' || c == ']' {
                        return Err(bad());
                    }
                    let c = if c == '\\' {
                        *i += 1;
                        *chars.get(*i).ok_or_else(bad)?
                    } else {
                        c
                    };
                    *i += 1;
                    if *i >= chars.len() {
                        return Err(bad());
                    }
                    Ok(c)
                };
                let mut nrange = 0;
                loop {
                    if chars.get(i) == Some(&']') && nrange > 0 {
                        break;
                    }
                    let lo = get_esc(&mut i)?;
                    re.push_str(&regex::escape(&lo.to_string()));
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        let hi = get_esc(&mut i)?;
                        re.push('-');
                        re.push_str(&regex::escape(&hi.to_string()));
                    }
                    nrange += 1;
                }
                re.push(']');
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|_| bad())
}

/// Go's `filepath.Match` (whole name; `*` and `?` never match `/`).
pub fn go_match(pattern: &str, name: &str) -> Result<bool, CopyError> {
    Ok(go_pattern_regex(pattern)?.is_match(name))
}

fn context_path(src: &str) -> String {
    let c = clean(&format!("/{src}"));
    c.trim_start_matches('/').to_string()
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// Plans a COPY: expands wildcards against `context`, applies the directory rules and
/// resolves the destination against `workdir`. `dest_exists_as_dir` tells whether the
/// resolved destination is already a directory in the image (then it receives files).
pub fn plan_copy(
    sources: &[String],
    dest: &str,
    workdir: &str,
    context: &[ContextEntry],
    dest_exists_as_dir: &dyn Fn(&str) -> bool,
) -> Result<Vec<CopyAction>, CopyError> {
    let resolved = resolve_dest(workdir, dest);
    let mut matched: Vec<(String, bool)> = Vec::new();
    for src in sources {
        let p = context_path(src);
        if has_wildcards(&p) {
            let re = go_pattern_regex(&p)?;
            let mut hits: Vec<&ContextEntry> =
                context.iter().filter(|e| re.is_match(&e.path)).collect();
            hits.sort();
            for h in hits {
                matched.push((h.path.clone(), h.is_dir));
            }
        } else if p.is_empty() {
            matched.push((String::new(), true));
        } else {
            match context.iter().find(|e| e.path == p) {
                Some(e) => matched.push((e.path.clone(), e.is_dir)),
                None => return Err(CopyError::NotFound(src.clone())),
            }
        }
    }
    if matched.is_empty() {
        return Err(CopyError::NoSources(sources.join(" ")));
    }
    let abs = resolved.trim_end_matches('/');
    let abs = if abs.is_empty() { "/" } else { abs };
    let dest_is_dir = resolved.ends_with('/') || dest_exists_as_dir(abs);
    if matched.len() > 1 && !dest_is_dir {
        return Err(CopyError::DestNotDirectory {
            dest: dest.to_string(),
            count: matched.len(),
        });
    }
    Ok(matched
        .into_iter()
        .map(|(src, is_dir)| {
            let d = if is_dir {
                abs.to_string()
            } else if dest_is_dir {
                join(abs, basename(&src))
            } else {
                abs.to_string()
            };
            CopyAction {
                src,
                src_is_dir: is_dir,
                dest: d,
            }
        })
        .collect())
}

/// `--chown=user[:group]` (names or ids).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Chown {
    pub user: String,
    pub group: Option<String>,
}

/// Parses `--chown`.
pub fn parse_chown(s: &str) -> Result<Chown, CopyError> {
    let (u, g) = match s.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (s, None),
    };
    if u.is_empty() || g.is_some_and(str::is_empty) || g.is_some_and(|g| g.contains(':')) {
        return Err(CopyError::BadChown(s.to_string()));
    }
    Ok(Chown {
        user: u.to_string(),
        group: g.map(str::to_string),
    })
}

/// Resolves `--chown` to numeric ids with the image's `/etc/passwd` and `/etc/group`
/// text. Without a group the gid is the uid (Docker: "a username without groupname … will
/// use the same numeric UID as the GID").
pub fn resolve_chown(
    chown: &Chown,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<(u32, u32), CopyError> {
    let uid = match chown.user.parse::<u32>() {
        Ok(n) => n,
        Err(_) => {
            lookup(passwd, &chown.user).ok_or_else(|| CopyError::NoSuchUser(chown.user.clone()))?
        }
    };
    let gid = match &chown.group {
        None => uid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(group, g).ok_or_else(|| CopyError::NoSuchGroup(g.clone()))?,
        },
    };
    Ok((uid, gid))
}

/// Finds `name` in passwd/group text and returns its third field (the id).
fn lookup(file: Option<&str>, name: &str) -> Option<u32> {
    file?.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then_some(())?;
        f.nth(1)?.parse().ok()
    })
}

/// Parses `--chmod` (octal, e.g. `755` or `0644`).
pub fn parse_chmod(s: &str) -> Result<u32, CopyError> {
    if s.is_empty() || s.len() > 4 || !s.chars().all(|c| ('0'..='7').contains(&c)) {
        return Err(CopyError::BadChmod(s.to_string()));
    }
    u32::from_str_radix(s, 8).map_err(|_| CopyError::BadChmod(s.to_string()))
}

/// True for an ADD source fetched over HTTP(S).
pub fn is_url(src: &str) -> bool {
    let l = src.to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

/// True for an ADD source naming a git repository.
pub fn is_git_url(src: &str) -> bool {
    let l = src.to_ascii_lowercase();
    l.starts_with("git@")
        || l.starts_with("git://")
        || (is_url(&l) && (l.ends_with(".git") || l.contains(".git#")))
}

/// How a local ADD source archive is compressed; ADD extracts these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Archive {
    Tar,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

/// Detects an archive from the first bytes of a file (at least 262 for plain tar), as
/// Docker does by content, not by name. A compressed stream is reported by its
/// compression; the engine checks that it holds a tar after decompressing.
pub fn detect_archive(header: &[u8]) -> Option<Archive> {
    if header.starts_with(&[0x1f, 0x8b, 0x08]) {
        return Some(Archive::Gzip);
    }
    if header.starts_with(b"BZh") {
        return Some(Archive::Bzip2);
    }
    if header.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        return Some(Archive::Xz);
    }
    if header.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Some(Archive::Zstd);
    }
    if header.len() >= 262 && &header[257..262] == b"ustar" {
        return Some(Archive::Tar);
    }
    None
}
