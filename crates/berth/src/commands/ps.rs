//! `berth ps`: the body of `GET /containers/json` decoded once into typed entries whose
//! strings borrow from it, each column computed as the docker CLI's `ContainerContext`
//! does, and the default table laid out directly with Go tabwriter's rules (minwidth 10,
//! padding 3), written in one go. `--format` templates go through [`crate::format`].

use std::borrow::Cow;
use std::collections::BTreeMap;

use berth_api::client::{Client, body_chunks, empty};
use berth_api::units::{human_duration, human_size_prec};
use futures_util::StreamExt as _;
use hyper::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::commands::containers::PsArgs;
use crate::commands::{filters_json, out};
use crate::format::Format;

/// Docker's default `ps` table (`defaultContainerTableFormat`).
pub const PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// A JSON string, borrowed from the body when it has no escapes.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct Str<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// One entry of `GET /containers/json` as `ps` reads it. Strings without escapes borrow
/// from the response body; empty lists and maps allocate nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Entry<'a> {
    /// 64 hex.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// `/name` (and `/other/alias` for legacy links).
    #[serde(borrow)]
    pub names: Option<Vec<Str<'a>>>,
    /// As given at create.
    #[serde(borrow)]
    pub image: Cow<'a, str>,
    /// `sha256:…`.
    #[serde(rename = "ImageID", borrow)]
    pub image_id: Cow<'a, str>,
    /// Path and args.
    #[serde(borrow)]
    pub command: Cow<'a, str>,
    /// Unix seconds.
    pub created: i64,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// `running`, `exited`, …
    #[serde(borrow)]
    pub state: Cow<'a, str>,
    /// `Up 5 seconds`, …
    #[serde(borrow)]
    pub status: Cow<'a, str>,
    /// With `size=1`.
    pub size_rw: Option<f64>,
    /// With `size=1`.
    pub size_root_fs: Option<f64>,
    /// Published ports.
    pub ports: Option<Vec<Value>>,
    /// `{"NetworkMode": …}`.
    #[serde(borrow)]
    pub host_config: HostConfig<'a>,
    /// `{"Networks": …}` (only the names are read).
    pub network_settings: NetworkSettings,
    /// Mount points.
    pub mounts: Option<Vec<Value>>,
}

/// `HostConfig` of an [`Entry`].
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig<'a> {
    /// `none`, `bridge`, …
    #[serde(borrow)]
    pub network_mode: Cow<'a, str>,
}

/// `NetworkSettings` of an [`Entry`].
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettings {
    /// The networks by name (their endpoints are not read).
    pub networks: Option<BTreeMap<String, serde::de::IgnoredAny>>,
}

/// Docker's `stringid.TruncateID`: what follows a `:`, cut to 12.
fn truncate_id(id: &str) -> &str {
    let id = id.split_once(':').map_or(id, |(_, rest)| rest);
    id.get(..12).unwrap_or(id)
}

/// Docker's `formatter.Ellipsis`: at most `n` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, n: usize) -> Cow<'_, str> {
    match s.char_indices().nth(n) {
        None => Cow::Borrowed(s),
        Some(_) => {
            let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
            t.push('…');
            Cow::Owned(t)
        }
    }
}

/// Go's `strconv.Quote` (the COMMAND column): printable characters kept, the rest escaped.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                let n = c as u32;
                if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Entry<'_> {
    /// `ID`.
    pub fn id_column(&self, trunc: bool) -> &str {
        if trunc {
            truncate_id(&self.id)
        } else {
            &self.id
        }
    }

    /// `Image`: a truncated id when the image was given by id, the digest dropped from a
    /// `name@digest` reference (docker's `ContainerContext.Image`).
    pub fn image_column(&self, trunc: bool) -> &str {
        if self.image.is_empty() {
            return "<no image>";
        }
        if trunc {
            if !self.image_id.is_empty() && truncate_id(&self.image_id) == truncate_id(&self.image)
            {
                return truncate_id(&self.image);
            }
            if let Some((name, _digest)) = self.image.split_once('@') {
                return name;
            }
        }
        &self.image
    }

    /// `Command`: quoted, cut to 20 characters unless `--no-trunc`.
    pub fn command_column(&self, trunc: bool) -> String {
        if trunc {
            go_quote(&ellipsis(&self.command, 20))
        } else {
            go_quote(&self.command)
        }
    }

    /// `RunningFor` (the CREATED column): `5 minutes ago`.
    pub fn running_for(&self, now: i64) -> String {
        format!("{} ago", human_duration(now - self.created))
    }

    /// `CreatedAt`: Go's `time.Unix(created, 0).String()` in the local zone.
    pub fn created_at(&self, tz: &jiff::tz::TimeZone) -> String {
        jiff::Timestamp::from_second(self.created)
            .map(|t| {
                t.to_zoned(tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S %z %Z")
                    .to_string()
            })
            .unwrap_or_default()
    }

    /// `Names`: without the leading `/`; truncated, the first name that is no link alias.
    pub fn names_column(&self, trunc: bool) -> String {
        let names: Vec<&str> = self
            .names
            .iter()
            .flatten()
            .map(|n| n.0.strip_prefix('/').unwrap_or(&n.0))
            .collect();
        if trunc && let Some(n) = names.iter().find(|n| !n.contains('/')) {
            return (*n).to_owned();
        }
        names.join(",")
    }

    /// `Labels`: `k=v` joined with `,`.
    pub fn labels_column(&self) -> String {
        let mut s = String::new();
        for (k, v) in self.labels.iter().flatten() {
            if !s.is_empty() {
                s.push(',');
            }
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s
    }

    /// `Size`: `<rw>`, and ` (virtual <rootfs>)` when the root file system size is known.
    pub fn size_column(&self) -> String {
        let rw = human_size_prec(self.size_rw.unwrap_or(0.0), 3);
        match self.size_root_fs {
            Some(root) if root > 0.0 => format!("{rw} (virtual {})", human_size_prec(root, 3)),
            _ => rw,
        }
    }

    /// `LocalVolumes`: how many mounts are named volumes.
    pub fn local_volumes(&self) -> usize {
        self.mounts
            .iter()
            .flatten()
            .filter(|m| m["Name"].as_str().is_some_and(|n| !n.is_empty()))
            .count()
    }

    /// The networking and mount fields as one JSON object, for the helpers of
    /// `run_net`/`run_mounts` that read them by key.
    fn net_value(&self) -> Value {
        let networks: serde_json::Map<String, Value> = self
            .network_settings
            .networks
            .iter()
            .flatten()
            .map(|(k, _)| (k.clone(), json!({})))
            .collect();
        json!({
            "Ports": self.ports,
            "HostConfig": {"NetworkMode": self.host_config.network_mode},
            "NetworkSettings": {"Networks": networks},
            "Mounts": self.mounts,
        })
    }

    /// `Ports`.
    pub fn ports_column(&self) -> String {
        match &self.ports {
            Some(p) if !p.is_empty() => crate::commands::run_net::ps_ports(&json!({ "Ports": p })),
            _ => String::new(),
        }
    }
}

/// The template context of one entry: every field of docker's `ContainerContext`.
pub fn row_value(e: &Entry<'_>, trunc: bool, now: i64, tz: &jiff::tz::TimeZone) -> Value {
    let net = e.net_value();
    json!({
        "ID": e.id_column(trunc),
        "Image": e.image_column(trunc),
        "Command": e.command_column(trunc),
        "CreatedAt": e.created_at(tz),
        "RunningFor": e.running_for(now),
        "Status": e.status,
        "State": e.state,
        "Ports": e.ports_column(),
        "Names": e.names_column(trunc),
        "Labels": e.labels_column(),
        "Networks": crate::commands::run_net::ps_networks(&net),
        "Mounts": crate::commands::run_mounts::ps_mounts(&net, !trunc),
        "LocalVolumes": e.local_volumes().to_string(),
        "Size": e.size_column(),
        "Platform": null,
    })
}

/// One `ps` row as docker's formatter context names it, from a summary as JSON.
pub fn ps_row(v: &Value, no_trunc: bool) -> Value {
    let e = Entry::deserialize(v).unwrap_or_default();
    let now = jiff::Timestamp::now().as_second();
    row_value(&e, !no_trunc, now, &jiff::tz::TimeZone::system())
}

/// The header row of the `table` templates.
fn header() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Status": "STATUS", "State": "STATE", "Ports": "PORTS",
        "Names": "NAMES", "Labels": "LABELS", "Networks": "NETWORKS", "Mounts": "MOUNTS",
        "Size": "SIZE", "LocalVolumes": "LOCAL VOLUMES", "Platform": "PLATFORM",
    })
}

/// Lays out the first `cols` cells of each row as Go's tabwriter (minwidth 10, padding 3,
/// as the docker CLI sets it): every column but the last padded to max(10, widest cell
/// + 3) characters.
pub fn layout<const N: usize>(rows: &[[Cow<'_, str>; N]], cols: usize) -> String {
    let cols = cols.min(N);
    let mut widths = [0usize; N];
    for r in rows {
        for (w, c) in widths[..cols].iter_mut().zip(r.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    for w in &mut widths {
        *w = (*w + 3).max(10);
    }
    let line: usize = widths[..cols].iter().sum::<usize>() + 1;
    let mut out = String::with_capacity(rows.len() * line);
    for r in rows {
        for (i, c) in r[..cols].iter().enumerate() {
            out.push_str(c);
            if i + 1 < cols {
                let pad = widths[i] - c.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// Whether a `--format` template reads `.Size`, so the daemon must compute sizes (the
/// docker CLI requests them when the template uses the field, and `{{json .}}` marshals
/// every field; its `json` shorthand does not ask for them).
pub fn format_wants_size(format: &str) -> bool {
    let f: String = format.chars().filter(|c| !c.is_whitespace()).collect();
    f.contains(".Size") || f.contains("json.}}")
}

/// The default table (with the SIZE column for `-s`), without a template engine.
fn default_table(entries: &[Entry<'_>], trunc: bool, size: bool, now: i64) -> String {
    let mut rows: Vec<[Cow<'_, str>; 8]> = Vec::with_capacity(entries.len() + 1);
    rows.push(
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
            "SIZE",
        ]
        .map(Cow::Borrowed),
    );
    for e in entries {
        rows.push([
            Cow::Borrowed(e.id_column(trunc)),
            Cow::Borrowed(e.image_column(trunc)),
            Cow::Owned(e.command_column(trunc)),
            Cow::Owned(e.running_for(now)),
            Cow::Borrowed(&e.status),
            Cow::Owned(e.ports_column()),
            Cow::Owned(e.names_column(trunc)),
            if size {
                Cow::Owned(e.size_column())
            } else {
                Cow::Borrowed("")
            },
        ]);
    }
    layout(&rows, if size { 8 } else { 7 })
}

/// `berth ps`.
pub async fn ps(c: &Client, a: &PsArgs) -> anyhow::Result<()> {
    let mut q = vec![("all", if a.all { "1" } else { "0" }.to_owned())];
    let last = if a.latest { 1 } else { a.last };
    if last > 0 {
        q[0].1 = "1".into();
        q.push(("limit", last.to_string()));
    }
    if let Some(f) = filters_json(&a.filter)? {
        q.push(("filters", f));
    }
    let custom = a
        .format
        .as_deref()
        .filter(|f| !matches!(f.trim(), "" | "table"));
    let size = a.size || (!a.quiet && custom.is_some_and(format_wants_size));
    if size {
        q.push(("size", "1".into()));
    }
    let resp = c
        .send(Method::GET, "/containers/json", &q, empty(), &[])
        .await?;
    let len = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = Vec::with_capacity(len);
    let mut chunks = Box::pin(body_chunks(resp));
    while let Some(chunk) = chunks.next().await {
        body.extend_from_slice(&chunk?);
    }
    let entries: Vec<Entry<'_>> = serde_json::from_slice(&body)
        .map_err(|e| anyhow::anyhow!("invalid answer from the daemon for /containers/json: {e}"))?;
    let trunc = !a.no_trunc;
    if a.quiet {
        let mut s = String::with_capacity(entries.len() * 65);
        for e in &entries {
            s.push_str(e.id_column(trunc));
            s.push('\n');
        }
        return out(&s);
    }
    let now = jiff::Timestamp::now().as_second();
    let Some(format) = custom else {
        return out(&default_table(&entries, trunc, a.size, now));
    };
    let with_size = format!("{PS_TABLE}\t{{{{.Size}}}}");
    let table = if a.size { with_size.as_str() } else { PS_TABLE };
    let fmt = Format::parse(format, table)?;
    let tz = jiff::tz::TimeZone::system();
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| row_value(e, trunc, now, &tz))
        .collect();
    out(&fmt.render(&header(), &rows)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::tabulate;

    fn entry(v: &Value) -> Entry<'_> {
        Entry::deserialize(v).unwrap()
    }

    #[test]
    fn layout_is_go_tabwriter() {
        let rows = [
            ["CONTAINER ID", "IMAGE", "NAMES"].map(Cow::Borrowed),
            ["c968e2676d2d", "busybox:latest-with-long-tag", "ps999"].map(Cow::Borrowed),
            ["1", "", "x…y"].map(Cow::Borrowed),
        ];
        let text: String = rows.iter().map(|r| format!("{}\n", r.join("\t"))).collect();
        assert_eq!(layout(&rows, 3), tabulate(&text).unwrap());
        let two: String = rows
            .iter()
            .map(|r| format!("{}\t{}\n", r[0], r[1]))
            .collect();
        assert_eq!(layout(&rows, 2), tabulate(&two).unwrap());
        assert_eq!(
            layout(&[["a", "b"].map(Cow::Borrowed)], 2),
            "a         b\n",
            "minimum width 10"
        );
    }

    #[test]
    fn columns_as_the_docker_cli() {
        let v = json!({
            "Id": "c968e2676d2d94eddfccf85929b40c837fdd820f9bada86126a9e8aeb99cdd55",
            "Names": ["/web", "/other/alias"],
            "Image": "sha256:8a4403f6ba04d41b058b9b496a5778c0361876b22d13cc6f6ec151ab1bc74dd4",
            "ImageID": "sha256:8a4403f6ba04d41b058b9b496a5778c0361876b22d13cc6f6ec151ab1bc74dd4",
            "Command": "sh -c \"echo hello; sleep 1000\"\u{7}",
            "Created": 1_735_689_600,
            "Labels": {"b": "2", "a": "1"},
            "State": "running",
            "Status": "Up 5 seconds",
            "Ports": [], "Mounts": [{"Type": "volume", "Name": "data", "Source": "/x"}],
            "HostConfig": {"NetworkMode": "bridge"},
            "NetworkSettings": {"Networks": {"bridge": {}}},
        });
        let e = entry(&v);
        assert_eq!(e.id_column(true), "c968e2676d2d");
        assert_eq!(e.image_column(true), "8a4403f6ba04");
        assert_eq!(e.image_column(false), v["Image"].as_str().unwrap());
        assert_eq!(e.command_column(true), "\"sh -c \\\"echo hello; …\"");
        assert_eq!(
            e.command_column(false),
            "\"sh -c \\\"echo hello; sleep 1000\\\"\\a\""
        );
        assert_eq!(e.names_column(true), "web");
        assert_eq!(e.names_column(false), "web,other/alias");
        assert_eq!(e.labels_column(), "a=1,b=2");
        assert_eq!(e.local_volumes(), 1);
        assert_eq!(
            e.created_at(&jiff::tz::TimeZone::UTC),
            "2025-01-01 00:00:00 +0000 UTC"
        );
        assert_eq!(e.running_for(1_735_689_600 + 120), "2 minutes ago");
        assert_eq!(e.size_column(), "0B", "no virtual size without size=1");
        let sized = json!({"SizeRw": 12, "SizeRootFs": 1_980_000});
        let sized = entry(&sized);
        assert_eq!(sized.size_column(), "12B (virtual 1.98MB)");
        let digest = json!({"Image": "busybox:1@sha256:abc", "ImageID": "sha256:def"});
        let digest = entry(&digest);
        assert_eq!(digest.image_column(true), "busybox:1");
        assert_eq!(entry(&json!({})).image_column(true), "<no image>");
    }

    #[test]
    fn size_is_requested_when_the_template_reads_it() {
        assert!(format_wants_size("table {{.ID}}\\t{{.Size}}"));
        assert!(!format_wants_size("json"));
        assert!(format_wants_size("{{ json . }}"));
        assert!(!format_wants_size("{{json .Labels}}"));
        assert!(!format_wants_size("{{.ID}}"));
    }

    #[test]
    fn default_table_rows() {
        let list = json!([
            {"Id": "a".repeat(64), "Names": ["/one"], "Image": "busybox", "Command": "true",
             "Created": 100, "State": "created", "Status": "Created"},
            {"Id": "b".repeat(64), "Names": ["/two"], "Image": "busybox", "Command": "sleep 1000",
             "Created": 40, "State": "running", "Status": "Up 1 second",
             "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}]},
        ]);
        let entries: Vec<Entry<'_>> = Vec::deserialize(&list).unwrap();
        let t = default_table(&entries, true, false, 160);
        assert_eq!(
            t,
            "CONTAINER ID   IMAGE     COMMAND        CREATED              STATUS        PORTS                  NAMES\n\
             aaaaaaaaaaaa   busybox   \"true\"         About a minute ago   Created                              one\n\
             bbbbbbbbbbbb   busybox   \"sleep 1000\"   2 minutes ago        Up 1 second   0.0.0.0:8080->80/tcp   two\n"
        );
        let t = default_table(&entries, true, true, 160);
        assert!(t.starts_with("CONTAINER ID   IMAGE     COMMAND        CREATED              STATUS        PORTS                  NAMES     SIZE\n"), "{t}");
    }
}
