//! With no -H and no BERTH_HOST, berth uses the default socket under BERTH_RUNROOT and
//! starts berthd there when nothing answers (once, even when called concurrently).

mod common;

use std::process::Command;

use berth_testkit::TestEnv;

/// The default network the autostarted daemon makes in the host namespace (bridge
/// `berth0`, nft table `inet berth`): removed when the test ends unless it was there
/// before. Declared before the environment, so it drops after the daemon is stopped.
struct DefaultNetwork {
    existed: bool,
}

impl DefaultNetwork {
    fn note() -> DefaultNetwork {
        let link = Command::new("ip")
            .args(["link", "show", "berth0"])
            .output()
            .is_ok_and(|o| o.status.success());
        let table = Command::new("nft")
            .args(["list", "table", "inet", "berth"])
            .output()
            .is_ok_and(|o| o.status.success());
        DefaultNetwork {
            existed: link || table,
        }
    }
}

impl Drop for DefaultNetwork {
    fn drop(&mut self) {
        if !self.existed {
            let _ = Command::new("ip").args(["link", "del", "berth0"]).output();
            let _ = Command::new("nft")
                .args(["delete", "table", "inet", "berth"])
                .output();
        }
    }
}

#[test]
fn berth_starts_the_daemon_on_the_default_socket_once() {
    let _net = DefaultNetwork::note();
    let mut env = TestEnv::new().unwrap();
    let berth = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .env("BERTH_RUNROOT", env.run_root())
            .env("BERTH_ROOT", env.data_root())
            .env("BERTH_CONFIG", env.dir().join("berth.toml"))
            .env_remove("BERTH_HOST")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let _ = common::berthd_bin();
    // Four concurrent first calls: exactly one starts the daemon.
    let children: Vec<_> = (0..4)
        .map(|_| berth(&["version", "--format", "{{.Server.Version}}"]))
        .collect();
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let pid: i32 = std::fs::read_to_string(env.run_root().join("berthd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    env.cleanup().pid(pid);
    for o in &outputs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let starts = outputs
        .iter()
        .filter(|o| {
            String::from_utf8_lossy(&o.stderr).contains("starting berthd in the background")
        })
        .count();
    assert_eq!(starts, 1);
    assert!(env.run_root().join("berth.sock").exists());
    let log = std::fs::read_to_string(env.run_root().join("berthd.log")).unwrap();
    assert!(log.contains("daemon ready"), "{log}");
    // The daemon uses the same roots.
    assert!(env.data_root().join("engine-id").is_file());
    // Later calls find it running and say nothing.
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["images", "-q"])
        .env("BERTH_RUNROOT", env.run_root())
        .env_remove("BERTH_HOST")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
    // BERTH_HOST pointing elsewhere is not autostarted.
    let o = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["version"])
        .env(
            "BERTH_HOST",
            format!("unix://{}", env.dir().join("elsewhere.sock").display()),
        )
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(!env.dir().join("elsewhere.sock").exists());
}
