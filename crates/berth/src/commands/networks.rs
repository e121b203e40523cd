//! `network create|ls|inspect|rm|prune|connect|disconnect|reload`, with the docker CLI's
//! output.

use std::collections::BTreeMap;

use berth_api::client::{Client, ClientError, empty, full};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use crate::Exit;
use crate::commands::images::inspect_each;
use crate::commands::{filters_json, out};
use crate::format::Format;

/// `berth network …`.
#[derive(Debug, Subcommand)]
#[command(defer = true)] // args are built only for the subcommand in use (start-up time)
pub enum NetworkCommand {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
    /// Re-apply every firewall rule of every network and running container (Berth)
    Reload,
}

// `network create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long = "driver", default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long = "subnet")]
    pub subnet: Vec<String>,
    /// IPv4 Gateway for the master subnet
    #[arg(long = "gateway")]
    pub gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long = "internal")]
    pub internal: bool,
    /// Enable manual container attachment
    #[arg(long = "attachable")]
    pub attachable: bool,
    /// Set metadata on a network
    #[arg(long = "label")]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// IP Address Management Driver
    #[arg(long = "ipam-driver", default_value = "default")]
    pub ipam_driver: String,
    /// The name
    pub name: String,
}

// `network ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only display network IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template ("table", "json" or a template)
    #[arg(long = "format")]
    pub format: Option<String>,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

// `network inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
    /// Networks
    #[arg(required = true)]
    pub names: Vec<String>,
}

// `network rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Networks
    #[arg(required = true)]
    pub names: Vec<String>,
}

// `network prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

// `network connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long = "ip")]
    pub ip: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "alias")]
    pub alias: Vec<String>,
    /// Add link to another container
    #[arg(long = "link")]
    pub link: Vec<String>,
    /// The network
    pub network: String,
    /// The container
    pub container: String,
}

// `network disconnect`.
#[derive(Debug, Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// The network
    pub network: String,
    /// The container
    pub container: String,
}

const TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";

fn kv(list: &[String]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// The create body for these flags (docker CLI's shape).
pub fn create_body(a: &CreateArgs) -> anyhow::Result<Value> {
    if a.subnet.len() > 1 || a.gateway.len() > 1 || a.ip_range.len() > 1 {
        anyhow::bail!("only one --subnet, --gateway and --ip-range per network are supported");
    }
    if a.subnet.is_empty() && (!a.gateway.is_empty() || !a.ip_range.is_empty()) {
        anyhow::bail!("every ip-range or gateway must have a corresponding subnet");
    }
    let config: Vec<Value> = a
        .subnet
        .iter()
        .map(|s| {
            let mut c = json!({"Subnet": s});
            if let Some(g) = a.gateway.first() {
                c["Gateway"] = json!(g);
            }
            if let Some(r) = a.ip_range.first() {
                c["IPRange"] = json!(r);
            }
            c
        })
        .collect();
    Ok(json!({
        "Name": a.name,
        "Driver": a.driver,
        "Internal": a.internal,
        "Attachable": a.attachable,
        "IPAM": {"Driver": a.ipam_driver, "Config": config, "Options": {}},
        "Options": kv(&a.opt),
        "Labels": kv(&a.label),
    }))
}

/// Runs a `network` subcommand.
pub async fn run(c: &Client, cmd: &NetworkCommand) -> anyhow::Result<()> {
    match cmd {
        NetworkCommand::Create(a) => create(c, a).await,
        NetworkCommand::Ls(a) => ls(c, a).await,
        NetworkCommand::Inspect(a) => inspect(c, a).await,
        NetworkCommand::Rm(a) => rm(c, a).await,
        NetworkCommand::Prune(a) => prune(c, a).await,
        NetworkCommand::Connect(a) => connect(c, a).await,
        NetworkCommand::Disconnect(a) => disconnect(c, a).await,
        NetworkCommand::Reload => {
            c.send(Method::POST, "/networks/reload", &[], empty(), &[])
                .await?;
            Ok(())
        }
    }
}

async fn post_json(
    c: &Client,
    path: &str,
    body: &Value,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
    Ok(c.send(
        Method::POST,
        path,
        &[],
        full(serde_json::to_vec(body)?),
        &[("Content-Type", "application/json".to_owned())],
    )
    .await?)
}

async fn create(c: &Client, a: &CreateArgs) -> anyhow::Result<()> {
    let resp = post_json(c, "/networks/create", &create_body(a)?).await?;
    let v: Value = berth_api::client::read_json(resp, "network create").await?;
    out(&format!("{}\n", v["Id"].as_str().unwrap_or_default()))
}

/// One `network ls` row as docker's formatter context names it.
pub fn ls_row(v: &Value, no_trunc: bool) -> Value {
    let id = v["Id"].as_str().unwrap_or_default();
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
        "ID": if no_trunc { id.to_owned() } else { id.chars().take(12).collect() },
        "Name": v["Name"], "Driver": v["Driver"], "Scope": v["Scope"],
        "IPv4": "true", "IPv6": v["EnableIPv6"].as_bool().unwrap_or(false).to_string(),
        "Internal": v["Internal"].as_bool().unwrap_or(false).to_string(),
        "Labels": labels, "CreatedAt": v["Created"],
    })
}

async fn ls(c: &Client, a: &LsArgs) -> anyhow::Result<()> {
    let mut q = vec![];
    if let Some(f) = filters_json(&a.filter)? {
        q.push(("filters", f));
    }
    let mut nets: Vec<Value> = c.get_json("/networks", &q).await?;
    nets.sort_by(|x, y| x["Name"].as_str().cmp(&y["Name"].as_str()));
    let rows: Vec<Value> = nets.iter().map(|v| ls_row(v, a.no_trunc)).collect();
    if a.quiet {
        let s: String = rows
            .iter()
            .map(|r| format!("{}\n", r["ID"].as_str().unwrap_or_default()))
            .collect();
        return out(&s);
    }
    let header = json!({"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER",
        "Scope": "SCOPE", "IPv4": "IPV4", "IPv6": "IPV6", "Internal": "INTERNAL",
        "Labels": "LABELS", "CreatedAt": "CREATED AT"});
    let f = Format::parse(a.format.as_deref().unwrap_or(TABLE), TABLE)?;
    out(&f.render(&header, &rows)?)
}

async fn inspect(c: &Client, a: &InspectArgs) -> anyhow::Result<()> {
    inspect_each(c, "/networks", &a.names, a.format.as_deref()).await
}

async fn rm(c: &Client, a: &RmArgs) -> anyhow::Result<()> {
    let mut failed = false;
    for n in &a.names {
        match c
            .send(Method::DELETE, &format!("/networks/{n}"), &[], empty(), &[])
            .await
        {
            Ok(_) => out(&format!("{n}\n"))?,
            Err(ClientError::Daemon { status: 404, .. }) if a.force => {}
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
        eprint!(
            "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] "
        );
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let mut q = vec![];
    if let Some(f) = filters_json(&a.filter)? {
        q.push(("filters", f));
    }
    let resp = c
        .send(Method::POST, "/networks/prune", &q, empty(), &[])
        .await?;
    let v: Value = berth_api::client::read_json(resp, "network prune").await?;
    let names: Vec<&str> = v["NetworksDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let mut s = String::from("Deleted Networks:\n");
    for n in names {
        s.push_str(n);
        s.push('\n');
    }
    out(&s)
}

async fn connect(c: &Client, a: &ConnectArgs) -> anyhow::Result<()> {
    let mut ep = json!({"Aliases": a.alias, "Links": a.link});
    if let Some(ip) = &a.ip {
        ep["IPAMConfig"] = json!({"IPv4Address": ip});
    }
    let body = json!({"Container": a.container, "EndpointConfig": ep});
    post_json(c, &format!("/networks/{}/connect", a.network), &body).await?;
    Ok(())
}

async fn disconnect(c: &Client, a: &DisconnectArgs) -> anyhow::Result<()> {
    let body = json!({"Container": a.container, "Force": a.force});
    post_json(c, &format!("/networks/{}/disconnect", a.network), &body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        cmd: NetworkCommand,
    }

    #[test]
    fn create_flags_become_docker_body() {
        let t = T::try_parse_from([
            "t",
            "create",
            "--subnet",
            "10.5.0.0/24",
            "--gateway",
            "10.5.0.254",
            "--internal",
            "--label",
            "a=b",
            "-o",
            "com.docker.network.bridge.name=br9",
            "app-net",
        ])
        .unwrap();
        let NetworkCommand::Create(a) = t.cmd else {
            panic!("create")
        };
        let b = create_body(&a).unwrap();
        assert_eq!(b["Name"], "app-net");
        assert_eq!(b["Driver"], "bridge");
        assert_eq!(b["IPAM"]["Config"][0]["Subnet"], "10.5.0.0/24");
        assert_eq!(b["IPAM"]["Config"][0]["Gateway"], "10.5.0.254");
        assert_eq!(b["Internal"], true);
        assert_eq!(b["Labels"]["a"], "b");
        assert_eq!(b["Options"]["com.docker.network.bridge.name"], "br9");
        let t = T::try_parse_from(["t", "create", "--gateway", "10.0.0.1", "n"]).unwrap();
        let NetworkCommand::Create(a) = t.cmd else {
            panic!("create")
        };
        assert!(create_body(&a).is_err());
    }

    #[test]
    fn ls_rows_truncate_ids() {
        let v = json!({"Id": "a".repeat(64), "Name": "n", "Driver": "bridge", "Scope": "local"});
        assert_eq!(ls_row(&v, false)["ID"], "a".repeat(12));
        assert_eq!(ls_row(&v, true)["ID"], "a".repeat(64));
    }
}
