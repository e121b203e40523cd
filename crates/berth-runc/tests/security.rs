//! Security tests that perform the attack.

mod common;
use common::*;

fn sha(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// CVE-2019-5736: the container execs /proc/self/exe (the runtime binary) to get a
/// handle on it; berth-runc refuses, and the binary is unchanged.
#[test]
fn container_cannot_reach_runtime_binary_via_proc_self_exe() {
    let before = sha(BERTH);
    let env = Env::new(&["/proc/self/exe", "--version"]);
    let o = env.run_with(BERTH);
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("refusing to execute the runtime binary"),
        "{}",
        stderr(&o)
    );
    // the original exploit: a script whose interpreter is /proc/self/exe
    let env = Env::new(&["/bin/evil"]);
    let evil = env.bundle.join("rootfs/bin/evil");
    std::fs::write(&evil, "#!/proc/self/exe --version\n").unwrap();
    std::fs::set_permissions(&evil, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = env.run_with(BERTH);
    assert_ne!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("refusing to execute the runtime binary"),
        "{}",
        stderr(&o)
    );
    // and the classic write attempt from inside, through every /proc/*/exe visible
    let env = Env::new(&[
        "sh",
        "-c",
        "for e in /proc/[0-9]*/exe; do echo pwned > $e && echo WROTE $e; done; true",
    ]);
    let o = env.run_with(BERTH);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("WROTE"), "{}", stdout(&o));
    assert_eq!(before, sha(BERTH), "runtime binary was modified");
}

/// CVE-2024-21626: host fds the runtime inherited do not reach the container.
#[test]
fn no_host_fd_leaks_into_container() {
    let env = Env::new(&["sh", "-c", "ls /proc/self/fd | tr '\\n' ' '"]);
    let id = env.id(BERTH);
    let root = env.root_for(BERTH);
    let cmd = format!(
        "exec 5</etc/hostname 7</ 9>/dev/null; exec {BERTH} --root {} run -b {} {id}",
        root.display(),
        env.bundle.display()
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // 0-2 and ls's own directory fd
    assert_eq!(stdout(&o), "0 1 2 3 ");
}

/// --preserve-fds passes exactly fds 3..3+n.
#[test]
fn preserved_fds_are_passed() {
    let env = Env::new(&["sh", "-c", "cat <&3; ls /proc/self/fd | tr '\\n' ' '"]);
    let id = env.id(BERTH);
    let root = env.root_for(BERTH);
    let data = env.dir.path().join("data");
    std::fs::write(&data, "preserved\n").unwrap();
    let cmd = format!(
        "exec 3<{} 8</; exec {BERTH} --root {} run --preserve-fds 1 -b {} {id}",
        data.display(),
        root.display(),
        env.bundle.display()
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "preserved\n0 1 2 3 4 ");
}

/// CVE-2024-21626: a cwd through a leaked fd (/proc/self/fd/N pointing at the host's /)
/// must not put the process outside the container root.
#[test]
fn cwd_cannot_escape_through_leaked_fd() {
    let env = Env::new(&["sh", "-c", "pwd; ls"]);
    env.edit(|s| s["process"]["cwd"] = "/proc/self/fd/7".into());
    let id = env.id(BERTH);
    let cmd = format!(
        "exec 7</; exec {BERTH} --root {} run -b {} {id}",
        env.root_for(BERTH).display(),
        env.bundle.display()
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .output()
        .unwrap();
    assert_ne!(
        o.status.code(),
        Some(0),
        "container started outside its root: {}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("Cwd"), "{}", stderr(&o));
}

/// Masked paths stay masked: unmounting the mask or reading through it fails.
#[test]
fn masked_paths_stay_masked() {
    let env = Env::new(&[
        "sh",
        "-c",
        "umount /proc/keys 2>/dev/null && echo UNMASKED; umount -l /sys/firmware 2>/dev/null && echo UNMASKED; wc -c < /proc/keys; ls /sys/firmware | wc -l",
    ]);
    let o = env.run_with(BERTH);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "0\n0\n");
}

/// An unprivileged container cannot make read-only paths (or a read-only rootfs) writable.
#[test]
fn readonly_paths_cannot_be_remounted_rw() {
    let env = Env::new(&[
        "sh",
        "-c",
        "mount -o remount,rw /proc/sys 2>/dev/null && echo RW1; mount -o remount,rw / 2>/dev/null && echo RW2; \
         touch /x 2>/dev/null && echo RW3; echo 1 > /proc/sys/kernel/hostname 2>/dev/null && echo RW4; echo done",
    ]);
    let o = env.run_with(BERTH);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "done\n");
}
