//! Each registry flavour, exercised with real HTTP(S) requests and real pushes.
use std::path::Path;
use std::process::Command;

use berth_testkit::{Flavor, Registry, images};

fn skopeo_inspect(reg: &Registry, repo_tag: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .arg("--policy")
        .arg(reg.skopeo_policy())
        .arg("inspect")
        .args(
            reg.skopeo_src_flags()
                .iter()
                .map(|f| f.replace("--src-", "--")),
        )
        .arg(format!("docker://{}/{repo_tag}", reg.host()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn plain_registry_answers_v2_and_takes_a_push() {
    let reg = Registry::start(Flavor::Plain).unwrap();
    assert!(reg.url().starts_with("http://127.0.0.1:"));
    let r = reg.get("/v2/", None).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );

    let pushed = reg.push_busybox("testkit/busybox:1").unwrap();
    assert_eq!(pushed, format!("{}/testkit/busybox:1", reg.host()));
    let tags = reg.get("/v2/testkit/busybox/tags/list", None).unwrap();
    assert_eq!(tags.status, 200);
    let tags: serde_json::Value = serde_json::from_slice(&tags.body).unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["1"]));
    let (manifest_digest, _) = images::busybox_digests().unwrap();
    let v = skopeo_inspect(&reg, "testkit/busybox:1");
    // docker-archive sources are pushed as Docker v2s2 manifests, so compare the layer instead.
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1, "{v}");
    assert!(manifest_digest.starts_with("sha256:"));
    assert!(
        reg.storage_dir()
            .join("docker/registry/v2/repositories/testkit/busybox")
            .is_dir()
    );
}

#[test]
fn basic_auth_registry_refuses_without_credentials() {
    let reg = Registry::start(Flavor::basic("alice", "s3cret")).unwrap();
    let r = reg.get("/v2/", None).unwrap();
    assert_eq!(r.status, 401);
    assert!(
        r.header("WWW-Authenticate")
            .unwrap()
            .starts_with("Basic realm="),
        "{:?}",
        r.headers
    );
    assert_eq!(
        reg.get("/v2/", Some(("alice", "wrong"))).unwrap().status,
        401
    );
    assert_eq!(
        reg.get("/v2/", Some(("alice", "s3cret"))).unwrap().status,
        200
    );
    assert_eq!(reg.credentials(), Some(("alice", "s3cret")));

    reg.push_busybox("private/bb:latest").unwrap();
    assert_eq!(
        reg.get("/v2/private/bb/tags/list", None).unwrap().status,
        401
    );
    let tags = reg
        .get("/v2/private/bb/tags/list", Some(("alice", "s3cret")))
        .unwrap();
    assert_eq!(tags.status, 200);
    skopeo_inspect(&reg, "private/bb:latest");
}

#[test]
fn tls_registry_is_verified_with_its_ca() {
    let reg = Registry::start(Flavor::Tls).unwrap();
    assert!(reg.url().starts_with("https://127.0.0.1:"));
    let ca = reg.ca_pem().unwrap();
    assert!(
        std::fs::read_to_string(&ca)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );
    assert_eq!(reg.get("/v2/", None).unwrap().status, 200);

    // Another CA does not verify the server: the check is real.
    let other = Registry::start(Flavor::Tls).unwrap();
    let err =
        berth_testkit::registry::http_get(reg.addr(), "/v2/", None, Some(&other.ca_pem().unwrap()))
            .unwrap_err()
            .to_string();
    assert!(
        err.contains("certificate") || err.contains("Certificate"),
        "{err}"
    );
    // Plain HTTP to the TLS port gets no registry answer.
    let plain = berth_testkit::registry::http_get(reg.addr(), "/v2/", None, None);
    assert!(plain.map(|r| r.status).unwrap_or(400) == 400);

    // skopeo verifies with the CA directory (certs.d layout) and pushes.
    assert!(Path::new(&reg.cert_dir().unwrap()).join("ca.crt").exists());
    reg.push_busybox("secure/bb:v1").unwrap();
    skopeo_inspect(&reg, "secure/bb:v1");
    // Without the CA, skopeo refuses the certificate.
    let out = Command::new("skopeo")
        .args(["inspect", "--retry-times", "0"])
        .arg(format!("docker://{}/secure/bb:v1", reg.host()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dropping_the_registry_kills_it_and_removes_its_storage() {
    let reg = Registry::start(Flavor::Plain).unwrap();
    let pid = reg.pid();
    let storage = reg.storage_dir();
    let addr = reg.addr();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(reg);
    let gone = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z"))
        .unwrap_or(true);
    assert!(gone, "registry pid {pid} still running");
    assert!(!storage.exists());
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn oci_layout_push_keeps_the_manifest_digest() {
    let reg = Registry::start(Flavor::Plain).unwrap();
    let layout = images::busybox_oci_layout().unwrap();
    reg.push_oci_layout(&layout, "latest", "oci/bb:latest")
        .unwrap();
    let (manifest_digest, _) = images::busybox_digests().unwrap();
    let v = skopeo_inspect(&reg, "oci/bb:latest");
    assert_eq!(v["Digest"], manifest_digest.as_str());
    let m = reg
        .get_with_headers(
            &format!("/v2/oci/bb/manifests/{manifest_digest}"),
            None,
            &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        )
        .unwrap();
    assert_eq!(m.status, 200);
    assert_eq!(
        berth_testkit::berth_mkimage::sha256_digest(&m.body),
        manifest_digest
    );
}

#[test]
fn token_registry_challenges_with_the_given_realm() {
    let dir = berth_testkit::TestDir::new("token").unwrap();
    let (key, crt) = (dir.join("t.key"), dir.join("t.crt"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .args(["-days", "1", "-subj", "/CN=token-signer"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reg = Registry::start(Flavor::Token {
        realm: "http://127.0.0.1:1/token".into(),
        service: "berth-test".into(),
        issuer: "berth-test-issuer".into(),
        root_cert_bundle: crt,
    })
    .unwrap();
    let r = reg.get("/v2/", None).unwrap();
    assert_eq!(r.status, 401);
    let challenge = r.header("WWW-Authenticate").unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"realm="http://127.0.0.1:1/token""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"service="berth-test""#), "{challenge}");
}
