//! The client against servers scripted in the test: Bearer token flow, broken connections
//! (Range resume), lying registries (bad digests), 5xx retries and mirror fallback.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use berth_registry::{Client, Credentials, Descriptor, Error, Platform, media_types};
use berth_types::reference::{Digest, Reference};
use bytes::Bytes;
use common::*;
use futures_util::TryStreamExt as _;

async fn collect(client: &Client, r: &Reference, d: &Descriptor) -> Result<Vec<u8>, Error> {
    let chunks: Vec<Bytes> = client.get_blob(r, d, 0).await?.try_collect().await?;
    Ok(chunks.concat())
}

fn query(path: &str) -> Vec<(String, String)> {
    let q = path.split_once('?').map_or("", |(_, q)| q);
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

fn manifest_response(img: &TestImage) -> Response {
    Response::new(200, img.manifest.clone())
        .header("Content-Type", media_types::OCI_MANIFEST)
        .header("Docker-Content-Digest", img.manifest_desc.digest.as_str())
}

#[derive(Default)]
struct TokenState {
    /// token → granted scope
    issued: HashMap<String, String>,
    next: u32,
}

fn client_with_creds(dir: &std::path::Path, host: &str, json: serde_json::Value) -> Client {
    let path = dir.join("auth.json");
    std::fs::write(&path, json.to_string()).unwrap();
    Client::new(
        config(&[host], &[], dir),
        Credentials::load(&path, &[]).unwrap(),
    )
    .unwrap()
    .with_retry(2, Duration::from_millis(10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_scoped_cached_and_refreshed() {
    let img = TestImage::new("bearer", "amd64", 1);
    let state = Arc::new(Mutex::new(TokenState::default()));
    let (st, im) = (state.clone(), Arc::new(img));
    let img = im.clone();
    let good_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("bob:pw")
    );
    let basic = good_basic.clone();
    let server = TestServer::start(move |req| {
        let host = req.header("host").unwrap_or_default().to_owned();
        let mut st = st.lock().unwrap();
        if req.path.starts_with("/token") {
            let q = query(&req.path);
            let body_q: Vec<(String, String)> =
                url::form_urlencoded::parse(&req.body).into_owned().collect();
            let get = |k: &str| q.iter().chain(&body_q).find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if get("service").as_deref() != Some("berth-test") {
                return Response::new(400, "bad service");
            }
            let authed = match (req.method.as_str(), req.header("authorization")) {
                ("POST", _) => get("refresh_token").as_deref() == Some("refresh-xyz"),
                (_, Some(a)) if a == basic => true,
                (_, Some(_)) => return Response::new(401, "bad credentials"),
                (_, None) => false,
            };
            let scope = get("scope").unwrap_or_default();
            // Anonymous callers get pull only, as Docker Hub does.
            let granted = if authed { scope.clone() } else { scope.replace(",push", "") };
            st.next += 1;
            let token = format!("tok{}", st.next);
            st.issued.insert(token.clone(), granted);
            let field = if req.method == "POST" { "access_token" } else { "token" };
            return Response::new(200, serde_json::json!({ field: token, "expires_in": 300 }).to_string());
        }
        let ok = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .and_then(|t| st.issued.get(t))
            // `/v2/` takes any valid token (login asks for one without a scope).
            .is_some_and(|s| req.path == "/v2/" || (s.starts_with("repository:berth/app:") && s.contains("pull")));
        if !ok {
            return Response::new(401, r#"{"errors":[{"code":"UNAUTHORIZED"}]}"#).header(
                "WWW-Authenticate",
                &format!(r#"Bearer realm="http://{host}/token",service="berth-test",scope="repository:berth/app:pull""#),
            );
        }
        if req.path == "/v2/" {
            return Response::new(200, "{}");
        }
        if req.path == "/v2/berth/app/manifests/v1" {
            return manifest_response(&img);
        }
        let (b, d) = &img.layers[0];
        if req.path == format!("/v2/berth/app/blobs/{}", d.digest) {
            return Response::new(200, b.clone());
        }
        Response::new(404, "")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let r = Reference::parse(&format!("{}/berth/app:v1", server.host())).unwrap();
    let token_requests = || {
        server
            .requests()
            .into_iter()
            .filter(|q| q.path.starts_with("/token"))
            .collect::<Vec<_>>()
    };

    // With credentials: one token for pull scope, reused for the manifest and the blob.
    let client = client_with_creds(
        dir.path(),
        &server.host(),
        serde_json::json!({"auths": {server.host(): {"auth": base64::engine::general_purpose::STANDARD.encode("bob:pw")}}}),
    );
    let res = client.resolve(&r, &Platform::host()).await.unwrap();
    assert_eq!(res.manifest_digest, im.manifest_desc.digest);
    assert_eq!(
        collect(&client, &r, &im.layers[0].1).await.unwrap(),
        im.layers[0].0.to_vec()
    );
    let toks = token_requests();
    assert_eq!(toks.len(), 1, "token cached per (host, scope)");
    let q = query(&toks[0].path);
    assert!(
        q.contains(&("scope".into(), "repository:berth/app:pull".into())),
        "{q:?}"
    );
    assert!(
        q.contains(&("service".into(), "berth-test".into())),
        "{q:?}"
    );
    assert_eq!(toks[0].header("authorization"), Some(good_basic.as_str()));

    // The server forgets its tokens: the client gets a 401, fetches a new one, succeeds.
    state.lock().unwrap().issued.clear();
    client.resolve(&r, &Platform::host()).await.unwrap();
    assert_eq!(token_requests().len(), 2);

    // Anonymous: a token without credentials.
    let anon = anon_client(config(&[&server.host()], &[], dir.path()));
    anon.resolve(&r, &Platform::host()).await.unwrap();
    let toks = token_requests();
    assert_eq!(toks.len(), 3);
    assert_eq!(toks[2].header("authorization"), None);

    // An identity token is exchanged with an OAuth2 refresh-token POST.
    let idt = client_with_creds(
        dir.path(),
        &server.host(),
        serde_json::json!({"auths": {server.host(): {"auth": "", "identitytoken": "refresh-xyz"}}}),
    );
    idt.resolve(&r, &Platform::host()).await.unwrap();
    let toks = token_requests();
    assert_eq!(toks[3].method, "POST");
    assert!(String::from_utf8_lossy(&toks[3].body).contains("grant_type=refresh_token"));

    // Wrong password: the token server refuses and the error names the realm.
    let bad = client_with_creds(
        dir.path(),
        &server.host(),
        serde_json::json!({"auths": {server.host(): {"auth": base64::engine::general_purpose::STANDARD.encode("bob:nope")}}}),
    );
    let e = bad.resolve(&r, &Platform::host()).await.unwrap_err();
    assert!(matches!(e, Error::Token { .. }), "{e}");
    assert!(
        e.to_string()
            .contains(&format!("http://{}/token", server.host())),
        "{e}"
    );

    // Login verifies through the token server and stores the credentials.
    let creds_path = dir.path().join("login.json");
    let fresh = Client::new(
        config(&[&server.host()], &[], dir.path()),
        Credentials::load(&creds_path, &[]).unwrap(),
    )
    .unwrap();
    // The scripted server answers /v2/ with a challenge too (it is under /v2/).
    assert!(fresh.login(&server.host(), "bob", "nope").await.is_err());
    assert!(!creds_path.exists());
    fresh.login(&server.host(), "bob", "pw").await.unwrap();
    let saved = std::fs::read_to_string(&creds_path).unwrap();
    assert!(
        saved.contains(&base64::engine::general_purpose::STANDARD.encode("bob:pw")),
        "{saved}"
    );
}

fn blob_server_response(
    req: &Request,
    data: &Bytes,
    honour_range: bool,
    cut_first: &Mutex<bool>,
) -> Response {
    let range = req
        .header("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    match range {
        Some(start) if honour_range => Response::new(206, data.slice(start..)).header(
            "Content-Range",
            &format!("bytes {start}-{}/{}", data.len() - 1, data.len()),
        ),
        _ => {
            let mut resp = Response::new(200, data.clone());
            let mut cut = cut_first.lock().unwrap();
            if *cut {
                *cut = false;
                resp.cut_at = Some(data.len() / 2);
            }
            resp
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_download_resumes_with_range() {
    let data = Bytes::from(
        (0..200_000u32)
            .flat_map(|i| i.to_le_bytes())
            .collect::<Vec<u8>>(),
    );
    let desc = Descriptor::of(media_types::OCI_LAYER_GZIP, &data);
    for honour_range in [true, false] {
        let cut = Arc::new(Mutex::new(true));
        let (d2, c2) = (data.clone(), cut.clone());
        let server =
            TestServer::start(move |req| blob_server_response(req, &d2, honour_range, &c2)).await;
        let client = anon_client(config(
            &[&server.host()],
            &[],
            std::path::Path::new("/nonexistent"),
        ));
        let r = Reference::parse(&format!("{}/x/blob:1", server.host())).unwrap();
        let got = collect(&client, &r, &desc).await.unwrap();
        assert!(
            got == data.to_vec(),
            "resumed download is complete and verified"
        );
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2, "one cut, one resume");
        assert_eq!(reqs[0].header("range"), None);
        assert_eq!(
            reqs[1].header("range"),
            Some(format!("bytes={}-", data.len() / 2).as_str())
        );
    }

    // A server that always breaks off: the stream gives up with an error, not short data.
    let d2 = data.clone();
    let server = TestServer::start(move |_| {
        let mut r = Response::new(200, d2.clone());
        r.cut_at = Some(1000);
        r
    })
    .await;
    let client = anon_client(config(
        &[&server.host()],
        &[],
        std::path::Path::new("/nonexistent"),
    ))
    .with_retry(2, Duration::from_millis(1));
    let r = Reference::parse(&format!("{}/x/blob:1", server.host())).unwrap();
    let e = collect(&client, &r, &desc).await.unwrap_err();
    assert!(
        matches!(e, Error::Http { .. } | Error::SizeMismatch { .. }),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_digests_are_refused() {
    let good = TestImage::new("good", "amd64", 1);
    let evil = TestImage::new("evil", "amd64", 1);
    let (g, e) = (Arc::new(good), Arc::new(evil));
    let (g2, e2) = (g.clone(), e.clone());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": [{"mediaType": media_types::OCI_MANIFEST, "digest": g.manifest_desc.digest, "size": g.manifest_desc.size, "platform": {"os": "linux", "architecture": Platform::host().architecture}}],
    })
    .to_string();
    let server = TestServer::start(move |req| {
        let p = req.path.as_str();
        if p.ends_with("/manifests/liar-header") {
            return Response::new(200, g2.manifest.clone())
                .header("Content-Type", media_types::OCI_MANIFEST)
                .header("Docker-Content-Digest", e2.manifest_desc.digest.as_str());
        }
        if p.ends_with("/manifests/index") {
            return Response::new(200, index.clone())
                .header("Content-Type", media_types::OCI_INDEX);
        }
        if p.contains("/manifests/") {
            // Whatever digest is asked for, serve the evil manifest.
            return Response::new(200, e2.manifest.clone())
                .header("Content-Type", media_types::OCI_MANIFEST);
        }
        if p.contains("/blobs/") {
            // Same size, different bytes; or one byte too many.
            let mut b = g2.layers[0].0.to_vec();
            if p.ends_with(g2.layers[0].1.digest.as_str()) {
                b[10] ^= 0xff;
            } else {
                b.push(0);
            }
            return Response::new(200, b);
        }
        Response::new(404, "")
    })
    .await;
    let client = anon_client(config(
        &[&server.host()],
        &[],
        std::path::Path::new("/nonexistent"),
    ));
    let repo = format!("{}/x/y", server.host());
    let plat = Platform::host();

    let by_digest = Reference::parse(&format!("{repo}@{}", g.manifest_desc.digest)).unwrap();
    let err = client.resolve(&by_digest, &plat).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(
        err.to_string().contains(g.manifest_desc.digest.as_str()),
        "{err}"
    );

    let liar = Reference::parse(&format!("{repo}:liar-header")).unwrap();
    assert!(matches!(
        client.resolve(&liar, &plat).await,
        Err(Error::DigestMismatch { .. })
    ));

    let idx = Reference::parse(&format!("{repo}:index")).unwrap();
    let err = client.resolve(&idx, &plat).await.unwrap_err();
    assert!(
        matches!(err, Error::DigestMismatch { .. }),
        "index entry verified: {err}"
    );

    let r = Reference::parse(&format!("{repo}:t")).unwrap();
    let err = collect(&client, &r, &g.layers[0].1).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    let mut other = g.layers[0].1.clone();
    other.digest = Digest::sha256(b"something else");
    let err = collect(&client, &r, &other).await.unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");

    // Unverified (for a caller that hashes what it keeps): the same bytes come through as
    // served, the size is still checked.
    let chunks: Vec<Bytes> = client
        .get_blob_unverified(&r, &g.layers[0].1, 0)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let got = chunks.concat();
    assert_eq!(got.len(), g.layers[0].0.len());
    assert_ne!(Digest::sha256(&got), g.layers[0].1.digest);
    let err = client
        .get_blob_unverified(&r, &other, 0)
        .await
        .unwrap()
        .try_collect::<Vec<Bytes>>()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_with_backoff() {
    let img = Arc::new(TestImage::new("retry", "amd64", 1));
    let fails = Arc::new(Mutex::new(BTreeMap::from([("flaky", 1u32), ("down", 99)])));
    let (i2, f2) = (img.clone(), fails.clone());
    let server = TestServer::start(move |req| {
        let tag = req.path.rsplit('/').next().unwrap_or_default().to_owned();
        let mut f = f2.lock().unwrap();
        if let Some(n) = f.get_mut(tag.as_str())
            && *n > 0
        {
            *n -= 1;
            return Response::new(503, "try later");
        }
        manifest_response(&i2)
    })
    .await;
    let client = anon_client(config(
        &[&server.host()],
        &[],
        std::path::Path::new("/nonexistent"),
    ))
    .with_retry(3, Duration::from_millis(5));
    let flaky = Reference::parse(&format!("{}/a/b:flaky", server.host())).unwrap();
    client.resolve(&flaky, &Platform::host()).await.unwrap();
    assert_eq!(server.requests().len(), 2);
    let down = Reference::parse(&format!("{}/a/b:down", server.host())).unwrap();
    let e = client.resolve(&down, &Platform::host()).await.unwrap_err();
    assert!(matches!(e, Error::Status { status: 503, .. }), "{e}");
    assert!(e.to_string().contains("try later"), "{e}");
    assert_eq!(server.requests().len(), 5, "3 attempts for the failing tag");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_without_the_image_falls_back_to_the_next() {
    let img = Arc::new(TestImage::new("mirrored", "amd64", 1));
    let empty =
        TestServer::start(|_| Response::new(404, r#"{"errors":[{"code":"MANIFEST_UNKNOWN"}]}"#))
            .await;
    let i2 = img.clone();
    let full = TestServer::start(move |req| {
        if req.path == "/v2/team/app/manifests/latest" {
            manifest_response(&i2)
        } else {
            Response::new(404, "")
        }
    })
    .await;
    let cfg = config(
        &[],
        &[(
            "registry.invalid",
            vec![
                format!("http://{}", empty.host()),
                format!("http://{}", full.host()),
            ],
        )],
        std::path::Path::new("/nonexistent"),
    );
    let client = anon_client(cfg);
    let r = Reference::parse("registry.invalid/team/app").unwrap();
    let res = client.resolve(&r, &Platform::host()).await.unwrap();
    assert_eq!(res.endpoint, format!("http://{}", full.host()));
    assert_eq!(empty.requests().len(), 1);

    // Nothing has it: every endpoint's failure is reported, the origin included.
    let r = Reference::parse("registry.invalid/team/none").unwrap();
    let e = client.resolve(&r, &Platform::host()).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::AllEndpointsFailed { .. }), "{msg}");
    assert!(
        msg.contains(&empty.host())
            && msg.contains(&full.host())
            && msg.contains("https://registry.invalid"),
        "{msg}"
    );
}
