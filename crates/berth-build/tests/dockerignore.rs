//! Vectors ported from moby/patternmatcher's patternmatcher_test.go and ignorefile tests.

use std::path::{Path, PathBuf};

use berth_build::dockerignore::{IgnoreError, PatternMatcher, ignore_file_for, read_patterns};

#[derive(Clone, Copy, PartialEq, Debug)]
enum T {
    Fail,
    Exact,
    Inexact,
}
use T::*;

const TESTS: &[(&str, &str, T)] = &[
    ("**", "file", Exact),
    ("**", "file/", Exact),
    ("**/", "file", Exact),
    ("**/", "file/", Exact),
    ("**", "/", Exact),
    ("**/", "/", Exact),
    ("**", "dir/file", Exact),
    ("**/", "dir/file", Exact),
    ("**", "dir/file/", Exact),
    ("**/", "dir/file/", Exact),
    ("**/**", "dir/file", Exact),
    ("**/**", "dir/file/", Exact),
    ("dir/**", "dir/file", Exact),
    ("dir/**", "dir/file/", Exact),
    ("dir/**", "dir/dir2/file", Exact),
    ("dir/**", "dir/dir2/file/", Exact),
    ("**/dir", "dir", Exact),
    ("**/dir", "dir/file", Inexact),
    ("**/dir2/*", "dir/dir2/file", Exact),
    ("**/dir2/*", "dir/dir2/file/", Inexact),
    ("**/dir2/**", "dir/dir2/dir3/file", Exact),
    ("**/dir2/**", "dir/dir2/dir3/file/", Exact),
    ("**file", "file", Exact),
    ("**file", "dir/file", Exact),
    ("**/file", "dir/file", Exact),
    ("**file", "dir/dir/file", Exact),
    ("**/file", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file.txt", Exact),
    ("**/file*txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt*", "dir/dir/file.txt", Exact),
    ("**/**/*.txt", "dir/dir/file.txt", Exact),
    ("**/**/*.txt2", "dir/dir/file.txt", Fail),
    ("**/*.txt", "file.txt", Exact),
    ("**/**/*.txt", "file.txt", Exact),
    ("a**/*.txt", "a/file.txt", Exact),
    ("a**/*.txt", "a/dir/file.txt", Exact),
    ("a**/*.txt", "a/dir/dir/file.txt", Exact),
    ("a/*.txt", "a/dir/file.txt", Fail),
    ("a/*.txt", "a/file.txt", Exact),
    ("a/*.txt**", "a/file.txt", Exact),
    ("a[b-d]e", "ae", Fail),
    ("a[b-d]e", "ace", Exact),
    ("a[b-d]e", "aae", Fail),
    ("a[^b-d]e", "aze", Exact),
    (".*", ".foo", Exact),
    (".*", "foo", Fail),
    ("abc.def", "abcdef", Fail),
    ("abc.def", "abc.def", Exact),
    ("abc.def", "abcZdef", Fail),
    ("abc?def", "abcZdef", Exact),
    ("abc?def", "abcdef", Fail),
    ("**/foo/bar", "foo/bar", Exact),
    ("**/foo/bar", "dir/foo/bar", Exact),
    ("**/foo/bar", "dir/dir2/foo/bar", Exact),
    ("abc/**", "abc", Fail),
    ("abc/**", "abc/def", Exact),
    ("abc/**", "abc/def/ghi", Exact),
    ("**/.foo", ".foo", Exact),
    ("**/.foo", "bar.foo", Fail),
    ("a(b)c/def", "a(b)c/def", Exact),
    ("a(b)c/def", "a(b)c/xyz", Fail),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", Exact),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    (
        "dist/*.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    ("a\\\\", "a\\", Exact),
    ("a\\*b", "a*b", Exact),
];

const MULTI: &[(&[&str], &str, T)] = &[
    (&["**", "!util/docker/web"], "util/docker/web/foo", Fail),
    (
        &["**", "!util/docker/web", "util/docker/web/foo"],
        "util/docker/web/foo",
        Exact,
    ),
    (
        &[
            "**",
            "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        ],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Fail,
    ),
    (
        &["**", "!dist/*.whl"],
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Fail,
    ),
];

#[test]
fn matches_exact_vectors() {
    for (p, text, t) in TESTS {
        let pm = PatternMatcher::new(&[p]).unwrap();
        assert_eq!(
            pm.matches_exact(text),
            *t == Exact,
            "pattern={p:?} text={text:?}"
        );
    }
}

#[test]
fn matches_or_parent_matches_vectors() {
    for (p, text, t) in TESTS {
        let pm = PatternMatcher::new(&[p]).unwrap();
        assert_eq!(
            pm.matches_or_parent_matches(text),
            *t != Fail,
            "pattern={p:?} text={text:?}"
        );
    }
    for (ps, text, t) in MULTI {
        let pm = PatternMatcher::new(ps).unwrap();
        assert_eq!(
            pm.matches_or_parent_matches(text),
            *t != Fail,
            "patterns={ps:?} text={text:?}"
        );
    }
}

// Go's filepath.Match vectors run through the deprecated `Matches` (parent at pattern depth).
const MATCH_TESTS: &[(&str, &str, bool, bool)] = &[
    ("abc", "abc", true, false),
    ("*", "abc", true, false),
    ("*c", "abc", true, false),
    ("a*", "a", true, false),
    ("a*", "abc", true, false),
    ("a*", "ab/c", true, false),
    ("a*/b", "abc/b", true, false),
    ("a*/b", "a/c/b", false, false),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", true, false),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true, false),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false, false),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false, false),
    ("a*b?c*x", "abxbbxdbxebxczzx", true, false),
    ("a*b?c*x", "abxbbxdbxebxczzy", false, false),
    ("ab[c]", "abc", true, false),
    ("ab[b-d]", "abc", true, false),
    ("ab[e-g]", "abc", false, false),
    ("ab[^c]", "abc", false, false),
    ("ab[^b-d]", "abc", false, false),
    ("ab[^e-g]", "abc", true, false),
    ("a\\*b", "a*b", true, false),
    ("a\\*b", "ab", false, false),
    ("a?b", "a☺b", true, false),
    ("a[^a]b", "a☺b", true, false),
    ("a???b", "a☺b", false, false),
    ("a[^a][^a][^a]b", "a☺b", false, false),
    ("[a-ζ]*", "α", true, false),
    ("*[a-ζ]", "A", false, false),
    ("a?b", "a/b", false, false),
    ("a*b", "a/b", false, false),
    ("[\\]a]", "]", true, false),
    ("[\\-]", "-", true, false),
    ("[x\\-]", "x", true, false),
    ("[x\\-]", "-", true, false),
    ("[x\\-]", "z", false, false),
    ("[\\-x]", "x", true, false),
    ("[\\-x]", "-", true, false),
    ("[\\-x]", "a", false, false),
    ("[]a]", "]", false, true),
    ("[-]", "-", false, true),
    ("[x-]", "x", false, true),
    ("[x-]", "-", false, true),
    ("[x-]", "z", false, true),
    ("[-x]", "x", false, true),
    ("[-x]", "-", false, true),
    ("[-x]", "a", false, true),
    ("\\", "a", false, true),
    ("[a-b-c]", "a", false, true),
    ("[", "a", false, true),
    ("[^", "a", false, true),
    ("[^bc", "a", false, true),
    ("a[", "a", false, true),
    ("a[", "ab", false, true),
    ("*x", "xxx", true, false),
];

#[test]
fn go_filepath_match_vectors() {
    for (p, s, want, bad) in MATCH_TESTS {
        match PatternMatcher::new(&[p]) {
            Ok(pm) => {
                assert!(!bad, "pattern {p:?} should be rejected");
                assert_eq!(pm.matches(s), *want, "pattern={p:?} text={s:?}");
            }
            Err(e) => {
                assert!(bad, "pattern {p:?} rejected: {e}");
                assert!(matches!(e, IgnoreError::BadPattern(_)));
            }
        }
    }
}

#[test]
fn simple_cases() {
    let m = |file: &str, ps: &[&str]| PatternMatcher::new(ps).unwrap().matches(file);
    assert!(m("fileutils.go", &["*"]));
    assert!(m("fileutils.go", &["*.go"]));
    assert!(m("fileutils.go", &["!fileutils.go", "*.go"]));
    assert!(!m("docs/README.md", &["docs", "!docs/README.md"]));
    assert!(!m("docs/README.md", &["docs/", "!docs/README.md"]));
    assert!(!m("docs/README.md", &["docs/*", "!docs/README.md"]));
    assert!(!m("fileutils.go", &["*.go", "!fileutils.go"]));
    assert!(!m(".", &["*.go"]));
    assert!(!m("/any/path/there", &[]));
    assert_eq!(
        PatternMatcher::new(&["!"]).unwrap_err(),
        IgnoreError::IllegalExclusion
    );
    assert!(PatternMatcher::new(&["["]).is_err());
}

#[test]
fn clean_patterns() {
    assert_eq!(
        PatternMatcher::new(&["docs", "config", ""])
            .unwrap()
            .patterns()
            .len(),
        2
    );
    assert!(
        PatternMatcher::new(&["docs", "  !docs/README.md"])
            .unwrap()
            .exclusions()
    );
    assert!(
        PatternMatcher::new(&["docs", "!docs/README.md  "])
            .unwrap()
            .exclusions()
    );
    assert!(!PatternMatcher::new(&["docs"]).unwrap().exclusions());
}

#[test]
fn read_ignore_file() {
    let text =
        "\u{feff}# comment\n  \n/node_modules\n!/keep.txt\n  ! spaced \n*.log\n./a/../b\n#x\n/\n";
    assert_eq!(
        read_patterns(text),
        vec!["node_modules", "!keep.txt", "!spaced", "*.log", "b", "/"]
    );
}

#[test]
fn node_project_ignore() {
    let pm = PatternMatcher::new(&read_patterns("node_modules\n.git\n*.md\n!README.md\n")).unwrap();
    assert!(pm.matches_or_parent_matches("node_modules"));
    assert!(pm.matches_or_parent_matches("node_modules/fastify/index.js"));
    assert!(pm.matches_or_parent_matches(".git/HEAD"));
    assert!(pm.matches_or_parent_matches("CHANGES.md"));
    assert!(!pm.matches_or_parent_matches("README.md"));
    assert!(!pm.matches_or_parent_matches("index.js"));
    assert!(!pm.matches_or_parent_matches("src/node_modules_like.js"));
}

#[test]
fn dockerfile_specific_ignore_file_wins() {
    let ctx = Path::new("/ctx");
    let df = Path::new("/other/build/Dockerfile.dev");
    let both = |p: &Path| {
        p == Path::new("/other/build/Dockerfile.dev.dockerignore")
            || p == Path::new("/ctx/.dockerignore")
    };
    assert_eq!(
        ignore_file_for(ctx, df, &both),
        Some(PathBuf::from("/other/build/Dockerfile.dev.dockerignore"))
    );
    let general = |p: &Path| p == Path::new("/ctx/.dockerignore");
    assert_eq!(
        ignore_file_for(ctx, df, &general),
        Some(PathBuf::from("/ctx/.dockerignore"))
    );
    let none = |_: &Path| false;
    assert_eq!(ignore_file_for(ctx, df, &none), None);
}

#[test]
fn walker_descends_only_when_an_exception_lies_below() {
    let pm = PatternMatcher::new(&["docs", "!docs/README.md", "vendor"]).unwrap();
    assert!(pm.excludes("docs"));
    assert!(pm.may_include_below("docs"));
    assert!(!pm.excludes("docs/README.md"));
    assert!(pm.excludes("vendor/x"));
    assert!(!pm.may_include_below("vendor"));
    assert!(!pm.excludes("."));
    let none = PatternMatcher::new(&["docs"]).unwrap();
    assert!(!none.may_include_below("docs"));
}

#[test]
fn dockerfile_and_ignore_file_are_always_sent() {
    use berth_build::dockerignore::keep_build_files;
    let pats = keep_build_files(read_patterns("*\n"), Some("build/Dockerfile"));
    assert_eq!(pats, vec!["*", "!.dockerignore", "!build/Dockerfile"]);
    let pm = PatternMatcher::new(&pats).unwrap();
    assert!(!pm.excludes(".dockerignore"));
    assert!(!pm.excludes("build/Dockerfile"));
    assert!(pm.excludes("index.js"));
    // a Dockerfile outside the context is not named; no patterns stay no patterns
    assert_eq!(
        keep_build_files(vec!["x".into()], Some("../Dockerfile")),
        vec!["x", "!.dockerignore"]
    );
    assert!(keep_build_files(Vec::new(), Some("Dockerfile")).is_empty());
}
