//! The store end to end without a registry: load, save (checked by skopeo and podman),
//! import, tag/rm/prune with holds and leases, hostile layers leaving the store unchanged.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_image::{
    ArchiveFormat, ImageStore, ImportOptions, LayerSpec, ListFilters, RemoveItem, StoreError,
    StoreOptions, UnpackOptions,
};
use berth_types::reference::Digest;
use common::{Layer, snapshot};

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-image-store-")
        .tempdir()
        .unwrap()
}

fn store(dir: &Path) -> ImageStore {
    ImageStore::open(dir.join("root"), StoreOptions::default()).unwrap()
}

/// A busybox docker-archive built by berth-mkimage (the foundation helper's tool).
fn busybox_archive(dir: &Path, tag: &str, gzip: bool) -> PathBuf {
    let img = berth_mkimage::busybox_image(dir, tag, Some(1_700_000_000)).unwrap();
    let p = dir.join(format!("busybox-{}.tar", if gzip { "gz" } else { "plain" }));
    img.write_docker_archive(&p, gzip).unwrap();
    p
}

fn load_busybox(dir: &Path, s: &ImageStore) -> Digest {
    let archive = busybox_archive(dir, "busybox:latest", false);
    let loaded = s.load(fs::File::open(archive).unwrap()).unwrap();
    assert_eq!(loaded.len(), 1);
    loaded[0].id.clone()
}

/// What the store holds on disk (blobs, layers, metadata), for "unchanged" checks.
fn store_snapshot(s: &ImageStore) -> Vec<(String, bool, u64)> {
    snapshot(s.root())
}

#[test]
fn load_docker_archive_then_inspect_list_history_lowerdirs() {
    let t = tempdir();
    let s = store(t.path());
    let id = load_busybox(t.path(), &s);
    let inspect = s.inspect("busybox").unwrap();
    assert_eq!(inspect.id, id.to_string());
    assert_eq!(inspect.repo_tags, vec!["busybox:latest"]);
    assert_eq!(inspect.os, "linux");
    assert_eq!(inspect.config["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(inspect.root_fs.layers.len(), 1);
    assert!(inspect.size > 500_000, "busybox is big: {}", inspect.size);
    // Same image by id, short id and full reference.
    assert_eq!(s.inspect(&id.hex()[..12]).unwrap().id, inspect.id);
    assert_eq!(
        s.inspect("docker.io/library/busybox:latest").unwrap().id,
        inspect.id
    );
    let json = serde_json::to_value(&inspect).unwrap();
    for k in [
        "Id",
        "RepoTags",
        "RepoDigests",
        "Created",
        "Config",
        "RootFS",
        "Size",
        "Architecture",
        "Os",
    ] {
        assert!(json.get(k).is_some(), "inspect has {k}");
    }

    let lower = s.lowerdirs("busybox").unwrap();
    assert_eq!(lower.len(), 1);
    assert!(lower[0].join("bin/busybox").is_file());
    assert!(lower[0].join("bin/sh").exists());

    let rows = s.list(&ListFilters::default(), false).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].repo_tags, vec!["busybox:latest"]);
    let hist = s.history("busybox").unwrap();
    assert_eq!(hist[0].id, id.to_string());
    assert_eq!(hist[0].tags, vec!["busybox:latest"]);
    assert!(hist.iter().any(|h| h.size > 0));

    // Loading it again is a no-op apart from tags, and a reopened store sees it.
    let again = s
        .load(fs::File::open(busybox_archive(t.path(), "busybox:latest", true)).unwrap())
        .unwrap();
    assert_eq!(again[0].id, id);
    drop(s);
    let s2 = store(t.path());
    assert_eq!(s2.inspect("busybox:latest").unwrap().id, id.to_string());
}

#[test]
fn tag_untag_remove_and_holds() {
    let t = tempdir();
    let s = store(t.path());
    let id = load_busybox(t.path(), &s);
    s.tag("busybox", "example.com/team/bb:v1").unwrap();
    assert_eq!(
        s.inspect("example.com/team/bb:v1").unwrap().id,
        id.to_string()
    );

    // By id with two tags: needs force.
    let err = s.remove(id.as_str(), false).unwrap_err();
    assert!(
        matches!(err, StoreError::MultipleRepositories { .. }),
        "{err}"
    );
    // Removing one tag only untags.
    let out = s.remove("example.com/team/bb:v1", false).unwrap();
    assert_eq!(
        out,
        vec![RemoveItem::Untagged("example.com/team/bb:v1".into())]
    );
    assert!(s.inspect("busybox").is_ok());

    // A hold blocks deletion without force, with Docker's message naming the container.
    let ctr = "4f2a9c0b1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e";
    s.hold_image(&id, ctr);
    let err = s.remove("busybox", false).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to remove repository reference \"busybox\" (must force) - container 4f2a9c0b1d2e is using its referenced image {}",
            &id.hex()[..12]
        )
    );
    assert_eq!(err.kind(), berth_image::ErrorKind::Conflict);
    let err = s.remove(&id.hex()[..12], false).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to delete {} (must be forced) - image is being used by stopped container 4f2a9c0b1d2e",
            &id.hex()[..12]
        )
    );
    assert!(
        s.prune(true).unwrap().images.is_empty(),
        "prune -a keeps held images"
    );
    s.release_image(&id, ctr);

    let layer_dir = s.lowerdirs("busybox").unwrap()[0].clone();
    let out = s.remove("busybox", false).unwrap();
    assert!(
        out.contains(&RemoveItem::Deleted(id.to_string())),
        "{out:?}"
    );
    assert!(matches!(
        s.inspect("busybox"),
        Err(StoreError::ImageNotFound(_))
    ));
    assert!(!layer_dir.exists(), "the layer went with the last image");
    assert!(s.blobs().list().unwrap().is_empty(), "blobs collected");

    // rmi -f of a tag a container uses: untagged, the image stays (dangling) while held.
    let id = load_busybox(t.path(), &s);
    s.hold_image(&id, ctr);
    let out = s.remove("busybox", true).unwrap();
    assert_eq!(out, vec![RemoveItem::Untagged("busybox:latest".into())]);
    let img = s.inspect(id.as_str()).unwrap();
    assert!(img.repo_tags.is_empty(), "{:?}", img.repo_tags);
    assert!(!s.lowerdirs(id.as_str()).unwrap().is_empty());
    // ...and prune does not take it while held.
    assert!(s.prune(false).unwrap().images.is_empty());
    // rmi -f by id while held: nothing left to untag, the image stays.
    assert!(
        !s.remove(id.as_str(), true)
            .unwrap()
            .iter()
            .any(|i| matches!(i, RemoveItem::Deleted(_)))
    );
    assert!(s.inspect(id.as_str()).is_ok());
    // Once the container is gone, the dangling image goes with prune.
    s.release_image(&id, ctr);
    let report = s.prune(false).unwrap();
    assert_eq!(report.images, vec![RemoveItem::Deleted(id.to_string())]);
    assert!(s.blobs().list().unwrap().is_empty());
}

#[test]
fn gc_respects_tags_leases_and_prune_removes_dangling() {
    let t = tempdir();
    let s = store(t.path());
    let id = load_busybox(t.path(), &s);
    // A leased blob that no image references survives GC until the lease ends.
    let lease = s.lease();
    let orphan = Digest::sha256(b"in-flight");
    lease.add_blob(&orphan);
    s.blobs().put(b"in-flight").unwrap();
    let report = s.gc().unwrap();
    assert!(report.blobs.is_empty(), "{report:?}");
    assert!(s.blobs().contains(&orphan));
    drop(lease);
    let report = s.gc().unwrap();
    assert_eq!(report.blobs, vec![orphan.clone()]);
    assert!(s.inspect("busybox").is_ok(), "tagged image untouched by GC");

    // Import a second image untagged: dangling, and pruned; the tagged one stays.
    let rootfs = Layer::new().file("hello", b"world").tar();
    let dangling = s.import(&rootfs[..], &ImportOptions::default()).unwrap();
    let rows = s
        .list(
            &ListFilters {
                dangling: Some(true),
                ..Default::default()
            },
            false,
        )
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        vec![dangling.to_string()]
    );
    let pruned = s.prune(false).unwrap();
    assert_eq!(
        pruned.images,
        vec![RemoveItem::Deleted(dangling.to_string())]
    );
    assert!(s.inspect(id.as_str()).is_ok());
}

#[test]
fn import_with_changes_and_message() {
    let t = tempdir();
    let s = store(t.path());
    let rootfs = Layer::new()
        .dir("srv/", 0o755)
        .file("srv/app", b"#!/bin/sh\necho hi\n")
        .gzip();
    let opts = ImportOptions {
        changes: vec![
            "CMD [\"/srv/app\"]".into(),
            "ENV MODE=prod".into(),
            "WORKDIR /srv".into(),
            "EXPOSE 8080".into(),
            "LABEL team=berth".into(),
            "USER 1000".into(),
            "ENTRYPOINT [\"/bin/sh\"]".into(),
        ],
        message: Some("from a tarball".into()),
        tag: Some("imported/app:1".into()),
    };
    let id = s.import(&rootfs[..], &opts).unwrap();
    let i = s.inspect("imported/app:1").unwrap();
    assert_eq!(i.id, id.to_string());
    assert_eq!(i.config["Cmd"], serde_json::json!(["/srv/app"]));
    assert_eq!(i.config["Entrypoint"], serde_json::json!(["/bin/sh"]));
    assert_eq!(i.config["Env"], serde_json::json!(["MODE=prod"]));
    assert_eq!(i.config["WorkingDir"], "/srv");
    assert_eq!(i.config["User"], "1000");
    assert_eq!(
        i.config["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}})
    );
    let rows = s
        .list(
            &ListFilters {
                label: vec!["team=berth".into()],
                ..Default::default()
            },
            false,
        )
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        s.history("imported/app:1").unwrap()[0].comment,
        "from a tarball"
    );
    assert_eq!(
        fs::read(s.lowerdirs(id.as_str()).unwrap()[0].join("srv/app")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    let bad = s
        .import(
            &rootfs[..],
            &ImportOptions {
                changes: vec!["VOLUME /x".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(bad.to_string().contains("VOLUME /x"), "{bad}");
}

#[test]
fn list_filters_reference_before_since() {
    let t = tempdir();
    let s = store(t.path());
    let a = s
        .import(
            &Layer::new().file("a", b"1").tar()[..],
            &ImportOptions {
                tag: Some("alpha:1".into()),
                ..Default::default()
            },
        )
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let b = s
        .import(
            &Layer::new().file("b", b"2").tar()[..],
            &ImportOptions {
                tag: Some("beta:1".into()),
                ..Default::default()
            },
        )
        .unwrap();
    let refs = |f: ListFilters| {
        s.list(&f, false)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        refs(ListFilters {
            reference: vec!["al*".into()],
            ..Default::default()
        }),
        vec![a.to_string()]
    );
    assert_eq!(
        refs(ListFilters {
            reference: vec!["beta:1".into()],
            ..Default::default()
        }),
        vec![b.to_string()]
    );
    assert_eq!(
        refs(ListFilters {
            before: Some("beta:1".into()),
            ..Default::default()
        }),
        vec![a.to_string()]
    );
    assert_eq!(
        refs(ListFilters {
            since: Some("alpha:1".into()),
            ..Default::default()
        }),
        vec![b.to_string()]
    );
    assert_eq!(
        refs(ListFilters::default()),
        vec![b.to_string(), a.to_string()],
        "newest first"
    );
}

#[test]
fn save_docker_archive_is_accepted_by_skopeo_and_podman_and_reloads() {
    let t = tempdir();
    let s = store(t.path());
    let id = load_busybox(t.path(), &s);
    let out = t.path().join("saved.tar");
    s.save(
        &["busybox:latest"],
        ArchiveFormat::Docker,
        fs::File::create(&out).unwrap(),
    )
    .unwrap();

    let inspect = Command::new("skopeo")
        .args(["inspect", "--raw", "--config"])
        .arg(format!("docker-archive:{}", out.display()))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    assert_eq!(
        Digest::sha256(&inspect.stdout),
        id,
        "skopeo sees our exact config"
    );

    // podman load into a private storage root (vfs: no mounts to clean up).
    let proot = t.path().join("podman-root");
    let prun = t.path().join("podman-run");
    let load = Command::new("podman")
        .arg("--root")
        .arg(&proot)
        .arg("--runroot")
        .arg(&prun)
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "load",
            "-i",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        load.status.success(),
        "podman load: {}",
        String::from_utf8_lossy(&load.stderr)
    );
    let text = String::from_utf8_lossy(&load.stdout);
    assert!(text.contains("busybox"), "podman loaded: {text}");
    let _ = Command::new("rm")
        .arg("-rf")
        .arg(&proot)
        .arg(&prun)
        .status();

    // Our own load of our own save gives the same image.
    let t2 = tempdir();
    let s2 = store(t2.path());
    let loaded = s2.load(fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(loaded[0].id, id);
    assert_eq!(s2.inspect("busybox").unwrap().id, id.to_string());
}

#[test]
fn save_oci_archive_is_accepted_by_skopeo_and_reloads() {
    let t = tempdir();
    let s = store(t.path());
    let id = load_busybox(t.path(), &s);
    let out = t.path().join("saved-oci.tar");
    s.save(
        &["busybox"],
        ArchiveFormat::Oci,
        fs::File::create(&out).unwrap(),
    )
    .unwrap();
    let inspect = Command::new("skopeo")
        .args(["inspect", "--raw", "--config"])
        .arg(format!("oci-archive:{}", out.display()))
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    assert_eq!(Digest::sha256(&inspect.stdout), id);
    let t2 = tempdir();
    let s2 = store(t2.path());
    let loaded = s2.load(fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(loaded[0].id, id);
    assert_eq!(s2.inspect("busybox:latest").unwrap().id, id.to_string());
}

#[test]
fn load_of_an_oci_layout_made_by_mkimage() {
    let t = tempdir();
    let img =
        berth_mkimage::busybox_image(t.path(), "example.com/bb:oci", Some(1_700_000_000)).unwrap();
    let layout = t.path().join("layout");
    img.write_oci_layout(&layout).unwrap();
    let tarball = t.path().join("layout.tar");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let s = store(t.path());
    let loaded = s.load(fs::File::open(&tarball).unwrap()).unwrap();
    assert_eq!(loaded[0].id.to_string(), img.config_digest);
    assert_eq!(
        s.inspect("example.com/bb:oci").unwrap().id,
        img.config_digest
    );
}

fn spec_for(data_plain: &[u8], blob: &[u8], media: &str) -> LayerSpec {
    let diff = Digest::sha256(data_plain);
    LayerSpec {
        blob: Digest::sha256(blob),
        media_type: media.into(),
        diff_id: diff.clone(),
        chain_id: diff,
        parent: None,
    }
}

#[test]
fn hostile_layers_leave_the_store_unchanged() {
    let t = tempdir();
    let s = ImageStore::open(
        t.path().join("root"),
        StoreOptions {
            unpack: UnpackOptions {
                max_unpacked_bytes: 4 << 20,
            },
        },
    )
    .unwrap();
    load_busybox(t.path(), &s);
    let before = store_snapshot(&s);
    let gz = "application/vnd.oci.image.layer.v1.tar+gzip";
    let cases: Vec<(&str, Vec<u8>, Vec<u8>, String)> = {
        let mut v = Vec::new();
        for (name, tar) in [
            ("dotdot", Layer::new().file("../x", b"evil").tar()),
            ("abs", Layer::new().file("/abs", b"evil").tar()),
            (
                "symlink",
                Layer::new()
                    .symlink("a", "/")
                    .file("a/etc/x", b"evil")
                    .tar(),
            ),
            ("hardlink", Layer::new().hardlink("h", "/etc/passwd").tar()),
        ] {
            let blob = common::gzip(&tar);
            v.push((name, tar, blob, String::new()));
        }
        let big = Layer::new().file("zeros", &vec![0u8; 8 << 20]).tar();
        v.push(("bomb", big.clone(), common::gzip(&big), String::new()));
        let ok = Layer::new().file("f", &vec![5u8; 100_000]).tar();
        let good_gz = common::gzip(&ok);
        let truncated = good_gz[..good_gz.len() / 2].to_vec();
        v.push((
            "truncated",
            ok.clone(),
            truncated.clone(),
            Digest::sha256(&good_gz).to_string(),
        ));
        v.push((
            "bad-digest",
            ok.clone(),
            good_gz.clone(),
            Digest::sha256(b"something else").to_string(),
        ));
        v
    };
    for (name, plain, blob, claimed) in cases {
        let mut spec = spec_for(&plain, &blob, gz);
        if !claimed.is_empty() {
            spec.blob = Digest::parse(&claimed).unwrap();
        }
        let lease = s.lease();
        let err = s.ingest_layer(&blob[..], &spec, &lease).expect_err(name);
        let msg = err.to_string();
        assert!(
            msg.contains(spec.blob.as_str()),
            "{name}: error names the blob digest: {msg}"
        );
        let expect = match name {
            "dotdot" => "../x",
            "abs" => "/abs",
            "symlink" => "a/etc/x",
            "hardlink" => "/etc/passwd",
            "bomb" => "4194304",
            "truncated" => "reading the layer stream",
            _ => "digest mismatch",
        };
        assert!(msg.contains(expect), "{name}: {msg}");
        drop(lease);
        assert_eq!(store_snapshot(&s), before, "{name}: store unchanged");
    }
    assert!(!Path::new("/abs").exists() && !Path::new("/etc/x").exists());
}

#[test]
fn load_of_a_docker_archive_written_by_skopeo() {
    let t = tempdir();
    let img =
        berth_mkimage::busybox_image(t.path(), "busybox:latest", Some(1_700_000_000)).unwrap();
    let layout = t.path().join("layout");
    img.write_oci_layout(&layout).unwrap();
    let out = t.path().join("skopeo.tar");
    let st = Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!(
            "docker-archive:{}:example.com/sk/bb:1",
            out.display()
        ))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&st.stderr)
    );
    let s = store(t.path());
    let loaded = s.load(fs::File::open(&out).unwrap()).unwrap();
    assert_eq!(loaded[0].id.to_string(), img.config_digest);
    let i = s.inspect("example.com/sk/bb:1").unwrap();
    assert_eq!(i.id, img.config_digest);
    assert!(
        s.lowerdirs("example.com/sk/bb:1").unwrap()[0]
            .join("bin/busybox")
            .is_file()
    );
}

#[test]
fn prune_counts_hard_linked_content_once() {
    let t = tempdir();
    let s = store(t.path());
    let id = load_busybox(t.path(), &s);
    let binary = fs::metadata("/bin/busybox")
        .or_else(|_| fs::metadata("/usr/bin/busybox"))
        .unwrap()
        .len();
    let blobs: u64 = s
        .blobs()
        .list()
        .unwrap()
        .iter()
        .map(|b| s.blobs().size(b).unwrap())
        .sum();
    let layers = s.layers().list().unwrap();
    let layer_sizes: u64 = layers
        .iter()
        .map(|l| s.layers().meta(l).unwrap().size)
        .sum();
    // Hundreds of applet links to one binary count once.
    assert!(
        layer_sizes < 2 * binary,
        "layer size {layer_sizes} for a {binary}-byte busybox"
    );
    let report = s.prune(true).unwrap();
    assert!(report.images.contains(&RemoveItem::Deleted(id.to_string())));
    assert_eq!(report.space_reclaimed, blobs + layer_sizes);
    assert!(
        report.space_reclaimed < 4 * binary,
        "reclaimed {} for a {binary}-byte busybox",
        report.space_reclaimed
    );
}
