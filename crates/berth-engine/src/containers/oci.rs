//! The one place a [`ContainerSpec`] (plus the image config) becomes an OCI runtime spec,
//! with Docker's defaults (moby `daemon/oci_linux.go`, `oci/defaults.go`).

use std::path::Path;

use berth_types::spec::{ContainerSpec, NetworkMode, normalize_cap};
use serde_json::{Value, json};

/// The capabilities Docker grants by default (moby `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Capability names by number (linux/capability.h).
pub use berth_runtime::CAP_NAMES;

/// Docker's masked paths (moby `oci/defaults.go`).
pub const MASKED_PATHS: [&str; 10] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
];

/// Docker's read-only paths.
pub const READONLY_PATHS: [&str; 6] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
    "/sys/firmware",
];

/// The `PATH` Docker sets when the image has none.
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// /dev/shm's size: 64 MiB, as Docker's default `--shm-size`.
pub const SHM_SIZE: u64 = 64 * 1024 * 1024;

/// Why a spec could not be built.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// Neither the spec nor the image gives a command.
    #[error("no command specified")]
    NoCommand,
    /// A user name is not in the image's /etc/passwd.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoSuchUser(String),
    /// A group name is not in the image's /etc/group.
    #[error("unable to find group {0}: no matching entries in group file")]
    NoSuchGroup(String),
}

/// What [`build`] derives besides the spec: the command line and environment as
/// `inspect` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The OCI spec (config.json).
    pub spec: Value,
    /// `Path` (args[0]).
    pub path: String,
    /// `Args` (the rest).
    pub args: Vec<String>,
    /// The environment.
    pub env: Vec<String>,
    /// The working directory.
    pub workdir: String,
    /// The effective `Cmd` and `Entrypoint` (spec's or image's).
    pub cmd: Vec<String>,
    /// The effective entrypoint.
    pub entrypoint: Vec<String>,
}

fn strs(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The command line Docker runs: entrypoint + cmd, where an explicit entrypoint from
/// the user drops the image's cmd (a Docker quirk we copy).
pub fn command_line(spec: &ContainerSpec, image_config: &Value) -> (Vec<String>, Vec<String>) {
    let img = image_config.get("config").unwrap_or(&Value::Null);
    let entrypoint = match &spec.entrypoint {
        Some(e) => e.clone(),
        None => strs(img.get("Entrypoint")),
    };
    let cmd = if !spec.cmd.is_empty() {
        spec.cmd.clone()
    } else if spec.entrypoint.is_some() {
        Vec::new()
    } else {
        strs(img.get("Cmd"))
    };
    (entrypoint, cmd)
}

/// Merges the image's environment with the spec's (later wins by name), adding PATH
/// when neither has one.
pub fn environment(spec: &ContainerSpec, image_config: &Value) -> Vec<String> {
    let img = image_config.get("config").unwrap_or(&Value::Null);
    let mut out: Vec<String> = Vec::new();
    for e in strs(img.get("Env"))
        .into_iter()
        .chain(spec.env.iter().cloned())
    {
        let key = e.split('=').next().unwrap_or_default().to_owned();
        out.retain(|o| o.split('=').next() != Some(key.as_str()));
        out.push(e);
    }
    if !out.iter().any(|e| e.starts_with("PATH=")) {
        out.insert(0, DEFAULT_PATH.to_owned());
    }
    if spec.tty && !out.iter().any(|e| e.starts_with("TERM=")) {
        out.push("TERM=xterm".to_owned());
    }
    out
}

fn lookup(file: &Path, name: &str, field: usize) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
        .find(|f| f.first().map(String::as_str) == Some(name) && f.len() > field)
}

/// `user[:group]` → (uid, gid), names looked up in the rootfs' /etc/passwd and /etc/group.
pub fn resolve_user(user: &str, rootfs: &Path) -> Result<(u32, u32), OciError> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, mut gid) = if u.is_empty() {
        (0, 0)
    } else if let Ok(n) = u.parse::<u32>() {
        let gid = lookup(&rootfs.join("etc/passwd"), u, 3)
            .and_then(|f| f[3].parse().ok())
            .or_else(|| {
                // a numeric uid: find its entry by number for the primary group
                let text = std::fs::read_to_string(rootfs.join("etc/passwd")).ok()?;
                text.lines()
                    .map(|l| l.split(':').collect::<Vec<_>>())
                    .find(|f| f.len() > 3 && f[2] == u)
                    .and_then(|f| f[3].parse().ok())
            })
            .unwrap_or(0);
        (n, gid)
    } else {
        let f = lookup(&rootfs.join("etc/passwd"), u, 3)
            .ok_or_else(|| OciError::NoSuchUser(u.to_owned()))?;
        (f[2].parse().unwrap_or(0), f[3].parse().unwrap_or(0))
    };
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(&rootfs.join("etc/group"), g, 2)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| OciError::NoSuchGroup(g.to_owned()))?,
        };
    }
    Ok((uid, gid))
}

/// The capability set: Docker's defaults (or every capability in `bounding` when
/// privileged), then `cap_add`, then `cap_drop`.
pub fn capabilities(spec: &ContainerSpec, bounding: u64) -> Vec<String> {
    let all: Vec<String> = CAP_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bounding & (1u64 << i) != 0)
        .map(|(_, n)| (*n).to_owned())
        .collect();
    let mut caps: Vec<String> = if spec.privileged {
        all.clone()
    } else {
        DEFAULT_CAPS.iter().map(|c| (*c).to_owned()).collect()
    };
    for c in spec.cap_add.iter().map(|c| normalize_cap(c)) {
        if c == "ALL" {
            caps = all.clone();
        } else if !caps.contains(&c) {
            caps.push(c);
        }
    }
    for c in spec.cap_drop.iter().map(|c| normalize_cap(c)) {
        if c == "ALL" {
            caps.clear();
        } else {
            caps.retain(|x| *x != c);
        }
    }
    caps
}

/// The daemon's own bounding set (what `--privileged` can grant; this sandbox lacks
/// CAP_SYS_RESOURCE, so it is left out as Podman does).
pub fn own_bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Appends the bind mounts of the container's /etc/hostname, /etc/hosts and
/// /etc/resolv.conf (written by [`super::etcfiles::write`]) to an OCI spec.
pub fn add_etc_mounts(spec: &mut Value, paths: &super::etcfiles::EtcPaths) {
    if let Some(m) = spec.get_mut("mounts").and_then(Value::as_array_mut) {
        m.extend(paths.mounts());
    }
}

/// Builds the OCI spec for container `id` whose merged rootfs is `rootfs`.
pub fn build(
    id: &str,
    spec: &ContainerSpec,
    image_config: &Value,
    rootfs: &Path,
    bounding: u64,
) -> Result<Resolved, OciError> {
    let img = image_config.get("config").unwrap_or(&Value::Null);
    let (entrypoint, cmd) = command_line(spec, image_config);
    let argv: Vec<String> = entrypoint.iter().chain(&cmd).cloned().collect();
    if argv.is_empty() {
        return Err(OciError::NoCommand);
    }
    let env = environment(spec, image_config);
    let workdir = if !spec.workdir.is_empty() {
        spec.workdir.clone()
    } else {
        img.get("WorkingDir")
            .and_then(Value::as_str)
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_owned()
    };
    let user = if !spec.user.is_empty() {
        spec.user.as_str()
    } else {
        img.get("User").and_then(Value::as_str).unwrap_or("")
    };
    let (uid, gid) = resolve_user(user, rootfs)?;
    let caps = capabilities(spec, bounding);
    let hostname = super::etcfiles::hostname(id, spec);
    let sys_opts = if spec.privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let mounts = json!([
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={SHM_SIZE}")]},
    ]);
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if spec.network == NetworkMode::None {
        namespaces.push(json!({"type": "network"}));
    }
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    let r = &spec.resources;
    if r.memory > 0 {
        resources["memory"] = json!({"limit": r.memory});
    }
    if r.pids_limit > 0 {
        resources["pids"] = json!({"limit": r.pids_limit});
    }
    if r.nano_cpus > 0 {
        // Docker: quota = NanoCpus * period / 1e9 with a 100 ms period
        resources["cpu"] = json!({"quota": r.nano_cpus / 10_000, "period": 100_000});
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources,
        "cgroupsPath": format!("berth/{id}"),
    });
    if !spec.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    let spec_json = json!({
        "ociVersion": "1.1.0",
        "process": {
            "terminal": spec.tty,
            "user": {"uid": uid, "gid": gid},
            "args": argv,
            "env": env,
            "cwd": workdir,
            "capabilities": {
                "bounding": caps,
                "effective": caps,
                "permitted": caps,
            },
            "noNewPrivileges": false,
        },
        "root": {"path": rootfs, "readonly": spec.read_only},
        "hostname": hostname,
        "mounts": mounts,
        "linux": linux,
    });
    Ok(Resolved {
        spec: spec_json,
        path: argv[0].clone(),
        args: argv[1..].to_vec(),
        env,
        workdir,
        cmd,
        entrypoint,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Value {
        json!({"config": {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"], "WorkingDir": ""}})
    }

    fn spec() -> ContainerSpec {
        ContainerSpec {
            image: "busybox".into(),
            ..Default::default()
        }
    }

    #[test]
    fn docker_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let id = "0123456789abcdef0123";
        let r = build(id, &spec(), &image(), dir.path(), u64::MAX).unwrap();
        let s = &r.spec;
        assert_eq!(s["hostname"], "0123456789ab");
        assert_eq!(s["process"]["args"], json!(["sh"]));
        assert_eq!(s["process"]["cwd"], "/");
        assert_eq!(
            s["process"]["capabilities"]["bounding"],
            json!(DEFAULT_CAPS)
        );
        assert_eq!(s["linux"]["cgroupsPath"], format!("berth/{id}"));
        assert_eq!(s["linux"]["maskedPaths"], json!(MASKED_PATHS));
        let shm = s["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/dev/shm")
            .unwrap();
        assert!(
            shm["options"]
                .as_array()
                .unwrap()
                .contains(&json!("size=67108864"))
        );
        assert!(
            s["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .contains(&json!({"type": "network"}))
        );
        assert_eq!(r.env, vec!["PATH=/bin".to_string(), "A=1".into()]);
    }

    #[test]
    fn entrypoint_env_user_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "daemon:x:1:\n").unwrap();
        let mut s = spec();
        s.entrypoint = Some(vec!["/bin/echo".into()]);
        s.env = vec!["A=2".into()];
        s.user = "nobody:daemon".into();
        s.network = NetworkMode::Host;
        s.resources.memory = 64 << 20;
        s.resources.pids_limit = 10;
        s.resources.nano_cpus = 500_000_000;
        s.cap_drop = vec!["kill".into()];
        s.cap_add = vec!["net_admin".into()];
        let r = build("abc", &s, &image(), dir.path(), u64::MAX).unwrap();
        // an explicit entrypoint drops the image's cmd
        assert_eq!(r.spec["process"]["args"], json!(["/bin/echo"]));
        assert_eq!(r.env, vec!["PATH=/bin".to_string(), "A=2".into()]);
        assert_eq!(r.spec["process"]["user"], json!({"uid": 65534, "gid": 1}));
        assert_eq!(r.spec["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(r.spec["linux"]["resources"]["pids"]["limit"], 10);
        assert_eq!(r.spec["linux"]["resources"]["cpu"]["quota"], 50_000);
        let caps = r.spec["process"]["capabilities"]["effective"]
            .as_array()
            .unwrap();
        assert!(caps.contains(&json!("CAP_NET_ADMIN")));
        assert!(!caps.contains(&json!("CAP_KILL")));
        assert!(
            !r.spec["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .contains(&json!({"type": "network"}))
        );
        s.user = "ghost".into();
        let e = build("abc", &s, &image(), dir.path(), u64::MAX).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unable to find user ghost: no matching entries in passwd file"
        );
    }

    #[test]
    fn privileged_gets_the_bounding_set_and_no_masks() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec();
        s.privileged = true;
        // everything but CAP_SYS_RESOURCE (24)
        let bounding = ((1u64 << 41) - 1) & !(1 << 24);
        let r = build("abc", &s, &image(), dir.path(), bounding).unwrap();
        let caps = r.spec["process"]["capabilities"]["bounding"]
            .as_array()
            .unwrap();
        assert_eq!(caps.len(), 40);
        assert!(!caps.contains(&json!("CAP_SYS_RESOURCE")));
        assert!(r.spec["linux"].get("maskedPaths").is_none());
        let mut s = spec();
        s.cmd.clear();
        let e = build("abc", &s, &json!({"config": {}}), dir.path(), 0).unwrap_err();
        assert!(matches!(e, OciError::NoCommand));
    }

    #[test]
    fn etc_files_are_rw_bind_mounts_even_with_a_read_only_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec();
        s.read_only = true;
        let mut r = build("abc", &s, &image(), dir.path(), 0).unwrap();
        add_etc_mounts(
            &mut r.spec,
            &super::super::etcfiles::EtcPaths::new(dir.path()),
        );
        let mounts = r.spec["mounts"].as_array().unwrap();
        for dest in ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"] {
            let m = mounts.iter().find(|m| m["destination"] == dest).unwrap();
            assert_eq!(m["type"], "bind");
            assert!(!m["options"].as_array().unwrap().contains(&json!("ro")));
        }
        assert_eq!(r.spec["root"]["readonly"], true);
    }
}
