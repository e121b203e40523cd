//! Volumes, bind mounts, tmpfs and `--volumes-from` end to end, through `berth` and the
//! real docker CLI against a per-test berthd (root; `cargo build -p berthd -p berth-shim`).

mod common;

use std::path::Path;
use std::process::Command;

use common::{Daemon, Leftovers, python, stderr, stdout};

/// Asserts nothing is mounted under the daemon's volume store.
fn no_volume_mounts(d: &Daemon) {
    let m = berth_testkit::cleanup::mounts_under(&d.env.data_root().join("volumes"));
    assert!(m.is_empty(), "volume mounts left: {m:?}");
}

fn run_ok(d: &Daemon, docker: bool, args: &[&str]) -> String {
    if docker {
        d.docker_ok(args)
    } else {
        d.ok(args)
    }
}

fn run(d: &Daemon, docker: bool, args: &[&str]) -> std::process::Output {
    if docker {
        d.docker(args)
    } else {
        d.berth(args)
    }
}

/// The course notes' volume example (`incrementor`), with busybox in place of node:
/// the count survives each `--rm` container.
fn incrementor(docker: bool) {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let script = "if [ -f \"$DATA_PATH\" ]; then n=$(cat \"$DATA_PATH\"); echo $n; echo $((n+1)) > \"$DATA_PATH\"; \
                  else echo \"file not found, writing '0' to a new file\"; echo 0 > \"$DATA_PATH\"; fi";
    let args = [
        "run",
        "--rm",
        "--env",
        "DATA_PATH=/data/num.txt",
        "--mount",
        "type=volume,src=incrementor-data,target=/data",
        "busybox",
        "sh",
        "-c",
        script,
    ];
    assert_eq!(
        run_ok(&d, docker, &args),
        "file not found, writing '0' to a new file\n"
    );
    assert_eq!(run_ok(&d, docker, &args), "0\n");
    assert_eq!(run_ok(&d, docker, &args), "1\n");
    let ls = run_ok(&d, docker, &["volume", "ls"]);
    assert_eq!(
        ls, "DRIVER    VOLUME NAME\nlocal     incrementor-data\n",
        "{ls}"
    );
    assert_eq!(
        run_ok(&d, docker, &["volume", "rm", "incrementor-data"]),
        "incrementor-data\n"
    );
    assert_eq!(run_ok(&d, docker, &["volume", "ls", "-q"]), "");
    assert!(!d.env.data_root().join("volumes/incrementor-data").exists());
    no_volume_mounts(&d);
}

#[test]
fn course_notes_volume_survives_rm_berth() {
    incrementor(false);
}

#[test]
fn course_notes_volume_survives_rm_docker_cli() {
    incrementor(true);
}

/// The course notes' bind mount (`--mount type=bind,source="$(pwd)"/dist,target=…`),
/// then `-v` binds: read-only when asked, a missing host directory created for `-v`
/// and refused for `--mount`.
fn binds(docker: bool) {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let dist = d.env.dir().join("dist");
    std::fs::create_dir(&dist).unwrap();
    std::fs::write(dist.join("index.html"), "<h1>hi</h1>\n").unwrap();
    let m = format!(
        "type=bind,source={},target=/usr/share/nginx/html",
        dist.display()
    );
    let out = run_ok(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "--mount",
            &m,
            "busybox",
            "cat",
            "/usr/share/nginx/html/index.html",
        ],
    );
    assert_eq!(out, "<h1>hi</h1>\n");
    // writable by default, the host sees the write
    let v = format!("{}:/site", dist.display());
    run_ok(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "-v",
            &v,
            "busybox",
            "sh",
            "-c",
            "echo new > /site/new.txt",
        ],
    );
    assert_eq!(
        std::fs::read_to_string(dist.join("new.txt")).unwrap(),
        "new\n"
    );
    // read-only when asked
    let v = format!("{}:/site:ro", dist.display());
    let o = run(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "-v",
            &v,
            "busybox",
            "sh",
            "-c",
            "echo x > /site/x",
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    assert!(!dist.join("x").exists());
    // a single file, with an SELinux relabel mode (accepted, no effect here)
    let motd = d.env.dir().join("motd");
    std::fs::write(&motd, "welcome\n").unwrap();
    let v = format!("{}:/etc/motd:ro,z", motd.display());
    assert_eq!(
        run_ok(
            &d,
            docker,
            &["run", "--rm", "-v", &v, "busybox", "cat", "/etc/motd"]
        ),
        "welcome\n"
    );
    let id = run_ok(&d, docker, &["create", "-v", &v, "busybox", "true"]);
    let insp: serde_json::Value =
        serde_json::from_str(&run_ok(&d, docker, &["inspect", id.trim()])).unwrap();
    let m = &insp[0]["Mounts"][0];
    assert_eq!(m["Type"], "bind");
    assert_eq!(m["Source"], motd.display().to_string());
    assert_eq!(m["Mode"], "ro,z");
    assert_eq!(m["RW"], false);
    assert_eq!(m["Propagation"], "rprivate");
    run_ok(&d, docker, &["rm", id.trim()]);
    // -v creates a missing host directory
    let missing = d.env.dir().join("made/by/v");
    let v = format!("{}:/m", missing.display());
    run_ok(&d, docker, &["run", "--rm", "-v", &v, "busybox", "true"]);
    assert!(missing.is_dir());
    // --mount refuses one, with Docker's message
    let gone = d.env.dir().join("not-there");
    let m = format!("type=bind,src={},dst=/m", gone.display());
    let o = run(
        &d,
        docker,
        &["run", "--rm", "--mount", &m, "busybox", "true"],
    );
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {}",
            gone.display()
        )),
        "{}",
        stderr(&o)
    );
    assert!(!gone.exists());
    assert_eq!(run_ok(&d, docker, &["ps", "-aq"]), "");
}

#[test]
fn bind_mounts_berth() {
    binds(false);
}

#[test]
fn bind_mounts_docker_cli() {
    binds(true);
}

/// Named volumes get the image's content on first mount (not with nocopy); anonymous
/// volumes (`-v /path`) go with `rm -v`, named ones stay; `rm` of a volume in use is
/// refused naming the container; inspect shows Docker's JSON.
fn lifecycle(docker: bool) {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    // copy-up of the image's /etc into an empty named volume
    let out = run_ok(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "-v",
            "etcvol:/etc",
            "busybox",
            "cat",
            "/etc/group",
        ],
    );
    assert!(out.contains("root:x:0:"), "{out}");
    let data = d.env.data_root().join("volumes/etcvol/_data");
    assert!(data.join("passwd").is_file());
    // nocopy: stays empty
    let out = run_ok(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "--mount",
            "src=bare,dst=/etc,volume-nocopy",
            "busybox",
            "ls",
            "-A",
            "/etc",
        ],
    );
    assert_eq!(out, "");
    // a container holding a named and an anonymous volume
    let id = run_ok(
        &d,
        docker,
        &[
            "create",
            "--name",
            "holder",
            "-v",
            "keep:/keep",
            "-v",
            "/anon",
            "busybox",
            "true",
        ],
    )
    .trim()
    .to_owned();
    let insp: serde_json::Value =
        serde_json::from_str(&run_ok(&d, docker, &["inspect", "holder"])).unwrap();
    let mounts = insp[0]["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 2, "{mounts:?}");
    let anon = mounts.iter().find(|m| m["Destination"] == "/anon").unwrap();
    let anon_name = anon["Name"].as_str().unwrap().to_owned();
    assert_eq!(anon_name.len(), 64);
    assert_eq!(anon["Type"], "volume");
    assert_eq!(anon["Driver"], "local");
    assert_eq!(anon["RW"], true);
    assert_eq!(anon["Mode"], "");
    let keep = mounts.iter().find(|m| m["Destination"] == "/keep").unwrap();
    assert_eq!(keep["Mode"], "z");
    assert_eq!(keep["Name"], "keep");
    assert_eq!(
        insp[0]["HostConfig"]["Binds"],
        serde_json::json!(["keep:/keep"])
    );
    assert_eq!(
        insp[0]["Config"]["Volumes"],
        serde_json::json!({"/anon": {}})
    );
    // volume inspect: Docker's fields
    let vi: serde_json::Value =
        serde_json::from_str(&run_ok(&d, docker, &["volume", "inspect", "keep"])).unwrap();
    let v = &vi[0];
    for k in [
        "CreatedAt",
        "Driver",
        "Labels",
        "Mountpoint",
        "Name",
        "Options",
        "Scope",
    ] {
        assert!(v.get(k).is_some(), "{k} missing: {v}");
    }
    assert_eq!(v["Name"], "keep");
    assert_eq!(v["Scope"], "local");
    assert_eq!(
        v["Mountpoint"],
        d.env
            .data_root()
            .join("volumes/keep/_data")
            .display()
            .to_string()
    );
    // ps's MOUNTS column (names cut to 15 characters)
    let col = run_ok(
        &d,
        docker,
        &[
            "ps",
            "-a",
            "--format",
            "{{.Mounts}}",
            "--filter",
            "name=holder",
        ],
    );
    let mut got: Vec<&str> = col.trim().split(',').collect();
    got.sort();
    let mut want = vec!["keep".to_owned(), format!("{}…", &anon_name[..14])];
    want.sort();
    assert_eq!(got, want);
    // plain `inspect` falls through to volumes, as Docker's does
    let gi: serde_json::Value =
        serde_json::from_str(&run_ok(&d, docker, &["inspect", "keep"])).unwrap();
    assert_eq!(gi[0]["Name"], "keep");
    assert_eq!(
        run_ok(
            &d,
            docker,
            &[
                "inspect",
                "--type",
                "volume",
                "--format",
                "{{.Driver}}",
                "keep"
            ]
        ),
        "local\n"
    );
    // in use: refused, naming the container (even with -f)
    for args in [
        &["volume", "rm", "keep"][..],
        &["volume", "rm", "-f", "keep"][..],
    ] {
        let o = run(&d, docker, args);
        assert_eq!(o.status.code(), Some(1));
        assert!(
            stderr(&o).contains(&format!("remove keep: volume is in use - [{id}]")),
            "{}",
            stderr(&o)
        );
    }
    // ps --filter volume= by name and by destination
    for f in ["volume=keep", "volume=/anon"] {
        assert_eq!(
            run_ok(&d, docker, &["ps", "-aq", "--no-trunc", "--filter", f]),
            format!("{id}\n")
        );
    }
    assert_eq!(
        run_ok(&d, docker, &["ps", "-aq", "--filter", "volume=etcvol"]),
        ""
    );
    // dangling filter
    let dangling = run_ok(
        &d,
        docker,
        &["volume", "ls", "-q", "--filter", "dangling=true"],
    );
    assert_eq!(dangling, "bare\netcvol\n");
    // rm -v: the anonymous volume goes, the named one stays
    run_ok(&d, docker, &["rm", "-v", "holder"]);
    let names = run_ok(&d, docker, &["volume", "ls", "-q"]);
    assert_eq!(names, "bare\netcvol\nkeep\n");
    assert!(!d.env.data_root().join("volumes").join(&anon_name).exists());
    // --rm removes the container's anonymous volumes too
    run_ok(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "-v",
            "/scratch",
            "busybox",
            "touch",
            "/scratch/x",
        ],
    );
    assert_eq!(run_ok(&d, docker, &["volume", "ls", "-q"]), names);
    // a missing volume
    let o = run(&d, docker, &["volume", "rm", "nosuchvol"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no such volume"), "{}", stderr(&o));
    assert_eq!(
        run_ok(&d, docker, &["volume", "rm", "-f", "nosuchvol"]),
        "nosuchvol\n"
    );
    no_volume_mounts(&d);
}

#[test]
fn volume_lifecycle_berth() {
    lifecycle(false);
}

#[test]
fn volume_lifecycle_docker_cli() {
    lifecycle(true);
}

/// `volume create` (random name, labels, filters, --format), prune (anonymous only
/// unless `-a`), and the local driver's `-o type=tmpfs` mounted only while in use.
fn create_prune(docker: bool) {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let name = run_ok(&d, docker, &["volume", "create"]).trim().to_owned();
    assert_eq!(name.len(), 64);
    assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        run_ok(
            &d,
            docker,
            &[
                "volume", "create", "--label", "tier=db", "--driver", "local", "dbdata"
            ]
        ),
        "dbdata\n"
    );
    assert_eq!(
        run_ok(
            &d,
            docker,
            &["volume", "ls", "-q", "--filter", "label=tier=db"]
        ),
        "dbdata\n"
    );
    assert_eq!(
        // a substring match, as Docker's; "dat" has a letter no hex name holds (the
        // random name of the anonymous volume above once held "dbd")
        run_ok(&d, docker, &["volume", "ls", "-q", "--filter", "name=dat"]),
        "dbdata\n"
    );
    assert_eq!(
        run_ok(
            &d,
            docker,
            &[
                "volume",
                "ls",
                "--format",
                "{{.Name}}:{{.Driver}}:{{.Labels}}",
                "--filter",
                "driver=local",
                "--filter",
                "label=tier"
            ]
        ),
        "dbdata:local:tier=db\n"
    );
    assert_eq!(
        run_ok(
            &d,
            docker,
            &[
                "volume",
                "ls",
                "--format",
                "{{.Name}} {{.Label \"tier\"}}",
                "--filter",
                "label=tier"
            ]
        ),
        "dbdata db\n"
    );
    let o = run(&d, docker, &["volume", "create", "b@d"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("includes invalid characters for a local volume name"),
        "{}",
        stderr(&o)
    );
    // a tmpfs-backed volume: mounted while a container uses it
    run_ok(
        &d,
        docker,
        &[
            "volume",
            "create",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "-o",
            "o=size=1m",
            "fast",
        ],
    );
    let vi: serde_json::Value =
        serde_json::from_str(&run_ok(&d, docker, &["volume", "inspect", "fast"])).unwrap();
    assert_eq!(vi[0]["Options"]["type"], "tmpfs");
    run_ok(
        &d,
        docker,
        &[
            "create",
            "--name",
            "user",
            "-v",
            "fast:/fast",
            "busybox",
            "true",
        ],
    );
    let mounted = berth_testkit::cleanup::mounts_under(&d.env.data_root().join("volumes"));
    assert_eq!(mounted, vec![d.env.data_root().join("volumes/fast/_data")]);
    run_ok(&d, docker, &["rm", "user"]);
    no_volume_mounts(&d);
    // an anonymous volume left after its container
    run_ok(
        &d,
        docker,
        &["create", "--name", "anon", "-v", "/a", "busybox", "true"],
    );
    run_ok(&d, docker, &["rm", "anon"]);
    let before: Vec<String> = run_ok(&d, docker, &["volume", "ls", "-q"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(before.len(), 4, "{before:?}");
    // prune: only the anonymous one
    let out = run_ok(&d, docker, &["volume", "prune", "-f"]);
    assert!(out.starts_with("Deleted Volumes:\n"), "{out}");
    assert!(out.ends_with("Total reclaimed space: 0B\n"), "{out}");
    assert_eq!(out.lines().count(), 4, "{out}");
    let after = run_ok(&d, docker, &["volume", "ls", "-q"]);
    assert_eq!(after.lines().count(), 3);
    assert!(after.contains("dbdata") && after.contains("fast") && after.contains(&name));
    // -a: every unused one
    run_ok(&d, docker, &["volume", "prune", "-f", "-a"]);
    assert_eq!(run_ok(&d, docker, &["volume", "ls", "-q"]), "");
    no_volume_mounts(&d);
}

#[test]
fn volume_create_ls_prune_berth() {
    create_prune(false);
}

#[test]
fn volume_create_ls_prune_docker_cli() {
    create_prune(true);
}

/// tmpfs (`--tmpfs`, `--mount type=tmpfs`), `--volumes-from`, `--read-only` with
/// volumes still writable, and the mount parse errors of the CLI and the daemon.
fn tmpfs_volumes_from_read_only(docker: bool) {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let out = run_ok(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "--tmpfs",
            "/run:size=1m",
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=2m,tmpfs-mode=1770",
            "busybox",
            "sh",
            "-c",
            "grep -E ' /(run|t) ' /proc/mounts; stat -c %a /t",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let run_line = lines.iter().find(|l| l.contains(" /run ")).unwrap();
    let t_line = lines.iter().find(|l| l.contains(" /t ")).unwrap();
    assert!(
        run_line.starts_with("tmpfs /run tmpfs rw,nosuid,nodev,noexec"),
        "{out}"
    );
    assert!(run_line.contains("size=1024k"), "{out}");
    assert!(t_line.contains("size=2048k"), "{out}");
    assert_eq!(lines[2], "1770");
    // a volume created by --mount with driver options and labels
    let out = run_ok(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,src=optvol,dst=/o,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-label=k=v",
            "busybox",
            "grep",
            " /o ",
            "/proc/mounts",
        ],
    );
    assert!(out.starts_with("tmpfs /o tmpfs "), "{out}");
    let vi: serde_json::Value =
        serde_json::from_str(&run_ok(&d, docker, &["volume", "inspect", "optvol"])).unwrap();
    assert_eq!(vi[0]["Options"]["type"], "tmpfs");
    assert_eq!(vi[0]["Labels"]["k"], "v");
    no_volume_mounts(&d);
    // --volumes-from, rw then ro
    run_ok(
        &d,
        docker,
        &[
            "create",
            "--name",
            "data",
            "-v",
            "shared:/shared",
            "busybox",
            "true",
        ],
    );
    run_ok(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "data",
            "busybox",
            "sh",
            "-c",
            "echo via > /shared/f",
        ],
    );
    assert_eq!(
        run_ok(
            &d,
            docker,
            &[
                "run",
                "--rm",
                "--volumes-from",
                "data:ro",
                "busybox",
                "cat",
                "/shared/f"
            ]
        ),
        "via\n"
    );
    let o = run(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "--volumes-from",
            "data:ro",
            "busybox",
            "touch",
            "/shared/g",
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    // --read-only: the root is read-only, the volume is not
    let o = run(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "--read-only",
            "-v",
            "shared:/shared",
            "busybox",
            "sh",
            "-c",
            "echo ok > /shared/ro-ok && touch /rootfile",
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(d.env.data_root().join("volumes/shared/_data/ro-ok")).unwrap(),
        "ok\n"
    );
    // parse errors: the CLI's for --mount, the daemon's for -v
    let o = run(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "--mount",
            "type=bind,target=/x,bogus",
            "busybox",
            "true",
        ],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("invalid field 'bogus' must be a key=value pair"),
        "{}",
        stderr(&o)
    );
    let o = run(
        &d,
        docker,
        &["run", "--rm", "-v", "/a:/b:nonsense", "busybox", "true"],
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("invalid mode: nonsense"),
        "{}",
        stderr(&o)
    );
    run_ok(&d, docker, &["rm", "data"]);
    assert_eq!(run_ok(&d, docker, &["ps", "-aq"]), "");
    no_volume_mounts(&d);
}

#[test]
fn tmpfs_volumes_from_read_only_berth() {
    tmpfs_volumes_from_read_only(false);
}

#[test]
fn tmpfs_volumes_from_read_only_docker_cli() {
    tmpfs_volumes_from_read_only(true);
}

/// Volume events: create, mount, unmount, destroy.
#[test]
fn volume_events() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    d.ok(&["run", "--rm", "-v", "evvol:/x", "busybox", "true"]);
    d.ok(&["volume", "rm", "evvol"]);
    let t1 = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1)
    .to_string();
    let ev = d.docker_ok(&[
        "events",
        "--since",
        &t0,
        "--until",
        &t1,
        "--filter",
        "type=volume",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]);
    assert_eq!(
        ev, "create evvol\nmount evvol\nunmount evvol\ndestroy evvol\n",
        "{ev}"
    );
}

/// Data survives the container and is seen by a new one; a failed create leaves no
/// half volume behind.
#[test]
fn data_survives_and_failed_create_leaves_nothing() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "keepme:/d",
        "busybox",
        "sh",
        "-c",
        "echo kept > /d/f",
    ]);
    d.ok(&["rm", "writer"]);
    assert_eq!(
        d.ok(&["run", "--rm", "-v", "keepme:/d", "busybox", "cat", "/d/f"]),
        "kept\n"
    );
    // the image has no command at /nope: the create fails after the volumes resolved
    let o = d.berth(&["create", "-v", "/anon", "--entrypoint", "", "busybox"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "keepme\n");
    let left: Vec<_> = std::fs::read_dir(d.env.data_root().join("volumes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["keepme".to_string()]);
    assert!(Path::new(&d.env.data_root().join("volumes/keepme/volume.json")).is_file());
    let _ = stdout(&o);
}

/// An image's `VOLUME` becomes an anonymous volume holding the image's content there;
/// `rm -v` removes it.
fn image_volume(docker: bool) {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let ctx = d.env.dir().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN mkdir -p /data && echo seeded > /data/seed\nVOLUME /data\n",
    )
    .unwrap();
    let o = if docker {
        let mut c = std::process::Command::new("/usr/local/bin/docker");
        c.args(["build", "-q", "-t", "volimg", ctx.to_str().unwrap()])
            .env("DOCKER_HOST", d.host())
            .env("DOCKER_CONFIG", d.env.dir().join("docker-cli"))
            .env("DOCKER_BUILDKIT", "0");
        c.output().unwrap()
    } else {
        d.berth(&["build", "-q", "-t", "volimg", ctx.to_str().unwrap()])
    };
    assert!(o.status.success(), "build: {}", stderr(&o));
    assert_eq!(
        run_ok(
            &d,
            docker,
            &[
                "run",
                "--name",
                "iv",
                "volimg",
                "sh",
                "-c",
                "cat /data/seed; echo more >> /data/seed"
            ]
        ),
        "seeded\n"
    );
    let insp: serde_json::Value =
        serde_json::from_str(&run_ok(&d, docker, &["inspect", "iv"])).unwrap();
    let m = &insp[0]["Mounts"][0];
    assert_eq!(m["Destination"], "/data");
    assert_eq!(m["Type"], "volume");
    let name = m["Name"].as_str().unwrap().to_owned();
    assert_eq!(
        std::fs::read_to_string(
            d.env
                .data_root()
                .join("volumes")
                .join(&name)
                .join("_data/seed")
        )
        .unwrap(),
        "seeded\nmore\n"
    );
    // a -v on the same path replaces the image's volume
    let out = run_ok(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "-v",
            "mine:/data",
            "volimg",
            "cat",
            "/data/seed",
        ],
    );
    assert_eq!(out, "seeded\n");
    run_ok(&d, docker, &["rm", "-v", "iv"]);
    assert_eq!(run_ok(&d, docker, &["volume", "ls", "-q"]), "mine\n");
    no_volume_mounts(&d);
}

#[test]
fn image_volume_berth() {
    image_volume(false);
}

#[test]
fn image_volume_docker_cli() {
    image_volume(true);
}

/// After a kill -9 of berthd and a restart, who uses which volume is rebuilt from the
/// container records: removal is still refused, the driver's mount is still there, and
/// removing the container unmounts it.
#[test]
fn users_and_mounts_survive_a_daemon_restart() {
    let mut d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "fastvol",
    ]);
    let id = d
        .ok(&[
            "create",
            "--name",
            "keeper",
            "-v",
            "fastvol:/f",
            "-v",
            "plain:/p",
            "busybox",
            "true",
        ])
        .trim()
        .to_owned();
    d.kill_berthd();
    d.restart();
    for v in ["fastvol", "plain"] {
        let o = d.berth(&["volume", "rm", v]);
        assert!(
            stderr(&o).contains(&format!("remove {v}: volume is in use - [{id}]")),
            "{}",
            stderr(&o)
        );
    }
    let mounted = berth_testkit::cleanup::mounts_under(&d.env.data_root().join("volumes"));
    assert_eq!(
        mounted,
        vec![d.env.data_root().join("volumes/fastvol/_data")]
    );
    d.ok(&["rm", "keeper"]);
    no_volume_mounts(&d);
    assert_eq!(
        d.ok(&["volume", "rm", "fastvol", "plain"]),
        "fastvol\nplain\n"
    );
}

/// docker-py `volumes.create/list/get/remove/prune` and `containers.run(volumes=…)`
/// (the package is installed once into a venv under the target dir, as docker_py.rs).
#[test]
fn docker_py_volumes() {
    let py = python();
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let host = d.env.dir().join("pyhost");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("in.txt"), "from host\n").unwrap();
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
v = c.volumes.create(name="pyvol", driver="local", labels={"app": "py"})
assert v.name == "pyvol" and v.attrs["Labels"] == {"app": "py"}, v.attrs
assert [x.name for x in c.volumes.list(filters={"label": "app=py"})] == ["pyvol"]
assert c.volumes.get("pyvol").attrs["Driver"] == "local"
out = c.containers.run("busybox", ["sh", "-c", "cat /h/in.txt; echo kept > /v/f"],
    volumes={sys.argv[2]: {"bind": "/h", "mode": "ro"}, "pyvol": {"bind": "/v", "mode": "rw"}},
    remove=True)
assert out == b"from host\n", out
out = c.containers.run("busybox", ["cat", "/v/f"], volumes=["pyvol:/v"], remove=True)
assert out == b"kept\n", out
ctr = c.containers.create("busybox", "true", volumes=["pyvol:/v"])
try:
    v.remove()
    raise SystemExit("expected a conflict")
except docker.errors.APIError as e:
    assert e.status_code == 409 and "volume is in use" in str(e), e
ctr.remove(v=True)
v.remove()
try:
    c.volumes.get("pyvol")
    raise SystemExit("expected NotFound")
except docker.errors.NotFound:
    pass
c.volumes.create()
res = c.volumes.prune(filters={"all": "true"})
assert len(res["VolumesDeleted"]) == 1, res
print("ok")
"#;
    let o = Command::new(py)
        .args(["-c", script, &d.host(), host.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "ok\n");
}

/// `system df` counts volumes, the ones in use, and their size.
#[test]
fn system_df_counts_volumes() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&[
        "create", "--name", "dfuser", "-v", "dfvol:/d", "busybox", "true",
    ]);
    std::fs::write(d.env.data_root().join("volumes/dfvol/_data/f"), b"12345").unwrap();
    d.ok(&["volume", "create", "idle"]);
    let fmt = "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}";
    for out in [
        d.docker_ok(&["system", "df", "--format", fmt]),
        d.ok(&["system", "df", "--format", fmt]),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with("Local Volumes"))
            .unwrap_or_else(|| panic!("{out}"));
        assert_eq!(line, "Local Volumes|2|1|5B", "{out}");
    }
}

/// Before API 1.42 `volume prune` removes every unused volume, named ones included
/// (moby's version-dependent default); from 1.42 only anonymous ones.
#[test]
fn prune_before_api_1_42_takes_named_volumes_too() {
    let d = Daemon::start();
    d.ok(&["volume", "create", "named1"]);
    let o = Command::new("/usr/local/bin/docker")
        .args(["volume", "prune", "-f"])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.env.dir().join("docker-cli"))
        .env("DOCKER_API_VERSION", "1.41")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "Deleted Volumes:\nnamed1\n\nTotal reclaimed space: 0B\n"
    );
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");
}

/// A `--rm` container that exits while berthd is down is removed when berthd comes
/// back, and so is its anonymous volume.
#[test]
fn rm_container_exiting_while_daemon_is_down_takes_its_anonymous_volume() {
    let mut d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = d
        .ok(&[
            "run", "-d", "--rm", "-v", "/anon", "-v", "named:/n", "busybox", "sleep", "300",
        ])
        .trim()
        .to_owned();
    let insp: serde_json::Value = serde_json::from_str(&d.ok(&["inspect", &id])).unwrap();
    let pid = insp[0]["State"]["Pid"].as_i64().unwrap();
    assert!(pid > 0);
    d.kill_berthd();
    let ok = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    d.restart();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !d.ok(&["ps", "-aq"]).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "named\n");
}

/// `bind-propagation=rslave` makes the container's mount a slave of a shared host mount
/// (`master:` in its mountinfo); the default `rprivate` does not.
#[test]
fn bind_propagation_reaches_the_container() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let src = d.env.dir().join("shared-src");
    std::fs::create_dir(&src).unwrap();
    // a shared mount of our own (the test env unmounts everything under its dir)
    for args in [
        vec!["-t", "tmpfs", "tmpfs", src.to_str().unwrap()],
        vec!["--make-shared", src.to_str().unwrap()],
    ] {
        let ok = Command::new("mount")
            .args(&args)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount {args:?}");
    }
    let line = |prop: Option<&str>| {
        let mut m = format!("type=bind,src={},dst=/m", src.display());
        if let Some(p) = prop {
            m.push_str(&format!(",bind-propagation={p}"));
        }
        let out = d.ok(&[
            "run",
            "--rm",
            "--mount",
            &m,
            "busybox",
            "grep",
            " /m ",
            "/proc/self/mountinfo",
        ]);
        out.lines().next().unwrap_or_default().to_owned()
    };
    let slave = line(Some("rslave"));
    assert!(slave.contains("master:"), "{slave}");
    let private = line(None);
    assert!(
        !private.contains("master:") && !private.contains("shared:"),
        "{private}"
    );
    let _ = Command::new("umount")
        .args(["-l", src.to_str().unwrap()])
        .status();
}

/// `-v name:/p:ro` is read-only inside; `--mount type=volume` without a source is an
/// anonymous volume that `--rm` takes with the container.
fn ro_and_anonymous_mount(docker: bool) {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    run_ok(&d, docker, &["volume", "create", "rov"]);
    let o = run(
        &d,
        docker,
        &["run", "--rm", "-v", "rov:/r:ro", "busybox", "touch", "/r/x"],
    );
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Read-only file system"),
        "{}",
        stderr(&o)
    );
    let out = run_ok(
        &d,
        docker,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,dst=/etc",
            "busybox",
            "sh",
            "-c",
            "ls /etc/passwd; grep -c ' /etc ' /proc/mounts",
        ],
    );
    assert_eq!(out, "/etc/passwd\n1\n");
    assert_eq!(run_ok(&d, docker, &["volume", "ls", "-q"]), "rov\n");
}

#[test]
fn read_only_volume_and_anonymous_mount_berth() {
    ro_and_anonymous_mount(false);
}

#[test]
fn read_only_volume_and_anonymous_mount_docker_cli() {
    ro_and_anonymous_mount(true);
}

/// The local driver's bind form (`-o type=none -o o=bind -o device=/host/dir`), as
/// compose files use it: the container writes into the host directory.
#[test]
fn local_driver_bind_volume() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let host = d.env.dir().join("bound");
    std::fs::create_dir(&host).unwrap();
    let dev = format!("device={}", host.display());
    d.docker_ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &dev,
        "bvol",
    ]);
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "bvol:/b",
        "busybox",
        "sh",
        "-c",
        "echo through > /b/f",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("f")).unwrap(),
        "through\n"
    );
    no_volume_mounts(&d);
    // the data is the host's: removing the volume leaves it there
    d.ok(&["volume", "rm", "bvol"]);
    assert!(host.join("f").is_file());
}
