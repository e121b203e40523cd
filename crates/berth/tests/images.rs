//! `berth` image commands end to end against a per-test berthd.

mod common;

use common::{Daemon, busybox_id, stderr, stdout};

#[test]
fn images_table_quiet_and_formats() {
    let d = Daemon::start();
    d.load_busybox();
    let id = busybox_id();
    let short = &id["sha256:".len().."sha256:".len() + 12];
    let table = d.ok(&["images"]);
    let mut lines = table.lines();
    assert_eq!(
        lines.next().unwrap(),
        "REPOSITORY   TAG       IMAGE ID       CREATED       SIZE"
    );
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&format!("busybox      latest    {short}   ")),
        "{row}"
    );
    assert!(row.contains(" years ago ") && row.ends_with("MB"), "{row}");
    assert_eq!(d.ok(&["images", "-q"]), format!("{short}\n"));
    assert_eq!(
        d.ok(&["image", "ls", "--no-trunc", "-q"]),
        format!("{id}\n")
    );
    assert_eq!(
        d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]),
        format!("busybox:latest {short}\n")
    );
    assert_eq!(
        d.ok(&["images", "--format", "table {{.Repository}}\t{{.Tag}}"]),
        "REPOSITORY   TAG\nbusybox      latest\n"
    );
    let j: serde_json::Value =
        serde_json::from_str(d.ok(&["images", "--format", "{{json .}}"]).trim()).unwrap();
    assert_eq!(j["Repository"], "busybox");
    assert_eq!(j["ID"], short);
    assert!(j["Size"].as_str().unwrap().ends_with("MB"));
    let digests = d.ok(&["images", "--digests"]);
    assert!(
        digests.starts_with("REPOSITORY   TAG       DIGEST    IMAGE ID"),
        "{digests}"
    );
    // Filters go to the daemon.
    assert_eq!(
        d.ok(&["images", "-q", "--filter", "reference=busy*"]),
        format!("{short}\n")
    );
    assert_eq!(d.ok(&["images", "-q", "--filter", "dangling=true"]), "");
    assert_eq!(d.ok(&["images", "-q", "nothing*"]), "");
    let bad = d.berth(&["images", "--filter", "bogus=1"]);
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(
        stderr(&bad),
        "Error response from daemon: invalid filter 'bogus'\n"
    );
}

#[test]
fn inspect_and_history_show_the_image() {
    let d = Daemon::start();
    d.load_busybox();
    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["image", "inspect", "busybox"])).unwrap();
    let img = &v[0];
    assert_eq!(img["Id"], busybox_id());
    assert_eq!(img["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(img["Os"], "linux");
    assert_eq!(img["RootFS"]["Type"], "layers");
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    assert!(img["Size"].as_u64().unwrap() > 100_000);
    assert_eq!(img["GraphDriver"]["Name"], "overlay2");
    let upper = img["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap();
    assert!(
        std::path::Path::new(upper).join("bin/busybox").is_file(),
        "{upper}"
    );
    // Inspect output is indented with 4 spaces, like docker's.
    assert!(
        d.ok(&["inspect", "busybox"])
            .starts_with("[\n    {\n        \"")
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.Id}} {{.Config.Cmd}} {{.Os}}",
            "busybox"
        ]),
        format!("{} [sh] linux\n", busybox_id())
    );
    // By id prefix too.
    let prefix = &busybox_id()[7..15];
    assert_eq!(
        d.ok(&["inspect", "-f", "{{index .RepoTags 0}}", prefix]),
        "busybox:latest\n"
    );
    let missing = d.berth(&["inspect", "nothere"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(stderr(&missing), "Error: No such object: nothere\n");
    assert_eq!(stdout(&missing), "[]\n");
    let h = d.ok(&["history", "busybox"]);
    let mut lines = h.lines();
    assert_eq!(
        lines.next().unwrap(),
        "IMAGE          CREATED       CREATED BY      SIZE      COMMENT"
    );
    assert!(lines.next().unwrap().starts_with(&busybox_id()[7..19]));
    assert_eq!(
        d.ok(&["history", "-q", "--no-trunc", "busybox"]),
        format!("{}\n", busybox_id())
    );
    assert_eq!(
        d.ok(&["history", "--format", "{{.CreatedBy}}", "busybox"]),
        "berth-mkimage\n"
    );
    let hist_missing = d.berth(&["history", "nothere"]);
    assert_eq!(
        stderr(&hist_missing),
        "Error response from daemon: No such image: nothere:latest\n"
    );
}

#[test]
fn tag_and_rmi_untag_versus_delete() {
    let d = Daemon::start();
    d.load_busybox();
    let id = busybox_id();
    assert_eq!(d.ok(&["tag", "busybox", "localhost:5000/team/app:v1"]), "");
    assert_eq!(
        d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
            .lines()
            .count(),
        2
    );
    // Removing by id with two tags needs force (409 from the daemon).
    let conflict = d.berth(&["rmi", &id]);
    assert_eq!(conflict.status.code(), Some(1));
    assert!(
        stderr(&conflict).starts_with("Error response from daemon: unable to delete"),
        "{}",
        stderr(&conflict)
    );
    // Removing one tag only untags.
    assert_eq!(
        d.ok(&["rmi", "localhost:5000/team/app:v1"]),
        "Untagged: localhost:5000/team/app:v1\n"
    );
    assert_eq!(d.ok(&["images", "-q"]).lines().count(), 1);
    // The last tag deletes the image.
    assert_eq!(
        d.ok(&["image", "rm", "busybox"]),
        format!("Untagged: busybox:latest\nDeleted: {id}\n")
    );
    assert_eq!(d.ok(&["images", "-q"]), "");
    let missing = d.berth(&["rmi", "busybox"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing),
        "Error response from daemon: No such image: busybox:latest\n"
    );
    // Force removes an image with several tags at once.
    d.load_busybox();
    d.ok(&["tag", "busybox", "other:1"]);
    let out = d.ok(&["rmi", "-f", &id]);
    assert!(
        out.contains("Untagged: busybox:latest")
            && out.contains("Untagged: other:1")
            && out.ends_with(&format!("Deleted: {id}\n")),
        "{out}"
    );
}

#[test]
fn save_then_load_round_trips() {
    let d = Daemon::start();
    d.load_busybox();
    d.ok(&["tag", "busybox", "copy:7"]);
    let file = d.env.dir().join("saved.tar");
    assert_eq!(
        d.ok(&["save", "-o", file.to_str().unwrap(), "busybox", "copy:7"]),
        ""
    );
    assert!(std::fs::metadata(&file).unwrap().len() > 100_000);
    d.ok(&["rmi", "-f", &busybox_id()]);
    assert_eq!(d.ok(&["images", "-q"]), "");
    let out = d.berth_stdin(&["load"], Some(&file));
    assert!(out.status.success(), "{}", stderr(&out));
    let loaded = stdout(&out);
    assert!(
        loaded.contains("Loaded image: busybox:latest\n")
            && loaded.contains("Loaded image: copy:7\n"),
        "{loaded}"
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.Id}}", "copy:7"]),
        format!("{}\n", busybox_id())
    );
    // save to stdout gives the same archive kind.
    let o = d.berth(&["save", "busybox"]);
    assert!(o.status.success());
    assert!(o.stdout.len() > 100_000);
    // A broken archive is an error naming the problem.
    let junk = d.env.dir().join("junk.tar");
    std::fs::write(&junk, b"not a tar at all").unwrap();
    let bad = d.berth(&["load", "-i", junk.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(!stderr(&bad).is_empty());
    let missing = d.berth(&["save", "-o", file.to_str().unwrap(), "nothere"]);
    assert_eq!(
        stderr(&missing),
        "Error response from daemon: No such image: nothere:latest\n"
    );
}

#[test]
fn import_applies_changes_and_message() {
    let d = Daemon::start();
    let dir = d.env.dir().join("rootfs");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("bin/hello"), b"#!/bin/sh\necho hi\n").unwrap();
    let tarball = d.env.dir().join("rootfs.tar");
    let st = std::process::Command::new("tar")
        .arg("cf")
        .arg(&tarball)
        .arg("-C")
        .arg(&dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let out = d.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/hello\"]",
        "--change",
        "ENV GREETING=hi",
        "-c",
        "WORKDIR /bin",
        "-c",
        "LABEL team=berth",
        "-m",
        "from a tarball",
        tarball.to_str().unwrap(),
        "imported:1",
    ]);
    assert!(
        out.starts_with("sha256:") && out.trim().len() == 71,
        "{out}"
    );
    let f = "{{json .Config.Cmd}} {{index .Config.Env 0}} {{.Config.WorkingDir}} {{.Config.Labels.team}}";
    assert_eq!(
        d.ok(&["inspect", "-f", f, "imported:1"]),
        "[\"/bin/hello\"] GREETING=hi /bin berth\n"
    );
    assert_eq!(
        d.ok(&["history", "--format", "{{.Comment}}", "imported:1"]),
        "from a tarball\n"
    );
    // From stdin with `-`.
    let o = d.berth_stdin(&["import", "-", "fromstdin"], Some(&tarball));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.ok(&["images", "-q", "fromstdin"]).lines().count(), 1);
    // A URL is refused clearly, a bad change is a 400.
    let url = d.berth(&["import", "http://example.invalid/x.tar"]);
    assert_eq!(url.status.code(), Some(1));
    assert!(
        stderr(&url).contains("importing from a URL"),
        "{}",
        stderr(&url)
    );
    let bad = d.berth(&["import", "-c", "RUN rm -rf /", tarball.to_str().unwrap()]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).starts_with("Error response from daemon: invalid change"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn prune_removes_dangling_or_all() {
    let d = Daemon::start();
    d.load_busybox();
    assert_eq!(
        d.ok(&["image", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );
    assert_eq!(d.ok(&["images", "-q"]).lines().count(), 1);
    let out = d.ok(&["image", "prune", "-a", "-f"]);
    assert!(
        out.starts_with("Deleted Images:\nuntagged: busybox:latest\ndeleted: sha256:"),
        "{out}"
    );
    assert_eq!(d.ok(&["images", "-q"]), "");
}

#[test]
fn events_show_image_actions_with_since_until_and_filters() {
    let d = Daemon::start();
    d.load_busybox();
    d.ok(&["tag", "busybox", "ev:1"]);
    d.ok(&["rmi", "ev:1"]);
    let out = d.ok(&["events", "--since", "5m", "--until", "0s"]);
    let actions: Vec<&str> = out
        .lines()
        .map(|l| l.split(' ').nth(2).unwrap_or_default())
        .collect();
    assert_eq!(actions, ["load", "tag", "untag"], "{out}");
    assert!(
        out.lines().nth(1).unwrap().contains("image tag sha256:") && out.contains("(name=ev:1)"),
        "{out}"
    );
    let only = d.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "event=untag",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert_eq!(only, "image untag ev:1\n");
    let j = d.ok(&[
        "system",
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--format",
        "{{json .}}",
        "-f",
        "event=load",
    ]);
    let v: serde_json::Value = serde_json::from_str(j.trim()).unwrap();
    assert_eq!(v["Action"], "load");
    assert_eq!(v["scope"], "local");
}

#[test]
fn version_and_info_come_from_the_daemon() {
    let d = Daemon::start();
    let v = d.ok(&["version"]);
    assert!(
        v.contains("Server: Berth Engine")
            && v.contains("API version:      1.44 (minimum version 1.24)"),
        "{v}"
    );
    assert_eq!(
        d.ok(&[
            "version",
            "--format",
            "{{.Server.ApiVersion}} {{.Client.ApiVersion}}"
        ]),
        "1.44 1.44\n"
    );
    let i = d.ok(&["info"]);
    assert!(
        i.contains(" Storage Driver: overlay2\n")
            && i.contains(&format!(
                " Docker Root Dir: {}\n",
                d.env.data_root().display()
            )),
        "{i}"
    );
    assert_eq!(
        d.ok(&["system", "info", "--format", "{{.Images}} {{.Driver}}"]),
        "0 overlay2\n"
    );
}

#[test]
fn errors_and_exit_codes() {
    let d = Daemon::start();
    let usage = d.berth(&["images", "--no-such-flag"]);
    assert_eq!(usage.status.code(), Some(125));
    let missing_arg = d.berth(&["tag", "onlyone"]);
    assert_eq!(missing_arg.status.code(), Some(125));
    // A socket where nothing listens (not the default one): no autostart, exit 1.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "-H",
            &format!("unix://{}", d.env.dir().join("nobody.sock").display()),
            "version",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot connect to the berth daemon"),
        "{}",
        stderr(&o)
    );
    let tcp = d.berth(&["-H", "tcp://127.0.0.1:1", "version"]);
    assert_eq!(tcp.status.code(), Some(125), "{}", stderr(&tcp));
}

#[test]
fn events_stream_live_until_interrupted() {
    use std::io::BufRead as _;
    let d = Daemon::start();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "-H",
            &d.host(),
            "events",
            "--filter",
            "type=image",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Wait until the subscription is registered (the daemon counts listeners).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while d.ok(&["info", "--format", "{{.NEventsListener}}"]).trim() == "0" {
        assert!(
            std::time::Instant::now() < deadline,
            "events listener never registered"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    d.load_busybox();
    d.ok(&["tag", "busybox", "live:1"]);
    let mut lines = std::io::BufReader::new(stdout).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "load busybox:latest");
    assert_eq!(lines.next().unwrap().unwrap(), "tag live:1");
    child.kill().unwrap();
    child.wait().unwrap();
}
