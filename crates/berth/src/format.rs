//! Docker's `--format`: Go templates (gotmpl) with the docker CLI's template functions,
//! the `table` directive (header row rendered through the same template, laid out with
//! tabwriter 10,1,3,' ' as the docker CLI), and the `json` shorthand.

use std::io::Write as _;

use anyhow::{Context as _, anyhow};
use gotmpl::{Template, Value};

/// A parsed `--format`.
pub struct Format {
    template: Template,
    table: bool,
}

impl std::fmt::Debug for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Format")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

/// gotmpl value → JSON (for the `json` function).
pub fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(n) => serde_json::Value::from(*n),
        Value::Uint(n) => serde_json::Value::from(*n),
        Value::Float(f) => serde_json::Value::from(*f),
        Value::String(s) => serde_json::Value::String(s.to_string()),
        Value::List(l) => serde_json::Value::Array(l.iter().map(to_json).collect()),
        Value::Map(m) => {
            serde_json::Value::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect())
        }
    }
}

fn arg_str(args: &[Value], i: usize) -> String {
    match args.get(i) {
        Some(Value::String(s)) => s.to_string(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c.is_whitespace();
    }
    out
}

/// The value of label `key` in a `Labels` column: docker's `k=v,k2=v2` string (a value may
/// itself hold commas: a segment without `=` continues the value before it) or a map.
fn label_value(labels: Option<&Value>, key: &str) -> String {
    match labels {
        Some(Value::Map(m)) => m.get(key).map(|v| v.to_string()).unwrap_or_default(),
        Some(Value::String(s)) => {
            let mut found: Option<String> = None;
            let mut in_key = false;
            for seg in s.split(',') {
                match seg.split_once('=') {
                    Some((k, v)) => {
                        if found.is_some() && in_key {
                            break;
                        }
                        in_key = k == key;
                        if in_key {
                            found = Some(v.to_owned());
                        }
                    }
                    None if in_key => {
                        if let Some(f) = found.as_mut() {
                            f.push(',');
                            f.push_str(seg);
                        }
                    }
                    None => {}
                }
            }
            found.unwrap_or_default()
        }
        _ => String::new(),
    }
}

/// Docker's formatter contexts (ps, volume ls, network ls) have a `Label` method, so
/// `{{.Label "k"}}` is label k's value. gotmpl has no methods: inside actions, `.Label`
/// followed by a string literal becomes `(label .Labels "k")`. Text outside actions and
/// string literals are left alone.
fn rewrite_label_method(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let mut in_action = false;
    let mut copied = 0;
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        if !in_action {
            if b[i..].starts_with(b"{{") {
                in_action = true;
                i += 2;
            } else {
                i += 1;
            }
            continue;
        }
        match b[i] {
            b'}' if b[i..].starts_with(b"}}") => {
                in_action = false;
                i += 2;
            }
            b'"' | b'`' => i = literal_end(b, i).unwrap_or(b.len()),
            b'.' if b[i..].starts_with(b".Label")
                && (i == 0
                    || !(ident(b[i - 1]) || matches!(b[i - 1], b'.' | b')' | b'$' | b']')))
                && b.get(i + 6).is_some_and(|c| c.is_ascii_whitespace()) =>
            {
                let mut j = i + 6;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                match literal_end(b, j) {
                    Some(end) => {
                        out.push_str(&src[copied..i]);
                        out.push_str("(label .Labels ");
                        out.push_str(&src[j..end]);
                        out.push(')');
                        copied = end;
                        i = end;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(&src[copied.min(src.len())..]);
    out
}

/// The index just past the Go string literal (`"…"` with escapes, or `` `…` ``) that starts
/// at `start`; `None` when none starts there or it is not closed.
fn literal_end(b: &[u8], start: usize) -> Option<usize> {
    let quote = *b.get(start).filter(|&&c| c == b'"' || c == b'`')?;
    let mut k = start + 1;
    while k < b.len() && b[k] != quote {
        k += if quote == b'"' && b[k] == b'\\' { 2 } else { 1 };
    }
    (k < b.len()).then_some(k + 1)
}

/// A template with docker's functions registered.
pub fn template(src: &str) -> anyhow::Result<Template> {
    let src = rewrite_label_method(src);
    Template::new("format")
        .func("label", |a| {
            Ok(Value::String(label_value(a.first(), &arg_str(a, 1)).into()))
        })
        .func("json", |a| {
            let v = a.first().map(to_json).unwrap_or(serde_json::Value::Null);
            Ok(Value::String(
                serde_json::to_string(&v).unwrap_or_default().into(),
            ))
        })
        .func("join", |a| {
            let sep = arg_str(a, 1);
            let items: Vec<String> = match a.first() {
                Some(Value::List(l)) => l.iter().map(|v| v.to_string()).collect(),
                Some(v) => vec![v.to_string()],
                None => vec![],
            };
            Ok(Value::String(items.join(&sep).into()))
        })
        .func("split", |a| {
            let (s, sep) = (arg_str(a, 0), arg_str(a, 1));
            Ok(Value::List(
                s.split(sep.as_str())
                    .map(|p| Value::String(p.into()))
                    .collect::<Vec<_>>()
                    .into(),
            ))
        })
        .func("lower", |a| {
            Ok(Value::String(arg_str(a, 0).to_lowercase().into()))
        })
        .func("upper", |a| {
            Ok(Value::String(arg_str(a, 0).to_uppercase().into()))
        })
        .func("title", |a| Ok(Value::String(title(&arg_str(a, 0)).into())))
        .func("pad", |a| {
            let l = a.get(1).and_then(Value::as_int).unwrap_or(0).max(0) as usize;
            let r = a.get(2).and_then(Value::as_int).unwrap_or(0).max(0) as usize;
            Ok(Value::String(
                format!("{}{}{}", " ".repeat(l), arg_str(a, 0), " ".repeat(r)).into(),
            ))
        })
        .func("truncate", |a| {
            let n = a.get(1).and_then(Value::as_int).unwrap_or(0).max(0) as usize;
            Ok(Value::String(
                arg_str(a, 0).chars().take(n).collect::<String>().into(),
            ))
        })
        .func("println", |a| {
            let parts: Vec<String> = a.iter().map(|v| v.to_string()).collect();
            Ok(Value::String(format!("{}\n", parts.join(" ")).into()))
        })
        .parse(&src)
        .map_err(|e| anyhow!("template parsing error: {e}"))
}

impl Format {
    /// Parses `format`; `table` alone means `default_table`, `json` means `{{json .}}`.
    pub fn parse(format: &str, default_table: &str) -> anyhow::Result<Format> {
        let f = format.trim_start();
        if f == "json" {
            return Ok(Format {
                template: template("{{json .}}")?,
                table: false,
            });
        }
        if f == "table" {
            return Format::parse(default_table, default_table);
        }
        if let Some(rest) = f.strip_prefix("table") {
            let src = rest
                .trim_start_matches([' ', '\t'])
                .replace("\\t", "\t")
                .replace("\\n", "\n");
            return Ok(Format {
                template: template(&src)?,
                table: true,
            });
        }
        Ok(Format {
            template: template(&format.replace("\\t", "\t").replace("\\n", "\n"))?,
            table: false,
        })
    }

    /// Renders `rows` (with `header` as the table's header context) to a string.
    pub fn render(
        &self,
        header: &serde_json::Value,
        rows: &[serde_json::Value],
    ) -> anyhow::Result<String> {
        let mut out = String::new();
        if self.table {
            out.push_str(&self.one(header)?);
            out.push('\n');
        }
        for r in rows {
            out.push_str(&self.one(r)?);
            out.push('\n');
        }
        if self.table {
            out = tabulate(&out)?;
        }
        Ok(out)
    }

    fn one(&self, data: &serde_json::Value) -> anyhow::Result<String> {
        let v = gotmpl::to_value(data).map_err(|e| anyhow!("template data: {e}"))?;
        self.template
            .execute_to_string(&v)
            .map_err(|e| anyhow!("template: {e}"))
    }
}

/// Lays out tab-separated text as the docker CLI does (Go tabwriter 10, 1, 3, ' '). Go counts
/// the padding inside minwidth, the Rust port adds it after: minwidth 7 + padding 3.
pub fn tabulate(text: &str) -> anyhow::Result<String> {
    let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(7).padding(3);
    tw.write_all(text.as_bytes())?;
    let buf = tw
        .into_inner()
        .map_err(|e| anyhow!("tabwriter: {}", e.error()))?;
    String::from_utf8(buf).context("tabwriter produced invalid UTF-8")
}

/// go's `time.RFC3339Nano` (trailing zeros of the fraction trimmed), UTC.
pub fn rfc3339_nano(nanos: i64) -> String {
    let ts =
        jiff::Timestamp::from_nanosecond(i128::from(nanos)).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let base = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let frac = nanos.rem_euclid(1_000_000_000);
    if frac == 0 {
        return format!("{base}Z");
    }
    let f = format!("{frac:09}");
    format!("{base}.{}Z", f.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_and_table_and_json_formats() {
        let rows =
            vec![json!({"ID": "abc", "Tag": "latest", "Labels": {"a": "b"}, "Names": ["x", "y"]})];
        let h = json!({"ID": "IMAGE ID", "Tag": "TAG"});
        assert_eq!(
            Format::parse("{{.ID}}", "")
                .unwrap()
                .render(&h, &rows)
                .unwrap(),
            "abc\n"
        );
        assert_eq!(
            Format::parse("table {{.ID}}\\t{{.Tag}}", "")
                .unwrap()
                .render(&h, &rows)
                .unwrap(),
            "IMAGE ID   TAG\nabc        latest\n"
        );
        assert_eq!(
            Format::parse("json", "")
                .unwrap()
                .render(&h, &rows[..0])
                .unwrap(),
            ""
        );
        let j = Format::parse("{{json .Labels}}", "")
            .unwrap()
            .render(&h, &rows)
            .unwrap();
        assert_eq!(j, "{\"a\":\"b\"}\n");
        let f = Format::parse("{{join .Names \",\"}} {{upper .Tag}} {{title \"ab cd\"}} {{truncate .ID 2}} {{index .Labels \"a\"}}", "").unwrap();
        assert_eq!(f.render(&h, &rows).unwrap(), "x,y LATEST Ab Cd ab b\n");
        assert!(Format::parse("{{.ID", "").is_err());
    }

    #[test]
    fn label_method_reads_one_label() {
        let rows = vec![json!({"ID": "abc", "Labels": "a=1,b=x,y,c=3"})];
        let h = json!({});
        let r = |f: &str| Format::parse(f, "").unwrap().render(&h, &rows).unwrap();
        assert_eq!(r("{{.Label \"a\"}}"), "1\n");
        assert_eq!(r("{{ .Label \"b\" }}|{{.Label `c`}}"), "x,y|3\n");
        assert_eq!(r("{{.Label \"missing\"}}"), "\n");
        assert_eq!(r("{{.Label \"a\" | printf \"<%s>\"}}"), "<1>\n");
        // .Labels, text outside actions and string literals are left alone
        assert_eq!(
            r(".Label \"a\" {{.Labels}}"),
            ".Label \"a\" a=1,b=x,y,c=3\n"
        );
        assert_eq!(r("{{printf \".Label \\\"a\\\"\"}}"), ".Label \"a\"\n");
        let maps = vec![json!({"Labels": {"k": "v"}})];
        assert_eq!(
            Format::parse("{{.Label \"k\"}}", "")
                .unwrap()
                .render(&h, &maps)
                .unwrap(),
            "v\n"
        );
    }

    #[test]
    fn tabwriter_matches_docker_layout() {
        assert_eq!(
            tabulate("REPOSITORY\tTAG\tSIZE\nbusybox\tlatest\t1.98MB\n").unwrap(),
            "REPOSITORY   TAG       SIZE\nbusybox      latest    1.98MB\n"
        );
    }

    #[test]
    fn rfc3339_nano_trims_like_go() {
        assert_eq!(
            rfc3339_nano(1_735_689_600_000_000_000),
            "2025-01-01T00:00:00Z"
        );
        assert_eq!(
            rfc3339_nano(1_735_689_600_157_250_000),
            "2025-01-01T00:00:00.15725Z"
        );
    }
}
