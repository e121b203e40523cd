//! `images`, `inspect`, `history`, `tag`, `rmi`, `image prune`.

use berth_api::client::{Client, ClientError, empty};
use berth_api::units::{human_duration, human_size_prec};
use berth_types::reference::Reference;
use hyper::Method;
use serde_json::{Value, json};

use crate::Exit;
use crate::cli::{HistoryArgs, ImagesArgs, PruneArgs, RmiArgs, TagArgs};
use crate::commands::{filters_json, out};
use crate::format::Format;

const IMAGES_TABLE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const IMAGES_TABLE_DIGESTS: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const HISTORY_TABLE: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// `sha256:abc…` → `abc…` (12 characters) unless `no_trunc`.
pub fn short_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        return id.to_owned();
    }
    id.strip_prefix("sha256:")
        .unwrap_or(id)
        .chars()
        .take(12)
        .collect()
}

fn since(created: i64) -> String {
    if created <= 0 {
        return "N/A".into();
    }
    format!("{} ago", human_duration(now() - created))
}

fn created_at(created: i64) -> String {
    jiff::Timestamp::from_second(created)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default()
}

fn str_list(v: &Value, k: &str) -> Vec<String> {
    v.get(k)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Splits `repo:tag` (the last colon after the last slash).
fn split_repo_tag(t: &str) -> (String, String) {
    match t.rfind(':') {
        Some(i) if !t[i..].contains('/') => (t[..i].to_owned(), t[i + 1..].to_owned()),
        _ => (t.to_owned(), "<none>".to_owned()),
    }
}

/// The rows `docker images` prints for one image summary.
pub fn image_rows(img: &Value, digests: bool, no_trunc: bool) -> Vec<Value> {
    let id = img.get("Id").and_then(Value::as_str).unwrap_or_default();
    let created = img.get("Created").and_then(Value::as_i64).unwrap_or(0);
    let size = img.get("Size").and_then(Value::as_u64).unwrap_or(0);
    let tags = str_list(img, "RepoTags");
    let digest_list = str_list(img, "RepoDigests");
    let digest_of = |repo: &str| {
        digest_list
            .iter()
            .find_map(|d| {
                d.split_once('@')
                    .filter(|(r, _)| *r == repo)
                    .map(|(_, d)| d.to_owned())
            })
            .unwrap_or_else(|| "<none>".into())
    };
    let mut pairs: Vec<(String, String)> = tags
        .iter()
        .filter(|t| *t != "<none>:<none>")
        .map(|t| split_repo_tag(t))
        .collect();
    if pairs.is_empty() {
        match digest_list.first().and_then(|d| d.split_once('@')) {
            Some((r, _)) => pairs.push((r.to_owned(), "<none>".into())),
            None => pairs.push(("<none>".into(), "<none>".into())),
        }
    }
    let _ = digests;
    pairs
        .into_iter()
        .map(|(repo, tag)| {
            json!({
                "Containers": "N/A",
                "CreatedAt": created_at(created),
                "CreatedSince": since(created),
                "Digest": digest_of(&repo),
                "ID": short_id(id, no_trunc),
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": human_size_prec(size as f64, 3),
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": human_size_prec(size as f64, 3),
            })
        })
        .collect()
}

fn images_header() -> Value {
    json!({
        "Containers": "CONTAINERS", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED", "Digest": "DIGEST",
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "SharedSize": "SHARED SIZE", "Size": "SIZE", "Tag": "TAG",
        "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE"
    })
}

/// `berth images`.
pub async fn list(c: &Client, a: &ImagesArgs) -> anyhow::Result<()> {
    let mut flags = a.filter.clone();
    if let Some(r) = &a.repository {
        flags.push(format!("reference={r}"));
    }
    let mut q = vec![];
    if a.all {
        q.push(("all", "1".to_owned()));
    }
    if let Some(f) = filters_json(&flags)? {
        q.push(("filters", f));
    }
    let list: Vec<Value> = c.get_json("/images/json", &q).await?;
    let rows: Vec<Value> = list
        .iter()
        .flat_map(|i| image_rows(i, a.digests, a.no_trunc))
        .collect();
    if a.quiet {
        let mut s = String::new();
        for r in &rows {
            s.push_str(r["ID"].as_str().unwrap_or_default());
            s.push('\n');
        }
        return out(&s);
    }
    let default = if a.digests {
        IMAGES_TABLE_DIGESTS
    } else {
        IMAGES_TABLE
    };
    let f = Format::parse(a.format.as_deref().unwrap_or(default), default)?;
    out(&f.render(&images_header(), &rows)?)
}

/// Prints `value` as the docker CLI's inspect does (4-space indented JSON array).
pub fn print_inspect(values: &[Value], format: Option<&str>) -> anyhow::Result<()> {
    if let Some(f) = format {
        let t = Format::parse(f, f)?;
        return out(&t.render(&Value::Null, values)?);
    }
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(&values, &mut ser)?;
    buf.push(b'\n');
    out(&String::from_utf8_lossy(&buf))
}

/// `<group> inspect NAME...` for objects the daemon serves at `<prefix>/<name>`
/// (networks, volumes): each daemon error on stderr, the found ones printed, exit 1 if
/// any was missing.
pub async fn inspect_each(
    c: &Client,
    prefix: &str,
    names: &[String],
    format: Option<&str>,
) -> anyhow::Result<()> {
    let mut found = Vec::new();
    let mut failed = false;
    for n in names {
        match c.get_json::<Value>(&format!("{prefix}/{n}"), &[]).await {
            Ok(v) => found.push(v),
            Err(e @ ClientError::Daemon { .. }) => {
                eprintln!("{e}");
                failed = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    print_inspect(&found, format)?;
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// `berth inspect` / `berth image inspect` (images in this slice).
pub async fn inspect(
    c: &Client,
    names: &[String],
    format: Option<&str>,
    kind: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(k) = kind.filter(|k| *k != "image") {
        anyhow::bail!("\"{k}\" is not a valid value for --type (this berth inspects images)");
    }
    let mut found = Vec::new();
    let mut failed = false;
    for n in names {
        match c.get_json::<Value>(&format!("/images/{n}/json"), &[]).await {
            Ok(v) => found.push(v),
            Err(ClientError::Daemon { status: 404, .. }) => {
                eprintln!(
                    "Error: No such {}: {n}",
                    if kind.is_some() { "image" } else { "object" }
                );
                failed = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    print_inspect(&found, format)?;
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// `berth history`.
pub async fn history(c: &Client, a: &HistoryArgs) -> anyhow::Result<()> {
    let items: Vec<Value> = c
        .get_json(&format!("/images/{}/history", a.image), &[])
        .await?;
    let rows: Vec<Value> = items
        .iter()
        .map(|h| {
            let id = h.get("Id").and_then(Value::as_str).unwrap_or("<missing>");
            let created = h.get("Created").and_then(Value::as_i64).unwrap_or(0);
            let size = h.get("Size").and_then(Value::as_u64).unwrap_or(0);
            let mut by = h
                .get("CreatedBy")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .replace('\t', " ");
            if !a.no_trunc && by.chars().count() > 45 {
                by = by.chars().take(44).collect::<String>() + "…";
            }
            json!({
                "ID": if id == "<missing>" { id.to_owned() } else { short_id(id, a.no_trunc) },
                "CreatedSince": if a.human { since(created) } else { created_at(created) },
                "CreatedAt": created_at(created),
                "CreatedBy": by,
                "Size": if a.human { human_size_prec(size as f64, 3) } else { size.to_string() },
                "Comment": h.get("Comment").and_then(Value::as_str).unwrap_or_default(),
            })
        })
        .collect();
    if a.quiet {
        return out(&rows
            .iter()
            .map(|r| format!("{}\n", r["ID"].as_str().unwrap_or_default()))
            .collect::<String>());
    }
    let header = json!({"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT"});
    let f = Format::parse(a.format.as_deref().unwrap_or(HISTORY_TABLE), HISTORY_TABLE)?;
    out(&f.render(&header, &rows)?)
}

/// `berth tag`.
pub async fn tag(c: &Client, a: &TagArgs) -> anyhow::Result<()> {
    let target = Reference::parse(&a.target).map_err(|e| anyhow::anyhow!("{e}"))?;
    let repo = target.repository().familiar_name();
    let tag = target.tag().unwrap_or("latest").to_owned();
    c.send(
        Method::POST,
        &format!("/images/{}/tag", a.source),
        &[("repo", repo), ("tag", tag)],
        empty(),
        &[],
    )
    .await?;
    Ok(())
}

fn print_items(items: &[Value]) -> String {
    let mut s = String::new();
    for i in items {
        if let Some(t) = i.get("Untagged").and_then(Value::as_str) {
            s.push_str(&format!("Untagged: {t}\n"));
        }
        if let Some(d) = i.get("Deleted").and_then(Value::as_str) {
            s.push_str(&format!("Deleted: {d}\n"));
        }
    }
    s
}

/// `berth rmi`.
pub async fn remove(c: &Client, a: &RmiArgs) -> anyhow::Result<()> {
    let mut failed = false;
    for img in &a.images {
        let mut q = vec![];
        if a.force {
            q.push(("force", "1".to_owned()));
        }
        if a.no_prune {
            q.push(("noprune", "1".to_owned()));
        }
        match c
            .send(Method::DELETE, &format!("/images/{img}"), &q, empty(), &[])
            .await
        {
            Ok(resp) => {
                let items: Vec<Value> = berth_api::client::read_json(resp, "image remove").await?;
                out(&print_items(&items))?;
            }
            Err(e @ ClientError::Daemon { .. }) => {
                eprintln!("{e}");
                failed = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    if failed {
        return Err(Exit(1).into());
    }
    Ok(())
}

/// `berth image prune`.
pub async fn prune(c: &Client, a: &PruneArgs) -> anyhow::Result<()> {
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all images without at least one container associated to them."
        } else {
            "WARNING! This will remove all dangling images."
        };
        eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let mut flags = a.filter.clone();
    if a.all {
        flags.push("dangling=false".into());
    }
    let mut q = vec![];
    if let Some(f) = filters_json(&flags)? {
        q.push(("filters", f));
    }
    let resp = c
        .send(Method::POST, "/images/prune", &q, empty(), &[])
        .await?;
    let v: Value = berth_api::client::read_json(resp, "image prune").await?;
    let mut s = String::new();
    if let Some(items) = v
        .get("ImagesDeleted")
        .and_then(Value::as_array)
        .filter(|i| !i.is_empty())
    {
        s.push_str("Deleted Images:\n");
        s.push_str(
            &print_items(items)
                .replace("Untagged: ", "untagged: ")
                .replace("Deleted: ", "deleted: "),
        );
        s.push('\n');
    }
    let space = v.get("SpaceReclaimed").and_then(Value::as_u64).unwrap_or(0);
    s.push_str(&format!(
        "Total reclaimed space: {}\n",
        berth_api::units::human_size(space)
    ));
    out(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_docker_images() {
        let img = json!({"Id": "sha256:8a4403f6ba04d41b058b9b496a5778c0361876b22d13cc6f6ec151ab1bc74dd4", "Created": 1_700_000_000, "Size": 1_982_357,
            "RepoTags": ["busybox:latest", "localhost:5000/x:1"], "RepoDigests": ["localhost:5000/x@sha256:aa"]});
        let rows = image_rows(&img, false, false);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["Repository"], "busybox");
        assert_eq!(rows[0]["ID"], "8a4403f6ba04");
        assert_eq!(rows[0]["Size"], "1.98MB");
        assert_eq!(rows[0]["Digest"], "<none>");
        assert_eq!(rows[1]["Repository"], "localhost:5000/x");
        assert_eq!(rows[1]["Tag"], "1");
        assert_eq!(rows[1]["Digest"], "sha256:aa");
        assert!(rows[0]["CreatedSince"].as_str().unwrap().ends_with(" ago"));
        let none = image_rows(&json!({"Id": "sha256:ab", "RepoTags": []}), false, true);
        assert_eq!(
            (
                none[0]["Repository"].as_str(),
                none[0]["Tag"].as_str(),
                none[0]["ID"].as_str()
            ),
            (Some("<none>"), Some("<none>"), Some("sha256:ab"))
        );
    }
}
