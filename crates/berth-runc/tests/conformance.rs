//! Conformance: the same bundle runs under berth-runc and runc (as installed) and a
//! busybox script reports what it sees; both must agree, and the values are asserted.

mod common;
use common::*;

const PROBE: &str = r#"
echo "hostname=$(hostname)"
echo "pid=$$"
echo "id=$(id)"
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status
for m in / /proc /sys /dev /dev/pts /dev/shm /proc/sys; do
  awk -v m="$m" '$5 == m { split($6, o, ","); print "mount " m " " o[1] }' /proc/self/mountinfo | tail -n1
done
echo "nofile=$(ulimit -n)"
echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
echo "devices=$(ls /dev | sort | tr '\n' ' ')"
echo "kcore_bytes=$(wc -c < /proc/kcore 2>/dev/null || echo none)"
echo "keys_bytes=$(wc -c < /proc/keys)"
echo "firmware=$(ls /sys/firmware | wc -l)"
echo "umask=$(umask)"
echo "cwd=$(pwd)"
echo "fds=$(ls /proc/self/fd | tr '\n' ' ')"
"#;

fn probe_env() -> Env {
    let env = Env::new(&["sh", "-c", PROBE]);
    env.edit(|s| {
        s["hostname"] = "conformance".into();
        s["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
        s["process"]["rlimits"] =
            serde_json::json!([{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 2048}]);
        s["process"]["user"] =
            serde_json::json!({"uid": 65534, "gid": 65534, "additionalGids": [5], "umask": 18});
        s["process"]["cwd"] = "/tmp".into();
    });
    env
}

fn report(o: &std::process::Output) -> Vec<String> {
    assert!(
        o.status.success(),
        "probe failed: {}\n{}",
        stdout(o),
        stderr(o)
    );
    stdout(o).lines().map(str::to_string).collect()
}

#[test]
fn probe_values_are_as_specified() {
    let env = probe_env();
    let r = report(&env.run_with(BERTH));
    let has = |l: &str| assert!(r.iter().any(|x| x == l), "missing {l:?} in {r:#?}");
    has("hostname=conformance");
    has("pid=1");
    has("id=uid=65534(nobody) gid=65534(nobody) groups=5(tty)");
    // CAP_AUDIT_WRITE, CAP_KILL, CAP_NET_BIND_SERVICE only; not root, so not effective
    has("CapBnd:\t0000000020000420");
    has("CapEff:\t0000000000000000");
    has("NoNewPrivs:\t1");
    has("Seccomp:\t0");
    has("mount / ro");
    has("mount /sys ro");
    has("mount /proc/sys ro");
    has("nofile=2048");
    has("ip_forward=1");
    has("devices=fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero ");
    has("keys_bytes=0");
    has("firmware=0");
    has("umask=0022");
    has("cwd=/tmp");
    // ls's own directory fd is 3; nothing else of the host
    has("fds=0 1 2 3 ");
}

#[test]
fn berth_agrees_with_runc() {
    let env = probe_env();
    let ours = report(&env.run_with(BERTH));
    let runc = report(&env.run_with("runc"));
    assert_eq!(ours, runc, "berth-runc and runc see different containers");
}

#[test]
fn seccomp_errno_and_caps_agree_with_runc() {
    let env = Env::new(&[
        "sh",
        "-c",
        "mkdir /tmp/x; echo rc=$?; grep -E '^(Seccomp|CapEff|CapAmb):' /proc/self/status",
    ]);
    env.edit(|s| {
        s["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
        s["root"]["readonly"] = false.into();
        let caps = serde_json::json!(["CAP_CHOWN", "CAP_NET_RAW", "CAP_KILL"]);
        s["process"]["capabilities"] = serde_json::json!({
            "bounding": caps, "effective": caps, "permitted": caps, "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]
        });
    });
    let ours = report(&env.run_with(BERTH));
    assert!(
        ours.contains(&"rc=1".to_string()) && ours.contains(&"Seccomp:\t2".to_string()),
        "{ours:?}"
    );
    assert!(
        ours.contains(&"CapEff:\t0000000000002021".to_string())
            && ours.contains(&"CapAmb:\t0000000000000020".to_string()),
        "{ours:?}"
    );
    let runc = report(&env.run_with("runc"));
    assert_eq!(ours, runc);
}

#[test]
fn berth_agrees_with_crun() {
    let env = probe_env();
    let ours = report(&env.run_with(BERTH));
    let crun = env.crun();
    // Known, deliberate difference: crun always creates the /dev/core -> /proc/kcore
    // symlink; runc (and berth-runc) only when /proc/kcore exists, which it does not here.
    let theirs: Vec<String> = report(&env.run_with(&crun))
        .into_iter()
        .map(|l| l.replace("devices=core ", "devices="))
        .collect();
    assert_eq!(ours, theirs, "berth-runc and crun see different containers");
}
