//! tcp:// only with TLS: berthd with --tlsverify serves the real docker CLI holding a
//! client certificate, and refuses clients without one and plain HTTP.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::TestEnv;

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn make_pki(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=berth-test-ca",
    ]);
    openssl(dir, &a);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, subj, ext, key, cert) in [
        (
            "server",
            "/CN=127.0.0.1",
            "server.ext",
            "server-key.pem",
            "server-cert.pem",
        ),
        ("client", "/CN=client", "client.ext", "key.pem", "cert.pem"),
    ] {
        let csr = format!("{name}.csr");
        let mut a = vec!["req"];
        a.extend(ec);
        a.extend(["-keyout", key, "-out", &csr, "-subj", subj]);
        openssl(dir, &a);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-out",
                cert,
                "-days",
                "2",
                "-extfile",
                ext,
            ],
        );
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn tls_with_client_verification_serves_docker_and_refuses_others() {
    let mut env = TestEnv::new().unwrap();
    let pki = env.dir().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_pki(&pki);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let p = |f: &str| pki.join(f).display().to_string();
    let child = Command::new(env!("CARGO_BIN_EXE_berthd"))
        .arg("--data-root")
        .arg(env.data_root())
        .arg("--exec-root")
        .arg(env.run_root())
        .arg("--config")
        .arg(env.dir().join("none.toml"))
        .args([
            "-H",
            &format!("tcp://{addr}"),
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
            "--tlscert",
            &p("server-cert.pem"),
            "--tlskey",
            &p("server-key.pem"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    env.cleanup().child(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "berthd did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The docker CLI with the client certificate.
    let docker = |cert_path: &Path| {
        Command::new("/usr/local/bin/docker")
            .args(["version", "--format", "{{.Server.APIVersion}}"])
            .env("DOCKER_HOST", format!("tcp://{addr}"))
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", cert_path)
            .env("DOCKER_CONFIG", env.dir().join("docker-cli"))
            .output()
            .unwrap()
    };
    let ok = docker(&pki);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "1.44\n");
    // A client whose certificate the CA did not sign is refused.
    let other = env.dir().join("other");
    std::fs::create_dir_all(&other).unwrap();
    make_pki(&other);
    std::fs::copy(pki.join("ca.pem"), other.join("ca.pem")).unwrap();
    let refused = docker(&other);
    assert!(!refused.status.success());
    // Plain HTTP gets no HTTP answer.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        !String::from_utf8_lossy(&buf).contains("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
}
