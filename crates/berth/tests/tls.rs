//! berth reaches a tcp:// daemon only over verified TLS, with a client certificate.

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
fn berth_talks_to_a_tls_daemon_with_client_certificates() {
    let mut env = TestEnv::new().unwrap();
    let pki = env.dir().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    make_pki(&pki);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let p = |f: &str| pki.join(f).display().to_string();
    let berthd = std::path::PathBuf::from(env!("CARGO_BIN_EXE_berth")).with_file_name("berthd");
    let child = Command::new(berthd)
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
    let host = format!("tcp://{addr}");
    let berth = |args: &[&str], envs: &[(&str, String)]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.args(args)
            .env_remove("BERTH_HOST")
            .env_remove("BERTH_CERT_PATH")
            .env_remove("BERTH_TLS_VERIFY");
        for (k, v) in envs {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    let o = berth(
        &[
            "-H",
            &host,
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
            "--tlscert",
            &p("cert.pem"),
            "--tlskey",
            &p("key.pem"),
            "version",
            "--format",
            "{{.Server.ApiVersion}}",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1.44\n");
    // The same through the environment.
    let o = berth(
        &["images", "-q"],
        &[
            ("BERTH_HOST", host.clone()),
            ("BERTH_TLS_VERIFY", "1".into()),
            ("BERTH_CERT_PATH", pki.display().to_string()),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Without --tlsverify: refused before connecting.
    let o = berth(&["-H", &host, "version"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("verified TLS"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Without a client certificate the daemon refuses the handshake.
    let o = berth(
        &[
            "-H",
            &host,
            "--tlsverify",
            "--tlscacert",
            &p("ca.pem"),
            "version",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&o.stderr).is_empty());
}
