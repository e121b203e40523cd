//! The exit-code table: `run` leaves with the container's code, and init failures map
//! to 127 (not found) / 126 (not executable) with a message naming the binary.

mod common;
use common::*;

fn code(args: &[&str]) -> (i32, String) {
    let env = Env::new(args);
    let o = env.run_with(BERTH);
    (o.status.code().unwrap_or(-1), stderr(&o))
}

#[test]
fn true_exits_0() {
    assert_eq!(code(&["true"]).0, 0);
}

#[test]
fn false_exits_1() {
    assert_eq!(code(&["false"]).0, 1);
}

#[test]
fn shell_exit_code_passes_through() {
    assert_eq!(code(&["sh", "-c", "exit 42"]).0, 42);
}

#[test]
fn missing_binary_exits_127_naming_it() {
    let (c, err) = code(&["/no/such-binary"]);
    assert_eq!(c, 127, "{err}");
    assert!(
        err.contains("/no/such-binary") && err.contains("no such file or directory"),
        "{err}"
    );
    let (c, err) = code(&["no-such-cmd-in-path"]);
    assert_eq!(c, 127, "{err}");
    assert!(
        err.contains("no-such-cmd-in-path") && err.contains("executable file not found"),
        "{err}"
    );
}

#[test]
fn non_executable_exits_126() {
    let (c, err) = code(&["/etc/passwd"]);
    assert_eq!(c, 126, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    let (c, _) = code(&["/etc"]);
    assert_eq!(c, 126);
}

#[test]
fn sigkill_from_outside_exits_137() {
    let env = Env::new(&["sleep", "100"]);
    let id = env.id(BERTH);
    let mut child = std::process::Command::new(BERTH)
        .arg("--root")
        .arg(env.root_for(BERTH))
        .args(["run", "-b", env.bundle.to_str().unwrap(), &id])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let st = env.berth(&["state", &id]);
        if st.status.success() && stdout(&st).contains("\"running\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never running: {}",
            stderr(&st)
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let k = env.berth(&["kill", &id, "KILL"]);
    assert!(k.status.success(), "{}", stderr(&k));
    assert_eq!(child.wait().unwrap().code(), Some(137));
}

#[test]
fn bad_cwd_is_a_cwd_error() {
    let env = Env::new(&["true"]);
    env.edit(|s| s["process"]["cwd"] = "/does/not/exist".into());
    let o = env.run_with(BERTH);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("Cwd") && stderr(&o).contains("/does/not/exist"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn run_forwards_sigterm_to_the_container() {
    let env = Env::new(&[
        "sh",
        "-c",
        "trap 'exit 7' TERM; while true; do sleep 0.05; done",
    ]);
    let id = env.id(BERTH);
    let mut child = std::process::Command::new(BERTH)
        .arg("--root")
        .arg(env.root_for(BERTH))
        .args(["run", "-b", env.bundle.to_str().unwrap(), &id])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let st = env.berth(&["state", &id]);
        if stdout(&st).contains("\"running\"") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never running: {}",
            stderr(&st)
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // give the shell a moment to install its trap
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(7));
}
