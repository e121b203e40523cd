//! Layer contents: determinism, metadata kept, tarball input normalised, CLI options.
mod common;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

use berth_mkimage::{Image, ImageOptions, Layer, busybox_image};
use common::{json, run, tar_listing};

const EPOCH: i64 = 1_700_000_000;

#[test]
fn byte_reproducible_with_source_date_epoch() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let ia = busybox_image(a.path(), "busybox:latest", Some(EPOCH)).unwrap();
    let ib = busybox_image(b.path(), "busybox:latest", Some(EPOCH)).unwrap();
    assert_eq!(ia.manifest_digest, ib.manifest_digest);
    ia.write_docker_archive(&a.path().join("x.tar"), false)
        .unwrap();
    ib.write_docker_archive(&b.path().join("x.tar"), false)
        .unwrap();
    assert_eq!(
        fs::read(a.path().join("x.tar")).unwrap(),
        fs::read(b.path().join("x.tar")).unwrap()
    );
    ia.write_oci_layout(&a.path().join("oci")).unwrap();
    ib.write_oci_layout(&b.path().join("oci")).unwrap();
    for f in ["index.json", "oci-layout"] {
        assert_eq!(
            fs::read(a.path().join("oci").join(f)).unwrap(),
            fs::read(b.path().join("oci").join(f)).unwrap()
        );
    }
    // And through the binary, as two separate processes.
    let bin = env!("CARGO_BIN_EXE_berth-mkimage");
    for d in [a.path(), b.path()] {
        run(Command::new(bin)
            .env("SOURCE_DATE_EPOCH", EPOCH.to_string())
            .args(["busybox", "--gzip", "--docker-archive"])
            .arg(d.join("cli.tar.gz")));
    }
    assert_eq!(
        fs::read(a.path().join("cli.tar.gz")).unwrap(),
        fs::read(b.path().join("cli.tar.gz")).unwrap()
    );
}

#[test]
fn entries_are_sorted_and_mtimes_clamped() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    fs::create_dir_all(root.join("b/c")).unwrap();
    fs::write(root.join("z"), b"z").unwrap();
    fs::write(root.join("a.txt"), b"a").unwrap();
    fs::write(root.join("b/c/d"), b"d").unwrap();
    let layer = Layer::from_dir(&root, Some(1000)).unwrap();
    let list = tar_listing(&layer.tar);
    let names: Vec<_> = list
        .iter()
        .map(|e| e.0.trim_end_matches('/').to_string())
        .collect();
    assert_eq!(names, ["a.txt", "b", "b/c", "b/c/d", "z"]);
    assert!(list.iter().all(|e| e.5 == 1000), "mtimes clamped: {list:?}");
    // Without an epoch the real mtime (now, far after 1000) is kept.
    let layer = Layer::from_dir(&root, None).unwrap();
    assert!(tar_listing(&layer.tar).iter().all(|e| e.5 > 1000));
}

#[test]
fn owners_modes_symlinks_hardlinks_and_devices_are_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    fs::create_dir_all(root.join("d")).unwrap();
    fs::write(root.join("suid"), b"x").unwrap();
    // chown clears setuid, so it comes first.
    std::os::unix::fs::chown(root.join("suid"), Some(1000), Some(2000)).unwrap();
    fs::set_permissions(root.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::set_permissions(root.join("d"), fs::Permissions::from_mode(0o1777)).unwrap();
    symlink("../suid", root.join("d/link")).unwrap();
    fs::write(root.join("y-file"), b"data").unwrap();
    fs::hard_link(root.join("y-file"), root.join("a-hard")).unwrap();
    run(Command::new("mknod")
        .arg(root.join("null"))
        .args(["c", "1", "3"]));
    run(Command::new("mkfifo").arg(root.join("fifo")));

    let layer = Layer::from_dir(&root, Some(EPOCH)).unwrap();
    let list = tar_listing(&layer.tar);
    let get = |n: &str| {
        list.iter()
            .find(|e| e.0.trim_end_matches('/') == n)
            .unwrap_or_else(|| panic!("{n} in {list:?}"))
            .clone()
    };
    let suid = get("suid");
    assert_eq!((suid.1, suid.2, suid.3, suid.4), (b'0', 0o4755, 1000, 2000));
    assert_eq!(get("d").2, 0o1777);
    assert_eq!(
        (get("d/link").1, get("d/link").6),
        (b'2', Some("../suid".to_string()))
    );
    // The first path in sorted order carries the data; the other links to it.
    assert_eq!(get("a-hard").1, b'0');
    assert_eq!(
        (get("y-file").1, get("y-file").6),
        (b'1', Some("a-hard".to_string()))
    );
    assert_eq!(get("null").1, b'3');
    assert_eq!(get("fifo").1, b'6');
    let mut a = tar::Archive::new(layer.tar.as_slice());
    let dev = a
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap() == Path::new("null"))
        .unwrap();
    assert_eq!(
        (
            dev.header().device_major().unwrap(),
            dev.header().device_minor().unwrap()
        ),
        (Some(1), Some(3))
    );
}

#[test]
fn tarball_input_is_normalised() {
    let tmp = tempfile::tempdir().unwrap();
    // An unsorted gzip tarball with ./ prefixes and a hard link whose target sorts later.
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut add = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(2_000_000_000);
        h.set_uid(7);
        h.set_gid(8);
        h.set_size(data.len() as u64);
        match link {
            Some(l) => b.append_link(&mut h, path, l).unwrap(),
            None => b.append_data(&mut h, path, data).unwrap(),
        }
    };
    add("./usr/", tar::EntryType::Directory, b"", None);
    add("./usr/zz", tar::EntryType::Regular, b"content", None);
    add("./usr/aa", tar::EntryType::Link, b"", Some("./usr/zz"));
    add("./etc/", tar::EntryType::Directory, b"", None);
    add("./etc/os", tar::EntryType::Symlink, b"", Some("../usr/zz"));
    let tgz = tmp.path().join("in.tar.gz");
    fs::write(&tgz, b.into_inner().unwrap().finish().unwrap()).unwrap();

    let layer = Layer::from_tarball(&tgz, Some(EPOCH)).unwrap();
    let list = tar_listing(&layer.tar);
    let names: Vec<_> = list
        .iter()
        .map(|e| e.0.trim_end_matches('/').to_string())
        .collect();
    assert_eq!(names, ["etc", "etc/os", "usr", "usr/aa", "usr/zz"]);
    assert!(
        list.iter()
            .all(|e| e.5 == EPOCH as u64 && e.3 == 7 && e.4 == 8)
    );
    assert_eq!(list[3].1, b'0', "usr/aa now carries the data");
    assert_eq!((list[4].1, list[4].6.as_deref()), (b'1', Some("usr/aa")));
    let mut a = tar::Archive::new(layer.tar.as_slice());
    let mut e = a
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap() == Path::new("usr/aa"))
        .unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut e, &mut s).unwrap();
    assert_eq!(s, "content");

    // A tarball that escapes the root is refused with its path.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_entry_type(tar::EntryType::Regular);
    h.as_old_mut().name[..9].copy_from_slice(b"../evil\0\0");
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let bad = tmp.path().join("bad.tar");
    fs::write(&bad, b.into_inner().unwrap()).unwrap();
    let err = Layer::from_tarball(&bad, None).unwrap_err().to_string();
    assert!(err.contains("../evil"), "{err}");
}

#[test]
fn several_layers_keep_their_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (l1, l2) = (tmp.path().join("l1"), tmp.path().join("l2"));
    fs::create_dir_all(&l1).unwrap();
    fs::create_dir_all(&l2).unwrap();
    fs::write(l1.join("one"), b"1").unwrap();
    fs::write(l2.join("two"), b"2").unwrap();
    let opts = ImageOptions {
        source_date_epoch: Some(EPOCH),
        ..Default::default()
    };
    let img = Image::from_rootfs_layers(&[&l1, &l2], "multi:1", &opts).unwrap();
    assert_eq!(
        img.config.rootfs.diff_ids,
        [img.layers[0].diff_id.clone(), img.layers[1].diff_id.clone()]
    );
    assert_eq!(img.config.history.len(), 2);
    let oci = tmp.path().join("oci");
    img.write_oci_layout(&oci).unwrap();
    let bundle = tmp.path().join("b");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:1", oci.display()))
        .arg(&bundle));
    assert_eq!(fs::read(bundle.join("rootfs/one")).unwrap(), b"1");
    assert_eq!(fs::read(bundle.join("rootfs/two")).unwrap(), b"2");
}

#[test]
fn cli_sets_every_config_field() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::write(root.join("bin/app"), b"#!/bin/sh\n").unwrap();
    let oci = tmp.path().join("oci");
    let archive = tmp.path().join("out.tar");
    run(Command::new(env!("CARGO_BIN_EXE_berth-mkimage"))
        .arg("--rootfs")
        .arg(&root)
        .args([
            "--tag",
            "127.0.0.1:5000/app:v2",
            "--cmd",
            r#"["-c","echo hi"]"#,
            "--entrypoint",
            "/bin/sh",
        ])
        .args([
            "--env",
            "A=1",
            "--env",
            "PATH=/bin",
            "--workdir",
            "/srv",
            "--user",
            "1000:1000",
        ])
        .args([
            "--label",
            "k=v=w",
            "--expose",
            "80/tcp",
            "--expose",
            "53/udp",
            "--stop-signal",
            "SIGINT",
        ])
        .arg("--oci-layout")
        .arg(&oci)
        .arg("--docker-archive")
        .arg(&archive));
    for src in [
        format!("oci:{}:v2", oci.display()),
        format!("docker-archive:{}", archive.display()),
    ] {
        let c = json(Command::new("skopeo").args(["inspect", "--config", &src]));
        let cfg = &c["config"];
        assert_eq!(cfg["Cmd"], serde_json::json!(["-c", "echo hi"]), "{src}");
        assert_eq!(cfg["Entrypoint"], serde_json::json!(["/bin/sh"]));
        assert_eq!(cfg["Env"], serde_json::json!(["A=1", "PATH=/bin"]));
        assert_eq!(cfg["WorkingDir"], "/srv");
        assert_eq!(cfg["User"], "1000:1000");
        assert_eq!(cfg["Labels"]["k"], "v=w");
        assert_eq!(
            cfg["ExposedPorts"],
            serde_json::json!({"53/udp": {}, "80/tcp": {}})
        );
        assert_eq!(cfg["StopSignal"], "SIGINT");
    }
    let v = json(
        Command::new("skopeo")
            .args(["inspect"])
            .arg(format!("docker-archive:{}", archive.display())),
    );
    assert_eq!(
        v["RepoTags"],
        serde_json::json!([]),
        "skopeo reports tags of registries only"
    );
}

#[test]
fn cli_errors_name_what_was_wrong() {
    let bin = env!("CARGO_BIN_EXE_berth-mkimage");
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 4] = [
        (
            &["--rootfs", "/nonexistent-rootfs", "--oci-layout", "x"],
            "/nonexistent-rootfs",
        ),
        (&["busybox"], "--oci-layout"),
        (
            &["busybox", "--tag", "Bad:Tag", "--oci-layout", "x"],
            "Bad:Tag",
        ),
        (
            &[
                "--rootfs",
                "/",
                "--env",
                "NOVALUE",
                "--tag",
                "a",
                "--docker-archive",
                "x",
            ],
            "NOVALUE",
        ),
    ];
    for (args, needle) in cases {
        let out = Command::new(bin)
            .current_dir(tmp.path())
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn references_parse_like_docker() {
    use berth_mkimage::Reference;
    let r = Reference::parse("busybox").unwrap();
    assert_eq!(
        (r.repository.as_str(), r.tag.as_str()),
        ("busybox", "latest")
    );
    let r = Reference::parse("127.0.0.1:5000/a/b:1.0").unwrap();
    assert_eq!(
        (r.repository.as_str(), r.tag.as_str()),
        ("127.0.0.1:5000/a/b", "1.0")
    );
    let r = Reference::parse("127.0.0.1:5000/a").unwrap();
    assert_eq!(
        (r.repository.as_str(), r.tag.as_str()),
        ("127.0.0.1:5000/a", "latest")
    );
    assert!(Reference::parse("a@sha256:00").is_err());
    assert!(Reference::parse("a:-x").is_err());
    assert!(Reference::parse(":x").is_err());
}

#[test]
fn security_capability_is_kept_and_tarball_round_trip_is_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    fs::create_dir_all(&root).unwrap();
    let ping = root.join("ping");
    fs::write(&ping, b"\x7fELF").unwrap();
    // VFS_CAP_REVISION_2 | effective, permitted = CAP_NET_RAW (bit 13).
    let mut cap = Vec::new();
    cap.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    cap.extend_from_slice(&(1u32 << 13).to_le_bytes());
    cap.extend_from_slice(&[0u8; 12]);
    rustix::fs::lsetxattr(
        &ping,
        "security.capability",
        &cap,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    // Another attribute that is host state, not image content.
    rustix::fs::lsetxattr(
        &ping,
        "user.berth-test",
        b"x",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();

    let layer = Layer::from_dir(&root, Some(EPOCH)).unwrap();
    let mut a = tar::Archive::new(layer.tar.as_slice());
    let mut found = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap() != Path::new("ping") {
            continue;
        }
        for ext in e.pax_extensions().unwrap().unwrap() {
            let ext = ext.unwrap();
            found.push((ext.key().unwrap().to_string(), ext.value_bytes().to_vec()));
        }
    }
    assert_eq!(
        found,
        [("SCHILY.xattr.security.capability".to_string(), cap)]
    );

    // Feeding the layer back in as a tarball changes nothing.
    let tarball = tmp.path().join("layer.tar");
    fs::write(&tarball, &layer.tar).unwrap();
    let again = Layer::from_tarball(&tarball, Some(EPOCH)).unwrap();
    assert_eq!(again.diff_id, layer.diff_id);
}
