//! The scenarios. Names are stable: results are compared across runs by name.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_mkimage::{Image, ImageOptions, Layer};
use berth_testkit::{Flavor, Registry};

use crate::ctx::{Ctx, sh, time};
use crate::engines::{Engine, Unavailable, monitor_rss_mb};
use crate::stats::{Stats, measure};

/// Every scenario, in the order they run.
pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "runtime-true",
        "raw OCI bundle running `true`: create+start+wait+delete (berth-runc vs crun vs runc)",
    ),
    ("run-true-none", "`run --rm --network none busybox true`"),
    (
        "run-true-bridge",
        "`run --rm busybox true` on the default bridge network",
    ),
    ("exec-true", "`exec <running container> true`"),
    (
        "start-50-detached",
        "50 × `run -d busybox sleep`, time per container, plus per-container monitor RSS",
    ),
    ("ps-1000", "`ps -a` with 1,000 containers"),
    (
        "pull-100mb",
        "pull of a 100 MiB, 5-layer image from a local registry (127.0.0.1)",
    ),
    (
        "build-cold",
        "build of a 50 MB, 2,000-file context with --no-cache",
    ),
    ("build-cached", "the same build, fully cached"),
    (
        "build-one-file",
        "the same build after one file of the context changed",
    ),
    (
        "port-throughput",
        "GET of 128 MiB from busybox httpd through a port published on 127.0.0.1",
    ),
];

/// The result of one engine in one scenario.
pub type EngineResult = Result<(Stats, BTreeMap<String, f64>), String>;

/// The unit the figures of a scenario are in.
pub fn unit(scenario: &str) -> &'static str {
    match scenario {
        "runtime-true" => "ms per container (create+start+wait+delete)",
        "run-true-none" | "run-true-bridge" => "ms per `run --rm`",
        "exec-true" => "ms per exec",
        "start-50-detached" => "ms per container over 50 detached starts",
        "ps-1000" => "ms per `ps -a`",
        "pull-100mb" => "ms per pull (5 layers, 100 MiB)",
        "build-cold" | "build-cached" | "build-one-file" => "ms per build",
        "port-throughput" => "ms per 128 MiB transfer",
        _ => "ms",
    }
}

/// Fixtures made once per run and shared by the engines.
#[derive(Default)]
pub struct Fixtures {
    registry: Option<Result<(Registry, String), String>>,
    build_ctx: Option<Result<PathBuf, String>>,
}

/// A deterministic, incompressible byte stream (xorshift64*).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

impl Fixtures {
    /// A plain registry holding `bench/big:1`: 5 layers of 20 MiB of noise.
    fn big_image(&mut self, ctx: &Ctx) -> Result<&(Registry, String), String> {
        let made = self.registry.get_or_insert_with(|| {
            eprintln!(
                "berth-bench: making the 100 MiB 5-layer image and pushing it to a local registry"
            );
            let reg = Registry::start(Flavor::Plain).map_err(|e| e.to_string())?;
            let mut layers = Vec::new();
            for i in 0..5u64 {
                let dir = ctx.work.join(format!("big-layer-{i}"));
                fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
                fs::write(dir.join(format!("blob-{i}")), noise(i + 1, 20 << 20))
                    .map_err(|e| e.to_string())?;
                layers.push(Layer::from_dir(&dir, Some(1_700_000_000)).map_err(|e| e.to_string())?);
                let _ = fs::remove_dir_all(&dir);
            }
            let opts = ImageOptions {
                cmd: Some(vec!["sh".into()]),
                source_date_epoch: Some(1_700_000_000),
                ..Default::default()
            };
            let image =
                Image::from_layers(layers, "bench/big:1", &opts).map_err(|e| e.to_string())?;
            let layout = ctx.work.join("big.oci");
            image.write_oci_layout(&layout).map_err(|e| e.to_string())?;
            let reference = reg
                .push_oci_layout(&layout, "1", "bench/big:1")
                .map_err(|e| e.to_string())?;
            let _ = fs::remove_dir_all(&layout);
            Ok((reg, reference))
        });
        made.as_ref().map_err(Clone::clone)
    }

    /// The build context: a Dockerfile and 2,000 files of 25 KiB (50 MB).
    fn build_context(&mut self, ctx: &Ctx) -> Result<PathBuf, String> {
        self.build_ctx
            .get_or_insert_with(|| {
                let dir = ctx.work.join("build-ctx");
                let files = dir.join("files");
                fs::create_dir_all(&files).map_err(|e| e.to_string())?;
                for i in 0..2000u64 {
                    fs::write(files.join(format!("f{i:04}")), noise(1000 + i, 25_000))
                        .map_err(|e| e.to_string())?;
                }
                fs::write(
                    dir.join("Dockerfile"),
                    "FROM busybox\nCOPY files /ctx\nRUN find /ctx -type f | wc -l > /count\n",
                )
                .map_err(|e| e.to_string())?;
                Ok(dir)
            })
            .clone()
    }
}

/// Run one Docker-like scenario on one engine.
pub fn run_engine(
    scenario: &str,
    ctx: &Ctx,
    e: &Engine,
    fx: &mut Fixtures,
) -> Result<EngineResult, Unavailable> {
    let needs: &[&str] = match scenario {
        "exec-true" => &["run", "exec", "rm"],
        "ps-1000" => &["create", "ps", "rm"],
        "pull-100mb" => &["pull", "rmi"],
        "build-cold" | "build-cached" | "build-one-file" => &["build"],
        _ => &["run", "rm"],
    };
    if let Some(why) = e.lacks(needs) {
        return Err(Unavailable::NotYet(why));
    }
    let none = BTreeMap::new;
    let (runs, warm) = (ctx.runs, ctx.warmups);
    Ok(match scenario {
        "run-true-none" => measure(runs, warm, |_| {
            time(&mut e.run_cmd("run", &["--rm", "--network", "none", "busybox", "true"]))
        })
        .map(|s| (s, none())),
        "run-true-bridge" => measure(runs, warm, |_| {
            time(&mut e.run_cmd("run", &["--rm", "busybox", "true"]))
        })
        .map(|s| (s, none())),
        "exec-true" => exec_true(ctx, e),
        "start-50-detached" => start_50(ctx, e),
        "ps-1000" => ps_many(ctx, e),
        "pull-100mb" => pull(ctx, e, fx),
        "build-cold" | "build-cached" | "build-one-file" => build(scenario, ctx, e, fx),
        "port-throughput" => port_throughput(ctx, e),
        other => Err(format!("unknown scenario {other}")),
    })
}

fn exec_true(ctx: &Ctx, e: &Engine) -> EngineResult {
    let name = format!("{}-exec", ctx.prefix);
    sh(&mut e.run_cmd(
        "run",
        &[
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            "busybox",
            "sleep",
            "100000",
        ],
    ))?;
    let r = measure(ctx.runs, ctx.warmups, |_| {
        time(&mut e.cmd(&["exec", &name, "true"]))
    });
    let _ = sh(&mut e.cmd(&["rm", "-f", &name]));
    r.map(|s| (s, BTreeMap::new()))
}

fn start_50(ctx: &Ctx, e: &Engine) -> EngineResult {
    let mut rss_means = Vec::new();
    let stats = measure(ctx.runs_capped(3), ctx.warmups.min(1), |iter| {
        let names: Vec<String> = (0..50)
            .map(|i| format!("{}-d{iter}-{i}", ctx.prefix))
            .collect();
        let start = Instant::now();
        let mut result = Ok(());
        for n in &names {
            if let Err(err) = sh(&mut e.run_cmd(
                "run",
                &[
                    "-d",
                    "--name",
                    n,
                    "--network",
                    "none",
                    "busybox",
                    "sleep",
                    "100000",
                ],
            )) {
                result = Err(err);
                break;
            }
        }
        let took = start.elapsed();
        let rss = monitor_rss_mb(e);
        if !rss.is_empty() {
            rss_means.push(rss.iter().sum::<f64>() / rss.len() as f64);
        }
        for chunk in names.chunks(25) {
            let mut args = vec!["rm", "-f"];
            args.extend(chunk.iter().map(String::as_str));
            let _ = sh(&mut e.cmd(&args));
        }
        result.map(|()| took / 50)
    })?;
    let mut extra = BTreeMap::new();
    if !rss_means.is_empty() {
        rss_means.sort_by(f64::total_cmp);
        extra.insert("monitor_rss_mb".to_string(), rss_means[rss_means.len() / 2]);
    }
    Ok((stats, extra))
}

fn ps_many(ctx: &Ctx, e: &Engine) -> EngineResult {
    let count: usize = std::env::var("BERTH_BENCH_PS_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    eprintln!("berth-bench: {}: creating {count} containers", e.name);
    for i in 0..count {
        let name = format!("{}-ps{i}", ctx.prefix);
        if let Err(err) = sh(&mut e.run_cmd(
            "create",
            &["--name", &name, "--network", "none", "busybox", "true"],
        )) {
            e.remove_all_containers();
            return Err(err);
        }
    }
    let r = measure(ctx.runs, ctx.warmups, |_| time(&mut e.cmd(&["ps", "-a"])));
    eprintln!("berth-bench: {}: removing {count} containers", e.name);
    e.remove_all_containers();
    let mut extra = BTreeMap::new();
    extra.insert("containers".to_string(), count as f64);
    r.map(|s| (s, extra))
}

fn pull(ctx: &Ctx, e: &Engine, fx: &mut Fixtures) -> EngineResult {
    let (_, reference) = fx.big_image(ctx)?;
    let reference = reference.clone();
    let stats = measure(ctx.runs_capped(5), ctx.warmups.min(1), |_| {
        let mut args = vec!["pull"];
        args.extend(e.pull_flags.iter().map(String::as_str));
        args.push(&reference);
        let took = time(&mut e.cmd(&args))?;
        sh(&mut e.cmd(&["rmi", &reference]))?;
        Ok(took)
    })?;
    Ok((stats, BTreeMap::new()))
}

fn build(scenario: &str, ctx: &Ctx, e: &Engine, fx: &mut Fixtures) -> EngineResult {
    let dir = fx.build_context(ctx)?;
    let dir_s = dir.to_string_lossy().into_owned();
    let tag = format!(
        "{}-build:{}",
        ctx.prefix,
        scenario.trim_start_matches("build-")
    );
    let build_cmd = |no_cache: bool| {
        let mut args = vec!["build"];
        args.extend(e.build_flags.iter().map(String::as_str));
        if no_cache {
            args.push("--no-cache");
        }
        args.extend(["-q", "-t", &tag, &dir_s]);
        let mut c = e.cmd(&args);
        for (k, v) in &e.build_env {
            c.env(k, v);
        }
        c
    };
    let stats = match scenario {
        "build-cold" => measure(ctx.runs_capped(3), ctx.warmups.min(1), |_| {
            time(&mut build_cmd(true))
        })?,
        "build-cached" => {
            time(&mut build_cmd(false))?; // prime the cache
            measure(ctx.runs, ctx.warmups, |_| time(&mut build_cmd(false)))?
        }
        _ => {
            time(&mut build_cmd(false))?;
            measure(ctx.runs_capped(5), ctx.warmups.min(1), |iter| {
                let f = dir.join("files/f0000");
                fs::write(
                    &f,
                    noise(50_000 + iter as u64 + e.name.len() as u64 * 1000, 25_000),
                )
                .map_err(|err| format!("rewrite {}: {err}", f.display()))?;
                time(&mut build_cmd(false))
            })?
        }
    };
    Ok((stats, BTreeMap::new()))
}

const PORT_BYTES: usize = 128 << 20;

fn port_throughput(ctx: &Ctx, e: &Engine) -> EngineResult {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|err| format!("no free port: {err}"))?
        .port();
    let name = format!("{}-port", ctx.prefix);
    let publish = format!("127.0.0.1:{port}:8080");
    let script =
        format!("head -c {PORT_BYTES} /dev/zero > /tmp/blob && exec httpd -f -p 8080 -h /tmp");
    sh(&mut e.run_cmd(
        "run",
        &[
            "-d", "--name", &name, "-p", &publish, "busybox", "sh", "-c", &script,
        ],
    ))?;
    let get = || -> Result<Duration, String> {
        let start = Instant::now();
        let mut s =
            TcpStream::connect(("127.0.0.1", port)).map_err(|err| format!("connect: {err}"))?;
        s.write_all(b"GET /blob HTTP/1.0\r\nHost: bench\r\n\r\n")
            .map_err(|err| format!("send: {err}"))?;
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(err) => return Err(format!("read after {total} bytes: {err}")),
            }
        }
        if total < PORT_BYTES {
            return Err(format!("got {total} bytes, want {PORT_BYTES} and headers"));
        }
        Ok(start.elapsed())
    };
    // Wait for the blob and the server.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        match get() {
            Ok(_) => {
                last.clear();
                break;
            }
            Err(err) => last = err,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let r = if last.is_empty() {
        measure(ctx.runs_capped(10), ctx.warmups, |_| get())
    } else {
        Err(format!("the published port never served the blob: {last}"))
    };
    let _ = sh(&mut e.cmd(&["rm", "-f", &name]));
    let stats = r?;
    let mut extra = BTreeMap::new();
    extra.insert(
        "MiB_per_s".to_string(),
        (PORT_BYTES >> 20) as f64 / (stats.median_ms / 1000.0),
    );
    Ok((stats, extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_deterministic_and_incompressible() {
        assert_eq!(noise(7, 1000), noise(7, 1000));
        assert_ne!(noise(7, 1000), noise(8, 1000));
        let gz = {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&noise(3, 1 << 20)).unwrap();
            enc.finish().unwrap()
        };
        assert!(
            gz.len() > 1 << 20,
            "random data does not shrink: {}",
            gz.len()
        );
    }

    #[test]
    fn every_scenario_has_a_unit() {
        for (name, _) in SCENARIOS {
            assert_ne!(unit(name), "ms", "{name}");
        }
    }
}
