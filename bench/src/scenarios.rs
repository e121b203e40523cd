//! The scenarios. Names are stable: results are compared across runs by name.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_mkimage::{Image, ImageOptions, Layer};
use berth_testkit::{Flavor, Registry};

use crate::ctx::{Ctx, sh, time, which};
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
        "pull-debian",
        "pull of a 1-layer Debian minbase image (mmdebstrap) from a local registry (127.0.0.1)",
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
        "pull-debian" => "ms per pull (1 layer, Debian minbase)",
        "build-cold" | "build-cached" | "build-one-file" => "ms per build",
        "port-throughput" => "ms per 128 MiB transfer",
        _ => "ms",
    }
}

/// The scenarios that pull an image from the local registry; skopeo joins them as a
/// download-only peer.
pub const PULL_SCENARIOS: &[&str] = &["pull-100mb", "pull-debian"];

/// Where bench/run caches the Debian minbase OCI layout (outside the bench's network
/// namespace, where the apt mirror is reachable): `<target>/images/debian-minbase.oci`,
/// `<target>` being the parent of the release dir this binary runs from.
pub fn debian_layout_path(bin_dir: &Path) -> PathBuf {
    bin_dir
        .parent()
        .unwrap_or(bin_dir)
        .join("images")
        .join("debian-minbase.oci")
}

/// The file bench/run writes mmdebstrap's / berth-mkimage's error output to when the
/// Debian image could not be made.
pub fn debian_error_path(layout: &Path) -> PathBuf {
    layout.with_extension("oci.err")
}

/// Why the Debian image is missing: the tail of bench/run's error log, or a hint.
pub fn debian_missing_reason(layout: &Path, log: Option<&str>) -> String {
    match log.map(str::trim).filter(|l| !l.is_empty()) {
        Some(log) => {
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
            format!(
                "no Debian minbase image at {}: scripts/images/debian-minbase (mmdebstrap) failed: {tail}",
                layout.display()
            )
        }
        None => format!(
            "no Debian minbase image at {}: run bench/run (it makes it with scripts/images/debian-minbase, mmdebstrap)",
            layout.display()
        ),
    }
}

/// The tag (`org.opencontainers.image.ref.name`) of the first manifest in an OCI layout.
pub fn layout_tag(index_json: &str) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(index_json).map_err(|e| format!("index.json: {e}"))?;
    v["manifests"]
        .as_array()
        .and_then(|m| m.first())
        .and_then(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .map(str::to_string)
        .ok_or_else(|| "index.json: no manifest with a ref.name annotation".to_string())
}

/// Fixtures made once per run and shared by the engines.
#[derive(Default)]
pub struct Fixtures {
    registry: Option<Result<Registry, String>>,
    big: Option<Result<String, String>>,
    debian: Option<Result<String, String>>,
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
    /// The plain-HTTP registry on 127.0.0.1 every pull scenario uses.
    fn registry(&mut self) -> Result<&Registry, String> {
        self.registry
            .get_or_insert_with(|| Registry::start(Flavor::Plain).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// `bench/big:1` in the registry: 5 layers of 20 MiB of noise. Returns the reference.
    fn big_image(&mut self, ctx: &Ctx) -> Result<String, String> {
        if let Some(made) = &self.big {
            return made.clone();
        }
        eprintln!(
            "berth-bench: making the 100 MiB 5-layer image and pushing it to a local registry"
        );
        let made = (|| {
            let reg = self.registry()?;
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
            Ok(reference)
        })();
        self.big = Some(made.clone());
        made
    }

    /// `bench/debian:minbase` in the registry, pushed from the OCI layout bench/run made
    /// with mmdebstrap and cached under target/images. Returns the reference.
    fn debian_image(&mut self, ctx: &Ctx) -> Result<String, String> {
        if let Some(made) = &self.debian {
            return made.clone();
        }
        let made = (|| {
            let layout = debian_layout_path(&ctx.bin_dir);
            let index = match fs::read_to_string(layout.join("index.json")) {
                Ok(i) => i,
                Err(_) => {
                    let log = fs::read_to_string(debian_error_path(&layout)).ok();
                    return Err(debian_missing_reason(&layout, log.as_deref()));
                }
            };
            let tag = layout_tag(&index).map_err(|e| format!("{}: {e}", layout.display()))?;
            eprintln!("berth-bench: pushing the Debian minbase image to the local registry");
            self.registry()?
                .push_oci_layout(&layout, &tag, "bench/debian:minbase")
                .map_err(|e| e.to_string())
        })();
        self.debian = Some(made.clone());
        made
    }

    /// The reference a pull scenario pulls.
    fn pull_reference(&mut self, scenario: &str, ctx: &Ctx) -> Result<String, String> {
        match scenario {
            "pull-debian" => self.debian_image(ctx),
            _ => self.big_image(ctx),
        }
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
        "pull-100mb" | "pull-debian" => &["pull", "rmi"],
        "build-cold" | "build-cached" | "build-one-file" => &["build"],
        _ => &["run", "rm"],
    };
    if let Some(why) = e.lacks(needs) {
        return Err(Unavailable::NotYet(why));
    }
    let none = BTreeMap::new;
    let (runs, warm) = (ctx.runs, ctx.warmups);
    let result = match scenario {
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
        "pull-100mb" | "pull-debian" => pull(scenario, ctx, e, fx),
        "build-cold" | "build-cached" | "build-one-file" => build(scenario, ctx, e, fx),
        "port-throughput" => port_throughput(ctx, e),
        other => Err(format!("unknown scenario {other}")),
    };
    e.settle();
    Ok(result)
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

fn pull(scenario: &str, ctx: &Ctx, e: &Engine, fx: &mut Fixtures) -> EngineResult {
    let reference = fx.pull_reference(scenario, ctx)?;
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

/// `skopeo copy docker://<local registry>/<image> oci:<dir>:bench` (download only), the
/// target dir removed between runs (untimed). `Err` when skopeo is not installed.
pub fn skopeo_pull(
    scenario: &str,
    ctx: &Ctx,
    fx: &mut Fixtures,
) -> Result<EngineResult, Unavailable> {
    let Some(skopeo) = which("skopeo") else {
        return Err(Unavailable::NotInstalled("skopeo is not on PATH".into()));
    };
    Ok((|| {
        let reference = fx.pull_reference(scenario, ctx)?;
        let reg = fx.registry()?;
        let policy = reg.skopeo_policy();
        let src_flags = reg.skopeo_src_flags();
        let dest = ctx.work.join(format!("skopeo-{scenario}.oci"));
        let stats = measure(ctx.runs_capped(5), ctx.warmups.min(1), |_| {
            if dest.exists() {
                fs::remove_dir_all(&dest)
                    .map_err(|err| format!("remove {}: {err}", dest.display()))?;
            }
            let mut c = Command::new(&skopeo);
            c.arg("--policy")
                .arg(&policy)
                .args(["copy", "--quiet"])
                .args(&src_flags)
                .arg(format!("docker://{reference}"))
                .arg(format!("oci:{}:bench", dest.display()));
            time(&mut c)
        });
        let _ = fs::remove_dir_all(&dest);
        stats.map(|s| (s, BTreeMap::new()))
    })())
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

/// One HTTP/1.0 GET of `/blob` from 127.0.0.1:`port`, read to the end.
fn fetch_blob(port: u16) -> Result<Duration, String> {
    let start = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|err| format!("connect: {err}"))?;
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
}

/// The reference for `port-throughput`: the same busybox httpd and blob, run on the host
/// (in the bench's namespace) and fetched over plain loopback, no container in the path.
pub fn loopback_throughput(ctx: &Ctx) -> Result<EngineResult, Unavailable> {
    let Some(busybox) = which("busybox") else {
        return Err(Unavailable::NotInstalled("busybox is not on PATH".into()));
    };
    let dir = ctx.work.join("loopback-httpd");
    let res = (|| -> EngineResult {
        std::fs::create_dir_all(&dir).map_err(|err| format!("mkdir {}: {err}", dir.display()))?;
        std::fs::write(dir.join("blob"), vec![0u8; PORT_BYTES])
            .map_err(|err| format!("write the blob: {err}"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|err| format!("no free port: {err}"))?
            .port();
        let mut child = Command::new(&busybox)
            .args(["httpd", "-f", "-p", &format!("127.0.0.1:{port}"), "-h"])
            .arg(&dir)
            .spawn()
            .map_err(|err| format!("busybox httpd: {err}"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ready = fetch_blob(port);
        while ready.is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            ready = fetch_blob(port);
        }
        let r = ready.and_then(|_| measure(ctx.runs_capped(10), ctx.warmups, |_| fetch_blob(port)));
        let _ = child.kill();
        let _ = child.wait();
        let stats = r?;
        let mut extra = BTreeMap::new();
        extra.insert(
            "MiB_per_s".to_string(),
            (PORT_BYTES >> 20) as f64 / (stats.median_ms / 1000.0),
        );
        Ok((stats, extra))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(res)
}

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
    let get = || fetch_blob(port);
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
    fn pull_scenarios_exist_and_include_debian() {
        for p in PULL_SCENARIOS {
            assert!(SCENARIOS.iter().any(|(n, _)| n == p), "{p}");
        }
        assert!(PULL_SCENARIOS.contains(&"pull-debian"));
        assert_eq!(unit("pull-debian"), "ms per pull (1 layer, Debian minbase)");
    }

    #[test]
    fn debian_layout_is_cached_under_the_target_dir() {
        let layout = debian_layout_path(Path::new("/w/target/release"));
        assert_eq!(layout, Path::new("/w/target/images/debian-minbase.oci"));
        assert_eq!(
            debian_error_path(&layout),
            Path::new("/w/target/images/debian-minbase.oci.err")
        );
    }

    #[test]
    fn a_missing_debian_image_says_why() {
        let layout = Path::new("/t/images/debian-minbase.oci");
        let r = debian_missing_reason(
            layout,
            Some(
                "I: a\nE: b\nE: cannot reach deb.debian.org\nberth-mkimage: mmdebstrap bookworm exited with exit status: 1\n",
            ),
        );
        assert!(r.contains("/t/images/debian-minbase.oci"), "{r}");
        assert!(r.contains("mmdebstrap bookworm exited"), "{r}");
        assert!(r.contains("cannot reach deb.debian.org"), "{r}");
        assert!(!r.contains("I: a"), "only the tail: {r}");
        let r = debian_missing_reason(layout, Some("  \n"));
        assert!(r.contains("run bench/run"), "{r}");
        let r = debian_missing_reason(layout, None);
        assert!(r.contains("scripts/images/debian-minbase"), "{r}");
    }

    #[test]
    fn layout_tag_reads_the_ref_name() {
        let idx = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:00","size":1,"annotations":{"org.opencontainers.image.ref.name":"bookworm-minbase"}}]}"#;
        assert_eq!(layout_tag(idx).unwrap(), "bookworm-minbase");
        let err = layout_tag(r#"{"manifests":[]}"#).unwrap_err();
        assert!(err.contains("no manifest"), "{err}");
        assert!(layout_tag("{").unwrap_err().contains("index.json"));
    }

    #[test]
    fn every_scenario_has_a_unit() {
        for (name, _) in SCENARIOS {
            assert_ne!(unit(name), "ms", "{name}");
        }
    }
}
