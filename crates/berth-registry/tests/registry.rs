//! The client against Debian's `docker-registry` on loopback.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use berth_registry::{
    BlobSource, Client, Credentials, Descriptor, Error, NoProgress, Platform, Progress, media_types,
};
use berth_types::reference::{Digest, Reference};
use bytes::Bytes;
use common::*;
use futures_util::TryStreamExt as _;

async fn collect(
    client: &Client,
    r: &Reference,
    d: &Descriptor,
    offset: u64,
) -> Result<Vec<u8>, Error> {
    let s = client.get_blob(r, d, offset).await?;
    assert_eq!(s.len(), d.size);
    assert_eq!(s.offset(), offset);
    let chunks: Vec<Bytes> = s.try_collect().await?;
    Ok(chunks.concat())
}

async fn push_image(client: &Client, r: &Reference, img: &TestImage) {
    client
        .push_blob(
            r,
            &img.config_desc,
            BlobSource::Bytes(img.config.clone()),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    for (b, d) in &img.layers {
        if !client.blob_exists(r, &d.digest).await.unwrap() {
            client
                .push_blob(r, d, BlobSource::Bytes(b.clone()), Arc::new(NoProgress))
                .await
                .unwrap();
        }
    }
    client
        .put_manifest(r, &img.manifest_desc.media_type, img.manifest.clone())
        .await
        .unwrap();
}

#[derive(Default)]
struct Counting {
    started: AtomicU64,
    bytes: AtomicU64,
    done: AtomicU64,
}

impl Progress for Counting {
    fn start(&self, _: &Digest, _: u64, _: u64) {
        self.started.fetch_add(1, Ordering::SeqCst);
    }
    fn bytes(&self, _: &Digest, n: u64) {
        self.bytes.fetch_add(n, Ordering::SeqCst);
    }
    fn done(&self, _: &Digest, _: bool) {
        self.done.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn anonymous_push_and_pull_round_trip() {
    let reg = Registry::start(Flavor::Plain).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let client = anon_client(config(&[&reg.host()], &[], certs.path()));
    assert_eq!(client.ping(&reg.host()).await.unwrap(), None);

    let r = Reference::parse(&format!("{}/berth/round:v1", reg.host())).unwrap();
    let img = TestImage::new("round", "amd64", 3);
    // config monolithic from bytes, layer 0 monolithic from a file, 1 and 2 chunked.
    let progress = Arc::new(Counting::default());
    client
        .push_blob(
            &r,
            &img.config_desc,
            BlobSource::Bytes(img.config.clone()),
            progress.clone(),
        )
        .await
        .unwrap();
    let f = certs.path().join("layer0");
    std::fs::write(&f, &img.layers[0].0).unwrap();
    assert!(
        !client
            .blob_exists(&r, &img.layers[0].1.digest)
            .await
            .unwrap()
    );
    client
        .push_blob(&r, &img.layers[0].1, BlobSource::File(f), progress.clone())
        .await
        .unwrap();
    assert!(
        client
            .blob_exists(&r, &img.layers[0].1.digest)
            .await
            .unwrap()
    );
    for (b, d) in &img.layers[1..] {
        let stream = futures_util::stream::iter(
            b.chunks(1000)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        client
            .push_blob_chunked(
                &r,
                d,
                BlobSource::Stream(Box::pin(stream)),
                700,
                progress.clone(),
            )
            .await
            .unwrap();
    }
    let total: u64 = img.config_desc.size + img.layers.iter().map(|(_, d)| d.size).sum::<u64>();
    assert_eq!(progress.started.load(Ordering::SeqCst), 4);
    assert_eq!(progress.done.load(Ordering::SeqCst), 4);
    assert_eq!(progress.bytes.load(Ordering::SeqCst), total);

    let digest = client
        .put_manifest(&r, media_types::OCI_MANIFEST, img.manifest.clone())
        .await
        .unwrap();
    assert_eq!(digest, img.manifest_desc.digest);

    let res = client.resolve(&r, &Platform::host()).await.unwrap();
    assert_eq!(res.manifest_digest, img.manifest_desc.digest);
    assert_eq!(res.manifest_media_type, media_types::OCI_MANIFEST);
    assert_eq!(res.manifest_bytes, img.manifest);
    assert_eq!(res.config, img.config_desc);
    assert_eq!(res.index_digest, None);
    assert_eq!(
        res.layers,
        img.layers
            .iter()
            .map(|(_, d)| d.clone())
            .collect::<Vec<_>>()
    );
    for (b, d) in &img.layers {
        assert_eq!(collect(&client, &r, d, 0).await.unwrap(), b.to_vec());
    }
    assert_eq!(
        collect(&client, &r, &img.config_desc, 0).await.unwrap(),
        img.config.to_vec()
    );

    // By digest, and name:tag@digest.
    let by_digest = r.repository().with_digest(digest.clone());
    assert_eq!(
        client
            .resolve(&by_digest, &Platform::host())
            .await
            .unwrap()
            .manifest_digest,
        digest
    );
    let both = r.with_digest(digest.clone());
    assert_eq!(
        client
            .resolve(&both, &Platform::host())
            .await
            .unwrap()
            .manifest_digest,
        digest
    );

    // Cross-repository mount, tags, catalog.
    let other = Reference::parse(&format!("{}/berth/other:v2", reg.host())).unwrap();
    for (_, d) in &img.layers {
        assert!(
            client
                .mount_blob(&other, &d.digest, "berth/round")
                .await
                .unwrap()
        );
    }
    assert!(
        client
            .mount_blob(&other, &img.config_desc.digest, "berth/round")
            .await
            .unwrap()
    );
    assert!(
        !client
            .mount_blob(&other, &Digest::sha256(b"absent"), "berth/round")
            .await
            .unwrap()
    );
    client
        .put_manifest(&other, media_types::OCI_MANIFEST, img.manifest.clone())
        .await
        .unwrap();
    let r2 = r.with_tag("v2").unwrap();
    client
        .put_manifest(&r2, media_types::OCI_MANIFEST, img.manifest.clone())
        .await
        .unwrap();
    let mut tags = client.tags(&r).await.unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);
    let mut cat = client.catalog(&reg.host()).await.unwrap();
    cat.sort();
    assert_eq!(cat, ["berth/other", "berth/round"]);

    // Missing things are named.
    let missing = r.with_tag("nope").unwrap();
    let e = client
        .resolve(&missing, &Platform::host())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(e.to_string().contains("nope"), "{e}");
}

#[tokio::test]
async fn range_download_from_an_offset() {
    let reg = Registry::start(Flavor::Plain).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let client = anon_client(config(&[&reg.host()], &[], certs.path()));
    let r = Reference::parse(&format!("{}/berth/range:1", reg.host())).unwrap();
    let img = TestImage::new("range", "amd64", 1);
    push_image(&client, &r, &img).await;
    let (b, d) = &img.layers[0];
    let off = d.size / 3;
    let tail = collect(&client, &r, d, off).await.unwrap();
    assert_eq!(tail, b[off as usize..].to_vec());
    let e = client.get_blob(&r, d, d.size + 1).await.unwrap_err();
    assert!(matches!(e, Error::SizeMismatch { .. }), "{e}");
}

#[tokio::test]
async fn manifest_list_resolves_to_the_platform() {
    let reg = Registry::start(Flavor::Plain).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let client = anon_client(config(&[&reg.host()], &[], certs.path()));
    let repo = format!("{}/berth/multi", reg.host());
    let amd = TestImage::new("amd", "amd64", 1);
    let arm = TestImage::new("arm", "arm64", 2);
    for img in [&amd, &arm] {
        let by_digest = Reference::parse(&format!("{repo}@{}", img.manifest_desc.digest)).unwrap();
        push_image(&client, &by_digest, img).await;
    }
    let entry = |img: &TestImage, plat: &str| {
        let mut d = img.manifest_desc.clone();
        d.platform = Some(plat.parse().unwrap());
        d
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": [entry(&amd, "linux/amd64"), entry(&arm, "linux/arm64/v8")],
    });
    let index = Bytes::from(serde_json::to_vec(&index).unwrap());
    let r = Reference::parse(&format!("{repo}:latest")).unwrap();
    let index_digest = client
        .put_manifest(&r, media_types::OCI_INDEX, index.clone())
        .await
        .unwrap();

    let res = client
        .resolve(&r, &"linux/arm64".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(res.manifest_digest, arm.manifest_desc.digest);
    assert_eq!(res.index_digest, Some(index_digest.clone()));
    assert_eq!(res.layers.len(), 2);
    let res = client
        .resolve(&r, &"linux/amd64".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(res.manifest_digest, amd.manifest_desc.digest);
    assert_eq!(res.config, amd.config_desc);
    let e = client
        .resolve(&r, &"linux/s390x".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoMatchingPlatform { .. }), "{e}");
    assert!(e.to_string().contains("linux/arm64"), "{e}");

    let (bytes, mt, d) = client.get_manifest(&r).await.unwrap();
    assert_eq!(
        (bytes, mt.as_str(), d),
        (index, media_types::OCI_INDEX, index_digest)
    );
}

#[tokio::test]
async fn basic_auth_refuses_without_and_works_with_credentials() {
    let reg = Registry::start(Flavor::basic("alice", "s3cret")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[&reg.host()], &[], dir.path());
    let r = Reference::parse(&format!("{}/berth/private:1", reg.host())).unwrap();
    let img = TestImage::new("private", "amd64", 1);

    let anon = anon_client(cfg.clone());
    assert_eq!(
        anon.ping(&reg.host()).await.unwrap(),
        Some(berth_registry::Challenge::Basic)
    );
    let e = anon
        .push_blob(
            &r,
            &img.config_desc,
            BlobSource::Bytes(img.config.clone()),
            Arc::new(NoProgress),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(e.to_string().contains(&reg.host()), "{e}");

    // Wrong password: login fails and nothing is stored.
    let creds_file = dir.path().join("auth.json");
    let client = Client::new(cfg.clone(), Credentials::load(&creds_file, &[]).unwrap()).unwrap();
    let e = client
        .login(&reg.host(), "alice", "wrong")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    assert!(!creds_file.exists());
    // Verify-only: refuses the wrong password, accepts the right one, stores nothing.
    let e = client
        .verify_login(&reg.host(), "alice", "wrong")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unauthorized { .. }), "{e}");
    client
        .verify_login(&reg.host(), "alice", "s3cret")
        .await
        .unwrap();
    assert!(!creds_file.exists());
    assert!(matches!(
        client.resolve(&r, &Platform::host()).await,
        Err(Error::Unauthorized { .. })
    ));
    client.login(&reg.host(), "alice", "s3cret").await.unwrap();
    let stored = std::fs::read_to_string(&creds_file).unwrap();
    assert!(stored.contains(&reg.host()), "{stored}");

    // A fresh client reading the stored file pushes and pulls.
    let client = Client::new(cfg.clone(), Credentials::load(&creds_file, &[]).unwrap()).unwrap();
    push_image(&client, &r, &img).await;
    let res = client.resolve(&r, &Platform::host()).await.unwrap();
    assert_eq!(res.manifest_digest, img.manifest_desc.digest);
    assert_eq!(
        collect(&client, &r, &img.layers[0].1, 0).await.unwrap(),
        img.layers[0].0.to_vec()
    );
    assert!(anon.resolve(&r, &Platform::host()).await.is_err());

    assert!(client.logout(&reg.host()).unwrap());
    assert!(!client.logout(&reg.host()).unwrap());
    let client = Client::new(cfg, Credentials::load(&creds_file, &[]).unwrap()).unwrap();
    assert!(matches!(
        client.resolve(&r, &Platform::host()).await,
        Err(Error::Unauthorized { .. })
    ));
}

#[tokio::test]
async fn tls_with_a_certs_d_ca() {
    let reg = Registry::start(Flavor::Tls).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let cfg = config(&[], &[], certs.path());
    // With <certs.d>/<host:port>/ca.crt: works, over https.
    let d = certs.path().join(reg.host());
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(reg.ca_pem().unwrap(), d.join("ca.crt")).unwrap();
    let client = anon_client(cfg.clone());
    assert_eq!(client.ping(&reg.host()).await.unwrap(), None);
    let r = Reference::parse(&format!("{}/berth/tls:1", reg.host())).unwrap();
    let img = TestImage::new("tls", "amd64", 1);
    push_image(&client, &r, &img).await;
    let res = client.resolve(&r, &Platform::host()).await.unwrap();
    assert!(res.endpoint.starts_with("https://"), "{}", res.endpoint);
    // Garbage in certs.d is reported with its path.
    std::fs::write(d.join("bad.crt"), "not a cert").unwrap();
    let e = anon_client(cfg).ping(&reg.host()).await.unwrap_err();
    assert!(e.to_string().contains("bad.crt"), "{e}");
}

/// A name other than `localhost` that /etc/hosts maps to 127.0.0.1: not a loopback host by
/// its spelling, so secure by default, yet it reaches the test registries.
fn loopback_alias() -> String {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    hosts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next()? == "127.0.0.1").then(|| f.collect::<Vec<_>>())
        })
        .flatten()
        .find(|n| !n.starts_with('#') && !n.eq_ignore_ascii_case("localhost"))
        .expect("this test needs a name other than localhost for 127.0.0.1 in /etc/hosts")
        .to_owned()
}

#[tokio::test]
async fn loopback_registries_are_insecure_by_default_and_plain_http_is_a_fallback() {
    // A plain-HTTP registry on 127.0.0.1, not listed as insecure: HTTPS fails, HTTP works.
    let plain = Registry::start(Flavor::Plain).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let client = anon_client(config(&[], &[], certs.path()));
    assert_eq!(client.ping(&plain.host()).await.unwrap(), None);
    let r = Reference::parse(&format!("{}/berth/plain:1", plain.host())).unwrap();
    let img = TestImage::new("plain-default", "amd64", 1);
    push_image(&client, &r, &img).await;
    let res = client.resolve(&r, &Platform::host()).await.unwrap();
    assert_eq!(res.endpoint, format!("http://{}", plain.host()));
    assert_eq!(res.manifest_digest, img.manifest_desc.digest);
    let (b, d) = &img.layers[0];
    assert_eq!(collect(&client, &r, d, 0).await.unwrap(), b.to_vec());

    // A TLS registry with a certificate nobody trusts (no certs.d CA).
    let tls = Registry::start(Flavor::Tls).unwrap();
    // On 127.0.0.1 (default insecure): HTTPS without verification, never HTTP.
    let client = anon_client(config(&[], &[], certs.path()));
    let r = Reference::parse(&format!("{}/berth/tls:1", tls.host())).unwrap();
    let img = TestImage::new("tls-default", "amd64", 1);
    push_image(&client, &r, &img).await;
    let res = client.resolve(&r, &Platform::host()).await.unwrap();
    assert_eq!(res.endpoint, format!("https://{}", tls.host()));

    // Under a name that is not loopback by its spelling: verified, so refused...
    let alias = format!("{}:{}", loopback_alias(), tls.addr().port());
    let e = anon_client(config(&[], &[], certs.path()))
        .ping(&alias)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Http { .. }), "{e}");
    // ...until it is listed insecure: then HTTPS without verification.
    let client = anon_client(config(&[&alias], &[], certs.path()));
    assert_eq!(client.ping(&alias).await.unwrap(), None);
    let r = Reference::parse(&format!("{alias}/berth/tls:1")).unwrap();
    let res = client.resolve(&r, &Platform::host()).await.unwrap();
    assert_eq!(res.endpoint, format!("https://{alias}"));
    assert_eq!(res.manifest_digest, img.manifest_desc.digest);

    // Nothing listening: https, then http, which the error names.
    let dead = format!("127.0.0.1:{}", free_port());
    let e = anon_client(config(&[], &[], certs.path()))
        .ping(&dead)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Http { .. }), "{e}");
    assert!(e.to_string().contains(&format!("http://{dead}/v2/")), "{e}");
}

#[tokio::test]
async fn mirror_fallback_resolves_docker_io_names_through_mirrors_only() {
    let mirror = Registry::start(Flavor::Plain).unwrap();
    let certs = tempfile::tempdir().unwrap();
    // Seed the mirror with library/alpine, as a pull-through cache would hold it.
    let seed = anon_client(config(&[&mirror.host()], &[], certs.path()));
    let img = TestImage::new("alpine", "amd64", 2);
    let at_mirror = Reference::parse(&format!("{}/library/alpine:latest", mirror.host())).unwrap();
    push_image(&seed, &at_mirror, &img).await;

    let dead = format!("http://127.0.0.1:{}", free_port());
    let cfg = config(
        &[],
        &[(
            "docker.io",
            vec![dead.clone(), format!("http://{}", mirror.host())],
        )],
        certs.path(),
    );
    let client = anon_client(cfg);
    let r = Reference::parse("alpine").unwrap();
    let res = client.resolve(&r, &Platform::host()).await.unwrap();
    assert_eq!(res.endpoint, format!("http://{}", mirror.host()));
    assert_eq!(res.manifest_digest, img.manifest_desc.digest);
    for (b, d) in &img.layers {
        assert_eq!(collect(&client, &r, d, 0).await.unwrap(), b.to_vec());
    }
    assert_eq!(client.tags(&r).await.unwrap(), ["latest"]);
}

#[tokio::test]
async fn skopeo_reads_what_we_push_and_we_pull_what_skopeo_pushes() {
    let reg = Registry::start(Flavor::Plain).unwrap();
    let work = tempfile::tempdir().unwrap();
    let client = anon_client(config(&[&reg.host()], &[], work.path()));
    let img = TestImage::new("interop", "amd64", 2);
    let r = Reference::parse(&format!("{}/berth/ours:1", reg.host())).unwrap();
    push_image(&client, &r, &img).await;

    let inspect = std::process::Command::new("skopeo")
        .arg("--policy")
        .arg(reg.skopeo_policy())
        .args(["inspect", "--tls-verify=false", &format!("docker://{r}")])
        .output()
        .unwrap();
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(v["Digest"], img.manifest_desc.digest.to_string());
    assert_eq!(v["Labels"]["seed"], "interop");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 2);

    // skopeo copies it out (verifying every blob), then back in under another name.
    let oci = work.path().join("oci");
    let st = std::process::Command::new("skopeo")
        .args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{r}"),
            &format!("oci:{}:t", oci.display()),
        ])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let theirs = Reference::parse(&format!("{}/berth/theirs:copied", reg.host())).unwrap();
    let st = std::process::Command::new("skopeo")
        .arg("--policy")
        .arg(reg.skopeo_policy())
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-compress-format=gzip",
            &format!("oci:{}:t", oci.display()),
            &format!("docker://{theirs}"),
        ])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let res = client.resolve(&theirs, &Platform::host()).await.unwrap();
    assert_eq!(res.layers.len(), 2);
    for d in res.layers.iter().chain([&res.config]) {
        let data = collect(&client, &theirs, d, 0).await.unwrap();
        assert_eq!(Digest::sha256(&data), d.digest, "verified blob");
    }
}

#[tokio::test]
async fn resolves_and_verifies_a_busybox_image_skopeo_pushed() {
    let reg = Registry::start(Flavor::Plain).unwrap();
    let work = tempfile::tempdir().unwrap();
    let pushed = reg.push_busybox("berth/busybox:1").unwrap();
    let client = anon_client(config(&[&reg.host()], &[], work.path()));
    let r = Reference::parse(&pushed).unwrap();
    let res = client.resolve(&r, &Platform::host()).await.unwrap();
    // skopeo pushes a docker-archive as Docker schema 2.
    assert_eq!(res.manifest_media_type, media_types::DOCKER_MANIFEST);
    assert!(!res.layers.is_empty());
    let config = collect(&client, &r, &res.config, 0).await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(
        v["rootfs"]["diff_ids"].as_array().unwrap().len(),
        res.layers.len()
    );
    for d in &res.layers {
        let data = collect(&client, &r, d, 0).await.unwrap();
        assert_eq!(Digest::sha256(&data), d.digest);
        assert_eq!(data.len() as u64, d.size);
    }
}

#[tokio::test]
async fn docker_schema2_manifest_list_resolves_to_the_platform() {
    let reg = Registry::start(Flavor::Plain).unwrap();
    let certs = tempfile::tempdir().unwrap();
    let client = anon_client(config(&[&reg.host()], &[], certs.path()));
    let repo = format!("{}/berth/dockerlist", reg.host());
    let amd = TestImage::docker("damd", "amd64", 1);
    let arm = TestImage::docker("darm", "arm", 1);
    for img in [&amd, &arm] {
        let by_digest = Reference::parse(&format!("{repo}@{}", img.manifest_desc.digest)).unwrap();
        push_image(&client, &by_digest, img).await;
    }
    let entry = |img: &TestImage, plat: serde_json::Value| serde_json::json!({"mediaType": media_types::DOCKER_MANIFEST, "digest": img.manifest_desc.digest, "size": img.manifest_desc.size, "platform": plat});
    let list = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::DOCKER_MANIFEST_LIST,
        "manifests": [
            entry(&amd, serde_json::json!({"os": "linux", "architecture": "amd64"})),
            entry(&arm, serde_json::json!({"os": "linux", "architecture": "arm", "variant": "v7"})),
        ],
    });
    let list = Bytes::from(serde_json::to_vec(&list).unwrap());
    let r = Reference::parse(&format!("{repo}:latest")).unwrap();
    let list_digest = client
        .put_manifest(&r, media_types::DOCKER_MANIFEST_LIST, list)
        .await
        .unwrap();
    let res = client
        .resolve(&r, &"linux/arm".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(res.manifest_media_type, media_types::DOCKER_MANIFEST);
    assert_eq!(res.manifest_digest, arm.manifest_desc.digest);
    assert_eq!(res.index_digest, Some(list_digest));
    assert_eq!(res.config.media_type, media_types::DOCKER_CONFIG);
    assert_eq!(res.layers[0].media_type, media_types::DOCKER_LAYER_GZIP);
    let e = client
        .resolve(&r, &"linux/arm/v6".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NoMatchingPlatform { .. }), "{e}");
}
