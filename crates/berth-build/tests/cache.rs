//! Cache keys: deterministic, and a changed input changes only the keys from its step on.

use std::collections::BTreeMap;

use berth_build::cache::{SourceEntry, base_key, content_digest, sources_digest, step_key};
use berth_build::{BuildOptions, BuildPlan, ImageConfig, Op, parse};

const DOCKERFILE: &str = "FROM node:20\nARG NODE_ENV=production\nUSER node\nWORKDIR /home/node/code\nCOPY --chown=node:node package*.json .\nRUN npm ci\nCOPY --chown=node . .\nLABEL env=$NODE_ENV\nCMD [\"node\", \"index.js\"]\n";

fn entry(path: &str, content: &[u8]) -> SourceEntry {
    SourceEntry {
        path: path.to_string(),
        mode: 0o100644,
        uid: 1000,
        gid: 1000,
        size: content.len() as u64,
        digest: content_digest(content),
        link_target: None,
    }
}

/// Keys of every step; COPY steps take the digest of the files they would copy.
fn keys(args: &[(&str, &str)], files: &BTreeMap<&str, &[u8]>) -> Vec<String> {
    let o = BuildOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let plan = BuildPlan::new(&parse(DOCKERFILE).unwrap(), o).unwrap();
    let stage = plan.stage_steps(0, &ImageConfig::default()).unwrap();
    let mut parent = base_key("sha256:nodeimage", "linux/amd64");
    let mut out = Vec::new();
    for step in &stage.steps {
        let digest = match &step.op {
            Op::Copy(c) => {
                let entries: Vec<SourceEntry> = files
                    .iter()
                    .filter(|(p, _)| {
                        c.sources
                            .iter()
                            .any(|s| s == "." || berth_build::copy::go_match(s, p).unwrap())
                    })
                    .map(|(p, b)| entry(p, b))
                    .collect();
                Some(sources_digest(&entries))
            }
            _ => None,
        };
        parent = step_key(&parent, step, digest.as_deref());
        out.push(parent.clone());
    }
    out
}

fn files() -> BTreeMap<&'static str, &'static [u8]> {
    BTreeMap::from([
        ("package.json", &b"{\"name\":\"app\"}"[..]),
        ("package-lock.json", &b"{}"[..]),
        ("index.js", &b"console.log(1)"[..]),
    ])
}

#[test]
fn keys_are_deterministic_and_distinct() {
    let a = keys(&[], &files());
    let b = keys(&[], &files());
    assert_eq!(a, b);
    assert_eq!(a.len(), 8);
    let mut uniq = a.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), a.len());
    assert!(a.iter().all(|k| k.starts_with("sha256:") && k.len() == 71));
}

#[test]
fn changing_a_source_file_changes_keys_from_that_copy_on() {
    let before = keys(&[], &files());
    let mut f = files();
    f.insert("index.js", b"console.log(2)");
    let after = keys(&[], &f);
    // steps: ARG, USER, WORKDIR, COPY package*, RUN, COPY ., LABEL, CMD
    assert_eq!(
        before[..5],
        after[..5],
        "steps before the second COPY keep their keys"
    );
    for i in 5..8 {
        assert_ne!(before[i], after[i], "step {i} must change");
    }
    let mut f = files();
    f.insert("package.json", b"{\"name\":\"app2\"}");
    let after = keys(&[], &f);
    assert_eq!(before[..3], after[..3]);
    assert_ne!(before[3], after[3]);
}

#[test]
fn build_arg_value_is_part_of_the_key_of_steps_using_it() {
    let before = keys(&[], &files());
    let after = keys(&[("NODE_ENV", "development")], &files());
    // RUN has the ARG in scope (its environment) and LABEL expands it; the ARG, USER,
    // WORKDIR and first COPY steps do not read its value
    assert_eq!(before[..4], after[..4]);
    assert_ne!(before[4], after[4]);
}

#[test]
fn source_digest_ignores_order_but_not_metadata() {
    let a = entry("a", b"1");
    let b = entry("b", b"2");
    assert_eq!(
        sources_digest(&[a.clone(), b.clone()]),
        sources_digest(&[b.clone(), a.clone()])
    );
    let base = sources_digest(&[a.clone(), b.clone()]);
    let mut m = a.clone();
    m.mode = 0o100755;
    assert_ne!(sources_digest(&[m, b.clone()]), base);
    let mut o = a.clone();
    o.uid = 0;
    assert_ne!(sources_digest(&[o, b.clone()]), base);
    let mut r = a.clone();
    r.path = "c".into();
    assert_ne!(sources_digest(&[r, b.clone()]), base);
    let mut l = a.clone();
    l.link_target = Some("b".into());
    assert_ne!(sources_digest(&[l, b.clone()]), base);
    assert_ne!(sources_digest(&[]), base);
}

#[test]
fn content_digest_is_sha256() {
    assert_eq!(
        content_digest(b""),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
