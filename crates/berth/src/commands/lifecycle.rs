//! Lifecycle commands: `restart`, `pause`, `unpause`, `rename`, `top`, `stats`, `update`,
//! `container prune`, `system df`, `system prune`; and the `--since/--until` timestamps
//! of `logs` (docker's `timetypes.GetTimestamp`).

use std::io::{BufRead as _, Write as _};

use berth_api::client::{Client, ClientError, empty, full};
use berth_api::units::{bytes_size, human_size, human_size_prec};
use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{Value, json};

use crate::Exit;
use crate::commands::containers::{ps_row, ram_in_bytes};
use crate::commands::{filters_json, out};
use crate::format::{Format, tabulate};

/// Commands both at the top level and under `container`.
#[derive(Debug, Subcommand)]
#[command(defer = true)] // args are built only for the subcommand in use (start-up time)
pub enum LifecycleCommand {
    /// Restart one or more containers
    Restart(RestartArgs),
    /// Pause all processes within one or more containers
    Pause(NamesArgs),
    /// Unpause all processes within one or more containers
    Unpause(NamesArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
}

/// Commands only under `container`.
#[derive(Debug, Subcommand)]
#[command(defer = true)] // args are built only for the subcommand in use (start-up time)
pub enum ContainerExtra {
    /// Remove all stopped containers
    Prune(ContainerPruneArgs),
}

/// Commands under `system`.
#[derive(Debug, Subcommand)]
#[command(defer = true)] // args are built only for the subcommand in use (start-up time)
pub enum SystemExtra {
    /// Show docker disk usage
    Df(DfArgs),
    /// Remove unused data
    Prune(SystemPruneArgs),
}

// `restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "timeout",
        alias = "time",
        allow_hyphen_values = true
    )]
    pub timeout: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long = "signal")]
    pub signal: Option<String>,
    /// Containers to restart
    #[arg(required = true)]
    pub containers: Vec<String>,
}

// `pause`/`unpause`.
#[derive(Debug, Args)]
pub struct NamesArgs {
    /// Containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

// `rename`.
#[derive(Debug, Args)]
pub struct RenameArgs {
    /// The container
    pub container: String,
    /// Its new name
    pub new_name: String,
}

// `top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The container
    pub container: String,
    /// `ps` options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

// `stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a custom template
    #[arg(long = "format")]
    pub format: Option<String>,
    /// Containers (default: all running)
    pub containers: Vec<String>,
}

// `update`.
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Memory limit
    #[arg(short = 'm', long = "memory")]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long = "cpus")]
    pub cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long = "restart")]
    pub restart: Option<String>,
    /// Containers
    #[arg(required = true)]
    pub containers: Vec<String>,
}

// `container prune`.
#[derive(Debug, Args)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

// `system df`.
#[derive(Debug, Args)]
pub struct DfArgs {
    /// Show detailed information on space usage
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Format output using a custom template
    #[arg(long = "format")]
    pub format: Option<String>,
}

// `system prune`.
#[derive(Debug, Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long = "volumes")]
    pub volumes: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

/// docker's `timetypes.GetTimestamp`: a Go duration before now, RFC 3339 (or a date and
/// time, taken as UTC), or unix seconds; as `seconds.nanoseconds`.
pub fn get_timestamp(value: &str, now: jiff::Timestamp) -> anyhow::Result<String> {
    if let Ok(d) = crate::commands::run_flags::go_duration(value) {
        // as the docker CLI: a relative time is sent in whole seconds
        let t = now.as_nanosecond() - i128::from(d);
        return Ok(t.div_euclid(1_000_000_000).to_string());
    }
    let ts = value
        .parse::<jiff::Timestamp>()
        .ok()
        .or_else(|| {
            value
                .parse::<jiff::civil::DateTime>()
                .ok()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp())
        })
        .or_else(|| {
            value
                .parse::<jiff::civil::Date>()
                .ok()
                .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
                .map(|z| z.timestamp())
        });
    if let Some(t) = ts {
        let n = t.as_nanosecond();
        return Ok(format!(
            "{}.{:09}",
            n.div_euclid(1_000_000_000),
            n.rem_euclid(1_000_000_000)
        ));
    }
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    if !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        let mut f: String = frac.chars().take(9).collect();
        while f.len() < 9 {
            f.push('0');
        }
        return Ok(format!("{secs}.{f}"));
    }
    anyhow::bail!("failed to parse value as time or duration: {value:?}")
}

/// `berth <group> help` (and `berth help <group>`): the group's commands, listed as the
/// docker CLI lists them; `None` when the arguments ask for something else.
pub fn group_help(args: &[String]) -> Option<String> {
    // the first positional, skipping global flags and their values
    let mut i = 1;
    while i < args.len() && args[i].starts_with('-') {
        let takes_value =
            ["-H", "--host", "--tlscacert", "--tlscert", "--tlskey"].contains(&args[i].as_str());
        i += if takes_value { 2 } else { 1 };
    }
    let rest = args.get(i..)?;
    let group = match rest {
        [g, h] if h == "help" => g.as_str(),
        [h, g] if h == "help" => g.as_str(),
        _ => return None,
    };
    let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    let sub = cmd.find_subcommand(group)?;
    if !sub.has_subcommands() {
        return None;
    }
    let mut names: Vec<(String, String)> = sub
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .map(|c| {
            (
                c.get_name().to_owned(),
                c.get_about().map(|a| a.to_string()).unwrap_or_default(),
            )
        })
        .collect();
    names.sort();
    let pad = names
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0)
        .max(11);
    let mut text = format!(
        "\nUsage:  berth {group} COMMAND\n\n{}\n\nCommands:\n",
        sub.get_about().map(|a| a.to_string()).unwrap_or_default()
    );
    for (n, about) in names {
        text.push_str(&format!("  {n:<pad$} {about}\n"));
    }
    text.push_str(&format!(
        "\nRun 'berth {group} COMMAND --help' for more information on a command.\n"
    ));
    Some(text)
}

async fn post(c: &Client, path: &str, query: &[(&str, String)]) -> Result<(), ClientError> {
    c.send(Method::POST, path, query, empty(), &[])
        .await
        .map(|_| ())
}

/// Runs `f` per container, printing its name on success and Docker's error otherwise.
async fn each<F, Fut>(names: &[String], mut f: F) -> anyhow::Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), ClientError>>,
{
    let mut failed = false;
    for n in names {
        match f(n.clone()).await {
            Ok(()) => out(&format!("{n}\n"))?,
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

/// Runs a lifecycle command.
pub async fn run(c: &Client, cmd: LifecycleCommand) -> anyhow::Result<()> {
    match cmd {
        LifecycleCommand::Restart(a) => {
            let mut q = Vec::new();
            if let Some(t) = a.timeout {
                q.push(("t", t.to_string()));
            }
            if let Some(s) = &a.signal {
                q.push(("signal", s.clone()));
            }
            each(&a.containers, |n| {
                let q = q.clone();
                async move { post(c, &format!("/containers/{n}/restart"), &q).await }
            })
            .await
        }
        LifecycleCommand::Pause(a) => {
            each(&a.containers, |n| async move {
                post(c, &format!("/containers/{n}/pause"), &[]).await
            })
            .await
        }
        LifecycleCommand::Unpause(a) => {
            each(&a.containers, |n| async move {
                post(c, &format!("/containers/{n}/unpause"), &[]).await
            })
            .await
        }
        LifecycleCommand::Rename(a) => {
            post(
                c,
                &format!("/containers/{}/rename", a.container),
                &[("name", a.new_name.clone())],
            )
            .await?;
            Ok(())
        }
        LifecycleCommand::Top(a) => top(c, &a).await,
        LifecycleCommand::Stats(a) => stats(c, &a).await,
        LifecycleCommand::Update(a) => update(c, &a).await,
    }
}

/// Runs `container prune`.
pub async fn run_container(c: &Client, cmd: ContainerExtra) -> anyhow::Result<()> {
    match cmd {
        ContainerExtra::Prune(a) => {
            if !a.force && !confirm("WARNING! This will remove all stopped containers.\n")? {
                return Ok(());
            }
            let (text, bytes) = prune_containers(c, &a.filter).await?;
            if !text.is_empty() {
                out(&format!("{text}\n"))?;
            }
            out(&format!("Total reclaimed space: {}\n", human_size(bytes)))
        }
    }
}

/// Runs `system df` / `system prune`.
pub async fn run_system(c: &Client, cmd: SystemExtra) -> anyhow::Result<()> {
    match cmd {
        SystemExtra::Df(a) => df(c, &a).await,
        SystemExtra::Prune(a) => system_prune(c, &a).await,
    }
}

fn confirm(warning: &str) -> anyhow::Result<bool> {
    let mut o = std::io::stdout().lock();
    write!(o, "{warning}Are you sure you want to continue? [y/N] ")?;
    o.flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes"))
}

async fn prune_containers(c: &Client, filter: &[String]) -> anyhow::Result<(String, u64)> {
    let mut q = Vec::new();
    if let Some(f) = filters_json(filter)? {
        q.push(("filters", f));
    }
    let resp = c
        .send(Method::POST, "/containers/prune", &q, empty(), &[])
        .await?;
    let v: Value = berth_api::client::read_json(resp, "/containers/prune").await?;
    let mut text = String::new();
    if let Some(ids) = v["ContainersDeleted"].as_array().filter(|a| !a.is_empty()) {
        text.push_str("Deleted Containers:\n");
        for id in ids {
            text.push_str(id.as_str().unwrap_or_default());
            text.push('\n');
        }
    }
    Ok((text, v["SpaceReclaimed"].as_u64().unwrap_or(0)))
}

async fn top(c: &Client, a: &TopArgs) -> anyhow::Result<()> {
    let mut q = Vec::new();
    if !a.ps_args.is_empty() {
        q.push(("ps_args", a.ps_args.join(" ")));
    }
    let v: Value = c
        .get_json(&format!("/containers/{}/top", a.container), &q)
        .await?;
    let mut text = String::new();
    let strs = |x: &Value| -> Vec<String> {
        x.as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap_or_default().to_owned())
            .collect()
    };
    text.push_str(&strs(&v["Titles"]).join("\t"));
    text.push('\n');
    for p in v["Processes"].as_array().into_iter().flatten() {
        text.push_str(&strs(p).join("\t"));
        text.push('\n');
    }
    // the docker CLI's tabwriter for top: minwidth 20, padding 3
    let mut tw = tabwriter::TabWriter::new(Vec::new())
        .minwidth(17)
        .padding(3);
    tw.write_all(text.as_bytes())?;
    let buf = tw
        .into_inner()
        .map_err(|e| anyhow::anyhow!("tabwriter: {}", e.error()))?;
    out(&String::from_utf8_lossy(&buf))
}

async fn update(c: &Client, a: &UpdateArgs) -> anyhow::Result<()> {
    let mut body = json!({});
    if let Some(m) = &a.memory {
        body["Memory"] = json!(ram_in_bytes(m)?);
    }
    if let Some(m) = &a.memory_swap {
        body["MemorySwap"] = json!(if m == "-1" { -1 } else { ram_in_bytes(m)? });
    }
    if let Some(cpus) = a.cpus {
        body["NanoCpus"] = json!((cpus * 1e9) as i64);
    }
    if let Some(s) = a.cpu_shares {
        body["CpuShares"] = json!(s);
    }
    if let Some(s) = &a.cpuset_cpus {
        body["CpusetCpus"] = json!(s);
    }
    if let Some(q) = a.cpu_quota {
        body["CpuQuota"] = json!(q);
    }
    if let Some(p) = a.cpu_period {
        body["CpuPeriod"] = json!(p);
    }
    if let Some(p) = a.pids_limit {
        body["PidsLimit"] = json!(p);
    }
    if let Some(r) = &a.restart {
        let p = berth_types::run::RestartPolicy::parse(r)?;
        body["RestartPolicy"] =
            json!({"Name": p.name.as_str(), "MaximumRetryCount": p.max_retries});
    }
    let bytes = serde_json::to_vec(&body)?;
    each(&a.containers, |n| {
        let bytes = bytes.clone();
        async move {
            c.send(
                Method::POST,
                &format!("/containers/{n}/update"),
                &[],
                full(bytes),
                &[("Content-Type", "application/json".to_owned())],
            )
            .await
            .map(|_| ())
        }
    })
    .await
}

/// docker CLI `calculateCPUPercentUnix`.
pub fn cpu_percent(v: &Value) -> f64 {
    let cur = &v["cpu_stats"];
    let pre = &v["precpu_stats"];
    let u = |x: &Value, p: &str| x.pointer(p).and_then(Value::as_u64).unwrap_or(0) as f64;
    let cpu_delta = u(cur, "/cpu_usage/total_usage") - u(pre, "/cpu_usage/total_usage");
    let sys_delta = u(cur, "/system_cpu_usage") - u(pre, "/system_cpu_usage");
    let cpus = u(cur, "/online_cpus").max(1.0);
    if sys_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 100.0
    } else {
        0.0
    }
}

/// One `stats` row as the docker CLI's formatter names the fields.
pub fn stats_row(v: &Value, no_trunc: bool) -> Value {
    let id = v["id"].as_str().unwrap_or_default();
    let mem = &v["memory_stats"];
    let usage = mem["usage"].as_u64().unwrap_or(0);
    let usage = match mem["stats"]["total_inactive_file"]
        .as_u64()
        .or_else(|| mem["stats"]["inactive_file"].as_u64())
    {
        Some(i) if i < usage => usage - i,
        _ => usage,
    };
    let limit = mem["limit"].as_u64().unwrap_or(0);
    let mem_pct = if limit > 0 {
        usage as f64 / limit as f64 * 100.0
    } else {
        0.0
    };
    let (mut rx, mut tx) = (0u64, 0u64);
    for n in v["networks"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, n)| n)
    {
        rx += n["rx_bytes"].as_u64().unwrap_or(0);
        tx += n["tx_bytes"].as_u64().unwrap_or(0);
    }
    let (mut rd, mut wr) = (0u64, 0u64);
    for e in v["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let val = e["value"].as_u64().unwrap_or(0);
        match e["op"].as_str().unwrap_or_default().chars().next() {
            Some('r' | 'R') => rd += val,
            Some('w' | 'W') => wr += val,
            _ => {}
        }
    }
    json!({
        "ID": if no_trunc { id.to_owned() } else { id.chars().take(12).collect() },
        "Container": if no_trunc { id.to_owned() } else { id.chars().take(12).collect() },
        "Name": v["name"].as_str().unwrap_or_default().trim_start_matches('/'),
        "CPUPerc": format!("{:.2}%", cpu_percent(v)),
        "MemUsage": format!("{} / {}", bytes_size(usage), bytes_size(limit)),
        "MemPerc": format!("{mem_pct:.2}%"),
        "NetIO": format!("{} / {}", human_size_prec(rx as f64, 3), human_size_prec(tx as f64, 3)),
        "BlockIO": format!("{} / {}", human_size_prec(rd as f64, 3), human_size_prec(wr as f64, 3)),
        "PIDs": v["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
    })
}

const STATS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

async fn stats(c: &Client, a: &StatsArgs) -> anyhow::Result<()> {
    let fmt = Format::parse(a.format.as_deref().unwrap_or("table"), STATS_TABLE)?;
    let header = json!({"ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME",
        "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
        "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"});
    loop {
        let names: Vec<String> = if a.containers.is_empty() {
            let q = [("all", if a.all { "1" } else { "0" }.to_owned())];
            let list: Vec<Value> = c.get_json("/containers/json", &q).await?;
            list.iter()
                .filter_map(|v| v["Id"].as_str().map(str::to_owned))
                .collect()
        } else {
            a.containers.clone()
        };
        let reads = names.iter().map(|n| async move {
            let q = [("stream", "0".to_owned())];
            c.get_json::<Value>(&format!("/containers/{n}/stats"), &q)
                .await
        });
        let results = futures_util::future::join_all(reads).await;
        let mut rows = Vec::new();
        for (n, r) in names.iter().zip(results) {
            match r {
                Ok(v) => rows.push(stats_row(&v, a.no_trunc)),
                Err(e @ ClientError::Daemon { .. }) if !a.containers.is_empty() => {
                    eprintln!("{e}");
                    return Err(Exit(1).into());
                }
                // a container that went away between listing and reading
                Err(ClientError::Daemon { .. }) => {}
                Err(e) => return Err(anyhow::anyhow!("stats of {n}: {e}")),
            }
        }
        let text = fmt.render(&header, &rows)?;
        if a.no_stream {
            return out(&text);
        }
        // as the docker CLI: clear the screen and redraw
        out(&format!("\x1b[2J\x1b[H{text}"))?;
    }
}

async fn df(c: &Client, a: &DfArgs) -> anyhow::Result<()> {
    let v: Value = c.get_json("/system/df", &[]).await?;
    let images = v["Images"].as_array().cloned().unwrap_or_default();
    let ctrs = v["Containers"].as_array().cloned().unwrap_or_default();
    let vols = v["Volumes"].as_array().cloned().unwrap_or_default();
    let cache = v["BuildCache"].as_array().cloned().unwrap_or_default();
    let n = |x: &Value, k: &str| x[k].as_i64().unwrap_or(0).max(0) as u64;
    let img_total = n(&v, "LayersSize");
    let img_used: u64 = images
        .iter()
        .filter(|i| n(i, "Containers") > 0)
        .map(|i| n(i, "Size"))
        .sum();
    let img_active = images.iter().filter(|i| n(i, "Containers") > 0).count();
    let running = |x: &Value| x["State"] == "running" || x["State"] == "paused";
    let ctr_total: u64 = ctrs.iter().map(|x| n(x, "SizeRw")).sum();
    let ctr_reclaim: u64 = ctrs
        .iter()
        .filter(|x| !running(x))
        .map(|x| n(x, "SizeRw"))
        .sum();
    let vol_total: u64 = vols.iter().map(|x| n(&x["UsageData"], "Size")).sum();
    let vol_active = vols
        .iter()
        .filter(|x| n(&x["UsageData"], "RefCount") > 0)
        .count();
    let vol_reclaim: u64 = vols
        .iter()
        .filter(|x| n(&x["UsageData"], "RefCount") == 0)
        .map(|x| n(&x["UsageData"], "Size"))
        .sum();
    let cache_total: u64 = cache.iter().map(|x| n(x, "Size")).sum();
    let pct = |r: u64, t: u64| match (r * 100).checked_div(t) {
        Some(p) => format!("{} ({p}%)", human_size(r)),
        None => human_size(r),
    };
    let rows = vec![
        json!({"Type": "Images", "TotalCount": images.len().to_string(), "Active": img_active.to_string(),
               "Size": human_size(img_total), "Reclaimable": pct(img_total.saturating_sub(img_used), img_total)}),
        json!({"Type": "Containers", "TotalCount": ctrs.len().to_string(),
               "Active": ctrs.iter().filter(|x| running(x)).count().to_string(),
               "Size": human_size(ctr_total), "Reclaimable": pct(ctr_reclaim, ctr_total)}),
        json!({"Type": "Local Volumes", "TotalCount": vols.len().to_string(), "Active": vol_active.to_string(),
               "Size": human_size(vol_total), "Reclaimable": pct(vol_reclaim, vol_total)}),
        json!({"Type": "Build Cache", "TotalCount": cache.len().to_string(), "Active": "0",
               "Size": human_size(cache_total), "Reclaimable": human_size(cache_total)}),
    ];
    if !a.verbose {
        let fmt = Format::parse(
            a.format.as_deref().unwrap_or("table"),
            "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
        )?;
        let header = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE",
                            "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
        return out(&fmt.render(&header, &rows)?);
    }
    let mut text = String::from("Images space usage:\n\n");
    let mut t = String::from(
        "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS\n",
    );
    for i in &images {
        let tags: Vec<String> = i["RepoTags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect();
        let (repo, tag) = tags
            .first()
            .and_then(|t| t.rsplit_once(':'))
            .map(|(r, t)| (r.to_owned(), t.to_owned()))
            .unwrap_or(("<none>".into(), "<none>".into()));
        let id = i["Id"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("sha256:");
        let created = jiff::Timestamp::now().as_second() - i["Created"].as_i64().unwrap_or(0);
        let size = n(i, "Size");
        let shared = i["SharedSize"].as_i64().unwrap_or(-1).max(0) as u64;
        t.push_str(&format!(
            "{repo}\t{tag}\t{}\t{} ago\t{}\t{}\t{}\t{}\n",
            &id[..12.min(id.len())],
            berth_api::units::human_duration(created),
            human_size(size),
            human_size(shared),
            human_size(size.saturating_sub(shared)),
            n(i, "Containers")
        ));
    }
    text.push_str(&tabulate(&t)?);
    text.push_str("\nContainers space usage:\n\n");
    let mut t =
        String::from("CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES\n");
    for x in &ctrs {
        let r = ps_row(x, false);
        t.push_str(&format!(
            "{}\t{}\t{}\t0\t{}\t{}\t{}\t{}\n",
            r["ID"].as_str().unwrap_or_default(),
            r["Image"].as_str().unwrap_or_default(),
            r["Command"].as_str().unwrap_or_default(),
            human_size(n(x, "SizeRw")),
            r["RunningFor"].as_str().unwrap_or_default(),
            r["Status"].as_str().unwrap_or_default(),
            r["Names"].as_str().unwrap_or_default(),
        ));
    }
    text.push_str(&tabulate(&t)?);
    text.push_str("\nLocal Volumes space usage:\n\n");
    let mut t = String::from("VOLUME NAME\tLINKS\tSIZE\n");
    for x in &vols {
        t.push_str(&format!(
            "{}\t{}\t{}\n",
            x["Name"].as_str().unwrap_or_default(),
            n(&x["UsageData"], "RefCount"),
            human_size(n(&x["UsageData"], "Size"))
        ));
    }
    text.push_str(&tabulate(&t)?);
    text.push_str("\nBuild cache usage: ");
    text.push_str(&human_size(cache_total));
    text.push_str("\n\n");
    out(&text)
}

async fn system_prune(c: &Client, a: &SystemPruneArgs) -> anyhow::Result<()> {
    if !a.force {
        let mut w = String::from(
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n",
        );
        if a.volumes {
            w.push_str("  - all anonymous volumes not used by at least one container\n");
        }
        w.push_str(if a.all {
            "  - all images without at least one container associated to them\n"
        } else {
            "  - all dangling images\n"
        });
        w.push_str("  - unused build cache\n\n");
        if !confirm(&w)? {
            return Ok(());
        }
    }
    let mut total = 0u64;
    let mut text = String::new();
    let (t, b) = prune_containers(c, &a.filter).await?;
    text.push_str(&t);
    total += b;
    // networks, volumes and build cache: their routes may be absent (404 = nothing to prune)
    let mut extra: Vec<(&str, String, &str, &str)> = vec![(
        "/networks/prune",
        String::new(),
        "NetworksDeleted",
        "Deleted Networks:",
    )];
    if a.volumes {
        extra.push((
            "/volumes/prune",
            String::new(),
            "VolumesDeleted",
            "Deleted Volumes:",
        ));
    }
    let mut img_filter = a.filter.clone();
    img_filter.push(format!("dangling={}", !a.all));
    extra.push((
        "/images/prune",
        filters_json(&img_filter)?.unwrap_or_default(),
        "ImagesDeleted",
        "Deleted Images:",
    ));
    extra.push((
        "/build/prune",
        String::new(),
        "CachesDeleted",
        "Deleted build cache objects:",
    ));
    for (path, filters, key, title) in extra {
        let q: Vec<(&str, String)> = if filters.is_empty() {
            Vec::new()
        } else {
            vec![("filters", filters)]
        };
        let resp = match c.send(Method::POST, path, &q, empty(), &[]).await {
            Ok(r) => r,
            Err(ClientError::Daemon { status: 404, .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let v: Value = berth_api::client::read_json(resp, path).await?;
        total += v["SpaceReclaimed"].as_u64().unwrap_or(0);
        let items = v[key].as_array().cloned().unwrap_or_default();
        if items.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(title);
        text.push('\n');
        for it in items {
            match (&it, it.as_str()) {
                (_, Some(s)) => text.push_str(s),
                (Value::Object(m), _) => {
                    // images: {"Untagged": …} or {"Deleted": …}
                    let (k, v) = m
                        .iter()
                        .next()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .unwrap_or_default();
                    text.push_str(&format!(
                        "{}: {}",
                        k.to_lowercase(),
                        v.as_str().unwrap_or_default()
                    ));
                }
                _ => {}
            }
            text.push('\n');
        }
    }
    if !text.is_empty() {
        out(&format!("{text}\n"))?;
    }
    out(&format!("Total reclaimed space: {}\n", human_size(total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_as_the_docker_cli() {
        let now: jiff::Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        assert_eq!(get_timestamp("10m", now).unwrap(), "1767225600");
        assert_eq!(
            get_timestamp("2026-01-01T00:00:00Z", now).unwrap(),
            "1767225600.000000000"
        );
        assert_eq!(
            get_timestamp("2026-01-01", now).unwrap(),
            "1767225600.000000000"
        );
        assert_eq!(
            get_timestamp("1767225600", now).unwrap(),
            "1767225600.000000000"
        );
        assert_eq!(
            get_timestamp("1767225600.5", now).unwrap(),
            "1767225600.500000000"
        );
        assert!(get_timestamp("yesterday", now).is_err());
    }

    #[test]
    fn stats_rows_compute_like_the_docker_cli() {
        let v = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 1048576, "limit": 4194304, "stats": {}},
            "pids_stats": {"current": 2},
            "blkio_stats": {"io_service_bytes_recursive": [{"op": "read", "value": 1000}, {"op": "write", "value": 2000}]},
            "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 10}}
        });
        let r = stats_row(&v, false);
        assert_eq!(r["ID"], "0123456789ab");
        assert_eq!(r["Name"], "web");
        assert_eq!(r["CPUPerc"], "40.00%");
        assert_eq!(r["MemUsage"], "1MiB / 4MiB");
        assert_eq!(r["MemPerc"], "25.00%");
        assert_eq!(r["NetIO"], "1.5kB / 10B");
        assert_eq!(r["BlockIO"], "1kB / 2kB");
        assert_eq!(r["PIDs"], "2");
    }
}
