//! The two outputs, checked with the real consumers: skopeo, umoci and podman.
mod common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use berth_mkimage::{Image, ImageOptions, busybox_image};
use common::{json, run, sha256_file};

fn busybox(dir: &Path, tag: &str) -> Image {
    busybox_image(dir, tag, Some(1_700_000_000)).unwrap()
}

#[test]
fn skopeo_inspects_the_oci_layout_and_the_docker_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let image = busybox(tmp.path(), "busybox:latest");
    let oci = tmp.path().join("oci");
    let archive = tmp.path().join("bb.tar");
    image.write_oci_layout(&oci).unwrap();
    image.write_docker_archive(&archive, false).unwrap();

    let v = json(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:latest", oci.display())),
    );
    assert_eq!(v["Digest"], image.manifest_digest.as_str());
    assert_eq!(v["Architecture"], "amd64");
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Layers"][0], image.layers[0].digest.as_str());

    let c = json(
        Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci:{}:latest", oci.display())),
    );
    assert_eq!(c["config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(c["rootfs"]["diff_ids"][0], image.layers[0].diff_id.as_str());

    let c = json(
        Command::new("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("docker-archive:{}", archive.display())),
    );
    assert_eq!(c["config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(c["created"], "2023-11-14T22:13:20Z");
    assert_eq!(c["history"][0]["created_by"], "berth-mkimage");
}

#[test]
fn umoci_unpacks_the_oci_layout_into_the_expected_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let image = busybox(tmp.path(), "busybox:1.35");
    let oci = tmp.path().join("oci");
    image.write_oci_layout(&oci).unwrap();
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:1.35", oci.display()))
        .arg(&bundle));
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = bundle.join("rootfs");
    let bb = fs::metadata(root.join("bin/busybox")).unwrap();
    assert_eq!(bb.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::metadata(root.join("bin/sh")).unwrap().ino(),
        bb.ino(),
        "bin/sh stays a hard link"
    );
    assert_eq!(
        fs::metadata(root.join("tmp")).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
    assert!(
        fs::read_to_string(root.join("etc/passwd"))
            .unwrap()
            .contains("nobody:x:65534:65534:")
    );
    // umoci writes the runtime config from the image config.
    let cfg: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["process"]["args"], serde_json::json!(["sh"]));
}

#[test]
fn podman_loads_the_docker_archive_and_shows_the_cmd() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = ImageOptions {
        cmd: Some(vec!["echo".into(), "hi".into()]),
        entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
        env: vec!["FOO=bar".into()],
        workdir: Some("/tmp".into()),
        user: Some("nobody".into()),
        labels: [("org.example.k".to_string(), "v".to_string())].into(),
        exposed_ports: vec!["8080".into()],
        source_date_epoch: Some(1_700_000_000),
        ..Default::default()
    };
    let root = tmp.path().join("rootfs");
    berth_mkimage::busybox_rootfs(&root).unwrap();
    let image = Image::from_rootfs(&root, "mk-test/podman:v1", &opts).unwrap();
    let archive = tmp.path().join("a.tar");
    image.write_docker_archive(&archive, false).unwrap();

    let conf = tmp.path().join("containers.conf");
    fs::write(
        &conf,
        "[engine]\nevents_logger = \"file\"\ncgroup_manager = \"cgroupfs\"\n",
    )
    .unwrap();
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &conf)
            .arg("--root")
            .arg(tmp.path().join("root"))
            .arg("--runroot")
            .arg(tmp.path().join("runroot"))
            .arg("--tmpdir")
            .arg(tmp.path().join("ptmp"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        c
    };
    run(&mut podman(&["load", "-i", archive.to_str().unwrap()]));
    let v = json(&mut podman(&["image", "inspect", "mk-test/podman:v1"]));
    let img = &v[0];
    assert_eq!(img["Id"], image.config_digest.trim_start_matches("sha256:"));
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["echo", "hi"]));
    assert_eq!(
        img["Config"]["Entrypoint"],
        serde_json::json!(["/bin/sh", "-c"])
    );
    assert_eq!(img["Config"]["WorkingDir"], "/tmp");
    assert_eq!(img["Config"]["User"], "nobody");
    assert_eq!(img["Config"]["Labels"]["org.example.k"], "v");
    assert!(
        img["Config"]["ExposedPorts"].get("8080/tcp").is_some(),
        "{img}"
    );
    assert!(
        img["Config"]["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "FOO=bar")
    );
    assert_eq!(img["RootFS"]["Layers"][0], image.layers[0].diff_id.as_str());
}

#[test]
fn every_digest_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let image = busybox(tmp.path(), "busybox:latest");
    let oci = tmp.path().join("oci");
    image.write_oci_layout(&oci).unwrap();
    let blobs = oci.join("blobs/sha256");
    for e in fs::read_dir(&blobs).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        assert_eq!(sha256_file(&p), format!("sha256:{name}"), "blob {name}");
    }
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(oci.join("index.json")).unwrap()).unwrap();
    let desc = &index["manifests"][0];
    assert_eq!(
        desc["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    assert_eq!(
        desc["annotations"]["io.containerd.image.name"],
        "busybox:latest"
    );
    let mhex = desc["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let mbytes = fs::read(blobs.join(mhex)).unwrap();
    assert_eq!(desc["size"], mbytes.len() as u64);
    let manifest: serde_json::Value = serde_json::from_slice(&mbytes).unwrap();
    let chex = manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(blobs.join(chex)).unwrap()).unwrap();
    let lhex = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:");
    let gz = fs::read(blobs.join(lhex)).unwrap();
    assert_eq!(manifest["layers"][0]["size"], gz.len() as u64);
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut tar)
        .unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        berth_mkimage::sha256_digest(&tar).as_str()
    );

    // docker-archive: the config file is named by its digest; layer.tar hashes to the diff id.
    let archive = tmp.path().join("a.tar");
    image.write_docker_archive(&archive, false).unwrap();
    let data = fs::read(&archive).unwrap();
    let mut a = tar::Archive::new(data.as_slice());
    let mut files = std::collections::HashMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).unwrap();
        files.insert(e.path().unwrap().to_string_lossy().into_owned(), buf);
    }
    let m: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let cfg_name = m[0]["Config"].as_str().unwrap();
    assert_eq!(
        format!("sha256:{}", cfg_name.trim_end_matches(".json")),
        berth_mkimage::sha256_digest(&files[cfg_name])
    );
    let layer = &files[m[0]["Layers"][0].as_str().unwrap()];
    assert_eq!(berth_mkimage::sha256_digest(layer), image.layers[0].diff_id);
    assert_eq!(m[0]["RepoTags"], serde_json::json!(["busybox:latest"]));
    let repos: serde_json::Value = serde_json::from_slice(&files["repositories"]).unwrap();
    assert!(repos["busybox"]["latest"].is_string());
}

#[test]
fn a_second_tag_is_added_to_the_same_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("oci");
    busybox(tmp.path(), "busybox:a")
        .write_oci_layout(&oci)
        .unwrap();
    busybox(tmp.path(), "busybox:b")
        .write_oci_layout(&oci)
        .unwrap();
    busybox(tmp.path(), "busybox:b")
        .write_oci_layout(&oci)
        .unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(oci.join("index.json")).unwrap()).unwrap();
    let tags: Vec<_> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(tags, ["a", "b"]);
    for t in ["a", "b"] {
        run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{t}", oci.display())));
    }
}

/// The optional Debian minbase recipe: needs the apt mirror and about a minute, so it runs
/// only on request: `cargo nextest run -p berth-mkimage --run-ignored all debian`.
#[test]
#[ignore = "needs a reachable Debian mirror and ~1 min"]
fn debian_minbase_recipe_makes_a_working_image() {
    let tmp = tempfile::tempdir().unwrap();
    let oci = tmp.path().join("oci");
    run(Command::new(env!("CARGO_BIN_EXE_berth-mkimage"))
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["debian", "--tag", "debian:minbase", "--oci-layout"])
        .arg(&oci));
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:minbase", oci.display()))
        .arg(&bundle));
    let os = fs::read_to_string(bundle.join("rootfs/etc/os-release")).unwrap();
    assert!(os.contains("Debian GNU/Linux"), "{os}");
    let out = run(Command::new("chroot").arg(bundle.join("rootfs")).args([
        "/bin/sh",
        "-c",
        "dpkg -s base-files >/dev/null && echo ok",
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}
