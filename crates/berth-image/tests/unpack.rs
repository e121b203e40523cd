//! Layer unpack on the real kernel (root): metadata fidelity, whiteouts as overlayfs
//! wants them, and hostile layers refused.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_image::unpack::{UnpackError, UnpackOptions, unpack_layer};
use common::{Layer, snapshot};
use tar::EntryType;

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("berth-image-unpack-")
        .tempdir()
        .unwrap()
}

fn unpack_into(
    data: &[u8],
    media_type: Option<&str>,
    dest: &Path,
) -> Result<berth_image::UnpackSummary, UnpackError> {
    unpack_layer(data, media_type, dest, &UnpackOptions::default())
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    fs::create_dir(&p).unwrap();
    p
}

fn corpus() -> Layer {
    Layer::new()
        .dir("./", 0o755)
        .dir("bin/", 0o755)
        .file_full("bin/suid", b"#!/bin/sh\n", 0o4755, 0, 0, 1_500_000_000)
        .file_full("owned", b"data", 0o640, 1234, 5678, 1_400_000_000)
        .symlink("bin/sh", "/bin/busybox")
        .symlink("rel", "../outside/kept/verbatim")
        .hardlink("bin/suid-link", "bin/suid")
        .device("null", EntryType::Char, 1, 3)
        .device("loop9", EntryType::Block, 7, 9)
        .device("fifo", EntryType::Fifo, 0, 0)
        .file_with_xattrs(
            "ping",
            b"\x7fELF",
            &[
                (
                    "security.capability",
                    &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                ),
                ("user.note", b"hi"),
            ],
        )
        .dir_with_mtime("etc/", 0o700, 1_300_000_000)
        .file("etc/hosts", b"127.0.0.1 localhost\n")
}

#[test]
fn corpus_preserves_owners_modes_links_devices_xattrs_and_mtimes() {
    let t = tempdir();
    let plain = corpus().tar();
    for (name, data, mt) in [
        (
            "plain",
            plain.clone(),
            Some("application/vnd.oci.image.layer.v1.tar"),
        ),
        (
            "gzip",
            common::gzip(&plain),
            Some("application/vnd.docker.image.rootfs.diff.tar.gzip"),
        ),
        (
            "zstd",
            common::zstd(&plain),
            Some("application/vnd.oci.image.layer.v1.tar+zstd"),
        ),
        ("sniffed-gzip", common::gzip(&plain), None),
        (
            "sniffed-zstd",
            common::zstd(&plain),
            Some("application/octet-stream"),
        ),
    ] {
        let d = fresh(t.path(), name);
        let s = unpack_into(&data, mt, &d).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            s.diff_id,
            berth_types::reference::Digest::sha256(&plain).to_string(),
            "{name}"
        );

        let suid = fs::metadata(d.join("bin/suid")).unwrap();
        assert_eq!(
            suid.permissions().mode() & 0o7777,
            0o4755,
            "{name}: setuid kept"
        );
        assert_eq!(suid.mtime(), 1_500_000_000);
        let owned = fs::metadata(d.join("owned")).unwrap();
        assert_eq!(
            (owned.uid(), owned.gid(), owned.mode() & 0o7777),
            (1234, 5678, 0o640)
        );
        assert_eq!(owned.mtime(), 1_400_000_000);
        assert_eq!(
            fs::read_link(d.join("bin/sh")).unwrap(),
            Path::new("/bin/busybox")
        );
        assert_eq!(
            fs::read_link(d.join("rel")).unwrap(),
            Path::new("../outside/kept/verbatim")
        );
        let link = fs::metadata(d.join("bin/suid-link")).unwrap();
        assert_eq!(link.ino(), suid.ino(), "{name}: hard link shares the inode");
        let null = fs::symlink_metadata(d.join("null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
        let blk = fs::symlink_metadata(d.join("loop9")).unwrap();
        assert!(blk.file_type().is_block_device());
        assert_eq!(blk.rdev(), rustix::fs::makedev(7, 9));
        assert!(
            fs::symlink_metadata(d.join("fifo"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
        let mut cap = vec![0u8; 64];
        let n = rustix::fs::getxattr(d.join("ping"), "security.capability", &mut cap).unwrap();
        assert_eq!(
            &cap[..n],
            &[1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let n = rustix::fs::getxattr(d.join("ping"), "user.note", &mut cap).unwrap();
        assert_eq!(&cap[..n], b"hi");
        let etc = fs::metadata(d.join("etc")).unwrap();
        assert_eq!(
            etc.mtime(),
            1_300_000_000,
            "{name}: directory mtime set after its children"
        );
        assert_eq!(etc.mode() & 0o7777, 0o700);
        assert_eq!(
            fs::read(d.join("etc/hosts")).unwrap(),
            b"127.0.0.1 localhost\n"
        );
        assert_eq!(s.content_bytes, (10 + 4 + 4 + 20) as u64);
    }
}

#[test]
fn pax_long_names_and_large_ids() {
    let t = tempdir();
    let long = format!("{}/file", "d".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    b.append_pax_extensions([
        ("uid", &b"3000000"[..]),
        ("gid", &b"3000001"[..]),
        ("mtime", &b"1700000000.5"[..]),
    ])
    .unwrap();
    b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
    let data = b.into_inner().unwrap();
    let d = fresh(t.path(), "l");
    unpack_into(&data, None, &d).unwrap();
    let m = fs::metadata(d.join(&long)).unwrap();
    assert_eq!((m.uid(), m.gid()), (3_000_000, 3_000_001));
    assert_eq!((m.mtime(), m.mtime_nsec()), (1_700_000_000, 500_000_000));
}

fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 16];
    rustix::fs::lgetxattr(p, name, &mut buf)
        .ok()
        .map(|n| buf[..n].to_vec())
}

struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

#[test]
fn whiteouts_become_overlay_forms_and_overlay_shows_the_merged_view() {
    let t = tempdir();
    let lower = fresh(t.path(), "l1");
    let upper = fresh(t.path(), "l2");
    let l1 = Layer::new()
        .file("keep", b"k")
        .file("gone", b"g")
        .dir("gonedir/", 0o755)
        .file("gonedir/x", b"x")
        .dir("opq/", 0o755)
        .file("opq/old", b"o")
        .tar();
    let l2 = Layer::new()
        .file(".wh.gone", b"")
        .file(".wh.gonedir", b"")
        .dir("opq/", 0o755)
        .file("opq/.wh..wh..opq", b"")
        .file("opq/new", b"n")
        .tar();
    unpack_into(&l1, None, &lower).unwrap();
    unpack_into(&l2, None, &upper).unwrap();

    for w in ["gone", "gonedir"] {
        let m = fs::symlink_metadata(upper.join(w)).unwrap();
        assert!(m.file_type().is_char_device(), "{w} is a whiteout device");
        assert_eq!(m.rdev(), 0);
    }
    assert!(
        !upper.join(".wh.gone").exists() && !upper.join("opq/.wh..wh..opq").exists(),
        "no .wh. files"
    );
    assert_eq!(
        xattr(&upper.join("opq"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );

    let mnt = fresh(t.path(), "mnt");
    let opts = format!("lowerdir={}:{}", upper.display(), lower.display());
    let opts = std::ffi::CString::new(opts).unwrap();
    rustix::mount::mount(
        "overlay",
        &mnt,
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        opts.as_c_str(),
    )
    .unwrap();
    let _guard = Unmount(mnt.clone());
    assert_eq!(fs::read(mnt.join("keep")).unwrap(), b"k");
    assert!(!mnt.join("gone").exists());
    assert!(!mnt.join("gonedir").exists());
    let mut names: Vec<String> = fs::read_dir(mnt.join("opq"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec!["new"],
        "opaque dir hides the lower layer's entries"
    );
}

fn assert_refused(data: &[u8], expect_in_msg: &str) {
    let t = tempdir();
    let dest = fresh(t.path(), "layer");
    let sentinel = fresh(t.path(), "outside");
    let before = snapshot(t.path());
    let err = unpack_into(data, None, &dest).expect_err("hostile layer must be refused");
    let msg = err.to_string();
    assert!(
        msg.contains(expect_in_msg),
        "error {msg:?} should name {expect_in_msg:?}"
    );
    // Nothing landed outside the layer directory.
    let after: Vec<_> = snapshot(t.path())
        .into_iter()
        .filter(|(p, _, _)| !p.starts_with("layer/"))
        .collect();
    let before: Vec<_> = before
        .into_iter()
        .filter(|(p, _, _)| !p.starts_with("layer/"))
        .collect();
    assert_eq!(before, after);
    assert_eq!(fs::read_dir(&sentinel).unwrap().count(), 0);
}

#[test]
fn parent_traversal_is_refused() {
    assert_refused(
        &Layer::new().file("../outside/x", b"evil").tar(),
        "../outside/x",
    );
    assert_refused(
        &Layer::new().file("a/../../outside/x", b"evil").tar(),
        "a/../../outside/x",
    );
}

#[test]
fn absolute_path_is_refused() {
    assert_refused(
        &Layer::new().file("/tmp/berth-evil", b"evil").tar(),
        "/tmp/berth-evil",
    );
    assert!(!Path::new("/tmp/berth-evil").exists());
}

#[test]
fn symlink_escape_is_refused() {
    let layer = Layer::new()
        .symlink("a", "/")
        .file("a/etc/berth-evil", b"evil")
        .tar();
    assert_refused(&layer, "a/etc/berth-evil");
    assert!(!Path::new("/etc/berth-evil").exists());
    let rel = Layer::new()
        .symlink("b", "..")
        .file("b/outside/x", b"evil")
        .tar();
    assert_refused(&rel, "b/outside/x");
}

#[test]
fn hard_link_escape_is_refused() {
    assert_refused(
        &Layer::new().hardlink("passwd", "/etc/passwd").tar(),
        "passwd",
    );
    assert_refused(
        &Layer::new()
            .hardlink("passwd", "../../../../etc/passwd")
            .tar(),
        "../../../../etc/passwd",
    );
    // Through a symlinked directory that points out.
    assert_refused(
        &Layer::new()
            .symlink("e", "/etc")
            .hardlink("p", "e/passwd")
            .tar(),
        "e/passwd",
    );
    // A target that was never extracted.
    assert_refused(&Layer::new().hardlink("x", "missing").tar(), "missing");
}

#[test]
fn truncated_gzip_is_refused() {
    let gz = Layer::new().file("big", &vec![7u8; 200_000]).gzip();
    let cut = &gz[..gz.len() / 2];
    let t = tempdir();
    let dest = fresh(t.path(), "layer");
    let err = unpack_into(cut, None, &dest).unwrap_err();
    assert!(matches!(err, UnpackError::Stream(_)), "{err}");
}

#[test]
fn decompression_bomb_is_capped() {
    let gz = Layer::new().file("zeros", &vec![0u8; 8 << 20]).gzip();
    assert!(gz.len() < 100_000);
    let t = tempdir();
    let dest = fresh(t.path(), "layer");
    let err = unpack_layer(
        &gz[..],
        None,
        &dest,
        &UnpackOptions {
            max_unpacked_bytes: 1 << 20,
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, UnpackError::TooLarge { limit } if limit == 1 << 20),
        "{err}"
    );
    assert!(err.to_string().contains("1048576"), "{err}");
}

#[test]
fn later_entries_replace_earlier_ones() {
    let t = tempdir();
    let d = fresh(t.path(), "l");
    let layer = Layer::new()
        .symlink("x", "/etc/passwd")
        .file("x", b"plain")
        .dir("y/", 0o755)
        .file("y/z", b"z")
        .file("y", b"now a file")
        .tar();
    unpack_into(&layer, None, &d).unwrap();
    assert_eq!(fs::read(d.join("x")).unwrap(), b"plain");
    assert_eq!(fs::read(d.join("y")).unwrap(), b"now a file");
    assert_eq!(
        fs::read("/etc/passwd").map(|v| v.is_empty()).ok(),
        Some(false),
        "host file untouched"
    );
}

#[test]
fn a_parent_replaced_mid_stream_is_never_written_through() {
    // "d/a" leaves "d" as the cached parent of the next entries; "d" then becomes a
    // symlink out of the layer: "d/b" must be refused, not written into the old "d"
    let escape = Layer::new()
        .file("d/a", b"a")
        .symlink("d", "/")
        .file("d/b", b"evil")
        .tar();
    assert_refused(&escape, "d/b");
    assert!(!Path::new("/b").exists());
    // replaced by a new directory: the entries after it land in the new one
    let t = tempdir();
    let l = fresh(t.path(), "l");
    let layer = Layer::new()
        .file("d/a", b"a")
        .file("d", b"a file for a moment")
        .dir("d/", 0o750)
        .file("d/b", b"b")
        .file("d/c", b"c")
        .tar();
    unpack_into(&layer, None, &l).unwrap();
    let names: Vec<String> = fs::read_dir(l.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(names, ["b", "c"]);
    assert_eq!(fs::read(l.join("d/c")).unwrap(), b"c");
    assert_eq!(
        fs::metadata(l.join("d")).unwrap().permissions().mode() & 0o7777,
        0o750
    );
}

/// Content that does not compress away, so the stream spans many pipeline chunks.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn large_streams_unpack_through_the_inflate_pipeline() {
    // ~12 MiB of tar: far more than the chunks the inflate thread keeps in flight.
    let mut layer = Layer::new().dir("data/", 0o755);
    let files: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| (format!("data/f{i}"), noise(i, 500_000 + i as usize * 1000)))
        .collect();
    for (name, data) in &files {
        layer = layer.file(name, data);
    }
    let raw = layer.tar();
    let gz = common::gzip(&raw);
    let t = tempdir();
    for (n, input) in [(0, &raw), (1, &gz)] {
        let dest = fresh(t.path(), &format!("out{n}"));
        let s = unpack_into(input, None, &dest).unwrap();
        assert_eq!(
            s.diff_id,
            format!("sha256:{}", sha256_hex(&raw)),
            "diff id covers the whole tar"
        );
        assert_eq!(s.tar_bytes, raw.len() as u64);
        let total: usize = files.iter().map(|(_, d)| d.len()).sum();
        assert_eq!(s.content_bytes, total as u64);
        for (name, data) in &files {
            assert!(fs::read(dest.join(name)).unwrap() == *data, "{name}");
        }
    }
    // A hostile entry after megabytes of data: refused, and the inflate thread stops.
    let mut hostile = Layer::new().dir("data/", 0o755);
    for (name, data) in &files[..8] {
        hostile = hostile.file(name, data);
    }
    let hostile = common::gzip(&hostile.file("../escape", b"x").tar());
    let dest = fresh(t.path(), "hostile");
    let e = unpack_into(&hostile, None, &dest).unwrap_err().to_string();
    assert!(e.contains("../escape"), "{e}");
    assert!(!t.path().join("escape").exists());
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// The extractor skips a chown or chmod when creating an entry gives it the owner and mode
/// the layer asks for anyway; where creating does not (a setgid parent, the umask, a
/// default ACL), they are set.
#[test]
fn owners_and_modes_hold_where_creating_alone_would_not_give_them() {
    let t = tempdir();
    let d = fresh(t.path(), "l");
    let layer = Layer::new()
        .dir_full("sg/", 0o2775, 0, 4321)
        // in a setgid directory a new entry gets the directory's group: chown back to 0
        .file_full("sg/f", b"f", 0o644, 0, 0, 1_600_000_000)
        .symlink_owned("sg/l", "f", 0, 0)
        // and a new subdirectory inherits setgid: the mode is set exactly
        .dir_full("sg/sub/", 0o755, 0, 0)
        .file_full("sg/sub/g", b"g", 0o644, 0, 0, 1_600_000_000)
        // bits a umask of 022 would take away
        .file_full("wide", b"w", 0o666, 0, 0, 1_600_000_000)
        .dir_full("widedir/", 0o777, 0, 0)
        // the owner the creator would give, and one it would not
        .file_full("mine", b"m", 0o600, 0, 0, 1_600_000_000)
        .file_full("theirs", b"t", 0o600, 7, 8, 1_600_000_000)
        .tar();
    unpack_into(&layer, None, &d).unwrap();
    let md = |p: &str| fs::symlink_metadata(d.join(p)).unwrap();
    let sg = md("sg");
    assert_eq!((sg.gid(), sg.mode() & 0o7777), (4321, 0o2775));
    assert_eq!((md("sg/f").gid(), md("sg/f").mode() & 0o7777), (0, 0o644));
    assert_eq!((md("sg/l").uid(), md("sg/l").gid()), (0, 0));
    let sub = md("sg/sub");
    assert_eq!(
        (sub.gid(), sub.mode() & 0o7777),
        (0, 0o755),
        "no setgid inherited"
    );
    assert_eq!(md("sg/sub/g").gid(), 0);
    assert_eq!(md("wide").mode() & 0o7777, 0o666);
    assert_eq!(md("widedir").mode() & 0o7777, 0o777);
    assert_eq!((md("mine").uid(), md("mine").gid()), (0, 0));
    assert_eq!((md("theirs").uid(), md("theirs").gid()), (7, 8));
    assert_eq!(fs::read(d.join("sg/sub/g")).unwrap(), b"g");
}

/// A POSIX ACL in the kernel's xattr form: version 2, then (tag, perm, id) entries.
fn posix_acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

#[test]
fn a_default_acl_of_the_layer_does_not_decide_modes() {
    let t = tempdir();
    let d = fresh(t.path(), "l");
    // user::rwx group::r-x other::--- : new entries in "acl" would lose other's bits
    let acl = posix_acl(&[
        (0x01, 7, u32::MAX),
        (0x04, 5, u32::MAX),
        (0x20, 0, u32::MAX),
    ]);
    let layer = Layer::new()
        .dir_with_xattrs("acl/", 0o755, &[("system.posix_acl_default", &acl)])
        .file_full("acl/f", b"f", 0o644, 0, 0, 1_600_000_000)
        .dir_full("acl/d/", 0o755, 0, 0)
        .tar();
    match unpack_into(&layer, None, &d) {
        Ok(_) => {}
        // a file system without ACLs refuses the xattr: nothing to check there
        Err(e) if e.to_string().contains("not supported") => return,
        Err(e) => panic!("{e}"),
    }
    assert_eq!(
        fs::metadata(d.join("acl/f")).unwrap().mode() & 0o7777,
        0o644
    );
    assert_eq!(
        fs::metadata(d.join("acl/d")).unwrap().mode() & 0o7777,
        0o755
    );
}

#[test]
fn entries_below_a_symlinked_directory_of_the_layer_land_in_its_target() {
    let t = tempdir();
    let d = fresh(t.path(), "l");
    let layer = Layer::new()
        .dir("usr/", 0o755)
        .dir("usr/lib/", 0o755)
        .symlink("lib", "usr/lib")
        .file("lib/x", b"x")
        .dir("lib/sub/", 0o700)
        .file("lib/sub/y", b"y")
        .file("usr/lib/z", b"z")
        .tar();
    unpack_into(&layer, None, &d).unwrap();
    assert_eq!(fs::read(d.join("usr/lib/x")).unwrap(), b"x");
    assert_eq!(fs::read(d.join("usr/lib/sub/y")).unwrap(), b"y");
    assert_eq!(fs::read(d.join("usr/lib/z")).unwrap(), b"z");
    assert!(
        fs::symlink_metadata(d.join("lib"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::metadata(d.join("usr/lib/sub")).unwrap().mode() & 0o7777,
        0o700
    );
}
