//! `cp` end to end through `berth` and the real docker CLI against a per-test berthd:
//! both directions, stopped and running containers, `-` tar streams, `-L`, volumes, and
//! no escape through a symlink to `/` planted in the container (root).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Daemon, Leftovers, stderr};

fn cli(d: &Daemon, docker: bool, args: &[&str]) -> std::process::Output {
    if docker {
        d.docker(args)
    } else {
        d.berth(args)
    }
}

fn cli_ok(d: &Daemon, docker: bool, args: &[&str]) -> String {
    if docker {
        d.docker_ok(args)
    } else {
        d.ok(args)
    }
}

/// A tar holding one symlink `name -> target`.
fn symlink_tar(name: &str, target: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, name, target).unwrap();
    b.into_inner().unwrap()
}

/// Feeds `input` to `cp - ctr:path`.
fn cp_stdin(d: &Daemon, docker: bool, dst: &str, input: &[u8]) {
    let mut c = if docker {
        let mut c = Command::new("/usr/local/bin/docker");
        c.env("DOCKER_HOST", d.host())
            .env("DOCKER_CONFIG", d.env.dir().join("docker-cli"));
        c
    } else {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.arg("-H").arg(d.host());
        c
    };
    let mut child = c
        .args(["cp", "-", dst])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(input).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "cp - {dst}: {}", stderr(&o));
}

fn copies(docker: bool, running: bool) {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let mut args = vec!["run", "-d", "--name", "box", "-v", "cpvol:/vol"];
    if !running {
        args = vec!["create", "--name", "box", "-v", "cpvol:/vol"];
    }
    args.extend(["busybox", "sleep", "300"]);
    cli_ok(&d, docker, &args);
    let host = d.env.dir().join("host");
    std::fs::create_dir(&host).unwrap();
    // host → container: a file into an existing directory, and under a new name
    std::fs::write(host.join("hello.txt"), "hello\n").unwrap();
    let src = host.join("hello.txt");
    cli_ok(&d, docker, &["cp", src.to_str().unwrap(), "box:/tmp/"]);
    cli_ok(
        &d,
        docker,
        &["cp", src.to_str().unwrap(), "box:/tmp/renamed.txt"],
    );
    // a directory, which does not exist yet in the container
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("tree/sub/a"), "A").unwrap();
    cli_ok(
        &d,
        docker,
        &["cp", host.join("tree").to_str().unwrap(), "box:/newtree"],
    );
    // into a volume
    cli_ok(
        &d,
        docker,
        &["cp", src.to_str().unwrap(), "box:/vol/in-volume.txt"],
    );
    assert_eq!(
        std::fs::read_to_string(d.env.data_root().join("volumes/cpvol/_data/in-volume.txt"))
            .unwrap(),
        "hello\n"
    );
    // container → host
    let out = d.env.dir().join("out");
    std::fs::create_dir(&out).unwrap();
    cli_ok(
        &d,
        docker,
        &["cp", "box:/tmp/hello.txt", out.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("hello.txt")).unwrap(),
        "hello\n"
    );
    cli_ok(
        &d,
        docker,
        &[
            "cp",
            "box:/tmp/renamed.txt",
            out.join("again.txt").to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("again.txt")).unwrap(),
        "hello\n"
    );
    cli_ok(
        &d,
        docker,
        &["cp", "box:/newtree", out.join("tree2").to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("tree2/sub/a")).unwrap(),
        "A"
    );
    cli_ok(
        &d,
        docker,
        &[
            "cp",
            "box:/etc/.",
            out.join("etc-contents").to_str().unwrap(),
        ],
    );
    assert!(out.join("etc-contents/passwd").is_file());
    // `-`: a tar on stdout
    let o = cli(&d, docker, &["cp", "box:/etc/passwd", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    assert_eq!(names, ["passwd"]);
    // a missing path
    let o = cli(&d, docker, &["cp", "box:/nope", out.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Could not find the file /nope in container box"),
        "{}",
        stderr(&o)
    );
    // no escape: a symlink to / planted in the container resolves inside it
    cp_stdin(&d, docker, "box:/", &symlink_tar("hostroot", "/"));
    let marker = format!("berth-cp-escape-{}", std::process::id());
    let marker_host = Path::new("/tmp").join(&marker);
    let _ = std::fs::remove_file(&marker_host);
    cli_ok(
        &d,
        docker,
        &[
            "cp",
            src.to_str().unwrap(),
            &format!("box:/hostroot/tmp/{marker}"),
        ],
    );
    assert!(
        !marker_host.exists(),
        "cp wrote through the symlink onto the host"
    );
    cli_ok(
        &d,
        docker,
        &[
            "cp",
            &format!("box:/tmp/{marker}"),
            out.join("marker").to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(out.join("marker")).unwrap(),
        "hello\n"
    );
    // reading through it gives the container's passwd, not the host's
    cli_ok(
        &d,
        docker,
        &[
            "cp",
            "box:/hostroot/etc/passwd",
            out.join("passwd").to_str().unwrap(),
        ],
    );
    let theirs = std::fs::read_to_string(out.join("passwd")).unwrap();
    let ours = std::fs::read_to_string(out.join("etc-contents/passwd")).unwrap();
    assert_eq!(theirs, ours);
    // -L follows a symlink, without it the link itself is copied
    cp_stdin(&d, docker, "box:/tmp", &symlink_tar("link", "/etc/group"));
    cli_ok(
        &d,
        docker,
        &["cp", "box:/tmp/link", out.join("nolink").to_str().unwrap()],
    );
    assert!(
        std::fs::symlink_metadata(out.join("nolink"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    cli_ok(
        &d,
        docker,
        &[
            "cp",
            "-L",
            "box:/tmp/link",
            out.join("followed").to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read_to_string(out.join("followed"))
            .unwrap()
            .contains("root:x:0:")
    );
    cli_ok(&d, docker, &["rm", "-f", "box"]);
}

#[test]
fn cp_stopped_container_berth() {
    copies(false, false);
}

#[test]
fn cp_running_container_berth() {
    copies(false, true);
}

#[test]
fn cp_stopped_container_docker_cli() {
    copies(true, false);
}

#[test]
fn cp_running_container_docker_cli() {
    copies(true, true);
}

/// `-a` keeps the archive's owner; without it the container's root owns what is copied.
fn archive_mode(docker: bool) {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = cli_ok(
        &d,
        docker,
        &["create", "--name", "owner", "busybox", "true"],
    )
    .trim()
    .to_owned();
    let f = d.env.dir().join("owned.txt");
    std::fs::write(&f, "x").unwrap();
    std::os::unix::fs::chown(&f, Some(1234), Some(4321)).unwrap();
    cli_ok(
        &d,
        docker,
        &["cp", f.to_str().unwrap(), "owner:/tmp/plain.txt"],
    );
    cli_ok(
        &d,
        docker,
        &["cp", "-a", f.to_str().unwrap(), "owner:/tmp/kept.txt"],
    );
    use std::os::unix::fs::MetadataExt as _;
    let upper = d
        .env
        .data_root()
        .join("containers")
        .join(&id)
        .join("upper/tmp");
    let plain = std::fs::metadata(upper.join("plain.txt")).unwrap();
    assert_eq!((plain.uid(), plain.gid()), (0, 0));
    let kept = std::fs::metadata(upper.join("kept.txt")).unwrap();
    assert_eq!((kept.uid(), kept.gid()), (1234, 4321));
    cli_ok(&d, docker, &["rm", "owner"]);
}

#[test]
fn cp_archive_mode_berth() {
    archive_mode(false);
}

#[test]
fn cp_archive_mode_docker_cli() {
    archive_mode(true);
}

/// A running container is copied through its own mount namespace (a `--tmpfs` only it
/// sees), and a read-only root refuses writes as Docker does, while its volume accepts.
#[test]
fn cp_running_sees_its_tmpfs_and_respects_read_only() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ro",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "-v",
        "rovol:/vol",
        "busybox",
        "sleep",
        "300",
    ]);
    let f = d.env.dir().join("f.txt");
    std::fs::write(&f, "tmpfs data\n").unwrap();
    d.ok(&["cp", f.to_str().unwrap(), "ro:/scratch/"]);
    let out = d.env.dir().join("back.txt");
    d.ok(&["cp", "ro:/scratch/f.txt", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "tmpfs data\n");
    for docker in [false, true] {
        let o = cli(&d, docker, &["cp", f.to_str().unwrap(), "ro:/etc/"]);
        assert_ne!(o.status.code(), Some(0));
        assert!(
            stderr(&o).contains("container rootfs is marked read-only"),
            "{}",
            stderr(&o)
        );
    }
    d.docker_ok(&["cp", f.to_str().unwrap(), "ro:/vol/"]);
    assert_eq!(
        std::fs::read_to_string(d.env.data_root().join("volumes/rovol/_data/f.txt")).unwrap(),
        "tmpfs data\n"
    );
    d.ok(&["rm", "-f", "ro"]);
}
