//! Times `ImageStore::pull` against Debian's docker-registry on loopback, without berthd:
//! for profiling the pull path (`perf record -g -- target/release/examples/pull_profile`).
//!
//! ```sh
//! cargo build --release -p berth-image --example pull_profile
//! target/release/examples/pull_profile big 5          # 5 layers of 20 MiB of noise
//! target/release/examples/pull_profile <oci-layout> 5 # e.g. target/images/debian-minbase.oci
//! target/release/examples/pull_profile big 5 nowait   # do not wait for the trash
//! ```
//!
//! Each run pulls into a store under /var/tmp, removes the image (untimed) and waits for the
//! trash to be purged (unless `nowait`); prints each run's time and CPU, and the median.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_image::{ImageStore, StoreOptions};
use berth_mkimage::{Image, ImageOptions, Layer};
use berth_registry::{Client, Credentials, Platform, Progress, RegistryConfig};
use berth_testkit::{Flavor, Registry};
use berth_types::reference::{Digest, Reference};

struct Quiet;

impl Progress for Quiet {
    fn start(&self, _: &Digest, _: u64, _: u64) {}
    fn bytes(&self, _: &Digest, _: u64) {}
    fn done(&self, _: &Digest, _: bool) {}
}

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
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

fn big_layout(work: &Path) -> PathBuf {
    let mut layers = Vec::new();
    for i in 0..5u64 {
        let dir = work.join(format!("big-layer-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("blob-{i}")), noise(i + 1, 20 << 20)).unwrap();
        layers.push(Layer::from_dir(&dir, Some(1_700_000_000)).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let opts = ImageOptions {
        cmd: Some(vec!["sh".into()]),
        source_date_epoch: Some(1_700_000_000),
        ..Default::default()
    };
    let image = Image::from_layers(layers, "bench/big:1", &opts).unwrap();
    let layout = work.join("big.oci");
    image.write_oci_layout(&layout).unwrap();
    layout
}

/// CPU time (user + system, ms) of this process, all threads.
fn cpu_self() -> f64 {
    cpu_of(std::process::id())
}

/// CPU time (user + system, ms) of a process, from /proc/<pid>/stat.
fn cpu_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the line (11 and 12 after the comm), in
    // clock ticks of 10 ms.
    (ticks(11) + ticks(12)) * 10.0
}

fn main() {
    // RUST_LOG=berth_image=debug shows each layer's download, unpack and publish times.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "big".into());
    let runs: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    // "nowait": pull again right after the removal, as bench/run does (the removed
    // layer is deleted in the background meanwhile).
    let wait = args.next().as_deref() != Some("nowait");
    let work = tempfile::Builder::new()
        .prefix("berth-pull-profile-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let reg = Registry::start(Flavor::Plain).unwrap();
    let (layout, tag) = if what == "big" {
        (big_layout(work.path()), "1".to_owned())
    } else {
        let index = std::fs::read_to_string(Path::new(&what).join("index.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&index).unwrap();
        let tag = v["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .unwrap_or("latest")
            .to_owned();
        (PathBuf::from(&what), tag)
    };
    let pushed = reg.push_oci_layout(&layout, &tag, "bench/img:1").unwrap();
    let reference = Reference::parse(&pushed).unwrap();
    let cfg = RegistryConfig {
        insecure: vec![reg.host()],
        certs_dir: work.path().join("certs.d"),
        ..Default::default()
    };
    let client = Client::new(cfg.clone(), Credentials::anonymous()).unwrap();
    {
        // What a fresh client (berthd makes one per pull) costs before the first layer.
        let rt = tokio::runtime::Runtime::new().unwrap();
        for _ in 0..3 {
            let t = Instant::now();
            let c = Client::new(cfg.clone(), Credentials::anonymous()).unwrap();
            let r1 = rt
                .block_on(c.resolve(&reference, &Platform::host()))
                .is_ok();
            let first = t.elapsed();
            let t = Instant::now();
            let r2 = rt
                .block_on(c.resolve(&reference, &Platform::host()))
                .is_ok();
            println!(
                "fresh client: first resolve {:.1} ms, second {:.1} ms ({r1} {r2})",
                first.as_secs_f64() * 1e3,
                t.elapsed().as_secs_f64() * 1e3
            );
        }
    }
    let store = ImageStore::open(work.path().join("store"), StoreOptions::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut times = Vec::new();
    for i in 0..runs {
        let (cpu0, reg0) = (cpu_self(), cpu_of(reg.pid()));
        let t = Instant::now();
        rt.block_on(store.pull(&client, &reference, &Platform::host(), Arc::new(Quiet)))
            .unwrap();
        let took = t.elapsed();
        println!(
            "run {i}: {:.1} ms (cpu: berth {:.0} ms, registry {:.0} ms)",
            took.as_secs_f64() * 1e3,
            cpu_self() - cpu0,
            cpu_of(reg.pid()) - reg0
        );
        times.push(took);
        store.remove(&pushed, false).unwrap();
        if wait {
            store.layers().trash().wait_idle();
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "median {:.1} ms, min {:.1} ms, max {:.1} ms",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
}
