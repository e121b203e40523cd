//! Interactive containers end to end against a per-test berthd: `run -i` with piped
//! stdin, `run -it` and `exec -it` driven through a pty this test opens (window size at
//! start and on resize), exec exit codes and flags, attach and detach with ctrl-p
//! ctrl-q, `start -ai` — through `berth` and the real docker CLI. Root; build
//! `berthd`, `berth-shim` first. Containers use `--network none`.

mod common;

use std::os::fd::{AsFd as _, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Daemon, Leftovers, stderr, stdout};

/// A pty whose slave is the controlling terminal of a command (`setsid -w -c`), read
/// on a thread into a buffer.
struct Pty {
    master: OwnedFd,
    child: Child,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    fn spawn(program: &str, args: &[&str], envs: &[(&str, String)], size: (u16, u16)) -> Pty {
        use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
        let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .expect("open /dev/ptmx");
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let name = ptsname(&master, Vec::new()).unwrap();
        let slave = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(name.to_str().unwrap())
            .unwrap();
        set_size(&master, size);
        let mut cmd = Command::new("setsid");
        cmd.arg("-w").arg("-c").arg(program).args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave))
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let reader = rustix::io::dup(&master).unwrap();
        let o2 = out.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = rustix::io::read(&reader, &mut buf) {
                if n == 0 {
                    break;
                }
                o2.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty { master, child, out }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// Waits until the output contains `s` `n` times in all.
    fn expect_n(&self, s: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.text().matches(s).count() < n {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {s:?} (x{n}) in {:?}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn expect(&self, s: &str) {
        self.expect_n(s, 1);
    }

    /// Whether the terminal is in canonical (cooked) mode with echo, as a shell left it.
    fn cooked(&self) -> bool {
        use rustix::termios::LocalModes;
        let t = rustix::termios::tcgetattr(&self.master).unwrap();
        t.local_modes
            .contains(LocalModes::ICANON | LocalModes::ECHO)
    }

    fn write(&self, s: &[u8]) {
        rustix::io::write(&self.master, s).unwrap();
    }

    fn resize(&self, size: (u16, u16)) {
        // the kernel sends SIGWINCH to the terminal's foreground process group
        set_size(&self.master, size);
    }

    fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the command did not exit; output: {:?}", self.text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn set_size(fd: &OwnedFd, (rows, cols): (u16, u16)) {
    let ws = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(fd.as_fd(), ws).unwrap();
}

fn berth_bin() -> &'static str {
    env!("CARGO_BIN_EXE_berth")
}

/// `berth -H <sock> args…` with `input` on stdin.
fn berth_input(d: &Daemon, args: &[&str], input: &[u8]) -> std::process::Output {
    piped(
        Command::new(berth_bin()).arg("-H").arg(d.host()).args(args),
        input,
    )
}

fn docker_input(d: &Daemon, args: &[&str], input: &[u8]) -> std::process::Output {
    piped(
        Command::new("/usr/local/bin/docker")
            .args(args)
            .env("DOCKER_HOST", d.host())
            .env("DOCKER_CONFIG", d.env.dir().join("docker-cli")),
        input,
    )
}

fn piped(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn docker_env(d: &Daemon) -> Vec<(&'static str, String)> {
    vec![
        ("DOCKER_HOST", d.host()),
        (
            "DOCKER_CONFIG",
            d.env.dir().join("docker-cli").display().to_string(),
        ),
    ]
}

#[test]
fn run_i_streams_stdin_and_keeps_stdout_and_stderr_apart() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let script = "cat; echo to-stderr >&2; exit 3";
    let args = [
        "run",
        "-i",
        "--rm",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        script,
    ];
    let o = berth_input(&d, &args, b"hi\nthere\n");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hi\nthere\n");
    assert_eq!(stderr(&o), "to-stderr\n");
    let o = docker_input(&d, &args, b"from docker\n");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout(&o), "from docker\n");
    assert_eq!(stderr(&o), "to-stderr\n");
    // a big input through a process that reads it all (back-pressure, no deadlock)
    let big = "x".repeat(1 << 20) + "\n";
    let o = berth_input(
        &d,
        &[
            "run",
            "-i",
            "--rm",
            "--network",
            "none",
            "busybox",
            "wc",
            "-c",
        ],
        big.as_bytes(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), (big.len()).to_string());
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

fn drive_shell(p: &Pty) {
    p.expect("/ # ");
    p.write(b"stty size; echo $((6*7))\n");
    p.expect("33 111\r\n42\r\n");
    p.resize((44, 120));
    // the resize travels CLI → berthd → shim asynchronously: ask until it shows
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut asked = 0;
    while !p.text().contains("44 120\r\n") {
        assert!(Instant::now() < deadline, "resize not seen: {:?}", p.text());
        p.write(b"stty size\n");
        asked += 1;
        p.expect_n("/ # ", 2 + asked);
    }
    p.write(b"exit 3\n");
}

#[test]
fn run_it_through_a_pty_with_berth_and_docker() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let args = ["run", "-it", "--rm", "--network", "none", "busybox", "sh"];
    let host = d.host();
    let mut bargs = vec!["-H", host.as_str()];
    bargs.extend_from_slice(&args);
    let mut p = Pty::spawn(berth_bin(), &bargs, &[], (33, 111));
    p.expect("/ # ");
    // raw while attached, restored when berth exits
    assert!(!p.cooked(), "the terminal is not in raw mode");
    drive_shell(&p);
    assert_eq!(p.wait(), Some(3));
    assert!(p.cooked(), "the terminal mode was not restored");
    let mut p = Pty::spawn("/usr/local/bin/docker", &args, &docker_env(&d), (33, 111));
    drive_shell(&p);
    assert_eq!(p.wait(), Some(3));
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn exec_exit_codes_flags_and_detached() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ex",
        "--network",
        "none",
        "busybox",
        "sleep",
        "1000",
    ]);
    // the shim's attach socket is root's alone
    let id = d.ok(&["inspect", "-f", "{{.Id}}", "ex"]);
    let sock = d
        .env
        .data_root()
        .join("containers")
        .join(id.trim())
        .join("attach.sock");
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{sock:?}");
    }
    for (cmd, code) in [
        (&["true"][..], 0),
        (&["sh", "-c", "exit 3"][..], 3),
        (&["/etc"][..], 126),
        (&["/no/such"][..], 127),
    ] {
        let mut a = vec!["exec", "ex"];
        a.extend_from_slice(cmd);
        let o = d.berth(&a);
        assert_eq!(o.status.code(), Some(code), "berth {a:?}: {}", stderr(&o));
        let o = d.docker(&a);
        assert_eq!(o.status.code(), Some(code), "docker {a:?}: {}", stderr(&o));
        if code == 127 {
            assert!(stderr(&o).contains("/no/such"), "{}", stderr(&o));
        }
    }
    let o = d.berth(&[
        "exec",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "-e",
        "FOO=bar",
        "ex",
        "sh",
        "-c",
        "id -u; pwd; echo $FOO; echo e >&2",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "65534\n/tmp\nbar\n");
    assert_eq!(stderr(&o), "e\n");
    let o = berth_input(&d, &["exec", "-i", "ex", "cat"], b"piped in\n");
    assert_eq!(stdout(&o), "piped in\n", "{}", stderr(&o));
    let o = docker_input(&d, &["exec", "-i", "ex", "cat"], b"docker piped\n");
    assert_eq!(stdout(&o), "docker piped\n", "{}", stderr(&o));
    // -d returns at once; the command runs on
    let o = d.berth(&[
        "exec",
        "-d",
        "ex",
        "sh",
        "-c",
        "sleep 0.2; echo done > /tmp/d",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = d.berth(&["exec", "ex", "cat", "/tmp/d"]);
        if stdout(&o) == "done\n" {
            break;
        }
        assert!(Instant::now() < deadline, "exec -d did not run");
        std::thread::sleep(Duration::from_millis(100));
    }
    // a privileged exec has every capability of the daemon's bounding set
    let o = d.berth(&[
        "exec",
        "--privileged",
        "ex",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    let plain = d.berth(&["exec", "ex", "grep", "CapEff", "/proc/self/status"]);
    assert_ne!(stdout(&o), stdout(&plain));
    // docker exec -it through a pty
    let mut p = Pty::spawn(
        "/usr/local/bin/docker",
        &["exec", "-it", "ex", "sh"],
        &docker_env(&d),
        (33, 111),
    );
    drive_shell(&p);
    assert_eq!(p.wait(), Some(3));
    // berth exec -it
    let host = d.host();
    let mut p = Pty::spawn(
        berth_bin(),
        &["-H", &host, "exec", "-it", "ex", "sh"],
        &[],
        (33, 111),
    );
    drive_shell(&p);
    assert_eq!(p.wait(), Some(3));
    // the `container` group has them too
    let o = d.berth(&["container", "exec", "ex", "echo", "grouped"]);
    assert_eq!(stdout(&o), "grouped\n", "{}", stderr(&o));
    // an exec of a stopped container is refused
    d.ok(&["create", "--name", "idle", "--network", "none", "busybox"]);
    let o = d.berth(&["exec", "idle", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("is not running"), "{}", stderr(&o));
    let o = d.berth(&["exec", "nosuch", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("No such container: nosuch"),
        "{}",
        stderr(&o)
    );
    d.ok(&["rm", "-f", "ex", "idle"]);
}

#[test]
fn attach_then_detach_with_ctrl_p_ctrl_q_leaves_it_running() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&[
        "run",
        "-dit",
        "--name",
        "sh1",
        "--network",
        "none",
        "busybox",
        "sh",
    ]);
    let host = d.host();
    for (program, args, envs) in [
        (berth_bin(), vec!["-H", &host[..], "attach", "sh1"], vec![]),
        (
            "/usr/local/bin/docker",
            vec!["attach", "sh1"],
            docker_env(&d),
        ),
    ] {
        let mut p = Pty::spawn(program, &args, &envs, (30, 100));
        p.write(b"echo attached-$((20+22))\n");
        p.expect("attached-42");
        p.write(b"\x10\x11");
        let code = p.wait();
        // berth exits 0; the docker CLI reports "read escape sequence" (exit 1)
        assert!(code == Some(0) || code == Some(1), "{program}: {code:?}");
        let st = d.ok(&["inspect", "-f", "{{.State.Status}}", "sh1"]);
        assert_eq!(st.trim(), "running", "{program} detach stopped it");
    }
    // custom detach keys
    let mut p = Pty::spawn(
        berth_bin(),
        &["-H", &host, "attach", "--detach-keys", "ctrl-a,x", "sh1"],
        &[],
        (30, 100),
    );
    p.write(b"echo custom-$((3*3))\n");
    p.expect("custom-9");
    p.write(b"\x01x");
    assert_eq!(p.wait(), Some(0));
    let st = d.ok(&["inspect", "-f", "{{.State.Status}}", "sh1"]);
    assert_eq!(st.trim(), "running");
    // attach to a stopped container is refused
    d.ok(&[
        "create",
        "--name",
        "stopped",
        "--network",
        "none",
        "busybox",
    ]);
    let o = d.berth(&["attach", "stopped"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("cannot attach to a stopped container"),
        "{}",
        stderr(&o)
    );
    d.ok(&["rm", "-f", "sh1", "stopped"]);
}

#[test]
fn start_ai_and_run_attach_flags() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&[
        "create",
        "-i",
        "--name",
        "c1",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "cat; exit 5",
    ]);
    let o = berth_input(&d, &["start", "-ai", "c1"], b"via start\n");
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert_eq!(stdout(&o), "via start\n");
    d.ok(&[
        "create",
        "-i",
        "--name",
        "c2",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "cat; exit 6",
    ]);
    let o = docker_input(&d, &["start", "-ai", "c2"], b"docker start\n");
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert_eq!(stdout(&o), "docker start\n");
    // -a stderr only: stdout is not attached (it still goes to the log)
    let o = d.berth(&[
        "run",
        "-a",
        "stderr",
        "--name",
        "c3",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    assert_eq!(stderr(&o), "err\n");
    assert_eq!(d.ok(&["logs", "c3"]), "out\n");
    // without `Upgrade` the attach is a plain 200 whose body is the (multiplexed) stream
    {
        use std::io::{Read as _, Write as _};
        let mut s = std::os::unix::net::UnixStream::connect(d.env.socket()).unwrap();
        s.write_all(
            b"POST /v1.44/containers/c3/attach?logs=1&stdout=1&stderr=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).unwrap();
        let text = String::from_utf8_lossy(&resp);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            text.to_ascii_lowercase()
                .contains("content-type: application/vnd.docker.multiplexed-stream"),
            "{text}"
        );
        let framed_out = [&[1u8, 0, 0, 0, 0, 0, 0, 4][..], b"out\n"].concat();
        let framed_err = [&[2u8, 0, 0, 0, 0, 0, 0, 4][..], b"err\n"].concat();
        assert!(resp.windows(12).any(|w| w == framed_out), "{text}");
        assert!(resp.windows(12).any(|w| w == framed_err), "{text}");
    }
    // an attach waiting for a start ends when the container is removed
    {
        use std::io::{Read as _, Write as _};
        d.ok(&["create", "--name", "never", "--network", "none", "busybox"]);
        let mut s = std::os::unix::net::UnixStream::connect(d.env.socket()).unwrap();
        s.write_all(
            b"POST /v1.44/containers/never/attach?stream=1&stdout=1 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let mut head = [0u8; 12];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 101");
        d.ok(&["rm", "never"]);
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest)
            .expect("the stream should end, not time out");
    }
    // the first output of a fast container is never lost (attach before start)
    for _ in 0..5 {
        let o = d.berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "echo",
            "first",
        ]);
        assert_eq!(stdout(&o), "first\n", "{}", stderr(&o));
    }
    d.ok(&["rm", "-f", "c1", "c2", "c3"]);
}

#[test]
fn run_without_tty_proxies_signals_to_the_container() {
    use std::io::BufRead as _;
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let mut child = Command::new(berth_bin())
        .arg("-H")
        .arg(d.host())
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "got-term\n");
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(7));
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn exec_and_attach_after_a_daemon_crash() {
    let mut d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&[
        "run",
        "-dit",
        "--name",
        "keep",
        "--network",
        "none",
        "busybox",
        "sh",
    ]);
    d.kill_berthd();
    d.restart();
    let o = d.berth(&["exec", "keep", "sh", "-c", "echo still-here; exit 4"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert_eq!(stdout(&o), "still-here\n");
    let host = d.host();
    let mut p = Pty::spawn(
        berth_bin(),
        &["-H", &host, "attach", "keep"],
        &[],
        (30, 100),
    );
    p.write(b"echo again-$((5*5))\n");
    p.expect("again-25");
    p.write(b"exit 9\n");
    assert_eq!(p.wait(), Some(9));
    let st = d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "keep"]);
    assert_eq!(st.trim(), "9");
    d.ok(&["rm", "keep"]);
}
