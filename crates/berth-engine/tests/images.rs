//! The engine's image operations on a real store in a temp dir: results, errors and the
//! events each publishes.

use std::collections::BTreeMap;

use berth_engine::{Engine, EngineConfig, ErrorKind};
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

async fn load_busybox(e: &Engine) {
    let archive = std::fs::read(berth_testkit::images::busybox_docker_archive().unwrap()).unwrap();
    let loaded = e.load_images(body(archive)).await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].messages(), ["Loaded image: busybox:latest"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_publish_docker_events_in_order() {
    let (_d, e) = engine();
    let (_, mut rx) = e.events().subscribe(None);
    load_busybox(&e).await;
    let id = berth_testkit::images::busybox_digests().unwrap().1;
    assert_eq!(
        e.tag_image("busybox", "x/y", Some("1")).await.unwrap(),
        "x/y:1"
    );
    let removed = e.remove_image("x/y:1", false).await.unwrap();
    assert_eq!(removed, [berth_image::RemoveItem::Untagged("x/y:1".into())]);
    let removed = e.remove_image("busybox", false).await.unwrap();
    assert_eq!(
        removed.last(),
        Some(&berth_image::RemoveItem::Deleted(id.clone()))
    );
    let mut got = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        got.push((
            ev.action.clone(),
            ev.actor_id.clone(),
            ev.attributes.get("name").cloned().unwrap_or_default(),
        ));
    }
    assert_eq!(
        got,
        [
            (
                "load".to_owned(),
                "busybox:latest".to_owned(),
                "busybox:latest".to_owned()
            ),
            ("tag".to_owned(), id.clone(), "x/y:1".to_owned()),
            ("untag".to_owned(), id.clone(), "x/y:1".to_owned()),
            ("untag".to_owned(), id.clone(), "busybox:latest".to_owned()),
            ("delete".to_owned(), id.clone(), id.clone()),
        ]
    );
    assert_eq!(e.info().images, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_classified_before_any_byte_is_streamed() {
    let (_d, e) = engine();
    let err = e.inspect_image("nothere").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "No such image: nothere:latest");
    let err = e.save_images(vec!["nothere".into()]).await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let mut f = BTreeMap::new();
    f.insert("bogus".to_owned(), vec!["1".to_owned()]);
    assert_eq!(
        e.list_images(&f, false).await.unwrap_err().kind(),
        ErrorKind::InvalidParameter
    );
    let err = e
        .import_image(
            body(vec![]),
            berth_engine::images::ImportRequest {
                changes: vec!["RUN x".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidParameter);
    load_busybox(&e).await;
    e.tag_image("busybox", "second", None).await.unwrap();
    let id = berth_testkit::images::busybox_digests().unwrap().1;
    assert_eq!(
        e.remove_image(&id, false).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    let bad = e.load_images(body(b"garbage".to_vec())).await.unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidParameter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_streams_a_loadable_archive_and_inspect_has_graph_driver() {
    let (_d, e) = engine();
    load_busybox(&e).await;
    let v = e.inspect_image("busybox").await.unwrap();
    assert_eq!(v["GraphDriver"]["Name"], "overlay2");
    let mut stream = e.save_images(vec!["busybox".into()]).await.unwrap();
    let mut tar = Vec::new();
    while let Some(c) = futures_util::StreamExt::next(&mut stream).await {
        tar.extend_from_slice(&c.unwrap());
    }
    let (_d2, e2) = engine();
    let loaded = e2.load_images(body(tar)).await.unwrap();
    assert_eq!(
        loaded[0].id,
        berth_testkit::images::busybox_digests().unwrap().1
    );
    assert_eq!(
        e2.list_images(&BTreeMap::new(), false).await.unwrap().len(),
        1
    );
}
