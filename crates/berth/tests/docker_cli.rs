//! The real docker CLI (28.x) against berthd gives the same results as berth.

mod common;

use common::{Daemon, busybox_id, stderr, stdout};

#[test]
fn docker_version_negotiates_down_to_1_44() {
    let d = Daemon::start();
    let v = d.docker_ok(&["version"]);
    assert!(
        v.contains("API version:       1.44 (downgraded from 1.50)"),
        "{v}"
    );
    assert!(v.contains("Server: Berth Engine"), "{v}");
    assert_eq!(
        d.docker_ok(&["version", "--format", "{{.Server.APIVersion}}"]),
        "1.44\n"
    );
    let info = d.docker_ok(&["info", "--format", "{{.Driver}} {{.Images}} {{.OSType}}"]);
    assert_eq!(info, "overlay2 0 linux\n");
}

#[test]
fn docker_load_images_inspect_history_match_berth() {
    let d = Daemon::start();
    let archive = berth_testkit::images::busybox_docker_archive().unwrap();
    assert_eq!(
        d.docker_ok(&["load", "-i", archive.to_str().unwrap()]),
        "Loaded image: busybox:latest\n"
    );
    assert_eq!(d.docker_ok(&["images"]), d.ok(&["images"]));
    assert_eq!(d.docker_ok(&["images", "-q"]), d.ok(&["images", "-q"]));
    assert_eq!(
        d.docker_ok(&[
            "images",
            "--format",
            "{{.Repository}} {{.Tag}} {{.ID}} {{.Size}}"
        ]),
        d.ok(&[
            "images",
            "--format",
            "{{.Repository}} {{.Tag}} {{.ID}} {{.Size}}"
        ])
    );
    assert_eq!(
        d.docker_ok(&["history", "busybox"]),
        d.ok(&["history", "busybox"])
    );
    assert_eq!(
        d.docker_ok(&["history", "-q", "--no-trunc", "busybox"]),
        format!("{}\n", busybox_id())
    );
    let f = "{{.Id}} {{.Config.Cmd}} {{.Os}} {{.Architecture}} {{.RootFS.Type}}";
    assert_eq!(
        d.docker_ok(&["image", "inspect", "-f", f, "busybox"]),
        d.ok(&["image", "inspect", "-f", f, "busybox"])
    );
    let docker_json: serde_json::Value =
        serde_json::from_str(&d.docker_ok(&["image", "inspect", "busybox"])).unwrap();
    let berth_json: serde_json::Value =
        serde_json::from_str(&d.ok(&["image", "inspect", "busybox"])).unwrap();
    assert_eq!(docker_json[0]["Id"], berth_json[0]["Id"]);
    assert_eq!(docker_json[0]["RepoTags"], berth_json[0]["RepoTags"]);
    assert_eq!(
        docker_json[0]["Config"]["Cmd"],
        berth_json[0]["Config"]["Cmd"]
    );
    let missing = d.docker(&["image", "inspect", "nothere"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("No such image: nothere"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn docker_tag_rmi_save_load_through_berthd() {
    let d = Daemon::start();
    d.load_busybox();
    let id = busybox_id();
    assert_eq!(d.docker_ok(&["tag", "busybox", "localhost:5000/x:1"]), "");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.Id}}", "localhost:5000/x:1"]),
        format!("{id}\n")
    );
    assert_eq!(
        d.docker_ok(&["rmi", "localhost:5000/x:1"]),
        "Untagged: localhost:5000/x:1\n"
    );
    let file = d.env.dir().join("docker-saved.tar");
    assert_eq!(
        d.docker_ok(&["save", "-o", file.to_str().unwrap(), "busybox"]),
        ""
    );
    assert_eq!(
        d.docker_ok(&["rmi", "busybox"]),
        format!("Untagged: busybox:latest\nDeleted: {id}\n")
    );
    let missing = d.docker(&["rmi", "busybox"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("Error response from daemon: No such image: busybox:latest"),
        "{}",
        stderr(&missing)
    );
    // What docker saved through berthd, berth loads back; and the other way round.
    assert_eq!(
        d.ok(&["load", "-i", file.to_str().unwrap()]),
        "Loaded image: busybox:latest\n"
    );
    let file2 = d.env.dir().join("berth-saved.tar");
    d.ok(&["save", "-o", file2.to_str().unwrap(), "busybox"]);
    d.ok(&["rmi", "busybox"]);
    assert_eq!(
        d.docker_ok(&["load", "-q", "-i", file2.to_str().unwrap()]),
        "Loaded image: busybox:latest\n"
    );
    assert_eq!(
        d.docker_ok(&["images", "-q", "--no-trunc"]),
        format!("{id}\n")
    );
    // docker import with a change, through the same endpoint.
    let dir = d.env.dir().join("root");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), b"x").unwrap();
    let tarball = d.env.dir().join("root.tar");
    assert!(
        std::process::Command::new("tar")
            .arg("cf")
            .arg(&tarball)
            .arg("-C")
            .arg(&dir)
            .arg(".")
            .status()
            .unwrap()
            .success()
    );
    let o = d.docker(&[
        "import",
        "-c",
        "ENV A=1",
        tarball.to_str().unwrap(),
        "dimp:1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("sha256:"));
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.Config.Env}}", "dimp:1"]),
        "[A=1]\n"
    );
}

/// The course notes' "docker-host": a container with the docker CLI and the daemon's socket
/// bind-mounted at /var/run/docker.sock drives the host's daemon (here berthd), sibling
/// containers included.
#[test]
fn the_docker_cli_in_a_container_drives_berthd_through_the_mounted_socket() {
    let d = Daemon::start();
    d.load_busybox();
    let sock = format!("{}:/var/run/docker.sock", d.env.socket().display());
    let run = |args: &[&str]| {
        let mut v = vec![
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &sock,
            "-v",
            "/usr/local/bin/docker:/usr/bin/docker:ro",
            "busybox",
            "docker",
        ];
        v.extend_from_slice(args);
        d.ok(&v)
    };
    let ps = run(&["ps", "--format", "{{.Image}} {{.Command}}"]);
    assert!(ps.starts_with("busybox \"docker ps --format"), "{ps}");
    assert_eq!(ps.lines().count(), 1, "{ps}");
    let nested = run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "echo",
        "sibling",
    ]);
    assert_eq!(nested, "sibling\n");
}
