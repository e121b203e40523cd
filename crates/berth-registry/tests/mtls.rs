//! certs.d client certificates: a `docker-registry` that requires TLS client certificates
//! (`http.tls.clientcas`), reached with `<certs.d>/<host:port>/{ca.crt,client.cert,client.key}`.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_registry::{Error, Platform};
use berth_types::reference::Reference;
use common::*;

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// CA, a server certificate for 127.0.0.1 and a client certificate, all in `dir`.
fn make_pki(dir: &Path) {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_owned();
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=berth mtls ca",
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.crt"),
    ]);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN=berth {name}"),
            "-keyout",
            &p(&format!("{name}.key")),
            "-out",
            &p(&format!("{name}.csr")),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p(&format!("{name}.csr")),
            "-CA",
            &p("ca.crt"),
            "-CAkey",
            &p("ca.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &p(&format!("{name}.ext")),
            "-out",
            &p(&format!("{name}.crt")),
        ]);
    }
}

/// A `docker-registry` requiring client certificates; killed by pid on drop.
struct MtlsRegistry {
    child: Child,
    port: u16,
}

impl MtlsRegistry {
    fn start(dir: &Path) -> Self {
        for _ in 0..5 {
            let port = free_port();
            let d = |n: &str| dir.join(n).display().to_string();
            let cfg = format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: berth-mtls\n  tls:\n    certificate: {}\n    key: {}\n    clientcas:\n      - {}\n",
                d("data"),
                d("server.crt"),
                d("server.key"),
                d("ca.crt")
            );
            std::fs::write(dir.join("config.yml"), cfg).unwrap();
            let log = std::fs::File::create(dir.join("registry.log")).unwrap();
            let mut child = Command::new("docker-registry")
                .arg("serve")
                .arg(dir.join("config.yml"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry installed");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Self { child, port };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("docker-registry with clientcas did not start");
    }
}

impl Drop for MtlsRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn client_certificates_from_certs_d() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let reg = MtlsRegistry::start(pki.path());
    let host = format!("127.0.0.1:{}", reg.port);
    let certs = tempfile::tempdir().unwrap();
    let hostdir = certs.path().join(&host);
    std::fs::create_dir_all(&hostdir).unwrap();
    std::fs::copy(pki.path().join("ca.crt"), hostdir.join("ca.crt")).unwrap();
    let cfg = config(&[], &[], certs.path());

    // The CA alone is not enough: the server wants a client certificate. HTTPS fails, and
    // as loopback is insecure by default the plain-HTTP fallback reaches a TLS server.
    let e = anon_client(cfg.clone()).ping(&host).await.unwrap_err();
    assert!(matches!(e, Error::Status { status: 400, .. }), "{e}");

    // A certificate without its key is reported with the file's path.
    std::fs::copy(pki.path().join("client.crt"), hostdir.join("client.cert")).unwrap();
    let e = anon_client(cfg.clone()).ping(&host).await.unwrap_err();
    assert!(matches!(e, Error::Tls { .. }), "{e}");
    assert!(e.to_string().contains("client.key"), "{e}");

    std::fs::copy(pki.path().join("client.key"), hostdir.join("client.key")).unwrap();
    let client = anon_client(cfg);
    assert_eq!(client.ping(&host).await.unwrap(), None);
    let r = Reference::parse(&format!("{host}/berth/mtls:1")).unwrap();
    let img = TestImage::new("mtls", "amd64", 1);
    client
        .push_blob(
            &r,
            &img.config_desc,
            berth_registry::BlobSource::Bytes(img.config.clone()),
            std::sync::Arc::new(berth_registry::NoProgress),
        )
        .await
        .unwrap();
    client
        .push_blob(
            &r,
            &img.layers[0].1,
            berth_registry::BlobSource::Bytes(img.layers[0].0.clone()),
            std::sync::Arc::new(berth_registry::NoProgress),
        )
        .await
        .unwrap();
    client
        .put_manifest(
            &r,
            berth_registry::media_types::OCI_MANIFEST,
            img.manifest.clone(),
        )
        .await
        .unwrap();
    let res = client.resolve(&r, &Platform::host()).await.unwrap();
    assert_eq!(res.manifest_digest, img.manifest_desc.digest);
}
