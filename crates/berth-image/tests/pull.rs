//! Pull and push against Debian's docker-registry on loopback (berth_testkit::Registry),
//! with skopeo on the other side.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_image::{BlobPush, ImageStore, StoreOptions};
use berth_registry::{Client, Credentials, Platform, Progress, RegistryConfig};
use berth_testkit::{Flavor, Registry};
use berth_types::reference::{Digest, Reference};

const CHILD_ENV: &str = "BERTH_IMAGE_TEST_PULL_CHILD";

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-image-pull-")
        .tempdir()
        .unwrap()
}

fn client(reg: &Registry, dir: &Path) -> Client {
    let cfg = RegistryConfig {
        insecure: vec![reg.host()],
        certs_dir: dir.join("certs.d"),
        ..Default::default()
    };
    Client::new(cfg, Credentials::anonymous()).unwrap()
}

#[derive(Default)]
struct Recorder {
    starts: Mutex<Vec<Digest>>,
    bytes: AtomicU64,
    done: Mutex<Vec<(Digest, bool)>>,
    delay: Option<Duration>,
}

impl Progress for Recorder {
    fn start(&self, digest: &Digest, _total: u64, _offset: u64) {
        self.starts.lock().unwrap().push(digest.clone());
    }
    fn bytes(&self, _digest: &Digest, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
    }
    fn done(&self, digest: &Digest, skipped: bool) {
        self.done.lock().unwrap().push((digest.clone(), skipped));
    }
}

fn skopeo_config_digest(_reg: &Registry, reference: &str) -> Digest {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--config"])
        .arg("--tls-verify=false")
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Digest::sha256(&out.stdout)
}

fn tmp_files(root: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for d in [
        root.to_path_buf(),
        root.join("blobs/sha256"),
        root.join("layers"),
    ] {
        if let Ok(rd) = fs::read_dir(&d) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(".tmp-") {
                    v.push(e.path());
                }
            }
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_of_a_skopeo_pushed_image_unpacks_it() {
    let t = tempdir();
    let reg = Registry::start(Flavor::Plain).unwrap();
    let pushed = reg.push_busybox("library/bb:1").unwrap();
    let want = skopeo_config_digest(&reg, &pushed);
    let s = ImageStore::open(t.path().join("root"), StoreOptions::default()).unwrap();
    let r = Reference::parse(&pushed).unwrap();
    let rec = Arc::new(Recorder::default());
    let pulled = s
        .pull(&client(&reg, t.path()), &r, &Platform::host(), rec.clone())
        .await
        .unwrap();
    assert_eq!(pulled.id, want);
    let i = s.inspect(&pushed).unwrap();
    assert_eq!(i.id, want.to_string());
    assert_eq!(i.repo_tags, vec![pushed.clone()]);
    assert_eq!(
        i.repo_digests,
        vec![format!("{}/library/bb@{}", reg.host(), pulled.digest)]
    );
    assert!(
        s.lowerdirs(&pushed).unwrap()[0]
            .join("bin/busybox")
            .is_file()
    );
    assert_eq!(rec.starts.lock().unwrap().len(), 1, "one layer downloaded");
    // Progress adds up to the layer's size, reported in batches.
    let layer = &s.images()[0].layers[0];
    assert_eq!(rec.bytes.load(Ordering::Relaxed), layer.size);
    // The config and the layer are known to live in the repository (for push mounts).
    let repo = format!("{}/library/bb", reg.host());
    assert_eq!(s.blob_sources(&layer.blob), vec![repo.clone()]);
    assert_eq!(s.blob_sources(&pulled.id), vec![repo]);
    // A second pull downloads nothing.
    let rec2 = Arc::new(Recorder::default());
    s.pull(&client(&reg, t.path()), &r, &Platform::host(), rec2.clone())
        .await
        .unwrap();
    assert!(rec2.starts.lock().unwrap().is_empty());
    assert!(tmp_files(s.root()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_pulls_download_each_layer_once() {
    let t = tempdir();
    let reg = Registry::start(Flavor::Plain).unwrap();
    let pushed = reg.push_busybox("conc/bb:1").unwrap();
    let s = ImageStore::open(t.path().join("root"), StoreOptions::default()).unwrap();
    let r = Reference::parse(&pushed).unwrap();
    let rec = Arc::new(Recorder::default());
    let c = client(&reg, t.path());
    let mut handles = Vec::new();
    for _ in 0..10 {
        let (s, c, r, rec) = (s.clone(), c.clone(), r.clone(), rec.clone());
        handles.push(tokio::spawn(async move {
            s.pull(&c, &r, &Platform::host(), rec).await
        }));
    }
    let mut ids = Vec::new();
    for h in handles {
        ids.push(h.await.unwrap().unwrap().id);
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "all pulls give the same image");
    assert_eq!(
        rec.starts.lock().unwrap().len(),
        1,
        "the layer was downloaded once"
    );
    let done = rec.done.lock().unwrap();
    assert_eq!(done.len(), 10);
    assert_eq!(done.iter().filter(|(_, skipped)| !skipped).count(), 1);
    assert_eq!(s.images().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blob_fails_naming_the_digest_and_leaves_the_store_unchanged() {
    let t = tempdir();
    let reg = Registry::start(Flavor::Plain).unwrap();
    let pushed = reg.push_busybox("bad/bb:1").unwrap();
    let s = ImageStore::open(t.path().join("root"), StoreOptions::default()).unwrap();
    let before: Vec<_> = walk(s.root());
    // Corrupt the (largest) layer blob inside the registry's storage.
    let blobs = reg.storage_dir().join("docker/registry/v2/blobs/sha256");
    let data = walk(&blobs)
        .into_iter()
        .filter(|p| p.ends_with("data"))
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    let original = fs::read(&data).unwrap();
    let hex = data
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let mut bad = original.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    fs::write(&data, &bad).unwrap();
    let r = Reference::parse(&pushed).unwrap();
    let c = client(&reg, t.path());
    let err = s
        .pull(&c, &r, &Platform::host(), Arc::new(Recorder::default()))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&hex),
        "error names the layer digest: {err}"
    );
    assert_eq!(walk(s.root()), before, "store unchanged");
    assert!(s.images().is_empty());
    // Repaired, the next pull succeeds.
    fs::write(&data, &original).unwrap();
    s.pull(&c, &r, &Platform::host(), Arc::new(Recorder::default()))
        .await
        .unwrap();
    assert_eq!(s.images().len(), 1);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap().path().to_path_buf())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_skopeo_inspect_and_cross_repo_mount() {
    let t = tempdir();
    let reg = Registry::start(Flavor::Plain).unwrap();
    let s = ImageStore::open(t.path().join("root"), StoreOptions::default()).unwrap();
    let archive = berth_testkit::images::busybox_docker_archive().unwrap();
    let loaded = s.load(fs::File::open(archive).unwrap()).unwrap();
    let id = loaded[0].id.clone();
    let c = client(&reg, t.path());

    let first = format!("{}/team/bb:v1", reg.host());
    s.tag("busybox", &first).unwrap();
    let rec = Arc::new(Recorder::default());
    let pushed = s
        .push(&c, &Reference::parse(&first).unwrap(), rec)
        .await
        .unwrap();
    assert!(
        pushed
            .blobs
            .iter()
            .all(|(_, how)| *how == BlobPush::Uploaded),
        "{:?}",
        pushed.blobs
    );
    assert_eq!(
        skopeo_config_digest(&reg, &first),
        id,
        "skopeo reads back our config"
    );
    let out = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg("--tls-verify=false")
        .arg(format!("docker://{first}"))
        .output()
        .unwrap();
    assert_eq!(
        Digest::sha256(&out.stdout),
        pushed.digest,
        "manifest stored by digest"
    );
    assert!(s.inspect(&first).unwrap().repo_digests.contains(&format!(
        "{}/team/bb@{}",
        reg.host(),
        pushed.digest
    )));

    // Same registry, other repository: blobs are mounted, not uploaded.
    let second = format!("{}/other/bb:v2", reg.host());
    s.tag(id.as_str(), &second).unwrap();
    let again = s
        .push(
            &c,
            &Reference::parse(&second).unwrap(),
            Arc::new(Recorder::default()),
        )
        .await
        .unwrap();
    assert!(
        again.blobs.iter().all(|(_, how)| *how == BlobPush::Mounted),
        "{:?}",
        again.blobs
    );
    assert_eq!(skopeo_config_digest(&reg, &second), id);
    // Pushing again: every blob is already there (HEAD).
    let third = s
        .push(
            &c,
            &Reference::parse(&second).unwrap(),
            Arc::new(Recorder::default()),
        )
        .await
        .unwrap();
    assert!(
        third.blobs.iter().all(|(_, how)| *how == BlobPush::Exists),
        "{:?}",
        third.blobs
    );

    // And what we pushed pulls back into a fresh store with the same id.
    let t2 = tempdir();
    let s2 = ImageStore::open(t2.path().join("root"), StoreOptions::default()).unwrap();
    let p = s2
        .pull(
            &c,
            &Reference::parse(&second).unwrap(),
            &Platform::host(),
            Arc::new(Recorder::default()),
        )
        .await
        .unwrap();
    assert_eq!(p.id, id);
}

/// Kills itself with no cleanup: run as a child process by the test below.
async fn child_pull(root: &str, reference: &str, host: &str) {
    let cfg = RegistryConfig {
        insecure: vec![host.to_owned()],
        certs_dir: PathBuf::from(root).join("certs.d"),
        ..Default::default()
    };
    let c = Client::new(cfg, Credentials::anonymous()).unwrap();
    let s = ImageStore::open(root, StoreOptions::default()).unwrap();
    // slow enough that the parent's kill lands mid-pull (a progress report comes once per
    // written batch of ≥256 KiB, so a 1 MiB layer sees only a few of them)
    let slow = Arc::new(Recorder {
        delay: Some(Duration::from_millis(250)),
        ..Default::default()
    });
    let _ = s
        .pull(
            &c,
            &Reference::parse(reference).unwrap(),
            &Platform::host(),
            slow,
        )
        .await;
    // If the parent did not kill us in time, linger so it still can.
    tokio::time::sleep(Duration::from_secs(60)).await;
}

struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_pull_then_clean_repull() {
    if let Ok(args) = std::env::var(CHILD_ENV) {
        let parts: Vec<&str> = args.split('\n').collect();
        child_pull(parts[0], parts[1], parts[2]).await;
        return;
    }
    let t = tempdir();
    let reg = Registry::start(Flavor::Plain).unwrap();
    let pushed = reg.push_busybox("kill/bb:1").unwrap();
    let root = t.path().join("root");
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "kill_9_during_pull_then_clean_repull",
            "--nocapture",
        ])
        .env(
            CHILD_ENV,
            format!("{}\n{}\n{}", root.display(), pushed, reg.host()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    // Wait until the child is mid-download: a temp blob is growing, or the layer it
    // streams into is being unpacked (blobs are written in 1 MiB O_DIRECT blocks, so a
    // small blob's temp file stays empty until its end: the unpack dir is the surer sign).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let tmp = tmp_files(&root);
        if tmp.iter().any(|p| {
            fs::metadata(p)
                .map(|m| m.is_dir() || (m.is_file() && m.len() > 0))
                .unwrap_or(false)
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "child never started downloading");
        assert!(child.0.try_wait().unwrap().is_none(), "child exited early");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL by pid: our own child.
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.0.id() as i32).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    child.0.wait().unwrap();
    assert!(!tmp_files(&root).is_empty(), "the kill left temp files");

    let s = ImageStore::open(&root, StoreOptions::default()).unwrap();
    assert!(tmp_files(&root).is_empty(), "open removed the temp files");
    assert!(s.images().is_empty());
    let c = client(&reg, t.path());
    let p = s
        .pull(
            &c,
            &Reference::parse(&pushed).unwrap(),
            &Platform::host(),
            Arc::new(Recorder::default()),
        )
        .await
        .unwrap();
    assert!(
        s.lowerdirs(p.id.as_str()).unwrap()[0]
            .join("bin/busybox")
            .is_file()
    );
    assert!(tmp_files(&root).is_empty());
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

fn layer_tar(dir: &Path, name: &str, entries: &[(&str, &[u8])]) -> PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        if path.ends_with('/') {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
        } else {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
        }
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, path, *data).unwrap();
    }
    let p = dir.join(name);
    fs::write(&p, b.into_inner().unwrap()).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_layer_pull_gives_the_overlay_view_and_pull_all_tags() {
    let t = tempdir();
    let reg = Registry::start(Flavor::Plain).unwrap();
    let l1 = layer_tar(
        t.path(),
        "l1.tar",
        &[
            ("etc/", b""),
            ("etc/keep", b"1"),
            ("etc/gone", b"2"),
            ("data/", b""),
            ("data/old", b"3"),
        ],
    );
    let l2 = layer_tar(
        t.path(),
        "l2.tar",
        &[
            ("etc/", b""),
            ("etc/.wh.gone", b""),
            ("data/", b""),
            ("data/.wh..wh..opq", b""),
            ("data/new", b"4"),
        ],
    );
    let l3 = layer_tar(t.path(), "l3.tar", &[("etc/", b""), ("etc/keep", b"top")]);
    let opts = berth_mkimage::ImageOptions {
        source_date_epoch: Some(1_700_000_000),
        ..Default::default()
    };
    let img = berth_mkimage::Image::from_rootfs_layers(&[&l1, &l2, &l3], "multi:1", &opts).unwrap();
    let archive = t.path().join("multi.tar");
    img.write_docker_archive(&archive, false).unwrap();
    let one = reg.push_docker_archive(&archive, "multi/img:1").unwrap();
    reg.push_busybox("multi/img:2").unwrap();

    let s = ImageStore::open(t.path().join("root"), StoreOptions::default()).unwrap();
    let c = client(&reg, t.path());
    let rec = Arc::new(Recorder::default());
    let p = s
        .pull(
            &c,
            &Reference::parse(&one).unwrap(),
            &Platform::host(),
            rec.clone(),
        )
        .await
        .unwrap();
    assert_eq!(rec.starts.lock().unwrap().len(), 3, "three layers fetched");
    let lower = s.lowerdirs(p.id.as_str()).unwrap();
    assert_eq!(lower.len(), 3);
    let mnt = t.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let opts = std::ffi::CString::new(format!(
        "lowerdir={}",
        lower
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    ))
    .unwrap();
    rustix::mount::mount(
        "overlay",
        &mnt,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        opts.as_c_str(),
    )
    .unwrap();
    let guard = Unmount(mnt.clone());
    assert_eq!(fs::read(mnt.join("etc/keep")).unwrap(), b"top");
    assert!(!mnt.join("etc/gone").exists());
    assert!(!mnt.join("data/old").exists());
    assert_eq!(fs::read(mnt.join("data/new")).unwrap(), b"4");
    drop(guard);

    // pull -a: both tags of the repository.
    let repo = Reference::parse_named(&format!("{}/multi/img", reg.host())).unwrap();
    let all = s
        .pull_all_tags(&c, &repo, &Platform::host(), Arc::new(Recorder::default()))
        .await
        .unwrap();
    let mut tags: Vec<String> = all
        .iter()
        .map(|p| p.reference.tag().unwrap().to_owned())
        .collect();
    tags.sort();
    assert_eq!(tags, vec!["1", "2"]);
    assert_eq!(s.images().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_and_prune_during_a_pull_keep_what_it_leases() {
    let t = tempdir();
    let reg = Registry::start(Flavor::Plain).unwrap();
    let pushed = reg.push_busybox("gc/bb:1").unwrap();
    let s = ImageStore::open(t.path().join("root"), StoreOptions::default()).unwrap();
    let c = client(&reg, t.path());
    let slow = Arc::new(Recorder {
        delay: Some(Duration::from_millis(2)),
        ..Default::default()
    });
    let (s2, r) = (s.clone(), Reference::parse(&pushed).unwrap());
    let pull = tokio::spawn(async move { s2.pull(&c, &r, &Platform::host(), slow).await });
    let mut sweeps = 0;
    while !pull.is_finished() {
        let s3 = s.clone();
        tokio::task::spawn_blocking(move || {
            s3.gc().unwrap();
            s3.prune(false).unwrap();
        })
        .await
        .unwrap();
        sweeps += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let p = pull.await.unwrap().unwrap();
    assert!(sweeps > 3, "GC ran during the pull ({sweeps} sweeps)");
    assert!(
        s.lowerdirs(p.id.as_str()).unwrap()[0]
            .join("bin/busybox")
            .is_file()
    );
    assert!(s.blobs().contains(&p.id));
    // Once the pull is over, its image is an ordinary tagged image: GC keeps it.
    s.gc().unwrap();
    assert!(s.inspect(&pushed).is_ok());
}
