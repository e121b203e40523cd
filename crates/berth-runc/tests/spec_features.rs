//! Spec features beyond the probe: joining namespaces by path (incl. pid, which needs
//! the second fork), --no-pivot, oomScoreAdj, domainname, tmpfs/bind mount flags.

mod common;
use common::*;

fn ok(o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

#[test]
fn join_pid_and_net_namespaces_by_path() {
    let a = Env::new(&["sleep", "1000"]);
    let ida = a.id(BERTH);
    ok(a.berth_detached(&["run", "-d", "-b", a.bundle.to_str().unwrap(), &ida]));
    let st: serde_json::Value = serde_json::from_str(&ok(a.berth(&["state", &ida]))).unwrap();
    let pid = st["pid"].as_i64().unwrap();
    let b = Env::new(&[
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; readlink /proc/self/ns/net",
    ]);
    b.edit(|s| {
        let ns = s["linux"]["namespaces"].as_array_mut().unwrap();
        for n in ns.iter_mut() {
            if n["type"] == "pid" {
                n["path"] = format!("/proc/{pid}/ns/pid").into();
            }
            if n["type"] == "network" {
                n["path"] = format!("/proc/{pid}/ns/net").into();
            }
        }
    });
    let out = ok(b.run_with(BERTH));
    let want_net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(out, format!("sleep 1000 \n{}\n", want_net.display()));
}

#[test]
fn no_pivot_runs_the_same_container() {
    let env = Env::new(&[
        "sh",
        "-c",
        "cat /etc/hostname; ls /proc/self/fd | tr '\\n' ' '",
    ]);
    let id = env.id(BERTH);
    let out = ok(env.berth(&["run", "--no-pivot", "-b", env.bundle.to_str().unwrap(), &id]));
    assert_eq!(out, "from-image\n0 1 2 3 ");
}

#[test]
fn oom_score_adj_domainname_and_mount_flags() {
    let env = Env::new(&[
        "sh",
        "-c",
        "cat /proc/self/oom_score_adj; cat /proc/sys/kernel/domainname; awk '$5 == \"/scratch\" || $5 == \"/ro-bind\" {print $5, $6}' /proc/self/mountinfo; \
         touch /ro-bind/x 2>/dev/null || echo ro-ok; cp /bin/busybox /scratch/bb && /scratch/bb true 2>/dev/null || echo noexec-ok",
    ]);
    let host = env.dir.path().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    env.edit(|s| {
        s["process"]["oomScoreAdj"] = 123.into();
        s["domainname"] = "example.test".into();
        let m = s["mounts"].as_array_mut().unwrap();
        m.push(serde_json::json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "size=8m"]}));
        m.push(serde_json::json!({"destination": "/ro-bind", "type": "bind", "source": host, "options": ["rbind", "ro", "nosuid"]}));
    });
    let out = ok(env.run_with(BERTH));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "123");
    assert_eq!(lines[1], "example.test");
    assert!(
        lines.contains(&"/scratch rw,nosuid,nodev,noexec,relatime"),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("/ro-bind ro,nosuid")),
        "{out}"
    );
    assert!(
        lines.contains(&"ro-ok") && lines.contains(&"noexec-ok"),
        "{out}"
    );
    // crun agrees on all of it (runc 1.1.5 predates `domainname` support: it leaves "(none)")
    let crun = env.crun();
    assert_eq!(out, ok(env.run_with(&crun)));
}

#[test]
fn rlimit_above_hard_limit_is_a_clear_error() {
    let env = Env::new(&["true"]);
    env.edit(|s| {
        s["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 1048576, "soft": 1048576}])
    });
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    if hard.is_none_or(|h| h >= 1048576) {
        // a host that allows it: nothing to refuse
        ok(env.run_with(BERTH));
        return;
    }
    let o = env.run_with(BERTH);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("RLIMIT_NOFILE") && err.contains("CAP_SYS_RESOURCE"),
        "{err}"
    );
}

#[test]
fn shared_rootfs_propagation_still_pivots() {
    let env = Env::new(&[
        "sh",
        "-c",
        "awk '$5 == \"/\" {print $7}' /proc/self/mountinfo | cut -d: -f1",
    ]);
    env.edit(|s| s["linux"]["rootfsPropagation"] = "rshared".into());
    // pivot_root needs the rootfs' parent mount private; the container still starts and
    // its root's propagation is what runc gives it
    let out = ok(env.run_with(BERTH));
    assert_eq!(out, ok(env.run_with("runc")));
}

#[test]
fn session_keyring_is_new_unless_no_new_keyring() {
    let env = Env::new(&["sh", "-c", "grep -o '_ses[^ :]*' /proc/keys || true"]);
    // /proc/keys is masked by the default spec: unmask it to look
    env.edit(|s| {
        let masked: Vec<serde_json::Value> = s["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| *p != "/proc/keys")
            .cloned()
            .collect();
        s["linux"]["maskedPaths"] = masked.into();
    });
    let id = env.id(BERTH);
    let out = ok(env.berth(&["run", "-b", env.bundle.to_str().unwrap(), &id]));
    assert!(out.lines().any(|l| l == format!("_ses.{id}")), "{out}");
    let id2 = env.id(BERTH);
    let out = ok(env.berth(&[
        "run",
        "--no-new-keyring",
        "-b",
        env.bundle.to_str().unwrap(),
        &id2,
    ]));
    assert!(!out.contains(&id2), "{out}");
}
