//! The shim run directly (root, real kernel, /bin/busybox from busybox-static): after the
//! start it re-executes itself into monitor mode, and that monitor still serves an attach
//! client queued before the start (stdin in, stdout and stderr out, from the first byte),
//! writes the json-file log, records exit.json, tells berthd `{"exited":n}` on the pipe that
//! carried `{"pid":n}`, and then deletes the runtime state.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn unique(p: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{p}-{}-{}-{nanos:x}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    )
}

/// A container dir with a busybox bundle, a runtime root, and a cgroup parent; the Drop
/// kills the shim, deletes the container and removes the cgroups, whatever happened.
struct Env {
    dir: tempfile::TempDir,
    id: String,
    cg_parent: String,
    shim: Option<Child>,
}

impl Env {
    fn new(args: &[&str]) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("berth-shim-test")
            .tempdir()
            .unwrap();
        let env = Env {
            dir,
            id: unique("shim"),
            cg_parent: unique("berth-shim-test"),
            shim: None,
        };
        let rootfs = env.container_dir().join("bundle/rootfs");
        for d in ["bin", "etc", "tmp", "proc", "dev", "sys"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .expect("busybox-static (/bin/busybox) is required");
        for a in ["sh", "cat", "echo"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        let spec = serde_json::json!({
            "ociVersion": "1.1.0",
            "process": {"args": args, "cwd": "/", "user": {"uid": 0, "gid": 0},
                        "env": ["PATH=/bin"]},
            "root": {"path": "rootfs", "readonly": true},
            "hostname": "shim",
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}
            ],
            "linux": {
                "cgroupsPath": format!("{}/{}", env.cg_parent, env.id),
                "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}, {"type": "network"}]
            }
        });
        std::fs::write(
            env.container_dir().join("bundle/config.json"),
            serde_json::to_vec(&spec).unwrap(),
        )
        .unwrap();
        env
    }

    fn container_dir(&self) -> PathBuf {
        self.dir.path().join("container")
    }

    fn runtime_root(&self) -> PathBuf {
        self.dir.path().join("state")
    }
}

fn rmdir_tree(d: &Path) {
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(d);
}

fn find_rm(d: &Path, name: &str, depth: u32) {
    let Ok(rd) = std::fs::read_dir(d) else { return };
    for e in rd.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            if e.file_name() == name {
                rmdir_tree(&e.path());
            } else if depth > 0 {
                find_rm(&e.path(), name, depth - 1);
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(mut c) = self.shim.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Ok(c) = berth_runtime::Container::load(&self.runtime_root(), &self.id) {
            let _ = c.delete(true);
        }
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                find_rm(&h.path(), &self.cg_parent, 3);
            }
        }
    }
}

fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![kind, 0, 0, 0];
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Every frame until the shim closes the connection: (stdout, stderr).
fn read_frames(s: &mut UnixStream) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    loop {
        let mut h = [0u8; 8];
        if s.read_exact(&mut h).is_err() {
            break;
        }
        let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
        let mut p = vec![0u8; len];
        s.read_exact(&mut p).unwrap();
        match h[0] {
            1 => out.extend(p),
            2 => err.extend(p),
            k => panic!("unexpected frame type {k}"),
        }
    }
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn monitor_mode_serves_attach_logs_and_reports_the_exit() {
    // the container blocks on its stdin until the client writes, i.e. until the shim is
    // certainly in monitor mode
    let mut env = Env::new(&[
        "sh",
        "-c",
        "read line; echo \"got $line\"; echo oops >&2; exit 3",
    ]);
    let dir = env.container_dir();
    let listener = UnixListener::bind(dir.join("attach.sock")).unwrap();
    // queued before the shim runs, like berthd's `start -a`
    let mut client = UnixStream::connect(dir.join("attach.sock")).unwrap();
    client
        .write_all(b"{\"attach\":{\"stdin\":true,\"stdout\":true,\"stderr\":true}}\n")
        .unwrap();
    let log = std::fs::File::create(dir.join("shim.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth-shim"))
        .arg(&dir)
        .arg(env.runtime_root())
        .arg(&env.id)
        .args(["--attach", "--stdin", "--stdin-once"])
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(listener)))
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let shim_pid = child.id();
    let mut to_berthd = BufReader::new(child.stdout.take().unwrap());
    env.shim = Some(child);

    let mut line = String::new();
    to_berthd.read_line(&mut line).unwrap();
    let started: serde_json::Value = serde_json::from_str(&line).unwrap();
    let init = started["pid"].as_i64().unwrap_or_else(|| panic!("{line}"));
    assert!(init > 0);
    // same pid, re-executed into monitor mode, named berth-shim again (the exec through
    // /proc/self/exe names it "exe" until the monitor sets its name: wait for both)
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cmdline = std::fs::read(format!("/proc/{shim_pid}/cmdline")).unwrap();
        let comm = std::fs::read_to_string(format!("/proc/{shim_pid}/comm")).unwrap();
        if String::from_utf8_lossy(&cmdline).contains("\0--monitor\0")
            && comm.trim() == "berth-shim"
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the shim never entered monitor mode as berth-shim (comm {comm:?})"
        );
        std::thread::sleep(Duration::from_millis(10));
    }

    client.write_all(&frame(0, b"hi\n")).unwrap();
    client.write_all(&frame(0, b"")).unwrap();
    let (out, err) = read_frames(&mut client);
    assert_eq!(out, "got hi\n");
    assert_eq!(err, "oops\n");

    // the exit line comes after exit.json is in place
    line.clear();
    to_berthd.read_line(&mut line).unwrap();
    let exited: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(exited["exited"], 3, "{line}");
    let exit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("exit.json")).unwrap()).unwrap();
    assert_eq!(exit["exit_code"], 3);
    assert!(exit["finished_at"].as_str().unwrap().ends_with('Z'));
    line.clear();
    assert_eq!(to_berthd.read_line(&mut line).unwrap(), 0, "then EOF");

    let status = env.shim.take().unwrap().wait().unwrap();
    assert!(status.success(), "{status}");
    // the log, in Docker's json-file format
    let text = std::fs::read_to_string(dir.join(format!("{}-json.log", env.id))).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["log"], "got hi\n");
    assert_eq!(lines[0]["stream"], "stdout");
    assert_eq!(lines[1]["log"], "oops\n");
    assert_eq!(lines[1]["stream"], "stderr");
    // then the runtime state went, and the attach socket
    assert!(!env.runtime_root().join(&env.id).exists());
    assert!(!dir.join("attach.sock").exists());
    let shim_log = std::fs::read_to_string(dir.join("shim.log")).unwrap();
    assert!(shim_log.is_empty(), "{shim_log}");
}

#[test]
fn a_failed_start_is_reported_and_nothing_stays() {
    let mut env = Env::new(&["/no/such/binary"]);
    let dir = env.container_dir();
    let log = std::fs::File::create(dir.join("shim.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth-shim"))
        .arg(&dir)
        .arg(env.runtime_root())
        .arg(&env.id)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    env.shim = Some(child);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["exit_code"], 127, "{out}");
    assert!(
        v["error"].as_str().unwrap().contains("/no/such/binary"),
        "{out}"
    );
    assert!(env.shim.take().unwrap().wait().unwrap().success());
    assert!(!env.runtime_root().join(&env.id).exists());
    assert!(!dir.join("exit.json").exists());
}

#[test]
fn a_container_that_ends_at_once_is_recorded_like_any_other() {
    // it exits before the shim would re-execute itself, so the shim monitors it in place
    // (under load it may be re-executed first: the outcome must be the same either way)
    let mut env = Env::new(&["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let dir = env.container_dir();
    let log = std::fs::File::create(dir.join("shim.log")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth-shim"))
        .arg(&dir)
        .arg(env.runtime_root())
        .arg(&env.id)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut to_berthd = BufReader::new(child.stdout.take().unwrap());
    env.shim = Some(child);
    let mut line = String::new();
    to_berthd.read_line(&mut line).unwrap();
    let started: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(started["pid"].as_i64().unwrap_or(0) > 0, "{line}");
    line.clear();
    to_berthd.read_line(&mut line).unwrap();
    let exited: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(exited["exited"], 7, "{line}");
    let exit: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("exit.json")).unwrap()).unwrap();
    assert_eq!(exit["exit_code"], 7);
    line.clear();
    assert_eq!(to_berthd.read_line(&mut line).unwrap(), 0, "then EOF");
    let status = env.shim.take().unwrap().wait().unwrap();
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(dir.join(format!("{}-json.log", env.id))).unwrap();
    let mut streams: Vec<(String, String)> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|v| {
            (
                v["stream"].as_str().unwrap().to_owned(),
                v["log"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    streams.sort();
    assert_eq!(
        streams,
        [
            ("stderr".to_owned(), "err\n".to_owned()),
            ("stdout".to_owned(), "out\n".to_owned())
        ],
        "{text}"
    );
    // the runtime state and the container's cgroups are gone when the shim is
    assert!(!env.runtime_root().join(&env.id).exists());
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    for (ctrls, path) in berth_cgroups_paths(&own) {
        let d = Path::new("/sys/fs/cgroup")
            .join(&ctrls)
            .join(path.trim_start_matches('/'))
            .join(&env.cg_parent)
            .join(&env.id);
        assert!(!d.exists(), "{} left behind", d.display());
    }
    let shim_log = std::fs::read_to_string(dir.join("shim.log")).unwrap();
    assert!(shim_log.is_empty(), "{shim_log}");
}

/// `(hierarchy dir name, own path)` for each v1 controller line of /proc/self/cgroup.
fn berth_cgroups_paths(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let (_, c, p) = (it.next()?, it.next()?, it.next()?);
            (!c.is_empty() && !c.starts_with("name=")).then(|| (c.to_owned(), p.to_owned()))
        })
        .collect()
}
