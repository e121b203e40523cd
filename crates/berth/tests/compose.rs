//! `berth compose` end to end: the course notes' `compose up --build` and `--scale`, with
//! Debian's docker-compose run by berth against a real berthd: a service built from a
//! Dockerfile with a published port, a service from an image with a named volume, DNS by
//! service name on the project's network, `ps`, `logs`, `exec`, `down -v` leaving nothing,
//! and a clear error when no compose provider can be found.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Daemon, stderr, stdout};

/// `berth -H <daemon> compose -p <project> -f <file> args…`.
fn compose(d: &Daemon, file: &std::path::Path, project: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("-H")
        .arg(d.host())
        .args(["compose", "--ansi", "never", "-p", project, "-f"])
        .arg(file)
        .args(args)
        .env("BERTH_CLI_CONFIG", d.cli_config())
        .env("DOCKER_CONFIG", d.env.dir().join("docker-cli"))
        .env_remove("BERTH_HOST")
        .env_remove("BERTH_COMPOSE_PROVIDER")
        .env("DOCKER_HOST", "unix:///nonexistent/not-berth.sock")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn compose_ok(d: &Daemon, file: &std::path::Path, project: &str, args: &[&str]) -> String {
    let o = compose(d, file, project, args);
    assert!(
        o.status.success(),
        "compose {args:?} failed: {}{}\n--- berthd:\n{}",
        stdout(&o),
        stderr(&o),
        d.log_tail(30)
    );
    format!("{}{}", stdout(&o), stderr(&o))
}

/// The body of `GET /` on 127.0.0.1:`port`, retrying until the server is up.
fn get(port: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if let Some((_, body)) = out.split_once("\r\n\r\n") {
                return body.to_owned();
            }
            last = out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing served on 127.0.0.1:{port}: {last:?}");
}

fn names(d: &Daemon, filter: &str) -> Vec<String> {
    let mut v: Vec<String> = d
        .ok(&["ps", "-a", "--format", "{{.Names}}", "--filter", filter])
        .lines()
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

#[test]
fn compose_up_build_scale_exec_logs_and_down() {
    let d = Daemon::start_with_pools(1);
    d.load_busybox();
    let project = format!("{}app", d.env.prefix());
    let dir = d.env.dir().join("project");
    std::fs::create_dir_all(dir.join("web")).unwrap();
    std::fs::write(
        dir.join("web/Dockerfile"),
        "FROM busybox\nRUN mkdir /www && echo hello-from-compose > /www/index.html\n\
         CMD [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let file = dir.join("compose.yaml");
    std::fs::write(
        &file,
        format!(
            "services:\n  web:\n    build: web\n    init: true\n    ports:\n      - \"127.0.0.1:{port}:80\"\n    \
             depends_on:\n      - db\n  db:\n    image: busybox\n    init: true\n    \
             command: sh -c \"echo db-started $$GREETING; echo data > /data/f; sleep 1000\"\n    \
             environment:\n      GREETING: hi\n    volumes:\n      - dbdata:/data\n\
             volumes:\n  dbdata:\n"
        ),
    )
    .unwrap();

    let up = compose_ok(&d, &file, &project, &["up", "-d", "--build"]);
    assert!(up.contains("Successfully built"), "{up}");
    assert_eq!(get(port), "hello-from-compose\n");
    let service = format!("label=com.docker.compose.project={project}");
    assert_eq!(names(&d, &service).len(), 2);
    let ps = compose_ok(&d, &file, &project, &["ps"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");

    // the notes' `compose up --scale`: three of db, web left as it was
    compose_ok(&d, &file, &project, &["up", "-d", "--scale", "db=3"]);
    let dbs = names(&d, "label=com.docker.compose.service=db");
    assert_eq!(
        dbs,
        (1..=3)
            .map(|i| format!("{project}_db_{i}"))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        names(&d, "label=com.docker.compose.service=web"),
        [format!("{project}_web_1")]
    );

    // service names resolve on the project's network; the volume is shared
    let script = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 web 80; cat /data/f";
    let got = compose_ok(
        &d,
        &file,
        &project,
        &["exec", "-T", "db", "sh", "-c", script],
    );
    assert!(got.contains("hello-from-compose"), "{got}");
    assert!(got.contains("data"), "{got}");
    let logs = compose_ok(&d, &file, &project, &["logs", "db"]);
    assert!(logs.contains("db-started hi"), "{logs}");

    compose_ok(&d, &file, &project, &["down", "-v"]);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    let nets = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains(&project), "{nets}");
    let vols = d.ok(&["volume", "ls", "-q"]);
    assert!(!vols.contains(&project), "{vols}");
}

#[test]
fn compose_without_a_provider_says_how_to_get_one() {
    let d = Daemon::start();
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["-H", &d.host(), "compose", "up"])
        .env("BERTH_COMPOSE_PROVIDER", "/nonexistent/docker-compose")
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("BERTH_COMPOSE_PROVIDER is /nonexistent/docker-compose"),
        "{}",
        stderr(&o)
    );
}
