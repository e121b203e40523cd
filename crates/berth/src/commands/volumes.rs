//! `volume create|ls|inspect|rm|prune`, with the docker CLI's output.

use std::collections::BTreeMap;

use berth_api::client::{Client, ClientError, empty, full};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use crate::Exit;
use crate::commands::images::inspect_each;
use crate::commands::{filters_json, out};
use crate::format::Format;

/// `berth volume …`.
#[derive(Debug, Subcommand)]
#[command(defer = true)] // args are built only for the subcommand in use (start-up time)
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

// `volume create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long = "driver", default_value = "local")]
    pub driver: String,
    /// Set metadata for a volume
    #[arg(long = "label")]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Specify volume name
    #[arg(long = "name")]
    pub name_flag: Option<String>,
    /// The name
    pub name: Option<String>,
}

// `volume ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template ("table", "json" or a template)
    #[arg(long = "format")]
    pub format: Option<String>,
}

// `volume inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
    /// Volumes
    #[arg(required = true)]
    pub names: Vec<String>,
}

// `volume rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Volumes
    #[arg(required = true)]
    pub names: Vec<String>,
}

// `volume prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

const TABLE: &str = "table {{.Driver}}\t{{.Name}}";

fn kv(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Runs a `volume` subcommand.
pub async fn run(c: &Client, cmd: &VolumeCommand) -> anyhow::Result<()> {
    match cmd {
        VolumeCommand::Create(a) => create(c, a).await,
        VolumeCommand::Ls(a) => ls(c, a).await,
        VolumeCommand::Inspect(a) => inspect(c, a).await,
        VolumeCommand::Rm(a) => rm(c, a).await,
        VolumeCommand::Prune(a) => prune(c, a).await,
    }
}

async fn create(c: &Client, a: &CreateArgs) -> anyhow::Result<()> {
    let name = match (&a.name, &a.name_flag) {
        (Some(n), Some(f)) if n != f => anyhow::bail!(
            "conflicting options: cannot specify a volume-name through both --name and as a positional arg"
        ),
        (Some(n), _) | (None, Some(n)) => n.clone(),
        (None, None) => String::new(),
    };
    let body = json!({
        "Name": name,
        "Driver": a.driver,
        "DriverOpts": kv(&a.opt),
        "Labels": kv(&a.label),
    });
    let resp = c
        .send(
            Method::POST,
            "/volumes/create",
            &[],
            full(serde_json::to_vec(&body)?),
            &[("Content-Type", "application/json".to_owned())],
        )
        .await?;
    let v: Value = berth_api::client::read_json(resp, "volume create").await?;
    out(&format!("{}\n", v["Name"].as_str().unwrap_or_default()))
}

async fn ls(c: &Client, a: &LsArgs) -> anyhow::Result<()> {
    let mut q = vec![];
    if let Some(f) = filters_json(&a.filter)? {
        q.push(("filters", f));
    }
    let v: Value = c.get_json("/volumes", &q).await?;
    let mut vols: Vec<Value> = v["Volumes"].as_array().cloned().unwrap_or_default();
    vols.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    if a.quiet {
        let s: String = vols
            .iter()
            .map(|v| format!("{}\n", v["Name"].as_str().unwrap_or_default()))
            .collect();
        return out(&s);
    }
    let rows: Vec<Value> = vols
        .iter()
        .map(|v| {
            let labels = v["Labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            json!({
                "Name": v["Name"], "Driver": v["Driver"], "Scope": v["Scope"],
                "Mountpoint": v["Mountpoint"], "Labels": labels, "CreatedAt": v["CreatedAt"],
                "Availability": "N/A", "Group": "N/A", "Size": "N/A", "Status": "N/A",
                "Links": "N/A",
            })
        })
        .collect();
    let header = json!({"Name": "VOLUME NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "Mountpoint": "MOUNTPOINT", "Labels": "LABELS", "CreatedAt": "CREATED",
        "Size": "SIZE", "Links": "LINKS"});
    let f = Format::parse(a.format.as_deref().unwrap_or(TABLE), TABLE)?;
    out(&f.render(&header, &rows)?)
}

async fn inspect(c: &Client, a: &InspectArgs) -> anyhow::Result<()> {
    inspect_each(c, "/volumes", &a.names, a.format.as_deref()).await
}

async fn rm(c: &Client, a: &RmArgs) -> anyhow::Result<()> {
    let mut failed = false;
    for n in &a.names {
        let q = [("force", if a.force { "1" } else { "0" }.to_owned())];
        match c
            .send(Method::DELETE, &format!("/volumes/{n}"), &q, empty(), &[])
            .await
        {
            Ok(_) => out(&format!("{n}\n"))?,
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

async fn prune(c: &Client, a: &PruneArgs) -> anyhow::Result<()> {
    if !a.force {
        let warning = if a.all {
            "WARNING! This will remove all local volumes not used by at least one container."
        } else {
            "WARNING! This will remove anonymous local volumes not used by at least one container."
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
        flags.push("all=true".into());
    }
    let mut q = vec![];
    if let Some(f) = filters_json(&flags)? {
        q.push(("filters", f));
    }
    let resp = c
        .send(Method::POST, "/volumes/prune", &q, empty(), &[])
        .await?;
    let v: Value = berth_api::client::read_json(resp, "volume prune").await?;
    let mut s = String::new();
    if let Some(items) = v["VolumesDeleted"].as_array().filter(|i| !i.is_empty()) {
        s.push_str("Deleted Volumes:\n");
        for i in items {
            s.push_str(i.as_str().unwrap_or_default());
            s.push('\n');
        }
        s.push('\n');
    }
    let space = v["SpaceReclaimed"].as_u64().unwrap_or(0);
    s.push_str(&format!(
        "Total reclaimed space: {}\n",
        berth_api::units::human_size(space)
    ));
    out(&s)
}
