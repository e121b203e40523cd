//! The user process's identity and limits: rlimits, user/groups, the five capability
//! sets, no_new_privs, seccomp, and the executable lookup.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use oci_spec::runtime::{Capabilities, LinuxSeccomp, PosixRlimit, Process};

use crate::error::{InitError, Stage};

type R<T> = Result<T, InitError>;

fn errno(e: rustix::io::Errno) -> std::io::Error {
    e.into()
}

/// Kernel resource number of an OCI rlimit type (`RLIMIT_NOFILE` → 7).
pub fn rlimit_resource(r: &PosixRlimit) -> Option<rustix::process::Resource> {
    use rustix::process::Resource as Res;
    let name = serde_json::to_value(r.typ()).ok()?.as_str()?.to_string();
    Some(match name.as_str() {
        "RLIMIT_CPU" => Res::Cpu,
        "RLIMIT_FSIZE" => Res::Fsize,
        "RLIMIT_DATA" => Res::Data,
        "RLIMIT_STACK" => Res::Stack,
        "RLIMIT_CORE" => Res::Core,
        "RLIMIT_RSS" => Res::Rss,
        "RLIMIT_NPROC" => Res::Nproc,
        "RLIMIT_NOFILE" => Res::Nofile,
        "RLIMIT_MEMLOCK" => Res::Memlock,
        "RLIMIT_AS" => Res::As,
        "RLIMIT_LOCKS" => Res::Locks,
        "RLIMIT_SIGPENDING" => Res::Sigpending,
        "RLIMIT_MSGQUEUE" => Res::Msgqueue,
        "RLIMIT_NICE" => Res::Nice,
        "RLIMIT_RTPRIO" => Res::Rtprio,
        "RLIMIT_RTTIME" => Res::Rttime,
        _ => return None,
    })
}

/// Apply the spec's rlimits. Raising a hard limit needs CAP_SYS_RESOURCE; without it the
/// kernel says EPERM and we report which limit and values were refused.
pub fn set_rlimits(limits: &[PosixRlimit]) -> R<()> {
    for l in limits {
        let name = serde_json::to_value(l.typ())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let res = rlimit_resource(l).ok_or_else(|| {
            InitError::plain(Stage::Rlimits, None, format!("unknown rlimit type {name}"))
        })?;
        let lim = |v: u64| if v == u64::MAX { None } else { Some(v) };
        rustix::process::setrlimit(res, rustix::process::Rlimit { current: lim(l.soft()), maximum: lim(l.hard()) }).map_err(|e| {
            let cur = rustix::process::getrlimit(res);
            InitError::new(
                Stage::Rlimits,
                &errno(e),
                None,
                &format!(
                    "set {name} to soft {} hard {} (current hard limit {:?}; raising a hard limit needs CAP_SYS_RESOURCE)",
                    l.soft(),
                    l.hard(),
                    cur.maximum
                ),
            )
        })?;
    }
    Ok(())
}

/// Capability name ("CAP_CHOWN") → kernel index.
pub fn cap_index(cap: &oci_spec::runtime::Capability) -> Option<u8> {
    let name = serde_json::to_value(cap).ok()?.as_str()?.to_string();
    caps::Capability::from_str(&name).ok().map(|c| c.index())
}

fn cap_bits(set: &Option<Capabilities>) -> u64 {
    set.as_ref().map_or(0, |s| {
        s.iter()
            .filter_map(cap_index)
            .fold(0u64, |acc, i| acc | (1u64 << i))
    })
}

/// Drop the bounding set to what the spec allows (while we still hold CAP_SETPCAP).
pub fn drop_bounding(process: &Process) -> R<()> {
    let Some(c) = process.capabilities() else {
        return Ok(());
    };
    let keep = cap_bits(c.bounding());
    for cap in caps::all() {
        if keep & (1u64 << cap.index()) == 0
            && caps::has_cap(None, caps::CapSet::Bounding, cap).unwrap_or(false)
        {
            caps::drop(None, caps::CapSet::Bounding, cap).map_err(|e| {
                InitError::plain(
                    Stage::Capabilities,
                    None,
                    format!("drop {cap} from the bounding set: {e}"),
                )
            })?;
        }
    }
    Ok(())
}

/// Switch to the spec's uid/gid/groups keeping capabilities across the switch.
pub fn set_user(process: &Process, setgroups_allowed: bool) -> R<()> {
    let u = process.user();
    let e = |what: &'static str| {
        move |x: rustix::io::Errno| InitError::new(Stage::User, &errno(x), None, what)
    };
    rustix::thread::set_keep_capabilities(true).map_err(e("keep capabilities"))?;
    if setgroups_allowed {
        let groups: Vec<rustix::fs::Gid> = u
            .additional_gids()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|g| rustix::fs::Gid::from_raw(*g))
            .collect();
        rustix::thread::set_thread_groups(&groups).map_err(e("setgroups"))?;
    }
    let gid = rustix::fs::Gid::from_raw(u.gid());
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(|x| {
        InitError::new(
            Stage::User,
            &errno(x),
            None,
            &format!("setresgid {}", u.gid()),
        )
    })?;
    let uid = rustix::fs::Uid::from_raw(u.uid());
    rustix::thread::set_thread_res_uid(uid, uid, uid).map_err(|x| {
        InitError::new(
            Stage::User,
            &errno(x),
            None,
            &format!("setresuid {}", u.uid()),
        )
    })?;
    rustix::thread::set_keep_capabilities(false).map_err(e("clear keep capabilities"))?;
    if let Some(mask) = u.umask() {
        rustix::process::umask(rustix::fs::Mode::from_bits_truncate(mask));
    }
    Ok(())
}

/// Set effective/permitted/inheritable in one capset, then the ambient set.
pub fn set_capabilities(process: &Process) -> R<()> {
    use rustix::thread::{CapabilitySet, CapabilitySets};
    let Some(c) = process.capabilities() else {
        // no capabilities object: the process gets none
        return rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: CapabilitySet::empty(),
                permitted: CapabilitySet::empty(),
                inheritable: CapabilitySet::empty(),
            },
        )
        .map_err(|x| InitError::new(Stage::Capabilities, &errno(x), None, "capset"));
    };
    let sets = CapabilitySets {
        effective: CapabilitySet::from_bits_retain(cap_bits(c.effective())),
        permitted: CapabilitySet::from_bits_retain(cap_bits(c.permitted())),
        inheritable: CapabilitySet::from_bits_retain(cap_bits(c.inheritable())),
    };
    rustix::thread::set_capabilities(None, sets)
        .map_err(|x| InitError::new(Stage::Capabilities, &errno(x), None, "capset"))?;
    // the kernel only lets a capability into the ambient set when it is both permitted
    // and inheritable; runc skips the others the same way
    let amb = cap_bits(c.ambient()) & sets.permitted.bits() & sets.inheritable.bits();
    for cap in caps::all() {
        if amb & (1u64 << cap.index()) != 0 {
            caps::raise(None, caps::CapSet::Ambient, cap).map_err(|e| {
                InitError::plain(
                    Stage::Capabilities,
                    None,
                    format!("raise {cap} in the ambient set: {e}"),
                )
            })?;
        }
    }
    Ok(())
}

fn op_of(name: &str, value: u64) -> Option<libseccomp::ScmpCompareOp> {
    use libseccomp::ScmpCompareOp as O;
    Some(match name {
        "SCMP_CMP_NE" => O::NotEqual,
        "SCMP_CMP_LT" => O::Less,
        "SCMP_CMP_LE" => O::LessOrEqual,
        "SCMP_CMP_EQ" => O::Equal,
        "SCMP_CMP_GE" => O::GreaterEqual,
        "SCMP_CMP_GT" => O::Greater,
        "SCMP_CMP_MASKED_EQ" => O::MaskedEqual(value),
        _ => return None,
    })
}

fn enum_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action_of(
    name: &str,
    errno_ret: Option<u32>,
    default_errno: Option<u32>,
) -> Result<libseccomp::ScmpAction, String> {
    if name == "SCMP_ACT_NOTIFY" {
        return Err("seccomp action SCMP_ACT_NOTIFY is not supported (no listener support)".into());
    }
    let val = match name {
        "SCMP_ACT_ERRNO" => Some(errno_ret.or(default_errno).unwrap_or(libc::EPERM as u32) as i32),
        "SCMP_ACT_TRACE" => Some(errno_ret.or(default_errno).unwrap_or(libc::EPERM as u32) as i32),
        _ => None,
    };
    libseccomp::ScmpAction::from_str(name, val).map_err(|e| format!("seccomp action {name}: {e}"))
}

/// Compile the OCI seccomp profile to BPF with libseccomp (not loaded).
pub fn compile_seccomp(s: &LinuxSeccomp) -> Result<libseccomp::ScmpFilterContext, String> {
    compile_seccomp_as(s, true)
}

/// [`compile_seccomp`], with the binary tree layout allowed or not (tests compare both).
pub(crate) fn compile_seccomp_as(
    s: &LinuxSeccomp,
    tree: bool,
) -> Result<libseccomp::ScmpFilterContext, String> {
    let default = action_of(&enum_name(&s.default_action()), None, s.default_errno_ret())?;
    let mut f =
        libseccomp::ScmpFilterContext::new(default).map_err(|e| format!("seccomp init: {e}"))?;
    // no_new_privs is our decision (process.noNewPrivileges), not libseccomp's
    f.set_ctl_nnp(false)
        .map_err(|e| format!("seccomp nnp ctl: {e}"))?;
    // A binary tree over syscall numbers instead of one `jeq` per rule in a row (the
    // same decisions, libseccomp >= 2.5). What it saves is the load: for every syscall
    // number of every arch the kernel runs the program once to find the ones it always
    // allows (seccomp_cache_prepare), so a linear program of ~1,000 instructions (Docker's
    // profile, three arches) costs ~0.7 ms per container in `seccomp(2)`, the tree a
    // fraction. An older libseccomp keeps the linear form. Like runc (#3405), not for a
    // handful of rules: libseccomp < 2.5.4 drops the default action of a tree without
    // rules (seccomp/libseccomp#370).
    let names: usize = s
        .syscalls()
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .map(|r| r.names().len())
        .sum();
    if tree && names >= 8 {
        let _ = f.set_ctl_optimize(2);
    }
    for flag in s.flags().as_deref().unwrap_or(&[]) {
        use oci_spec::runtime::LinuxSeccompFilterFlag as F;
        match flag {
            F::SeccompFilterFlagLog => f.set_ctl_log(true).map(|_| ()),
            F::SeccompFilterFlagTsync => f.set_ctl_tsync(true).map(|_| ()),
            F::SeccompFilterFlagSpecAllow => f.set_ctl_ssb(true).map(|_| ()),
            // only meaningful with a notify listener, which we refuse below
            F::SeccompFilterFlagWaitKillableRecv => Ok(()),
        }
        .map_err(|e| format!("seccomp flag {}: {e}", enum_name(flag)))?;
    }
    if s.listener_path().is_some() {
        return Err("seccomp listenerPath (SCMP_ACT_NOTIFY agents) is not supported".into());
    }
    for a in s.architectures().as_deref().unwrap_or(&[]) {
        let name = enum_name(a);
        let arch = libseccomp::ScmpArch::from_str(&name)
            .map_err(|e| format!("seccomp architecture {name}: {e}"))?;
        if arch != libseccomp::ScmpArch::native() {
            f.add_arch(arch)
                .map_err(|e| format!("add seccomp architecture {name}: {e}"))?;
        }
    }
    for rule in s.syscalls().as_deref().unwrap_or(&[]) {
        let action = action_of(
            &enum_name(&rule.action()),
            rule.errno_ret(),
            s.default_errno_ret(),
        )?;
        if action == default {
            continue;
        }
        let mut conds = Vec::new();
        for a in rule.args().as_deref().unwrap_or(&[]) {
            let opn = enum_name(&a.op());
            let op = op_of(&opn, a.value()).ok_or_else(|| format!("seccomp operator {opn}"))?;
            let datum = if opn == "SCMP_CMP_MASKED_EQ" {
                a.value_two().unwrap_or(0)
            } else {
                a.value()
            };
            conds.push(libseccomp::ScmpArgCompare::new(a.index() as u32, op, datum));
        }
        for name in rule.names() {
            // names unknown to this kernel/libseccomp are skipped, as runc does
            let Ok(sc) = libseccomp::ScmpSyscall::from_name(name) else {
                continue;
            };
            f.add_rule_conditional(action, sc, &conds)
                .map_err(|e| format!("seccomp rule for {name}: {e}"))?;
        }
    }
    Ok(f)
}

/// Load a program prepared by the runtime before the clone (so profile errors surface in
/// the caller, and the BPF is generated once per profile, not in every child): a raw
/// `seccomp(2)`, no libseccomp and no allocation unless it fails.
pub fn load_seccomp(p: &crate::seccomp::SeccompProgram) -> R<()> {
    p.load()
        .map_err(|e| InitError::plain(Stage::Seccomp, None, format!("load seccomp filter: {e}")))
}

/// Reject spec features this runtime does not implement, instead of ignoring them.
pub fn check_supported(spec: &oci_spec::runtime::Spec) -> Result<(), String> {
    let mut bad = Vec::new();
    if let Some(l) = spec.linux() {
        for (set, name) in [
            (l.personality().is_some(), "linux.personality"),
            (l.intel_rdt().is_some(), "linux.intelRdt"),
            (l.time_offsets().is_some(), "linux.timeOffsets"),
            (l.net_devices().is_some(), "linux.netDevices"),
            (l.memory_policy().is_some(), "linux.memoryPolicy"),
        ] {
            if set {
                bad.push(name);
            }
        }
    }
    if let Some(p) = spec.process() {
        for (set, name) in [
            (p.scheduler().is_some(), "process.scheduler"),
            (p.io_priority().is_some(), "process.ioPriority"),
            (p.exec_cpu_affinity().is_some(), "process.execCPUAffinity"),
        ] {
            if set {
                bad.push(name);
            }
        }
        // like runc: a label is only an error when the host enforces that LSM
        let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.trim() == "Y");
        if p.apparmor_profile()
            .as_deref()
            .is_some_and(|v| !v.is_empty())
            && apparmor
        {
            bad.push("process.apparmorProfile (AppArmor is enabled on this host)");
        }
        if p.selinux_label().as_deref().is_some_and(|v| !v.is_empty())
            && std::path::Path::new("/sys/fs/selinux/enforce").exists()
        {
            bad.push("process.selinuxLabel (SELinux is enabled on this host)");
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "not supported by berth-runtime: {}",
            bad.join(", ")
        ))
    }
}

/// The env value of `key` in an OCI env list.
pub fn env_get<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Find `arg0` the way execvp would (inside the container's root), and check that it can
/// be executed: ENOENT when missing, EACCES when not an executable file.
pub fn lookup_exec(arg0: &str, env: &[String]) -> R<PathBuf> {
    let check = |p: &Path| -> Result<(), std::io::Error> {
        let md = std::fs::metadata(p)?;
        if md.is_dir() || md.permissions().mode() & 0o111 == 0 {
            return Err(std::io::Error::from_raw_os_error(libc::EACCES));
        }
        rustix::fs::access(p, rustix::fs::Access::EXEC_OK).map_err(errno)
    };
    if arg0.is_empty() {
        return Err(InitError::plain(Stage::Exec, None, "process.args is empty"));
    }
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return match check(&p) {
            Ok(()) => Ok(p),
            Err(e) => Err(InitError::new(
                Stage::Exec,
                &e,
                Some(arg0),
                &format!("exec {arg0:?}"),
            )),
        };
    }
    let mut denied = None;
    for dir in env_get(env, "PATH").unwrap_or(DEFAULT_PATH).split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(arg0);
        match check(&cand) {
            Ok(()) => return Ok(cand),
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => denied = Some(cand),
            Err(_) => {}
        }
    }
    if let Some(d) = denied {
        let e = std::io::Error::from_raw_os_error(libc::EACCES);
        return Err(InitError::new(
            Stage::Exec,
            &e,
            Some(&d.to_string_lossy()),
            &format!("exec {arg0:?}"),
        ));
    }
    let e = std::io::Error::from_raw_os_error(libc::ENOENT);
    Err(InitError::new(
        Stage::Exec,
        &e,
        Some(arg0),
        &format!("exec: {arg0:?}: executable file not found in $PATH"),
    ))
}

/// CVE-2019-5736: refuse to exec a file that is the runtime's own binary (e.g. via
/// `/proc/self/exe`, a bind mount or hard link of it), directly or as a `#!` interpreter
/// (the original exploit's `#!/proc/self/exe`): running it would let the container get a
/// handle on the host binary through `/proc/<pid>/exe` and overwrite it once we exit.
pub fn refuse_runtime_binary(path: &Path) -> R<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(me) = std::fs::metadata("/proc/self/exe") else {
        return Ok(());
    };
    let refuse = |p: &Path| {
        let e = std::io::Error::from_raw_os_error(libc::EPERM);
        Err(InitError::new(
            Stage::Exec,
            &e,
            Some(&p.to_string_lossy()),
            "refusing to execute the runtime binary inside the container",
        ))
    };
    let mut cur = path.to_path_buf();
    // the kernel follows at most 4 levels of interpreters (BINPRM_MAX_RECURSION)
    for _ in 0..5 {
        if cur == Path::new("/proc/self/exe")
            || cur.starts_with("/proc/self/fd")
            || cur.starts_with("/dev/fd")
        {
            return refuse(&cur);
        }
        let Ok(it) = std::fs::metadata(&cur) else {
            return Ok(());
        };
        if me.dev() == it.dev() && me.ino() == it.ino() {
            return refuse(&cur);
        }
        let mut head = [0u8; 256];
        let n = std::fs::File::open(&cur)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .unwrap_or(0);
        if n < 2 || &head[..2] != b"#!" {
            return Ok(());
        }
        let line = head[2..n].split(|b| *b == b'\n').next().unwrap_or(&[]);
        let text = String::from_utf8_lossy(line);
        let Some(interp) = text.split_whitespace().next() else {
            return Ok(());
        };
        cur = PathBuf::from(interp);
    }
    Ok(())
}

pub fn cstrings(v: &[String]) -> R<Vec<CString>> {
    v.iter()
        .map(|s| {
            CString::new(s.as_str()).map_err(|_| {
                InitError::plain(
                    Stage::Exec,
                    None,
                    format!("argument or env entry {s:?} contains NUL"),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_classifies_missing_and_non_executable() {
        let env = vec!["PATH=/bin:/usr/bin".to_string()];
        assert!(lookup_exec("sh", &env).is_ok());
        let e = lookup_exec("no-such-binary-berth", &env).unwrap_err();
        assert_eq!(e.exit_code(), Some(127));
        let e = lookup_exec("/etc/passwd", &env).unwrap_err();
        assert_eq!(e.exit_code(), Some(126));
        let e = lookup_exec("/etc", &env).unwrap_err();
        assert_eq!(e.exit_code(), Some(126));
    }

    #[test]
    fn env_lookup_takes_last() {
        let env = vec!["A=1".to_string(), "AB=2".to_string(), "A=3".to_string()];
        assert_eq!(env_get(&env, "A"), Some("3"));
        assert_eq!(env_get(&env, "B"), None);
    }

    #[test]
    fn seccomp_profile_compiles_with_args_and_arches() {
        let s: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [
                {"names": ["mkdir", "no_such_syscall_x"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        }))
        .unwrap();
        compile_seccomp(&s).unwrap();
        let notify: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }))
        .unwrap();
        assert!(
            compile_seccomp(&notify)
                .unwrap_err()
                .contains("SCMP_ACT_NOTIFY")
        );
    }

    #[test]
    fn unsupported_spec_fields_are_named() {
        let spec: oci_spec::runtime::Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.1.0",
            "linux": {"personality": {"domain": "LINUX32"}, "intelRdt": {"closID": "x"}}
        }))
        .unwrap();
        let e = check_supported(&spec).unwrap_err();
        assert!(
            e.contains("linux.personality") && e.contains("linux.intelRdt"),
            "{e}"
        );
        assert!(check_supported(&oci_spec::runtime::Spec::default()).is_ok());
    }

    #[test]
    fn capability_names_map_to_kernel_indexes() {
        let c: oci_spec::runtime::Capability =
            serde_json::from_str("\"CAP_NET_BIND_SERVICE\"").unwrap();
        assert_eq!(cap_index(&c), Some(10));
        let c: oci_spec::runtime::Capability = serde_json::from_str("\"CAP_CHOWN\"").unwrap();
        assert_eq!(cap_index(&c), Some(0));
    }
}
