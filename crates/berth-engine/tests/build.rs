//! `Engine::build_image` without a daemon: the classic message stream, cache hits across
//! builds, COPY errors, `prune_build_cache`. (RUN steps need `berth-runc` next to berthd:
//! they are covered end to end in crates/berth/tests/build.rs.)

use berth_engine::build::{BuildMessage, BuildRequest};
use berth_engine::{Engine, EngineConfig};
use bytes::Bytes;

fn engine() -> (tempfile::TempDir, std::sync::Arc<Engine>) {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(EngineConfig::new(
        dir.path().join("data"),
        dir.path().join("run"),
    ))
    .unwrap();
    (dir, e)
}

fn body(bytes: Vec<u8>) -> berth_engine::io::ByteStream {
    Box::pin(futures_util::stream::iter([Ok::<_, std::io::Error>(
        Bytes::from(bytes),
    )]))
}

fn context(files: &[(&str, &str)]) -> Vec<u8> {
    let mut t = tar::Builder::new(Vec::new());
    for (name, text) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_000);
        t.append_data(&mut h, name, text.as_bytes()).unwrap();
    }
    t.into_inner().unwrap()
}

async fn build(e: &std::sync::Arc<Engine>, ctx: Vec<u8>, req: BuildRequest) -> Vec<BuildMessage> {
    let mut rx = e.build_image(body(ctx), req).await.unwrap();
    let mut out = Vec::new();
    while let Some(m) = rx.recv().await {
        out.push(m);
    }
    out
}

fn text(msgs: &[BuildMessage]) -> String {
    msgs.iter()
        .filter_map(|m| match m {
            BuildMessage::Stream(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_stream_cache_hits_errors_and_prune() {
    let (_d, e) = engine();
    let dockerfile = "FROM scratch\nENV A=1\nCOPY a.txt /a.txt\nLABEL x=y\n";
    let files = [("Dockerfile", dockerfile), ("a.txt", "hello\n")];
    let req = BuildRequest {
        tags: vec!["t:1".into()],
        ..Default::default()
    };
    let first = build(&e, context(&files), req.clone()).await;
    let t = text(&first);
    assert!(
        t.starts_with("Step 1/4 : FROM scratch\n ---> \nStep 2/4 : ENV A=1\n"),
        "{t}"
    );
    assert!(t.contains("Successfully tagged t:1\n"), "{t}");
    assert!(!t.contains("Using cache"), "{t}");
    let id = first
        .iter()
        .find_map(|m| match m {
            BuildMessage::Aux(v) => v["ID"].as_str().map(str::to_owned),
            _ => None,
        })
        .expect("aux id");
    let inspect = e.inspect_image("t:1").await.unwrap();
    assert_eq!(inspect["Id"], id.as_str());
    // the same context again: every step cached, same image
    let second = build(&e, context(&files), req.clone()).await;
    assert_eq!(text(&second).matches(" ---> Using cache\n").count(), 3);
    assert!(text(&second).contains(&format!("Successfully built {}\n", &id[7..19])));
    // one file changed: the steps before the COPY stay cached
    let third = build(
        &e,
        context(&[("Dockerfile", dockerfile), ("a.txt", "changed\n")]),
        req.clone(),
    )
    .await;
    assert_eq!(text(&third).matches(" ---> Using cache\n").count(), 1);
    // a missing COPY source fails the build with a message naming it, and no tag
    let bad = build(
        &e,
        context(&[("Dockerfile", "FROM scratch\nCOPY missing.txt /\n")]),
        BuildRequest {
            tags: vec!["bad:1".into()],
            ..Default::default()
        },
    )
    .await;
    match bad.last() {
        Some(BuildMessage::Error(m)) => assert!(m.contains("missing.txt"), "{m}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(e.inspect_image("bad:1").await.is_err());
    // a Dockerfile parse error names the line
    let parse = build(
        &e,
        context(&[("Dockerfile", "FROM scratch\nBOGUS x\n")]),
        BuildRequest::default(),
    )
    .await;
    match parse.last() {
        Some(BuildMessage::Error(m)) => assert!(m.contains("line 2"), "{m}"),
        other => panic!("expected an error, got {other:?}"),
    }
    // prune forgets the cache
    let (removed, _) = e.prune_build_cache().await.unwrap();
    assert!(!removed.is_empty());
    let after = build(&e, context(&files), req).await;
    assert_eq!(text(&after).matches(" ---> Using cache\n").count(), 0);
    // the tagged image survives prune
    assert!(e.inspect_image("t:1").await.is_ok());
}
