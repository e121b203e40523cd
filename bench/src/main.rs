#![forbid(unsafe_code)]
//! Side-by-side benchmarks of Berth and the reference tools; see bench/README.md.
//!
//! `bench/run` builds the workspace in release and runs this binary. It re-executes itself
//! in a private mount + network namespace, sets every tool up with private state under a
//! temp dir and cgroups under its own memory cgroup, times each scenario (N runs after
//! warm-ups) and prints a markdown table and JSON, also written to bench/results/.

mod ctx;
mod engines;
mod report;
mod scenarios;
mod stats;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::ctx::{Ctx, IN_NS_ENV};
use crate::engines::{Engine, Unavailable};
use crate::report::{Outcome, Row};
use crate::scenarios::{Fixtures, SCENARIOS};

/// Time Berth and its peers on the same images in the same run.
#[derive(Debug, Parser)]
#[command(name = "berth-bench", after_help = scenario_help())]
struct Cli {
    /// Measured runs per scenario (heavy scenarios cap it: start-50-detached 3,
    /// pull-100mb 5, pull-debian 5, build-cold 3, build-one-file 5, port-throughput 10).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Unmeasured warm-up runs before each measurement (heavy scenarios use at most 1).
    #[arg(long, default_value_t = 2)]
    warmups: usize,
    /// Where to write <timestamp>.md and <timestamp>.json.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/results"))]
    out: PathBuf,
    /// Directory with Berth's release binaries (default: the one this binary is in).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Only these tools (berth, berth-runc, crun, runc, podman, docker, skopeo, loopback).
    #[arg(long, value_delimiter = ',')]
    tools: Vec<String>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// Scenarios to run (default: all).
    scenarios: Vec<String>,
}

fn scenario_help() -> String {
    let mut s = String::from("Scenarios:\n");
    for (name, what) in SCENARIOS {
        s.push_str(&format!("  {name:<18} {what}\n"));
    }
    s
}

fn main() {
    match run() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("berth-bench: {e:#}");
            std::process::exit(1);
        }
    }
}

fn run() -> Result<i32> {
    let cli = Cli::parse();
    if cli.list {
        print!("{}", scenario_help());
        return Ok(0);
    }
    for s in &cli.scenarios {
        if !SCENARIOS.iter().any(|(n, _)| n == s) {
            bail!(
                "unknown scenario {s:?}; known: {}",
                SCENARIOS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ctx::check_root()?;
    if std::env::var_os(IN_NS_ENV).is_none() {
        return ctx::reexec_in_namespaces();
    }
    let selected: Vec<&str> = if cli.scenarios.is_empty() {
        SCENARIOS.iter().map(|(n, _)| *n).collect()
    } else {
        SCENARIOS
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| cli.scenarios.iter().any(|s| s == n))
            .collect()
    };
    let bin_dir = match &cli.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary has no parent dir")?
            .to_path_buf(),
    };
    let wants = |tool: &str| cli.tools.is_empty() || cli.tools.iter().any(|t| t == tool);

    let ctx = Ctx::new(cli.runs, cli.warmups, bin_dir)?;
    ctx::prepare_namespaces(ctx.work.path())?;
    let mut cleanup = berth_testkit::Cleanup::new();
    cleanup.mounts_under(ctx.work.path().to_path_buf());
    ctx.cgroups.register(&mut cleanup);

    let mut rows = Vec::new();
    let result = run_scenarios(&ctx, &selected, &wants, &mut rows);

    for e in cleanup.run() {
        eprintln!("berth-bench: cleanup: {e}");
    }
    ctx.cgroups.remove_intermediates();
    result?;

    report::add_ratios(&mut rows, &["berth", "berth-runc"]);
    let started = jiff::Timestamp::now();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let header = format!(
        "# Berth benchmarks {started}\n\nkernel {kernel}, {cpus} CPUs; {} runs after {} warm-ups (capped for heavy scenarios); Berth/peer < 1 means Berth is faster.",
        cli.runs, cli.warmups
    );
    let md = report::markdown(&rows, &header);
    let json = serde_json::to_string_pretty(&serde_json::json!({
        "timestamp": started.to_string(),
        "kernel": kernel,
        "cpus": cpus,
        "runs": cli.runs,
        "warmups": cli.warmups,
        "rows": rows,
    }))?;
    println!("{md}");
    println!("```json\n{json}\n```");
    std::fs::create_dir_all(&cli.out).with_context(|| format!("create {}", cli.out.display()))?;
    let stamp = started.strftime("%Y%m%dT%H%M%SZ").to_string();
    std::fs::write(cli.out.join(format!("{stamp}.md")), &md)?;
    std::fs::write(cli.out.join(format!("{stamp}.json")), &json)?;
    eprintln!(
        "berth-bench: wrote {}/{stamp}.md and .json",
        cli.out.display()
    );
    Ok(0)
}

fn row(scenario: &str, tool: &str, outcome: Outcome, extra: BTreeMap<String, f64>) -> Row {
    Row {
        scenario: scenario.to_string(),
        tool: tool.to_string(),
        unit: scenarios::unit(scenario).to_string(),
        outcome,
        extra,
        ratio_berth_over_peer: None,
    }
}

fn unavailable(u: &Unavailable) -> Outcome {
    match u {
        Unavailable::NotYet(r) => Outcome::NotYet { reason: r.clone() },
        Unavailable::NotInstalled(r) => Outcome::NotInstalled { reason: r.clone() },
        Unavailable::Failed(m) => Outcome::Error { message: m.clone() },
    }
}

fn run_scenarios(
    ctx: &Ctx,
    selected: &[&str],
    wants: &dyn Fn(&str) -> bool,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let mut fixtures = Fixtures::default();
    if selected.contains(&"runtime-true") {
        for name in ["berth-runc", "crun", "runc"] {
            if !wants(name) {
                continue;
            }
            eprintln!("berth-bench: runtime-true: {name}");
            let outcome = match engines::runtime(ctx, name, &["true"]) {
                Err(u) => unavailable(&u),
                Ok(rt) => match stats::measure(ctx.runs, ctx.warmups, |i| {
                    ctx::time(&mut rt.run_cmd(&format!("{}-{name}-{i}", ctx.prefix)))
                }) {
                    Ok(s) => Outcome::Measured(s),
                    Err(m) => Outcome::Error { message: m },
                },
            };
            rows.push(row("runtime-true", name, outcome, BTreeMap::new()));
        }
    }
    let engine_scenarios: Vec<&str> = selected
        .iter()
        .copied()
        .filter(|s| *s != "runtime-true")
        .collect();
    if engine_scenarios.is_empty() {
        return Ok(());
    }
    type Maker = fn(&Ctx) -> Result<Engine, Unavailable>;
    let makers: [(&str, Maker); 3] = [
        ("berth", engines::berth),
        ("podman", engines::podman),
        ("docker", engines::docker),
    ];
    for (name, make) in makers {
        if !wants(name) {
            continue;
        }
        eprintln!("berth-bench: setting up {name}");
        let engine = make(ctx);
        for scenario in &engine_scenarios {
            let (outcome, extra) = match &engine {
                Err(u) => (unavailable(u), BTreeMap::new()),
                Ok(e) => {
                    eprintln!("berth-bench: {scenario}: {name}");
                    match scenarios::run_engine(scenario, ctx, e, &mut fixtures) {
                        Err(u) => (unavailable(&u), BTreeMap::new()),
                        Ok(Ok((s, extra))) => (Outcome::Measured(s), extra),
                        Ok(Err(m)) => (Outcome::Error { message: m }, BTreeMap::new()),
                    }
                }
            };
            rows.push(row(scenario, name, outcome, extra));
        }
        if let Ok(mut e) = engine {
            eprintln!("berth-bench: shutting {name} down");
            e.shutdown();
        }
    }
    // skopeo: a download-only peer for the pull scenarios (same registry, same images).
    if wants("skopeo") {
        for scenario in engine_scenarios
            .iter()
            .filter(|s| scenarios::PULL_SCENARIOS.contains(s))
        {
            eprintln!("berth-bench: {scenario}: skopeo");
            let (outcome, extra) = match scenarios::skopeo_pull(scenario, ctx, &mut fixtures) {
                Err(u) => (unavailable(&u), BTreeMap::new()),
                Ok(Ok((s, extra))) => (Outcome::Measured(s), extra),
                Ok(Err(m)) => (Outcome::Error { message: m }, BTreeMap::new()),
            };
            rows.push(row(scenario, "skopeo", outcome, extra));
        }
    }
    // loopback: the reference for port-throughput (the issue's goal is a share of it).
    if wants("loopback") && engine_scenarios.contains(&"port-throughput") {
        eprintln!("berth-bench: port-throughput: loopback");
        let (outcome, extra) = match scenarios::loopback_throughput(ctx) {
            Err(u) => (unavailable(&u), BTreeMap::new()),
            Ok(Ok((s, extra))) => (Outcome::Measured(s), extra),
            Ok(Err(m)) => (Outcome::Error { message: m }, BTreeMap::new()),
        };
        rows.push(row("port-throughput", "loopback", outcome, extra));
    }
    // Keep the table grouped by scenario, in the declared order.
    let order = |s: &str| {
        SCENARIOS
            .iter()
            .position(|(n, _)| *n == s)
            .unwrap_or(usize::MAX)
    };
    rows.sort_by_key(|r| order(&r.scenario));
    Ok(())
}
