//! Variable expansion and word splitting as BuildKit's `shell.Lex` does it.
//!
//! `$V`, `${V}`, `${V:-w}`, `${V-w}`, `${V:+w}`, `${V+w}`, `${V:?msg}`, `${V?msg}`,
//! `${V#p}`, `${V##p}`, `${V%p}`, `${V%%p}`, `${V/p/r}`, `${V//p/r}`; single quotes are
//! literal, double quotes expand, the escape character escapes the next character.

use std::collections::BTreeSet;

/// Errors of the lexer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LexError {
    #[error("unexpected end of statement while looking for matching single-quote")]
    UnterminatedSingleQuote,
    #[error("unexpected end of statement while looking for matching double-quote")]
    UnterminatedDoubleQuote,
    #[error("missing '}}' in substitution of {0:?}")]
    MissingBrace(String),
    #[error("bad substitution: empty variable name")]
    EmptyName,
    #[error("unsupported modifier ({modifier}) in substitution of {name:?}")]
    UnsupportedModifier { name: String, modifier: char },
    #[error("{name}: {message}")]
    Required { name: String, message: String },
}

/// The result of expanding one word: its value and the variable names it referenced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    pub value: String,
    pub used: BTreeSet<String>,
}

/// A lexer with an escape character (`\` or `` ` ``).
#[derive(Debug, Clone, Copy)]
pub struct Lexer {
    pub escape: char,
    /// Keep quote characters in the output (used to find heredoc markers).
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Self::new('\\')
    }
}

impl Lexer {
    pub fn new(escape: char) -> Self {
        Self {
            escape,
            raw_quotes: false,
            raw_escapes: false,
        }
    }

    /// Expands one word (quotes removed, not split on whitespace).
    pub fn process_word(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Expanded, LexError> {
        let mut st = State::new(self, word, env);
        let (value, _) = st.process(None, false)?;
        Ok(Expanded {
            value,
            used: st.used,
        })
    }

    /// Expands and splits into words on unquoted whitespace.
    pub fn process_words(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Vec<String>, BTreeSet<String>), LexError> {
        let mut st = State::new(self, word, env);
        let (_, words) = st.process(None, true)?;
        Ok((words, st.used))
    }
}

struct State<'a> {
    lx: &'a Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Fn(&str) -> Option<String>,
    used: BTreeSet<String>,
    slash_stop: bool,
}

/// Accumulates words while splitting.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    cur: String,
    in_word: bool,
}

impl Words {
    fn push_str(&mut self, s: &str) {
        self.cur.push_str(s);
        self.in_word = true;
    }
    fn push_char(&mut self, c: char) {
        self.cur.push(c);
        self.in_word = true;
    }
    fn mark(&mut self) {
        self.in_word = true;
    }
    fn space(&mut self) {
        if self.in_word {
            self.words.push(std::mem::take(&mut self.cur));
            self.in_word = false;
        }
    }
    fn finish(mut self) -> Vec<String> {
        self.space();
        self.words
    }
}

impl<'a> State<'a> {
    fn new(lx: &'a Lexer, word: &str, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lx,
            chars: word.chars().collect(),
            pos: 0,
            env,
            used: BTreeSet::new(),
            slash_stop: false,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes until `stop` (consumed) or the end. Returns the whole string and, when
    /// `split`, the words.
    fn process(
        &mut self,
        stop: Option<char>,
        split: bool,
    ) -> Result<(String, Vec<String>), LexError> {
        let mut out = String::new();
        let mut words = Words::default();
        loop {
            let Some(ch) = self.peek() else {
                if let Some(s) = stop
                    && s == '}'
                {
                    return Err(LexError::MissingBrace(out));
                }
                break;
            };
            if Some(ch) == stop {
                self.next();
                break;
            }
            match ch {
                '\'' => {
                    let s = self.single_quote()?;
                    out.push_str(&s);
                    words.push_str(&s);
                    words.mark();
                }
                '"' => {
                    let s = self.double_quote()?;
                    out.push_str(&s);
                    words.push_str(&s);
                    words.mark();
                }
                '$' => {
                    let s = self.dollar()?;
                    out.push_str(&s);
                    if split {
                        // unquoted expansions are split on whitespace
                        let mut first = true;
                        for part in s.split(|c: char| c.is_whitespace()) {
                            if !first {
                                words.space();
                            }
                            first = false;
                            if !part.is_empty() {
                                words.push_str(part);
                            }
                        }
                    }
                }
                c if c == self.lx.escape => {
                    self.next();
                    if self.lx.raw_escapes {
                        out.push(c);
                        words.push_char(c);
                    }
                    // an escape at the end of the word is dropped
                    if let Some(n) = self.next() {
                        out.push(n);
                        words.push_char(n);
                    }
                }
                c if split && c.is_whitespace() => {
                    self.next();
                    out.push(c);
                    words.space();
                }
                c => {
                    self.next();
                    out.push(c);
                    words.push_char(c);
                }
            }
        }
        Ok((out, words.finish()))
    }

    fn single_quote(&mut self) -> Result<String, LexError> {
        self.next();
        let mut s = String::new();
        if self.lx.raw_quotes {
            s.push('\'');
        }
        loop {
            match self.next() {
                None => return Err(LexError::UnterminatedSingleQuote),
                Some('\'') => {
                    if self.lx.raw_quotes {
                        s.push('\'');
                    }
                    return Ok(s);
                }
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, LexError> {
        self.next();
        let mut s = String::new();
        if self.lx.raw_quotes {
            s.push('"');
        }
        loop {
            match self.peek() {
                None => return Err(LexError::UnterminatedDoubleQuote),
                Some('"') => {
                    self.next();
                    if self.lx.raw_quotes {
                        s.push('"');
                    }
                    return Ok(s);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    s.push_str(&v);
                }
                Some(c) if c == self.lx.escape => {
                    self.next();
                    match self.peek() {
                        None => return Err(LexError::UnterminatedDoubleQuote),
                        Some(n) if n == '"' || n == '$' || n == self.lx.escape => {
                            self.next();
                            if self.lx.raw_escapes {
                                s.push(c);
                            }
                            s.push(n);
                        }
                        Some(_) => s.push(c),
                    }
                }
                Some(c) => {
                    self.next();
                    s.push(c);
                }
            }
        }
    }

    /// A variable name: letters, digits and `_`; a leading digit run (`$12`) or one
    /// special parameter (`$@ $* $# $? $- $$ $!`) is a name by itself.
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.next();
                }
                return name;
            }
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => {
                self.next();
                return c.to_string();
            }
            _ => {}
        }
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || c == '_' {
                name.push(c);
                self.next();
            } else {
                break;
            }
        }
        name
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        self.used.insert(name.to_string());
        (self.env)(name)
    }

    fn dollar(&mut self) -> Result<String, LexError> {
        self.next(); // '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.lookup(&name).unwrap_or_default());
        }
        self.next(); // '{'
        let name = self.name();
        if name.is_empty() {
            return Err(LexError::EmptyName);
        }
        let Some(ch) = self.peek() else {
            return Err(LexError::MissingBrace(name));
        };
        match ch {
            '}' => {
                self.next();
                Ok(self.lookup(&name).unwrap_or_default())
            }
            ':' | '-' | '+' | '?' => {
                let colon = ch == ':';
                self.next();
                let modifier = if colon {
                    match self.next() {
                        Some(m @ ('-' | '+' | '?')) => m,
                        Some(m) => {
                            return Err(LexError::UnsupportedModifier { name, modifier: m });
                        }
                        None => return Err(LexError::MissingBrace(name)),
                    }
                } else {
                    ch
                };
                let (word, _) = self.process(Some('}'), false)?;
                let value = self.lookup(&name);
                let set = match &value {
                    None => false,
                    Some(v) => !(colon && v.is_empty()),
                };
                Ok(match modifier {
                    '-' => {
                        if set {
                            value.unwrap_or_default()
                        } else {
                            word
                        }
                    }
                    '+' => {
                        if set {
                            word
                        } else {
                            String::new()
                        }
                    }
                    _ => {
                        if set {
                            value.unwrap_or_default()
                        } else {
                            let message = if !word.is_empty() {
                                word
                            } else if value.is_some() {
                                "is not allowed to be empty".to_string()
                            } else {
                                "is not allowed to be unset".to_string()
                            };
                            return Err(LexError::Required { name, message });
                        }
                    }
                })
            }
            '#' | '%' => {
                self.next();
                let longest = self.peek() == Some(ch);
                if longest {
                    self.next();
                }
                let (pattern, _) = self.process(Some('}'), false)?;
                let value = self.lookup(&name).unwrap_or_default();
                Ok(trim_pattern(&value, &pattern, ch == '#', longest))
            }
            '/' => {
                self.next();
                let all = self.peek() == Some('/');
                if all {
                    self.next();
                }
                let (pattern, _) = self.process_until_slash_or_brace()?;
                let value = self.lookup(&name).unwrap_or_default();
                let (replacement, _) = if self.slash_stop {
                    self.process(Some('}'), false)?
                } else {
                    (String::new(), Vec::new())
                };
                Ok(replace_pattern(&value, &pattern, &replacement, all))
            }
            other => {
                // consume to the closing brace so the error names the modifier
                Err(LexError::UnsupportedModifier {
                    name,
                    modifier: other,
                })
            }
        }
    }
}

impl State<'_> {
    fn process_until_slash_or_brace(&mut self) -> Result<(String, ()), LexError> {
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(LexError::MissingBrace(out)),
                Some('/') => {
                    self.next();
                    self.slash_stop = true;
                    return Ok((out, ()));
                }
                Some('}') => {
                    self.next();
                    self.slash_stop = false;
                    return Ok((out, ()));
                }
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                }
                Some(c) if c == self.lx.escape => {
                    self.next();
                    if let Some(n) = self.next() {
                        out.push(n);
                    }
                }
                Some(c) => {
                    self.next();
                    out.push(c);
                }
            }
        }
    }
}

/// Shell glob match over whole strings (`*`, `?`, `[...]`, `\x`).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_at(&p, &t)
}

fn glob_at(p: &[char], t: &[char]) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, next)) = class_match(p, pi, t[ti]) {
                        if ok {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == '[' {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                '\\' if pi + 1 < p.len() => {
                    if p[pi + 1] == t[ti] {
                        pi += 2;
                        ti += 1;
                        continue;
                    }
                }
                c => {
                    if c == t[ti] {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Matches `c` against the class starting at `p[start] == '['`. Returns (matched, index
/// after the class) or None when the class is not terminated.
fn class_match(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            ch
        };
        i += 1;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
            let mut hi = p[i + 1];
            i += 2;
            if hi == '\\' {
                hi = *p.get(i)?;
                i += 1;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
        } else if lo == c {
            matched = true;
        }
    }
    Some((matched != negate, i))
}

fn trim_pattern(value: &str, pattern: &str, prefix: bool, longest: bool) -> String {
    let idx: Vec<usize> = value
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(value.len()))
        .collect();
    if prefix {
        let iter: Box<dyn Iterator<Item = &usize>> = if longest {
            Box::new(idx.iter().rev())
        } else {
            Box::new(idx.iter())
        };
        for &i in iter {
            if glob_match(pattern, &value[..i]) {
                return value[i..].to_string();
            }
        }
    } else {
        let iter: Box<dyn Iterator<Item = &usize>> = if longest {
            Box::new(idx.iter())
        } else {
            Box::new(idx.iter().rev())
        };
        for &i in iter {
            if glob_match(pattern, &value[i..]) {
                return value[..i].to_string();
            }
        }
    }
    value.to_string()
}

fn replace_pattern(value: &str, pattern: &str, replacement: &str, all: bool) -> String {
    if pattern.is_empty() {
        return value.to_string();
    }
    let idx: Vec<usize> = value
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(value.len()))
        .collect();
    let mut out = String::new();
    let mut k = 0usize; // index into idx
    let mut replaced = false;
    while k < idx.len() - 1 {
        let start = idx[k];
        let mut hit = None;
        if !replaced || all {
            // longest match starting here
            for j in (k + 1..idx.len()).rev() {
                if glob_match(pattern, &value[start..idx[j]]) {
                    hit = Some(j);
                    break;
                }
            }
        }
        match hit {
            Some(j) => {
                out.push_str(replacement);
                replaced = true;
                k = j;
            }
            None => {
                out.push_str(&value[start..idx[k + 1]]);
                k += 1;
            }
        }
    }
    out
}
