//! The course notes' networks example with a real database: `network create
//! --driver=bridge app-net`, a database container (Redis from Debian's `redis-server`
//! package, in an image this test builds) and app containers that reach it by name; the
//! database's published port answered on 127.0.0.1. Through `berth` and the docker CLI.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Daemon, Leftovers, stdout};

const REDIS: &str = "/usr/bin/redis-server";

fn copy_into(root: &Path, file: &str) {
    let dest = root.join(file.trim_start_matches('/'));
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(file, &dest).unwrap_or_else(|e| panic!("copy {file}: {e}"));
}

/// A build context: `rootfs/` holds redis-server with the libraries `ldd` names, and a
/// Dockerfile copies it onto scratch.
fn redis_context(dir: &Path) {
    assert!(
        Path::new(REDIS).exists(),
        "{REDIS} is missing: scripts/deps installs Debian's redis-server"
    );
    let root = dir.join("rootfs");
    copy_into(&root, REDIS);
    let ldd = Command::new("ldd").arg(REDIS).output().unwrap();
    assert!(ldd.status.success());
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line
                .split_whitespace()
                .next()
                .filter(|p| p.starts_with('/')),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            copy_into(&root, p);
        }
    }
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\n\
         COPY rootfs/ /\n\
         EXPOSE 6379\n\
         ENTRYPOINT [\"/usr/bin/redis-server\", \"--bind\", \"0.0.0.0\", \"--protected-mode\", \"no\", \"--save\", \"\", \"--appendonly\", \"no\"]\n",
    )
    .unwrap();
}

/// A script for a busybox app container: wait for the database by name, then talk to it.
fn app_script(host: &str, commands: &str) -> String {
    format!(
        "i=0; until printf 'PING\\r\\nQUIT\\r\\n' | nc {host} 6379 | grep -q PONG; do \
           i=$((i+1)); [ $i -gt 100 ] && exit 9; sleep 0.1; done; \
         printf '{commands}QUIT\\r\\n' | nc {host} 6379"
    )
}

#[test]
fn app_reaches_its_database_by_name_on_a_user_network() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let ctx = tempfile::tempdir().unwrap();
    redis_context(ctx.path());
    d.ok(&[
        "build",
        "-q",
        "-t",
        "course-db",
        ctx.path().to_str().unwrap(),
    ]);

    d.ok(&["network", "create", "--driver=bridge", "app-net"]);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    d.ok(&[
        "run",
        "-d",
        "--network=app-net",
        "-p",
        &format!("127.0.0.1:{port}:6379"),
        "--name=db-test",
        "course-db",
    ]);
    // an app container writes through the database's name ...
    let out = d.ok(&[
        "run",
        "--rm",
        "--network=app-net",
        "busybox",
        "sh",
        "-c",
        &app_script("db-test", "SET course notes\\r\\n"),
    ]);
    assert_eq!(out, "+OK\r\n+OK\r\n", "{out:?}");
    // ... and another one, run by the docker CLI, reads it back
    let o = d.docker(&[
        "run",
        "--rm",
        "--network",
        "app-net",
        "busybox",
        "sh",
        "-c",
        &app_script("db-test", "GET course\\r\\n"),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&o), "$5\r\nnotes\r\n+OK\r\n");
    // the published port answers on 127.0.0.1
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut s = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "port {port}: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET course\r\nQUIT\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "$5\r\nnotes\r\n+OK\r\n");
    // a container on another network does not reach it
    d.ok(&["network", "create", "other-net"]);
    let o = d.berth(&[
        "run",
        "--rm",
        "--network=other-net",
        "busybox",
        "sh",
        "-c",
        "printf 'PING\\r\\nQUIT\\r\\n' | nc -w 2 db-test 6379",
    ]);
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    d.ok(&["rm", "-f", "db-test"]);
    d.ok(&["network", "rm", "app-net", "other-net"]);
}
