//! Bearer auth against a real `docker-registry` configured with `auth: token`: the token
//! server is this test, issuing RS256 JWTs (signed with openssl) whose `x5c` certificate is in
//! the registry's root bundle.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use berth_registry::{BlobSource, Client, Credentials, Error, NoProgress, Platform, media_types};
use berth_types::reference::Reference;
use common::*;

const SERVICE: &str = "berth-registry-test";
const ISSUER: &str = "berth-test-issuer";

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().expect("openssl runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

struct Signer {
    key: std::path::PathBuf,
    cert_der_b64: String,
}

impl Signer {
    fn new(dir: &std::path::Path) -> (Self, std::path::PathBuf) {
        let key = dir.join("signer.key");
        let cert = dir.join("signer.crt");
        run(Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=berth token signer",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert));
        let der = run(Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert));
        (
            Self {
                key,
                cert_der_b64: STANDARD.encode(der),
            },
            cert,
        )
    }

    fn sign(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.cert_der_b64]});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(out.stdout))
    }
}

fn query(path: &str) -> Vec<(String, String)> {
    let q = path.split_once('?').map_or("", |(_, q)| q);
    url::form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_from_a_token_server_in_front_of_docker_registry() {
    let dir = tempfile::tempdir().unwrap();
    let (signer, cert) = Signer::new(dir.path());
    let issued = Arc::new(AtomicU32::new(0));
    let counter = issued.clone();
    let good = format!("Basic {}", STANDARD.encode("carol:pw"));
    let tokens = TestServer::start(move |req| {
        let q = query(&req.path);
        let authed = match req.header("authorization") {
            Some(a) if a == good => true,
            Some(_) => return Response::new(401, "bad credentials"),
            None => false,
        };
        let access: Vec<serde_json::Value> = q
            .iter()
            .filter(|(k, _)| k == "scope")
            .filter_map(|(_, s)| {
                let mut parts = s.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                // Anonymous callers may pull; pushing needs the password.
                let actions: Vec<&str> = actions
                    .split(',')
                    .filter(|a| authed || *a == "pull")
                    .collect();
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
            })
            .collect();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": if authed { "carol" } else { "" }, "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("jti-{n}"),
            "access": access,
        });
        Response::new(
            200,
            serde_json::json!({"token": signer.sign(&claims), "expires_in": 300}).to_string(),
        )
    })
    .await;
    let reg = Registry::start(Flavor::Token {
        realm: format!("http://{}/token", tokens.host()),
        service: SERVICE.into(),
        issuer: ISSUER.into(),
        root_cert_bundle: cert,
    })
    .unwrap();
    let cfg = config(&[&reg.host()], &[], dir.path());
    let r = Reference::parse(&format!("{}/berth/tok:1", reg.host())).unwrap();
    let img = TestImage::new("token", "amd64", 2);

    // Anonymous: pull-only tokens, so a push is refused by the registry.
    let anon = anon_client(cfg.clone());
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

    // With credentials: login verifies them through the token server, then push and pull.
    let creds = dir.path().join("auth.json");
    let client = Client::new(cfg.clone(), Credentials::load(&creds, &[]).unwrap()).unwrap();
    assert!(client.login(&reg.host(), "carol", "wrong").await.is_err());
    client.login(&reg.host(), "carol", "pw").await.unwrap();
    let before = issued.load(Ordering::SeqCst);
    client
        .push_blob(
            &r,
            &img.config_desc,
            BlobSource::Bytes(img.config.clone()),
            Arc::new(NoProgress),
        )
        .await
        .unwrap();
    for (b, d) in &img.layers {
        assert!(!client.blob_exists(&r, &d.digest).await.unwrap());
        client
            .push_blob(&r, d, BlobSource::Bytes(b.clone()), Arc::new(NoProgress))
            .await
            .unwrap();
    }
    client
        .put_manifest(&r, media_types::OCI_MANIFEST, img.manifest.clone())
        .await
        .unwrap();
    assert_eq!(
        issued.load(Ordering::SeqCst) - before,
        1,
        "one pull,push token reused for the whole push"
    );

    // Anonymous pull works with a pull token; blobs verify.
    let res = anon.resolve(&r, &Platform::host()).await.unwrap();
    assert_eq!(res.manifest_digest, img.manifest_desc.digest);
    for (b, d) in &img.layers {
        let data: Vec<bytes::Bytes> =
            futures_util::TryStreamExt::try_collect(anon.get_blob(&r, d, 0).await.unwrap())
                .await
                .unwrap();
        assert_eq!(data.concat(), b.to_vec());
    }
    // Cross-repository mount needs pull on the source and push on the target in one token.
    let other = Reference::parse(&format!("{}/berth/tok-copy:1", reg.host())).unwrap();
    assert!(
        client
            .mount_blob(&other, &img.layers[0].1.digest, "berth/tok")
            .await
            .unwrap()
    );
}
