//! Seccomp for containers: Docker's default profile (an allow-list with `EPERM` for the
//! rest, the same rules and capability-conditional groups as moby's
//! `profiles/seccomp/default.json`), kept as data in Docker's profile format, and the
//! conversion of a Docker-format profile (the default one or `--security-opt
//! seccomp=<file>`) into the OCI `linux.seccomp` section for the container's capabilities.

use serde_json::{Value, json};

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The profile is not JSON or not a profile.
    #[error("decoding seccomp profile failed: {0}")]
    Decode(String),
}

/// Syscalls every container may make (Docker's unconditional allow rule).
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "adjtimex",
    "alarm",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "chown32",
    "clock_adjtime",
    "clock_adjtime64",
    "clock_getres",
    "clock_getres_time64",
    "clock_gettime",
    "clock_gettime64",
    "clock_nanosleep",
    "clock_nanosleep_time64",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_ctl_old",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "epoll_wait_old",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fadvise64_64",
    "fallocate",
    "fanotify_mark",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchown32",
    "fchownat",
    "fcntl",
    "fcntl64",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstat64",
    "fstatat64",
    "fstatfs",
    "fstatfs64",
    "fsync",
    "ftruncate",
    "ftruncate64",
    "futex",
    "futex_requeue",
    "futex_time64",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "getegid32",
    "geteuid",
    "geteuid32",
    "getgid",
    "getgid32",
    "getgroups",
    "getgroups32",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresgid32",
    "getresuid",
    "getresuid32",
    "getrlimit",
    "get_robust_list",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "get_thread_area",
    "gettid",
    "gettimeofday",
    "getuid",
    "getuid32",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "ioctl",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_pgetevents_time64",
    "ioprio_get",
    "ioprio_set",
    "io_setup",
    "io_submit",
    "ipc",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lchown32",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "_llseek",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "lstat64",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "memfd_secret",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mmap2",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedreceive_time64",
    "mq_timedsend",
    "mq_timedsend_time64",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "_newselect",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "ppoll_time64",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "process_mrelease",
    "pselect6",
    "pselect6_time64",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recv",
    "recvfrom",
    "recvmmsg",
    "recvmmsg_time64",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_sigtimedwait_time64",
    "rt_tgsigqueueinfo",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_rr_get_interval_time64",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "semtimedop_time64",
    "send",
    "sendfile",
    "sendfile64",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "setfsgid",
    "setfsgid32",
    "setfsuid",
    "setfsuid32",
    "setgid",
    "setgid32",
    "setgroups",
    "setgroups32",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setregid32",
    "setresgid",
    "setresgid32",
    "setresuid",
    "setresuid32",
    "setreuid",
    "setreuid32",
    "setrlimit",
    "set_robust_list",
    "setsid",
    "setsockopt",
    "set_thread_area",
    "set_tid_address",
    "setuid",
    "setuid32",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "sigprocmask",
    "sigreturn",
    "socketcall",
    "socketpair",
    "splice",
    "stat",
    "stat64",
    "statfs",
    "statfs64",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_gettime64",
    "timer_settime",
    "timer_settime64",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_gettime64",
    "timerfd_settime",
    "timerfd_settime64",
    "times",
    "tkill",
    "truncate",
    "truncate64",
    "ugetrlimit",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimensat_time64",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "waitpid",
    "write",
    "writev",
    "arch_prctl",
    "modify_ldt",
];

/// Namespace flags `clone` may not carry without CAP_SYS_ADMIN
/// (CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP).
const CLONE_NS_FLAGS: u64 = 0x7E02_0000;

/// Docker's default profile, in Docker's profile format.
pub fn default_profile() -> Value {
    let allow = |names: &[&str]| json!({"names": names, "action": "SCMP_ACT_ALLOW"});
    let with_cap = |names: &[&str], cap: &str| json!({"names": names, "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]}});
    let mut syscalls = vec![
        allow(ALLOWED),
        // personality: only the harmless personas
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}),
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}),
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 131072, "op": "SCMP_CMP_EQ"}]}),
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 131080, "op": "SCMP_CMP_EQ"}]}),
        json!({"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 4_294_967_295u64, "op": "SCMP_CMP_EQ"}]}),
        // clone without namespace flags unless CAP_SYS_ADMIN
        json!({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": CLONE_NS_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
               "excludes": {"caps": ["CAP_SYS_ADMIN"]}}),
        // clone3 cannot be filtered by its flags: ENOSYS makes libcs fall back to clone
        json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
               "excludes": {"caps": ["CAP_SYS_ADMIN"]}}),
        // socket: everything but AF_VSOCK (40)
        json!({"names": ["socket"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]}),
        with_cap(
            &[
                "bpf",
                "clone",
                "clone3",
                "fanotify_init",
                "fsconfig",
                "fsmount",
                "fsopen",
                "fspick",
                "lookup_dcookie",
                "mount",
                "mount_setattr",
                "move_mount",
                "open_tree",
                "perf_event_open",
                "quotactl",
                "quotactl_fd",
                "setdomainname",
                "sethostname",
                "setns",
                "syslog",
                "umount",
                "umount2",
                "unshare",
            ],
            "CAP_SYS_ADMIN",
        ),
        with_cap(&["reboot"], "CAP_SYS_BOOT"),
        with_cap(&["chroot"], "CAP_SYS_CHROOT"),
        with_cap(
            &["delete_module", "init_module", "finit_module"],
            "CAP_SYS_MODULE",
        ),
        with_cap(&["acct"], "CAP_SYS_PACCT"),
        with_cap(
            &[
                "kcmp",
                "pidfd_getfd",
                "process_madvise",
                "process_vm_readv",
                "process_vm_writev",
                "ptrace",
            ],
            "CAP_SYS_PTRACE",
        ),
        with_cap(&["iopl", "ioperm"], "CAP_SYS_RAWIO"),
        with_cap(
            &["settimeofday", "stime", "clock_settime", "clock_settime64"],
            "CAP_SYS_TIME",
        ),
        with_cap(&["vhangup"], "CAP_SYS_TTY_CONFIG"),
        with_cap(
            &[
                "get_mempolicy",
                "mbind",
                "set_mempolicy",
                "set_mempolicy_home_node",
            ],
            "CAP_SYS_NICE",
        ),
        with_cap(&["syslog"], "CAP_SYSLOG"),
        with_cap(&["bpf"], "CAP_BPF"),
        with_cap(&["perf_event_open"], "CAP_PERFMON"),
    ];
    // kernels that allow ptrace without the capability (4.8+) let Docker allow it too
    syscalls.push(json!({"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
                          "includes": {"minKernel": "4.8"}}));
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": syscalls,
    })
}

fn native_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "SCMP_ARCH_X86_64",
        "aarch64" => "SCMP_ARCH_AARCH64",
        "x86" => "SCMP_ARCH_X86",
        "arm" => "SCMP_ARCH_ARM",
        "riscv64" => "SCMP_ARCH_RISCV64",
        "s390x" => "SCMP_ARCH_S390X",
        "powerpc64" => "SCMP_ARCH_PPC64LE",
        _ => "SCMP_ARCH_NATIVE",
    }
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a rule's `includes`/`excludes` (caps, arches) select it for these caps.
fn selected(rule: &Value, caps: &[String], arch: &str) -> bool {
    let inc = &rule["includes"];
    let exc = &rule["excludes"];
    let has_cap = |c: &String| caps.iter().any(|x| x == c);
    let inc_caps = strs(&inc["caps"]);
    if !inc_caps.is_empty() && !inc_caps.iter().all(has_cap) {
        return false;
    }
    let inc_arches = strs(&inc["arches"]);
    if !inc_arches.is_empty() && !inc_arches.iter().any(|a| arch_matches(a, arch)) {
        return false;
    }
    if strs(&exc["caps"]).iter().any(has_cap) {
        return false;
    }
    if strs(&exc["arches"]).iter().any(|a| arch_matches(a, arch)) {
        return false;
    }
    true
}

/// moby's arch names in includes are Go's (`amd64`) or libseccomp's.
fn arch_matches(name: &str, native: &str) -> bool {
    let go = match native {
        "SCMP_ARCH_X86_64" => "amd64",
        "SCMP_ARCH_AARCH64" => "arm64",
        "SCMP_ARCH_X86" => "386",
        _ => "",
    };
    name == native || name == go
}

/// Turns a Docker-format profile into OCI `linux.seccomp` for a process with `caps`.
pub fn to_oci(profile: &Value, caps: &[String]) -> Result<Value, SeccompError> {
    let default = profile["defaultAction"]
        .as_str()
        .ok_or_else(|| SeccompError::Decode("the profile has no defaultAction".into()))?;
    let arch = native_arch();
    let mut arches: Vec<String> = strs(&profile["architectures"]);
    if let Some(map) = profile["archMap"].as_array() {
        for m in map {
            if m["architecture"].as_str() == Some(arch) {
                arches.push(arch.to_owned());
                arches.extend(strs(&m["subArchitectures"]));
            }
        }
    }
    let mut rules = Vec::new();
    for r in profile["syscalls"].as_array().into_iter().flatten() {
        if !selected(r, caps, arch) {
            continue;
        }
        let mut names = strs(&r["names"]);
        if let Some(n) = r["name"].as_str() {
            names.push(n.to_owned());
        }
        if names.is_empty() {
            continue;
        }
        let action = r["action"]
            .as_str()
            .ok_or_else(|| SeccompError::Decode(format!("rule for {names:?} has no action")))?;
        let mut rule = json!({"names": names, "action": action});
        if let Some(e) = r.get("errnoRet").filter(|v| !v.is_null()) {
            rule["errnoRet"] = e.clone();
        }
        if let Some(a) = r
            .get("args")
            .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        {
            rule["args"] = a.clone();
        }
        rules.push(rule);
    }
    let mut out = json!({"defaultAction": default, "syscalls": rules});
    if !arches.is_empty() {
        out["architectures"] = json!(arches);
    }
    if let Some(e) = profile.get("defaultErrnoRet").filter(|v| !v.is_null()) {
        out["defaultErrnoRet"] = e.clone();
    }
    Ok(out)
}

/// Parses a profile given as JSON text (`--security-opt seccomp=<file>`; the docker CLI
/// sends the file's contents).
pub fn parse_profile(text: &str) -> Result<Value, SeccompError> {
    let v: Value = serde_json::from_str(text).map_err(|e| SeccompError::Decode(e.to_string()))?;
    if !v.is_object() {
        return Err(SeccompError::Decode(
            "the profile is not a JSON object".into(),
        ));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of(oci: &Value) -> Vec<String> {
        oci["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
            .flat_map(|r| strs(&r["names"]))
            .collect()
    }

    #[test]
    fn default_profile_denies_by_default_and_follows_caps() {
        let caps: Vec<String> = super::super::oci::DEFAULT_CAPS
            .iter()
            .map(|c| c.to_string())
            .collect();
        let oci = to_oci(&default_profile(), &caps).unwrap();
        assert_eq!(oci["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(oci["defaultErrnoRet"], 1);
        let allowed = names_of(&oci);
        for n in ["read", "execve", "chroot", "socket", "clone"] {
            assert!(allowed.contains(&n.to_string()), "{n}");
        }
        for n in [
            "mount",
            "unshare",
            "setns",
            "keyctl",
            "reboot",
            "init_module",
            "bpf",
        ] {
            assert!(!allowed.contains(&n.to_string()), "{n} must be denied");
        }
        let mut admin = caps.clone();
        admin.push("CAP_SYS_ADMIN".into());
        let allowed = names_of(&to_oci(&default_profile(), &admin).unwrap());
        assert!(allowed.contains(&"mount".to_string()));
        assert!(allowed.contains(&"unshare".to_string()));
        assert!(!allowed.contains(&"keyctl".to_string()));
    }

    #[test]
    fn user_profiles_convert_and_bad_ones_are_named() {
        let p = parse_profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
        )
        .unwrap();
        let oci = to_oci(&p, &[]).unwrap();
        assert_eq!(oci["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(oci["syscalls"][0]["names"], json!(["mkdir"]));
        assert!(
            parse_profile("nope")
                .unwrap_err()
                .to_string()
                .starts_with("decoding seccomp profile failed")
        );
        assert!(to_oci(&json!({}), &[]).is_err());
    }
}
