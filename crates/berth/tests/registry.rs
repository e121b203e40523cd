//! pull, push, login/logout and search against a real registry (Debian's docker-registry
//! on loopback, via berth_testkit::Registry).

mod common;

use berth_testkit::{Flavor, Registry};
use common::{Daemon, busybox_id, stderr, stdout};

fn daemon_for(reg: &Registry) -> Daemon {
    Daemon::start_with_config(&format!("[registries]\ninsecure = [\"{}\"]\n", reg.host()))
}

#[test]
fn pull_then_push_round_trip() {
    let reg = Registry::start(Flavor::Plain).unwrap();
    reg.push_busybox("lib/busybox:1").unwrap();
    let d = daemon_for(&reg);
    let host = reg.host();
    let src = format!("{host}/lib/busybox:1");
    let out = d.ok(&["pull", &src]);
    assert!(out.contains("1: Pulling from lib/busybox"), "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {src}")),
        "{out}"
    );
    assert!(out.ends_with(&format!("{src}\n")), "{out}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.Id}}", &src]),
        format!("{}\n", busybox_id())
    );
    let digests = d.ok(&["images", "--digests", "--format", "{{.Digest}}"]);
    assert!(digests.starts_with("sha256:"), "{digests}");
    // By digest, through the docker CLI's `tag=sha256:…` form.
    let digest = out
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap()
        .to_owned();
    let by_digest = format!("{host}/lib/busybox@{digest}");
    let o = d.ok(&["pull", &by_digest]);
    assert!(o.ends_with(&format!("{by_digest}\n")), "{o}");
    // A malformed --platform is the daemon's 400.
    let bad = d.berth(&["pull", "--platform", "bogus", &src]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("invalid platform \"bogus\""),
        "{}",
        stderr(&bad)
    );
    // Again: up to date; -q prints only the reference.
    assert_eq!(d.ok(&["pull", "-q", &src]), format!("{src}\n"));
    // Unknown repository: 404 before streaming.
    let missing = d.berth(&["pull", &format!("{host}/nope/nothing:1")]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).starts_with("Error response from daemon:"),
        "{}",
        stderr(&missing)
    );
    // Push under a new name, then the registry serves it.
    let dst = format!("{host}/team/copy:2");
    d.ok(&["tag", &src, &dst]);
    let pushed = d.ok(&["push", &dst]);
    assert!(
        pushed.contains(&format!("The push refers to repository [{host}/team/copy]")),
        "{pushed}"
    );
    assert!(pushed.contains("2: digest: sha256:"), "{pushed}");
    let r = reg.get("/v2/team/copy/tags/list", None).unwrap();
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("\"2\""));
    // The pushed image pulls back into a fresh daemon with the same id.
    let d2 = daemon_for(&reg);
    d2.ok(&["pull", "-q", &dst]);
    assert_eq!(
        d2.ok(&["inspect", "-f", "{{.Id}}", &dst]),
        format!("{}\n", busybox_id())
    );
    // pull -a fetches every tag.
    reg.push_busybox("lib/busybox:2").unwrap();
    let d3 = daemon_for(&reg);
    let all = d3.ok(&["pull", "-a", &format!("{host}/lib/busybox")]);
    assert!(all.ends_with(&format!("{host}/lib/busybox\n")), "{all}");
    assert_eq!(
        d3.ok(&["images", "--format", "{{.Tag}}"]).lines().count(),
        2
    );
    // The real docker CLI pulls through berthd too.
    let d4 = daemon_for(&reg);
    let o = d4.docker(&["pull", &src]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).trim_end().ends_with(&src), "{}", stdout(&o));
    let dpush = format!("{host}/docker/pushed:3");
    d4.docker_ok(&["tag", &src, &dpush]);
    let o = d4.docker(&["push", &dpush]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("3: digest: sha256:"), "{}", stdout(&o));
    assert_eq!(
        reg.get("/v2/docker/pushed/manifests/3", None)
            .unwrap()
            .status,
        200
    );
    // search lists the registry's catalog.
    let s = d.ok(&["search", &format!("{host}/busy")]);
    assert!(
        s.starts_with("NAME") && s.contains(&format!("{host}/lib/busybox")),
        "{s}"
    );
}

#[test]
fn login_checks_credentials_and_push_uses_them() {
    let reg = Registry::start(Flavor::basic("ann", "s3cret")).unwrap();
    let d = daemon_for(&reg);
    let host = reg.host();
    let bad = d.berth(&["login", "-u", "ann", "-p", "wrong", &host]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("Error response from daemon:"),
        "{}",
        stderr(&bad)
    );
    assert!(!d.cli_config().join("config.json").exists());
    let ok = d.berth(&["login", "-u", "ann", "-p", "s3cret", &host]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(stdout(&ok), "Login Succeeded\n");
    let cfg = std::fs::read_to_string(d.cli_config().join("config.json")).unwrap();
    assert!(cfg.contains(&host), "{cfg}");
    // Push with the stored credentials (sent in X-Registry-Auth).
    d.load_busybox();
    let dst = format!("{host}/ann/bb:1");
    d.ok(&["tag", "busybox", &dst]);
    let pushed = d.ok(&["push", &dst]);
    assert!(pushed.contains("1: digest: sha256:"), "{pushed}");
    assert_eq!(
        reg.get("/v2/ann/bb/tags/list", Some(("ann", "s3cret")))
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        d.ok(&["logout", &host]),
        format!("Removing login credentials for {host}\n")
    );
    assert_eq!(
        d.ok(&["logout", &host]),
        format!("Not logged in to {host}\n")
    );
    // Without credentials the push is refused.
    let refused = d.berth(&["push", &dst]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
}

#[test]
fn pull_on_a_terminal_draws_per_layer_progress() {
    let reg = Registry::start(Flavor::Plain).unwrap();
    reg.push_busybox("tty/busybox:1").unwrap();
    let d = daemon_for(&reg);
    let src = format!("{}/tty/busybox:1", reg.host());
    // `script` gives berth a pseudo-terminal as stdout.
    let cmd = format!("{} -H {} pull {src}", env!("CARGO_BIN_EXE_berth"), d.host());
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", stderr(&o));
    assert!(text.contains("Pulling from tty/busybox"), "{text}");
    // The layer's line is drawn by the progress bar with its final status.
    assert!(text.contains(": Pull complete"), "{text}");
    assert!(
        text.contains(&format!("Status: Downloaded newer image for {src}")),
        "{text}"
    );
    assert!(text.trim_end().ends_with(&src), "{text}");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.Id}}", &src]),
        format!("{}\n", busybox_id())
    );
}

#[test]
fn login_with_password_stdin() {
    let reg = Registry::start(Flavor::basic("bo", "pw-from-stdin")).unwrap();
    let d = daemon_for(&reg);
    let pw = d.env.dir().join("pw");
    std::fs::write(&pw, "pw-from-stdin\n").unwrap();
    let o = d.berth_stdin(
        &["login", "-u", "bo", "--password-stdin", &reg.host()],
        Some(&pw),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Login Succeeded\n");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.cli_config().join("config.json")).unwrap())
            .unwrap();
    assert!(cfg["auths"][reg.host()]["auth"].is_string(), "{cfg}");
    let both = d.berth(&[
        "login",
        "-u",
        "bo",
        "-p",
        "x",
        "--password-stdin",
        &reg.host(),
    ]);
    assert_eq!(both.status.code(), Some(1));
    assert!(stderr(&both).contains("mutually exclusive"));
}

#[test]
fn docker_hub_names_pull_and_search_through_a_mirror() {
    let reg = Registry::start(Flavor::Plain).unwrap();
    reg.push_busybox("library/busybox:latest").unwrap();
    reg.push_busybox("someone/tools:1").unwrap();
    let host = reg.host();
    let d = Daemon::start_with_config(&format!(
        "[registries]\ninsecure = [\"{host}\"]\n[registries.mirrors]\n\"docker.io\" = [\"http://{host}\"]\n"
    ));
    // `run` pulls what is missing (docker's `--pull missing`), progress on stderr
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "echo",
        "auto-pulled",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "auto-pulled\n");
    let e = stderr(&o);
    assert!(
        e.starts_with("Unable to find image 'busybox:latest' locally\n"),
        "{e}"
    );
    assert!(
        e.contains("Status: Downloaded newer image for busybox:latest"),
        "{e}"
    );
    // --pull always pulls first; -q says nothing of it; --pull never does not pull
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--pull",
        "always",
        "busybox",
        "true",
    ]);
    assert!(
        stderr(&o).contains("Status: Image is up to date for busybox:latest"),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&["create", "-q", "--pull", "always", "busybox"]);
    assert!(
        o.status.success() && stderr(&o).is_empty(),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o).trim().len(), 64, "only the id on stdout");
    d.ok(&["rm", stdout(&o).trim()]);
    d.ok(&["rmi", "busybox"]);
    let o = d.berth(&["run", "--rm", "--pull", "never", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("No such image: busybox"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("Unable to find"), "{}", stderr(&o));
    let o = d.berth(&["run", "--rm", "--pull", "sometimes", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("invalid pull option: 'sometimes'"),
        "{}",
        stderr(&o)
    );
    // an image the registry does not have either: 125, and the run stops there
    let missing = format!("{host}/nothing/here:1");
    let o = d.berth(&["run", "--rm", &missing, "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("Unable to find image"),
        "{}",
        stderr(&o)
    );

    let out = d.ok(&["pull", "busybox"]);
    assert!(
        out.contains("latest: Pulling from library/busybox"),
        "{out}"
    );
    assert!(out.ends_with("docker.io/library/busybox:latest\n"), "{out}");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "echo",
            "from-the-mirror"
        ]),
        "from-the-mirror\n"
    );
    // search goes to the mirror's catalog: official images by their short name
    let s = d.ok(&["search", "busy"]);
    let row = s.lines().nth(1).unwrap_or_default();
    assert!(
        row.starts_with("busybox ") && row.trim_end().ends_with("[OK]"),
        "{s}"
    );
    let s = d.ok(&["search", "tools"]);
    assert!(s.lines().any(|l| l.starts_with("someone/tools ")), "{s}");
    let docker = d.docker_ok(&["search", "busy"]);
    assert!(
        docker.lines().any(|l| l.starts_with("busybox ")),
        "{docker}"
    );
}
