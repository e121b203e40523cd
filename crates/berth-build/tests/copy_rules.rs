//! COPY source/destination rules over a list of context paths.

use berth_build::copy::{
    ContextEntry, CopyAction, CopyError, clean, parse_chmod, parse_chown, plan_copy, resolve_dest,
};

fn ctx() -> Vec<ContextEntry> {
    [
        ("package.json", false),
        ("package-lock.json", false),
        ("index.js", false),
        ("src", true),
        ("src/app.js", false),
        ("src/lib", true),
        ("src/lib/util.js", false),
        ("dist", true),
        ("dist/index.html", false),
    ]
    .iter()
    .map(|(p, d)| ContextEntry {
        path: p.to_string(),
        is_dir: *d,
    })
    .collect()
}

fn run(sources: &[&str], dest: &str, workdir: &str) -> Result<Vec<CopyAction>, CopyError> {
    let s: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    plan_copy(&s, dest, workdir, &ctx(), &|p| p == "/existing")
}

fn pairs(v: &[CopyAction]) -> Vec<(&str, &str, bool)> {
    v.iter()
        .map(|a| (a.src.as_str(), a.dest.as_str(), a.src_is_dir))
        .collect()
}

#[test]
fn wildcard_into_workdir() {
    let r = run(&["package*.json"], ".", "/home/node/code").unwrap();
    assert_eq!(
        pairs(&r),
        vec![
            (
                "package-lock.json",
                "/home/node/code/package-lock.json",
                false
            ),
            ("package.json", "/home/node/code/package.json", false)
        ]
    );
}

#[test]
fn single_file_to_file_and_dir() {
    assert_eq!(
        pairs(&run(&["index.js"], "/app/main.js", "/").unwrap()),
        vec![("index.js", "/app/main.js", false)]
    );
    assert_eq!(
        pairs(&run(&["index.js"], "/app/", "/").unwrap()),
        vec![("index.js", "/app/index.js", false)]
    );
    assert_eq!(
        pairs(&run(&["index.js"], "rel", "/w").unwrap()),
        vec![("index.js", "/w/rel", false)]
    );
    // an existing directory receives the file
    assert_eq!(
        pairs(&run(&["index.js"], "/existing", "/").unwrap()),
        vec![("index.js", "/existing/index.js", false)]
    );
}

#[test]
fn directory_source_copies_contents() {
    assert_eq!(
        pairs(&run(&["src"], "/app", "/").unwrap()),
        vec![("src", "/app", true)]
    );
    assert_eq!(
        pairs(&run(&["."], ".", "/app").unwrap()),
        vec![("", "/app", true)]
    );
    assert_eq!(
        pairs(&run(&["/dist/"], "/usr/share/nginx/html", "/").unwrap()),
        vec![("dist", "/usr/share/nginx/html", true)]
    );
}

#[test]
fn several_sources_need_a_directory_destination() {
    let e = run(&["index.js", "package.json"], "/app", "/").unwrap_err();
    assert!(
        matches!(e, CopyError::DestNotDirectory { count: 2, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("must be a directory"));
    let e = run(&["package*.json"], "/app", "/").unwrap_err();
    assert!(matches!(e, CopyError::DestNotDirectory { .. }));
    let ok = run(&["index.js", "package.json"], "/app/", "/").unwrap();
    assert_eq!(
        pairs(&ok),
        vec![
            ("index.js", "/app/index.js", false),
            ("package.json", "/app/package.json", false)
        ]
    );
}

#[test]
fn missing_sources() {
    assert_eq!(
        run(&["nope.txt"], "/x", "/").unwrap_err(),
        CopyError::NotFound("nope.txt".into())
    );
    assert!(matches!(
        run(&["*.rs"], "/x/", "/").unwrap_err(),
        CopyError::NoSources(_)
    ));
    // wildcards do not cross directories
    let r = run(&["*.js"], "/x/", "/").unwrap();
    assert_eq!(pairs(&r), vec![("index.js", "/x/index.js", false)]);
    let r = run(&["src/*.js"], "/x/", "/").unwrap();
    assert_eq!(pairs(&r), vec![("src/app.js", "/x/app.js", false)]);
}

#[test]
fn sources_cannot_escape_the_context() {
    let r = run(&["../../index.js"], "/x", "/").unwrap();
    assert_eq!(pairs(&r), vec![("index.js", "/x", false)]);
}

#[test]
fn dest_resolution() {
    assert_eq!(resolve_dest("/app", "."), "/app/");
    assert_eq!(resolve_dest("", "."), "/");
    assert_eq!(resolve_dest("/app", "sub/"), "/app/sub/");
    assert_eq!(resolve_dest("/app", "../x"), "/x");
    assert_eq!(resolve_dest("/app", "/abs"), "/abs");
    assert_eq!(clean("a//b/./c/.."), "a/b");
    assert_eq!(clean("/../a"), "/a");
    assert_eq!(clean(""), ".");
}

#[test]
fn chown_and_chmod() {
    let c = parse_chown("node:node").unwrap();
    assert_eq!(
        (c.user.as_str(), c.group.as_deref()),
        ("node", Some("node"))
    );
    let c = parse_chown("1000").unwrap();
    assert_eq!((c.user.as_str(), c.group), ("1000", None));
    assert!(parse_chown(":g").is_err());
    assert!(parse_chown("a:").is_err());
    assert_eq!(parse_chmod("755").unwrap(), 0o755);
    assert_eq!(parse_chmod("0644").unwrap(), 0o644);
    assert_eq!(
        parse_chmod("u+x").unwrap_err(),
        CopyError::BadChmod("u+x".into())
    );
    assert!(parse_chmod("8").is_err());
}

#[test]
fn chown_by_name_or_id() {
    use berth_build::copy::resolve_chown;
    let passwd = "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\nsherzod:x:1001:1002::/home/sherzod:/bin/bash\n";
    let group = "root:x:0:\nnode:x:1000:\nsherzod:x:1002:\nstaff:x:50:node\n";
    let r = |s: &str| resolve_chown(&parse_chown(s).unwrap(), Some(passwd), Some(group));
    assert_eq!(r("node:node").unwrap(), (1000, 1000));
    assert_eq!(r("sherzod").unwrap(), (1001, 1001));
    assert_eq!(r("sherzod:sherzod").unwrap(), (1001, 1002));
    assert_eq!(r("1234:staff").unwrap(), (1234, 50));
    assert_eq!(r("1234").unwrap(), (1234, 1234));
    assert_eq!(
        r("nobody").unwrap_err(),
        CopyError::NoSuchUser("nobody".into())
    );
    assert_eq!(
        r("node:wheel").unwrap_err().to_string(),
        "unable to find group wheel: no matching entries in group file"
    );
    assert!(resolve_chown(&parse_chown("node").unwrap(), None, None).is_err());
}

#[test]
fn add_sources_urls_and_archives() {
    use berth_build::copy::{Archive, detect_archive, is_git_url, is_url};
    assert!(is_url("https://example.invalid/a.tgz"));
    assert!(is_url("HTTP://x/y"));
    assert!(!is_url("./http.txt"));
    assert!(is_git_url("https://github.com/moby/buildkit.git#v0.10.1"));
    assert!(is_git_url("git@github.com:moby/buildkit.git"));
    assert!(!is_git_url("https://example.invalid/file.tar.gz"));
    assert_eq!(detect_archive(&[0x1f, 0x8b, 0x08, 0]), Some(Archive::Gzip));
    assert_eq!(detect_archive(b"BZh91AY"), Some(Archive::Bzip2));
    assert_eq!(
        detect_archive(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1]),
        Some(Archive::Xz)
    );
    assert_eq!(
        detect_archive(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
        Some(Archive::Zstd)
    );
    let mut tar = vec![0u8; 512];
    tar[257..263].copy_from_slice(b"ustar\0");
    assert_eq!(detect_archive(&tar), Some(Archive::Tar));
    assert_eq!(detect_archive(b"just text, not an archive"), None);
    assert_eq!(detect_archive(&[]), None);
}
