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
    /// `--init` without an init binary on the host.
    #[error("--init: no init binary found (looked for {}); install tini", INIT_CANDIDATES.join(", "))]
    NoInit,
    /// A `--ulimit` hard limit above the daemon's own without CAP_SYS_RESOURCE.
    #[error(
        "ulimit {name}: hard limit {hard} is above the daemon's own hard limit {own} (raising it needs CAP_SYS_RESOURCE)"
    )]
    UlimitAboveOwn {
        /// The rlimit.
        name: String,
        /// As asked.
        hard: i64,
        /// The daemon's.
        own: u64,
    },
    /// A `--device` that cannot be used.
    #[error("error gathering device information while adding custom device {path:?}: {why}")]
    Device {
        /// The host path.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// Another run option cannot be applied.
    #[error("{0}")]
    Run(String),
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
    // bridge/named/container: a new namespace here, pointed at the one the engine made
    // and plumbed by `net::net_patch_oci`
    if spec.network != NetworkMode::Host {
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
        // relative: under the daemon's own cgroup, never from a hierarchy's root
        "cgroupsPath": format!("{}/{id}", spec.run.cgroup_parent_dir()),
    });
    if !spec.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
    }
    let mut spec_json = json!({
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
    apply_run_options(&mut spec_json, spec, rootfs)?;
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

/// Where `--init` finds its init (Docker's `docker-init` is tini); a static build first,
/// since it runs inside any image.
pub const INIT_CANDIDATES: [&str; 5] = [
    "/usr/bin/tini-static",
    "/usr/bin/docker-init",
    "/usr/libexec/docker/docker-init",
    "/usr/bin/catatonit",
    "/usr/bin/tini",
];

/// Where Docker puts the init inside the container.
pub const INIT_PATH: &str = "/sbin/docker-init";

/// The init binary `--init` uses, if one is installed.
pub fn init_binary() -> Option<std::path::PathBuf> {
    INIT_CANDIDATES
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
}

const LIMIT_ROWS: [(&str, &str); 16] = [
    ("cpu", "Max cpu time"),
    ("fsize", "Max file size"),
    ("data", "Max data size"),
    ("stack", "Max stack size"),
    ("core", "Max core file size"),
    ("rss", "Max resident set"),
    ("nproc", "Max processes"),
    ("nofile", "Max open files"),
    ("memlock", "Max locked memory"),
    ("as", "Max address space"),
    ("locks", "Max file locks"),
    ("sigpending", "Max pending signals"),
    ("msgqueue", "Max msgqueue size"),
    ("nice", "Max nice priority"),
    ("rtprio", "Max realtime priority"),
    ("rttime", "Max realtime timeout"),
];

/// The daemon's own hard limit for an rlimit name (`u64::MAX` = unlimited), from
/// /proc/self/limits.
pub fn own_hard_limit(name: &str) -> Option<u64> {
    let row = LIMIT_ROWS.iter().find(|(n, _)| *n == name)?.1;
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with(row))?;
    let hard = line[row.len()..].split_whitespace().nth(1)?;
    if hard == "unlimited" {
        Some(u64::MAX)
    } else {
        hard.parse().ok()
    }
}

fn own_effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn rlimit_value(v: i64) -> u64 {
    if v < 0 { u64::MAX } else { v as u64 }
}

/// Linux `major`/`minor` of a `dev_t`.
fn dev_major_minor(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major, minor)
}

/// One host device node as OCI `linux.devices` and `resources.devices` entries.
fn device_entries(host: &Path, in_ctr: &str, perms: &str) -> Result<(Value, Value), OciError> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let md = std::fs::metadata(host).map_err(|e| OciError::Device {
        path: host.display().to_string(),
        why: e.to_string(),
    })?;
    let kind = if md.file_type().is_char_device() {
        "c"
    } else if md.file_type().is_block_device() {
        "b"
    } else {
        return Err(OciError::Device {
            path: host.display().to_string(),
            why: "not a device node".into(),
        });
    };
    let (major, minor) = dev_major_minor(md.rdev());
    Ok((
        json!({"path": in_ctr, "type": kind, "major": major, "minor": minor,
               "fileMode": md.mode() & 0o7777, "uid": md.uid(), "gid": md.gid()}),
        json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": perms}),
    ))
}

/// Every device node under the host's /dev (what `--privileged` gets, as Docker's
/// `HostDevices`), skipping pty and shm mounts.
fn host_devices() -> Vec<Value> {
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/dev")];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if ![
                    "/dev/pts",
                    "/dev/shm",
                    "/dev/mqueue",
                    "/dev/.lxc",
                    "/dev/.udev",
                ]
                .contains(&p.to_str().unwrap_or_default())
                {
                    stack.push(p);
                }
                continue;
            }
            if p == Path::new("/dev/console") || p == Path::new("/dev/ptmx") {
                continue;
            }
            if let Ok((d, _)) = device_entries(&p, &p.display().to_string(), "rwm") {
                out.push(d);
            }
        }
    }
    out
}

fn resolve_group(g: &str, rootfs: &Path) -> Result<u32, OciError> {
    if let Ok(n) = g.parse::<u32>() {
        return Ok(n);
    }
    lookup(&rootfs.join("etc/group"), g, 2)
        .and_then(|f| f[2].parse().ok())
        .ok_or_else(|| OciError::NoSuchGroup(g.to_owned()))
}

/// Applies [`berth_types::run::RunOptions`] (and `--privileged`'s devices and seccomp)
/// to a built OCI spec: init, ulimits, /dev/shm size, no_new_privs, seccomp, host
/// namespaces, cgroup resources, domain name, extra groups, devices.
pub fn apply_run_options(
    oci: &mut Value,
    spec: &ContainerSpec,
    rootfs: &Path,
) -> Result<(), OciError> {
    use berth_types::run::{NsMode, SeccompChoice, SecurityOpts};
    let o = &spec.run;
    if o.init {
        let bin = init_binary().ok_or(OciError::NoInit)?;
        if let Some(args) = oci["process"]["args"].as_array().cloned() {
            let mut a = vec![json!(INIT_PATH), json!("--")];
            a.extend(args);
            oci["process"]["args"] = json!(a);
        }
        if let Some(m) = oci["mounts"].as_array_mut() {
            m.push(
                json!({"destination": INIT_PATH, "type": "bind", "source": bin,
                          "options": ["rbind", "ro", "nosuid", "nodev"]}),
            );
        }
    }
    if !o.ulimits.is_empty() {
        let can_raise = own_effective_caps() & (1 << 24) != 0;
        let mut rl = Vec::new();
        for u in &o.ulimits {
            let hard = rlimit_value(u.hard);
            if !can_raise
                && let Some(own) = own_hard_limit(&u.name)
                && hard > own
            {
                return Err(OciError::UlimitAboveOwn {
                    name: u.name.clone(),
                    hard: u.hard,
                    own,
                });
            }
            rl.push(
                json!({"type": format!("RLIMIT_{}", u.name.to_ascii_uppercase()),
                           "soft": rlimit_value(u.soft), "hard": hard}),
            );
        }
        oci["process"]["rlimits"] = json!(rl);
    }
    let sec = SecurityOpts::parse(&o.security_opt).map_err(|e| OciError::Run(e.to_string()))?;
    if sec.no_new_privileges {
        oci["process"]["noNewPrivileges"] = json!(true);
    }
    let seccomp = match (&sec.seccomp, spec.privileged) {
        (SeccompChoice::Unconfined, _) | (SeccompChoice::Default, true) => None,
        (SeccompChoice::Default, false) => Some(super::seccomp::default_profile()),
        (SeccompChoice::Profile(text), _) => {
            Some(super::seccomp::parse_profile(text).map_err(|e| OciError::Run(e.to_string()))?)
        }
    };
    if let Some(p) = seccomp {
        let caps: Vec<String> = strs(oci["process"]["capabilities"].get("bounding"));
        oci["linux"]["seccomp"] =
            super::seccomp::to_oci(&p, &caps).map_err(|e| OciError::Run(e.to_string()))?;
    }
    // /dev/shm: its size, or the host's with --ipc host (as Docker binds it)
    if let Some(m) = oci["mounts"].as_array_mut()
        && let Some(shm) = m.iter_mut().find(|m| m["destination"] == "/dev/shm")
    {
        if o.ipc_mode == NsMode::Host {
            *shm = json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                          "options": ["rbind", "nosuid", "noexec", "nodev"]});
        } else if o.shm_size > 0 {
            shm["options"] = json!([
                "nosuid",
                "noexec",
                "nodev",
                "mode=1777",
                format!("size={}", o.shm_size)
            ]);
        }
    }
    let drop_ns = |oci: &mut Value, kind: &str| {
        if let Some(ns) = oci["linux"]["namespaces"].as_array_mut() {
            ns.retain(|n| n["type"] != kind);
        }
    };
    if o.pid_mode == NsMode::Host {
        drop_ns(oci, "pid");
    }
    if o.ipc_mode == NsMode::Host {
        drop_ns(oci, "ipc");
    }
    if o.uts_mode == NsMode::Host {
        drop_ns(oci, "uts");
        if let Some(obj) = oci.as_object_mut() {
            obj.remove("hostname");
        }
    } else if !o.domainname.is_empty() {
        oci["domainname"] = json!(o.domainname);
    }
    // sysctls, in the container's own namespaces only
    if !o.sysctls.is_empty() {
        // (keys outside the container's namespaces were refused at create: validate)
        for k in o.sysctls.keys() {
            if k.starts_with("net.") && spec.network == NetworkMode::Host {
                return Err(OciError::Run(format!(
                    "sysctl '{k}' is not allowed in the host network namespace"
                )));
            }
            if berth_types::run::is_ipc_sysctl(k) && o.ipc_mode == NsMode::Host {
                return Err(OciError::Run(format!(
                    "sysctl '{k}' is not allowed in the host IPC namespace"
                )));
            }
        }
        oci["linux"]["sysctl"] = json!(o.sysctls);
    }
    if o.oom_score_adj != 0 {
        oci["process"]["oomScoreAdj"] = json!(o.oom_score_adj);
    }
    // cgroup resources
    let r = &mut oci["linux"]["resources"];
    if o.memory_reservation > 0 {
        if spec.resources.memory > 0 && spec.resources.memory < o.memory_reservation {
            return Err(OciError::Run(
                "Minimum memory limit can not be less than memory reservation limit, see usage"
                    .into(),
            ));
        }
        r["memory"]["reservation"] = json!(o.memory_reservation);
    }
    if o.memory_swap != 0 {
        r["memory"]["swap"] = json!(o.memory_swap);
    }
    if o.oom_kill_disable {
        r["memory"]["disableOOMKiller"] = json!(true);
    }
    if o.cpu_shares > 0 {
        r["cpu"]["shares"] = json!(o.cpu_shares);
    }
    if !o.cpuset_cpus.is_empty() {
        r["cpu"]["cpus"] = json!(o.cpuset_cpus);
    }
    if !o.cpuset_mems.is_empty() {
        r["cpu"]["mems"] = json!(o.cpuset_mems);
    }
    if o.cpu_period > 0 {
        if spec.resources.nano_cpus > 0 {
            return Err(OciError::Run(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
            ));
        }
        r["cpu"]["period"] = json!(o.cpu_period);
    }
    if o.cpu_quota != 0 {
        if spec.resources.nano_cpus > 0 {
            return Err(OciError::Run(
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set".into(),
            ));
        }
        r["cpu"]["quota"] = json!(o.cpu_quota);
    }
    if !o.group_add.is_empty() {
        let gids = o
            .group_add
            .iter()
            .map(|g| resolve_group(g, rootfs))
            .collect::<Result<Vec<u32>, _>>()?;
        oci["process"]["user"]["additionalGids"] = json!(gids);
    }
    let mut devs = Vec::new();
    let mut rules = Vec::new();
    if spec.privileged {
        devs = host_devices();
        rules.push(json!({"allow": true, "access": "rwm"}));
    }
    for d in &o.devices {
        let (dev, rule) = device_entries(
            Path::new(&d.path_on_host),
            &d.path_in_container,
            &d.cgroup_permissions,
        )?;
        devs.retain(|x| x["path"] != dev["path"]);
        devs.push(dev);
        rules.push(rule);
    }
    if !devs.is_empty() {
        oci["linux"]["devices"] = json!(devs);
    }
    if !rules.is_empty()
        && let Some(list) = oci["linux"]["resources"]["devices"].as_array_mut()
    {
        list.extend(rules);
    }
    Ok(())
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
