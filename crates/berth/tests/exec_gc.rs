//! Exec records do not pile up: those of removed containers are forgotten (health checks
//! exec every few seconds for as long as a container lives).

mod common;

use std::io::{Read as _, Write as _};

use common::{Daemon, Leftovers};

/// One request over the daemon's socket: status code and body.
fn api(d: &Daemon, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = std::os::unix::net::UnixStream::connect(d.env.socket()).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_owned())
}

fn exec_id(d: &Daemon, ctr: &str) -> String {
    let (code, body) = api(
        d,
        "POST",
        &format!("/containers/{ctr}/exec"),
        r#"{"Cmd":["true"],"AttachStdout":true}"#,
    );
    assert_eq!(code, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["Id"].as_str().unwrap().to_owned()
}

#[test]
fn execs_of_removed_containers_are_forgotten() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    for name in ["ea", "eb"] {
        d.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            name,
            "busybox",
            "sleep",
            "100",
        ]);
    }
    let old = exec_id(&d, "ea");
    let (code, body) = api(&d, "GET", &format!("/exec/{old}/json"), "");
    assert_eq!(code, 200, "{body}");
    d.ok(&["rm", "-f", "ea"]);
    // the next exec prunes the table
    let new = exec_id(&d, "eb");
    let (code, body) = api(&d, "GET", &format!("/exec/{old}/json"), "");
    assert_eq!(code, 404, "{body}");
    assert_eq!(api(&d, "GET", &format!("/exec/{new}/json"), "").0, 200);
    d.ok(&["rm", "-f", "eb"]);
}
