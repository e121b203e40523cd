//! berthd end to end: each test runs its own daemon in temp dirs and speaks raw HTTP/1.1
//! to its socket (to see exact status lines and headers).

use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::TestEnv;

struct Daemon {
    env: TestEnv,
    pid: u32,
}

fn spawn(env: &TestEnv, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("--data-root")
        .arg(env.data_root())
        .arg("--exec-root")
        .arg(env.run_root())
        .arg("--config")
        .arg(env.dir().join("berth.toml"))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berthd")
}

fn wait_socket(p: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while UnixStream::connect(p).is_err() {
        assert!(
            Instant::now() < deadline,
            "berthd did not listen on {}",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Daemon {
    fn start() -> Daemon {
        let mut env = TestEnv::new().expect("test env");
        let child = spawn(&env, &["-H", &format!("unix://{}", env.socket().display())]);
        let pid = child.id();
        env.cleanup().child(child);
        wait_socket(&env.socket());
        Daemon { env, pid }
    }

    fn sock(&self) -> PathBuf {
        self.env.socket()
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn request(sock: &Path, method: &str, path: &str) -> Resp {
    let mut s = UnixStream::connect(sock).expect("connect");
    write!(s, "{method} {path} HTTP/1.1\r\nHost: api.moby.localhost\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_owned(),
    }
}

#[test]
fn ping_answers_head_and_get_with_docker_headers() {
    let d = Daemon::start();
    for method in ["HEAD", "GET"] {
        let r = request(&d.sock(), method, "/_ping");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("Api-Version"), Some("1.44"));
        assert_eq!(r.header("Ostype"), Some("linux"));
        assert_eq!(r.header("Docker-Experimental"), Some("false"));
        assert_eq!(r.header("Builder-Version"), Some("1"));
        assert_eq!(r.header("Swarm"), Some("inactive"));
        assert_eq!(
            r.header("Cache-Control"),
            Some("no-cache, no-store, must-revalidate")
        );
        assert_eq!(r.header("Pragma"), Some("no-cache"));
        assert!(r.header("Server").is_some_and(|s| s.starts_with("Berth/")));
        assert_eq!(r.body, if method == "GET" { "OK" } else { "" });
    }
}

#[test]
fn versioned_paths_and_docker_version_errors() {
    let d = Daemon::start();
    for p in [
        "/version",
        "/v1.24/version",
        "/v1.41/version",
        "/v1.44/version",
    ] {
        let r = request(&d.sock(), "GET", p);
        assert_eq!(r.status, 200, "{p}");
        assert_eq!(r.header("Api-Version"), Some("1.44"), "{p}");
        assert_eq!(r.header("Ostype"), Some("linux"));
        let v = r.json();
        assert_eq!(v["ApiVersion"], "1.44");
        assert_eq!(v["MinAPIVersion"], "1.24");
        assert_eq!(v["Components"][0]["Name"], "Engine");
        assert_eq!(v["Os"], "linux");
    }
    let r = request(&d.sock(), "GET", "/v1.50/version");
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "client version 1.50 is too new. Maximum supported API version is 1.44"
    );
    assert_eq!(r.header("Api-Version"), Some("1.44"));
    let r = request(&d.sock(), "GET", "/v1.23/images/json");
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("client version 1.23 is too old. Minimum supported API version is 1.24")
    );
    let r = request(&d.sock(), "GET", "/v1.44/no/such/thing");
    assert_eq!(r.status, 404);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("/no/such/thing")
    );
    let r = request(&d.sock(), "GET", "/v1.44/images/json?all=False&digests=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!([]));
    let r = request(&d.sock(), "GET", "/images/nothere/json");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such image: nothere:latest");
    let r = request(
        &d.sock(),
        "GET",
        "/images/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "invalid filter 'bogus'");
}

#[test]
fn info_reports_real_values() {
    let d = Daemon::start();
    let v = request(&d.sock(), "GET", "/v1.44/info").json();
    assert_eq!(v["Images"], 0);
    assert_eq!(v["Containers"], 0);
    assert_eq!(v["Driver"], "overlay2");
    assert_eq!(v["OSType"], "linux");
    assert_eq!(v["CgroupDriver"], "cgroupfs");
    let cg = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    assert_eq!(v["CgroupVersion"], cg);
    assert_eq!(v["DockerRootDir"], d.env.data_root().display().to_string());
    assert!(v["NCPU"].as_u64().unwrap() >= 1);
    assert!(v["MemTotal"].as_u64().unwrap() > 1 << 20);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(v["KernelVersion"], release.trim());
    assert_eq!(v["Swarm"]["LocalNodeState"], "inactive");
    assert_eq!(v["ExperimentalBuild"], false);
    let id = v["ID"].as_str().unwrap().to_owned();
    assert_eq!(
        std::fs::read_to_string(d.env.data_root().join("engine-id")).unwrap(),
        id
    );
}

#[test]
fn swarm_endpoints_answer_503_and_plugins_empty() {
    let d = Daemon::start();
    let r = request(&d.sock(), "POST", "/v1.44/swarm/leave?force=True");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["message"], "This node is not part of a swarm");
    for p in ["/swarm", "/services", "/nodes", "/secrets", "/configs"] {
        let r = request(&d.sock(), "GET", p);
        assert_eq!(r.status, 503, "{p}");
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("not a swarm manager")
        );
    }
    assert_eq!(
        request(&d.sock(), "GET", "/plugins").json(),
        serde_json::json!([])
    );
}

#[test]
fn socket_is_0660_and_sigterm_shuts_down_cleanly() {
    let env = TestEnv::new().expect("test env");
    let mut child = spawn(&env, &[]);
    // Default socket: <exec-root>/berth.sock.
    let sock = env.run_root().join("berth.sock");
    wait_socket(&sock);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    assert!(env.run_root().join("berthd.pid").is_file());
    // A second daemon on the same socket is refused.
    let second = spawn(&env, &[]).wait_with_output().unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("already listening"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "berthd did not exit on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(!sock.exists());
    assert!(!env.run_root().join("berthd.pid").exists());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(
        err.contains("SIGTERM received") && err.contains("daemon stopped"),
        "{err}"
    );
}

#[test]
fn plain_tcp_is_refused() {
    let env = TestEnv::new().expect("test env");
    let out = spawn(&env, &["-H", "tcp://127.0.0.1:2375"])
        .wait_with_output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tcp://127.0.0.1:2375") && err.contains("TLS"),
        "{err}"
    );
}

#[test]
fn events_stream_live_and_replay_with_until() {
    let d = Daemon::start();
    let mut s = UnixStream::connect(d.sock()).unwrap();
    write!(s, "GET /v1.44/events?filters=%7B%22type%22%3A%7B%22image%22%3Atrue%7D%7D HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // Headers arrive before any event.
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Make an image event: import a one-file tarball.
    let mut tarball = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tarball);
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
        b.finish().unwrap();
    }
    let mut c = UnixStream::connect(d.sock()).unwrap();
    write!(c, "POST /v1.44/images/create?fromSrc=-&repo=ev%3A1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", tarball.len()).unwrap();
    c.write_all(&tarball).unwrap();
    let mut reply = String::new();
    c.read_to_string(&mut reply).unwrap();
    assert!(reply.contains("\"status\":\"sha256:"), "{reply}");
    let mut got = String::new();
    while !got.contains("\"Action\":\"import\"") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "event stream ended early: {got}");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        got.contains("\"Type\":\"image\"") && got.contains("\"name\":\"ev:1\""),
        "{got}"
    );
    // Replay: since=0 until=now returns the past event and closes.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let r = request(&d.sock(), "GET", &format!("/events?since=0&until={now}"));
    assert_eq!(r.status, 200);
    assert!(r.body.contains("\"Action\":\"import\""), "{}", r.body);
    let pid = d.pid;
    assert!(pid > 0);
}

#[test]
fn sigterm_ends_open_event_streams_and_exits() {
    let env = TestEnv::new().expect("test env");
    let mut child = spawn(&env, &[]);
    let sock = env.run_root().join("berth.sock");
    wait_socket(&sock);
    let mut s = UnixStream::connect(&sock).unwrap();
    write!(s, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = vec![0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    // The stream ends (EOF) instead of holding the shutdown for the drain timeout.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "shutdown took {:?}",
        started.elapsed()
    );
    assert!(!sock.exists());
}

#[test]
fn a_stale_socket_after_kill_9_is_replaced_on_restart() {
    let mut env = TestEnv::new().expect("test env");
    let mut first = spawn(&env, &[]);
    let sock = env.run_root().join("berth.sock");
    wait_socket(&sock);
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(sock.exists(), "kill -9 leaves the socket file behind");
    assert!(UnixStream::connect(&sock).is_err());
    let second = spawn(&env, &[]);
    env.cleanup().child(second);
    wait_socket(&sock);
    let r = request(&sock, "GET", "/_ping");
    assert_eq!(r.status, 200);
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o660
    );
}
