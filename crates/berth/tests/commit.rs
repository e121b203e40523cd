//! `berth commit|diff|export` (and the docker CLI's) against a container that wrote,
//! changed and deleted files. Root; build `berthd`, `berth-shim` first.

mod common;

use common::{Daemon, Leftovers, stderr};

#[test]
fn commit_diff_and_export_a_container_that_wrote_files() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "writer",
            "busybox",
            "sh",
            "-c",
            "mkdir -p /data && echo payload > /data/file.txt && echo changed >> /etc/motd && rm /bin/vi && sleep 100",
        ])
        .trim()
        .to_owned();
    // the writes happen right after start
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let diff = loop {
        let out = d.ok(&["diff", "writer"]);
        if out.contains("D /bin/vi") || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let lines: Vec<&str> = diff.lines().collect();
    for want in [
        "A /data",
        "A /data/file.txt",
        "C /etc",
        "A /etc/motd",
        "C /bin",
        "D /bin/vi",
    ] {
        assert!(lines.contains(&want), "{want:?} missing from:\n{diff}");
    }
    // the docker CLI agrees
    assert_eq!(d.docker_ok(&["diff", "writer"]), diff);

    // commit with a message, an author and config changes
    let img = d
        .ok(&[
            "commit",
            "-m",
            "saved state",
            "-a",
            "Tester <t@example.com>",
            "-c",
            "ENV SAVED=1",
            "-c",
            "CMD [\"cat\", \"/data/file.txt\"]",
            "writer",
            "snap:1",
        ])
        .trim()
        .to_owned();
    assert!(img.starts_with("sha256:"), "{img}");
    // paused during the commit, running (and not paused) after it
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.Paused}}",
            "writer"
        ]),
        "true false\n"
    );
    let unpaused = d.ok(&["commit", "--pause=false", "writer"]);
    assert!(unpaused.starts_with("sha256:"), "{unpaused}");
    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["image", "inspect", "snap:1"])).unwrap();
    let v = &v[0];
    assert_eq!(v["Id"], img.as_str());
    assert_eq!(v["Author"], "Tester <t@example.com>");
    assert_eq!(
        v["Config"]["Cmd"],
        serde_json::json!(["cat", "/data/file.txt"])
    );
    assert!(
        v["Config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("SAVED=1"))
    );
    assert_eq!(v["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    assert_eq!(d.ok(&["run", "--rm", "snap:1"]), "payload\n");
    // the deletion is in the new layer (a whiteout)
    let o = d.berth(&["run", "--rm", "snap:1", "ls", "/bin/vi"]);
    assert!(!o.status.success(), "vi is back: {}", stderr(&o));
    let hist = d.docker_ok(&["history", "--format", "{{.Comment}}", "snap:1"]);
    assert!(
        hist.lines().next().unwrap_or("").contains("saved state"),
        "{hist}"
    );

    // export: a tar of the merged file system
    let out = d.env.dir().join("export.tar");
    d.ok(&["export", "-o", out.to_str().unwrap(), &id]);
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&out)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(names.lines().any(|l| l == "data/file.txt"), "{names}");
    assert!(names.lines().any(|l| l == "bin/busybox"), "{names}");
    assert!(
        !names.lines().any(|l| l == "bin/vi"),
        "deleted file exported"
    );
    let motd = std::process::Command::new("tar")
        .args(["-xOf", out.to_str().unwrap(), "etc/motd"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&motd.stdout).contains("changed"));
    // the docker CLI's export gives the same listing
    let out2 = d.env.dir().join("export2.tar");
    d.docker_ok(&["export", "-o", out2.to_str().unwrap(), "writer"]);
    let listing2 = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&out2)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&listing2.stdout), names);
    d.ok(&["rm", "-f", "writer"]);
}
