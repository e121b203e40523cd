//! The seccomp BPF cache: a profile is compiled with libseccomp and exported as classic
//! BPF once per distinct profile, in the runtime (never in the cloned child), and kept
//! under `<root>/seccomp:bpf-cache/<key>.bpf`. The key is the SHA-256 of the OCI
//! `linux.seccomp` section (as JSON), the native architecture, the libseccomp version and
//! API level, and the kernel release: everything the generated program depends on. The
//! child only hands the ready program to `seccomp(2)` ([`berth_sys::seccomp_set_filter`]):
//! no libseccomp and no allocation after the clone.
//!
//! File format: `BERTHBPF` magic, SHA-256 of the program, then the program as the kernel's
//! `struct sock_filter` array in native byte order. A file that does not check out
//! (truncated, corrupt, wrong length) is ignored, recompiled and atomically replaced
//! (temp file + rename); a cache that cannot be written is not an error.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use berth_sys::SockFilter;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompFilterFlag};
use sha2::{Digest, Sha256};

/// The cache directory's name under the runtime root. The `:` keeps it from ever being a
/// container id (ids are `[a-zA-Z0-9_+.-]`).
pub const CACHE_DIR: &str = "seccomp:bpf-cache";
const MAGIC: &[u8; 8] = b"BERTHBPF";
const HEADER: usize = 8 + 32;
const INSN: usize = 8;

/// A seccomp program ready for the kernel, with the `seccomp(2)` flags the profile asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeccompProgram {
    filter: Vec<SockFilter>,
    flags: u32,
    from_cache: bool,
}

impl SeccompProgram {
    /// The BPF instructions.
    pub fn filter(&self) -> &[SockFilter] {
        &self.filter
    }
    /// `SECCOMP_FILTER_FLAG_*` bits from `linux.seccomp.flags`.
    pub fn flags(&self) -> u32 {
        self.flags
    }
    /// Whether the program came from a valid cache file (no libseccomp call at all).
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }
    /// Install the filter on the calling thread. Allocation-free on success, so it is what
    /// the cloned child calls; no_new_privs is the caller's business.
    pub fn load(&self) -> std::io::Result<()> {
        berth_sys::seccomp_set_filter(self.flags, &self.filter)
    }
}

/// The `seccomp(2)` flags of a profile (the same ones libseccomp's load would pass).
fn flags_of(s: &LinuxSeccomp) -> u32 {
    let mut flags = 0;
    for f in s.flags().as_deref().unwrap_or(&[]) {
        flags |= match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => berth_sys::SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => berth_sys::SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => {
                berth_sys::SECCOMP_FILTER_FLAG_SPEC_ALLOW
            }
            // only meaningful with a notify listener, which compile_seccomp refuses
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
        };
    }
    flags
}

/// The cache file for `s` under the runtime root `root`.
pub fn cache_path(root: &Path, s: &LinuxSeccomp) -> Result<PathBuf, String> {
    let mut h = Sha256::new();
    h.update(b"berth-seccomp-bpf-v2\0");
    h.update(serde_json::to_vec(s).map_err(|e| format!("serialize seccomp profile: {e}"))?);
    h.update(b"\0");
    h.update(format!("{:?}", libseccomp::ScmpArch::native()).as_bytes());
    h.update(b"\0");
    match libseccomp::ScmpVersion::current() {
        Ok(v) => h.update(format!("{}.{}.{}", v.major, v.minor, v.micro).as_bytes()),
        Err(e) => return Err(format!("libseccomp version: {e}")),
    }
    h.update(format!("\0api{}\0", libseccomp::get_api()).as_bytes());
    h.update(rustix::system::uname().release().to_bytes());
    Ok(root
        .join(CACHE_DIR)
        .join(format!("{}.bpf", hex::encode(h.finalize()))))
}

/// Parse and verify a cache file's bytes; `None` if they do not check out.
fn parse(bytes: &[u8]) -> Option<Vec<SockFilter>> {
    let (head, body) = (bytes.get(..HEADER)?, bytes.get(HEADER..)?);
    if &head[..8] != MAGIC
        || body.is_empty()
        || !body.len().is_multiple_of(INSN)
        || body.len() / INSN > berth_sys::BPF_MAXINSNS
        || Sha256::digest(body).as_slice() != &head[8..]
    {
        return None;
    }
    Some(
        body.chunks_exact(INSN)
            .map(|c| SockFilter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

/// Generate the program with libseccomp (`seccomp_export_bpf` into a memfd).
fn generate(s: &LinuxSeccomp) -> Result<Vec<u8>, String> {
    generate_as(s, true)
}

fn generate_as(s: &LinuxSeccomp, tree: bool) -> Result<Vec<u8>, String> {
    let f = crate::process::compile_seccomp_as(s, tree)?;
    let fd = rustix::fs::memfd_create("berth-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| format!("memfd for seccomp export: {e}"))?;
    f.export_bpf(&fd)
        .map_err(|e| format!("export seccomp bpf: {e}"))?;
    let mut file = std::fs::File::from(fd);
    file.rewind()
        .map_err(|e| format!("rewind seccomp export: {e}"))?;
    let mut body = Vec::new();
    file.read_to_end(&mut body)
        .map_err(|e| format!("read seccomp export: {e}"))?;
    Ok(body)
}

/// Write `body` (with its header) to `path` atomically; errors are the caller's to ignore.
fn store(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut bytes = Vec::with_capacity(HEADER + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&Sha256::digest(body));
    bytes.extend_from_slice(body);
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let tmp = dir.join(format!(
        ".tmp-{}-{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let res = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// The ready program for `s`: from the cache under `root` when a valid entry exists,
/// otherwise compiled (profile errors are reported as by [`crate::process::compile_seccomp`])
/// and cached.
pub fn prepare(root: &Path, s: &LinuxSeccomp) -> Result<SeccompProgram, String> {
    let flags = flags_of(s);
    let path = cache_path(root, s)?;
    if let Some(filter) = std::fs::read(&path).ok().as_deref().and_then(parse) {
        return Ok(SeccompProgram {
            filter,
            flags,
            from_cache: true,
        });
    }
    let body = generate(s)?;
    let mut head = Vec::with_capacity(HEADER);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&Sha256::digest(&body));
    let filter = parse(&[head.as_slice(), &body].concat()).ok_or_else(|| {
        format!(
            "libseccomp exported an invalid program ({} bytes)",
            body.len()
        )
    })?;
    // best effort: a read-only or full root only costs the next run a recompile
    let _ = store(&path, &body);
    Ok(SeccompProgram {
        filter,
        flags,
        from_cache: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(errno: u32) -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno}]
        }))
        .unwrap()
    }

    #[test]
    fn program_is_cached_and_a_corrupt_file_is_rewritten() {
        let root = tempfile::tempdir().unwrap();
        let first = prepare(root.path(), &profile(13)).unwrap();
        assert!(!first.from_cache());
        let path = cache_path(root.path(), &profile(13)).unwrap();
        let good = std::fs::read(&path).unwrap();
        let second = prepare(root.path(), &profile(13)).unwrap();
        assert!(second.from_cache());
        assert_eq!(first.filter(), second.filter());
        // another errno is another profile, another key
        assert_ne!(cache_path(root.path(), &profile(1)).unwrap(), path);
        for bad in [&good[..good.len() - 3], &b"garbage"[..], &[]] {
            std::fs::write(&path, bad).unwrap();
            let again = prepare(root.path(), &profile(13)).unwrap();
            assert!(!again.from_cache());
            assert_eq!(again.filter(), first.filter());
            assert_eq!(std::fs::read(&path).unwrap(), good);
        }
        // a flipped bit in the program fails the checksum
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(!prepare(root.path(), &profile(13)).unwrap().from_cache());
        assert_eq!(std::fs::read(&path).unwrap(), good);
        // no temp files are left behind
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1
        );
    }

    #[test]
    fn unwritable_cache_only_costs_a_recompile() {
        let root = tempfile::tempdir().unwrap();
        // the cache directory's name is taken by a file: nothing can be stored
        std::fs::write(root.path().join(CACHE_DIR), b"not a dir").unwrap();
        let a = prepare(root.path(), &profile(13)).unwrap();
        let b = prepare(root.path(), &profile(13)).unwrap();
        assert!(!a.from_cache() && !b.from_cache());
        assert_eq!(a.filter(), b.filter());
        assert!(!a.filter().is_empty());
    }

    #[test]
    fn flags_are_the_seccomp_flags_of_the_profile() {
        let s: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]
        }))
        .unwrap();
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            prepare(root.path(), &s).unwrap().flags(),
            berth_sys::SECCOMP_FILTER_FLAG_LOG | berth_sys::SECCOMP_FILTER_FLAG_SPEC_ALLOW
        );
    }

    /// A classic-BPF interpreter for seccomp programs (the instructions libseccomp
    /// emits): the action for `(nr, arch, args)`, and whether an argument was read.
    fn run_bpf(prog: &[SockFilter], nr: u32, arch: u32, args: &[u64; 6]) -> (u32, bool) {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        let (mut a, mut x, mut mem, mut pc, mut read_args) =
            (0u32, 0u32, [0u32; 16], 0usize, false);
        loop {
            let i = prog[pc];
            pc += 1;
            let k = i.k;
            match i.code {
                0x20 => {
                    // ld [k]
                    let o = k as usize;
                    read_args |= o >= 16;
                    a = u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
                }
                0x00 => a = k,                 // ld #k
                0x60 => a = mem[k as usize],   // ld M[k]
                0x01 => x = k,                 // ldx #k
                0x61 => x = mem[k as usize],   // ldx M[k]
                0x02 => mem[k as usize] = a,   // st M[k]
                0x03 => mem[k as usize] = x,   // stx M[k]
                0x54 => a &= k,                // and #k
                0x44 => a |= k,                // or #k
                0x04 => a = a.wrapping_add(k), // add #k
                0x14 => a = a.wrapping_sub(k), // sub #k
                0x07 => x = a,                 // tax
                0x87 => a = x,                 // txa
                0x05 => pc += k as usize,      // ja
                0x15 | 0x25 | 0x35 | 0x45 | 0x1d | 0x2d | 0x3d | 0x4d => {
                    let v = if i.code & 0x08 != 0 { x } else { k };
                    let t = match i.code & 0xf0 {
                        0x10 => a == v,
                        0x20 => a > v,
                        0x30 => a >= v,
                        _ => a & v != 0,
                    };
                    pc += if t { i.jt } else { i.jf } as usize;
                }
                0x06 => return (k, read_args),
                0x16 => return (a, read_args),
                other => panic!("unexpected bpf opcode {other:#x} at {}", pc - 1),
            }
        }
    }

    fn program(body: &[u8]) -> Vec<SockFilter> {
        let mut bytes = Vec::from(&MAGIC[..]);
        bytes.extend_from_slice(&Sha256::digest(body));
        bytes.extend_from_slice(body);
        parse(&bytes).unwrap()
    }

    #[test]
    fn binary_tree_program_decides_like_the_linear_one() {
        // Docker's default profile as the engine writes it (amd64: three arches)
        let s: LinuxSeccomp =
            serde_json::from_str(include_str!("../tests/data/docker-default-seccomp.json"))
                .unwrap();
        let tree = program(&generate_as(&s, true).unwrap());
        let linear = program(&generate_as(&s, false).unwrap());
        assert_ne!(tree, linear, "expected the binary tree layout");
        assert_eq!(program(&generate(&s).unwrap()), tree);
        // every value a rule compares with, its neighbours, and every single bit
        let mut values: Vec<u64> = vec![0, u64::MAX];
        for r in s.syscalls().as_deref().unwrap_or(&[]) {
            for a in r.args().as_deref().unwrap_or(&[]) {
                for v in [a.value(), a.value_two().unwrap_or(0)] {
                    values.extend([v, v.wrapping_add(1), v.wrapping_sub(1), v | 1 << 40]);
                }
            }
        }
        values.extend((0..64).map(|b| 1u64 << b));
        let arches = [0xC000_003E_u32, 0x4000_0003, 0xC000_00B7]; // x86_64, i386, aarch64
        let (mut checked, mut with_args) = (0, 0);
        let mut actions = std::collections::BTreeSet::new();
        for arch in arches {
            for nr in (0..600u32)
                .chain(0x4000_0000..0x4000_0000 + 600)
                .chain([u32::MAX])
            {
                let zero = [0u64; 6];
                let (want, r1) = run_bpf(&linear, nr, arch, &zero);
                let (got, r2) = run_bpf(&tree, nr, arch, &zero);
                assert_eq!(got, want, "nr {nr} arch {arch:#x}");
                actions.insert(want);
                checked += 1;
                if !(r1 || r2) {
                    continue; // neither program looks at the arguments
                }
                with_args += 1;
                for idx in 0..6 {
                    for v in &values {
                        let mut args = zero;
                        args[idx] = *v;
                        assert_eq!(
                            run_bpf(&tree, nr, arch, &args).0,
                            run_bpf(&linear, nr, arch, &args).0,
                            "nr {nr} arch {arch:#x} arg{idx}={v:#x}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 3000 && with_args >= 3, "{checked} {with_args}");
        // allowed, denied with EPERM, and the foreign arch killed: all three were seen
        assert!(
            actions.contains(&0x7fff_0000) && actions.contains(&0x0005_0001),
            "{actions:x?}"
        );
        assert!(actions.len() >= 3, "{actions:x?}");
    }

    #[test]
    fn profile_errors_are_not_cached() {
        let s: LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]
        }))
        .unwrap();
        let root = tempfile::tempdir().unwrap();
        let e = prepare(root.path(), &s).unwrap_err();
        assert!(e.contains("SCMP_ACT_NOTIFY"), "{e}");
        assert!(!root.path().join(CACHE_DIR).exists());
    }
}
