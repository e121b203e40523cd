//! The cached test images.
use std::process::Command;

use berth_testkit::images;

#[test]
fn busybox_images_are_built_once_and_valid() {
    // Parallel callers in one process: all get the same, complete file.
    let paths: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(images::busybox_docker_archive))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    assert!(paths.windows(2).all(|w| w[0] == w[1]));
    assert!(paths[0].starts_with(images::cache_dir()));
    let out = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("docker-archive:{}", paths[0].display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cfg["config"]["Cmd"], serde_json::json!(["sh"]));

    let layout = images::busybox_oci_layout().unwrap();
    assert_eq!(layout, images::busybox_oci_layout().unwrap());
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:latest", layout.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (manifest, config) = images::busybox_digests().unwrap();
    assert_eq!(v["Digest"], manifest.as_str());
    assert!(config.starts_with("sha256:"));
    // No temp leftovers in the cache.
    let leftovers: Vec<_> = std::fs::read_dir(images::cache_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
