//! Published ports end to end through a real berthd: `-p [ip:]host:container`, `-p
//! container` (random host port), ranges, `-P` for every exposed port, `port`, inspect
//! `NetworkSettings.Ports`, the `ps` PORTS column, a taken port refused before the
//! container starts, reachability on 127.0.0.1 and on the host's own address, and the port
//! freed after `rm` — through `berth` and the real docker CLI.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{Daemon, Leftovers, stderr};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /path` on `ip:port` from the host, retrying until the server inside is up.
fn get(ip: Ipv4Addr, port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    while Instant::now() < deadline {
        match TcpStream::connect((ip, port)) {
            Ok(mut s) => {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let _ = s.write_all(format!("GET /{path} HTTP/1.0\r\n\r\n").as_bytes());
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                if let Some((_, body)) = buf.split_once("\r\n\r\n") {
                    return body.to_owned();
                }
                last = format!("no HTTP answer: {buf:?}");
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("GET {ip}:{port}/{path}: {last}");
}

/// The host's first non-loopback IPv4 address.
fn host_address() -> Option<Ipv4Addr> {
    let o = std::process::Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
        let w: Vec<&str> = l.split_whitespace().collect();
        let i = w.iter().position(|x| *x == "inet")?;
        let dev = w.get(1)?;
        if dev.starts_with("bt") {
            return None; // another test's bridge
        }
        w.get(i + 1)?.split('/').next()?.parse().ok()
    })
}

const SERVE: &str = "echo hello-from-httpd > /tmp/index.html && exec httpd -f -p 80 -h /tmp";

#[test]
fn published_port_answers_on_loopback_and_the_host_address() {
    let d = Daemon::start();
    let _l = Leftovers::new(&d);
    d.load_busybox();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    d.ok(&[
        "run", "-d", "--name", "web", "-p", &publish, "busybox", "sh", "-c", SERVE,
    ]);
    assert_eq!(
        get(Ipv4Addr::LOCALHOST, port, "index.html"),
        "hello-from-httpd\n"
    );
    // port, inspect, ps
    assert_eq!(
        d.ok(&["port", "web"]),
        format!("80/tcp -> 127.0.0.1:{port}\n")
    );
    assert_eq!(d.ok(&["port", "web", "80"]), format!("127.0.0.1:{port}\n"));
    let o = d.berth(&["port", "web", "81"]);
    assert!(!o.status.success());
    let ports = d.ok(&["inspect", "-f", "{{json .NetworkSettings.Ports}}", "web"]);
    let v: serde_json::Value = serde_json::from_str(&ports).unwrap();
    assert_eq!(v["80/tcp"][0]["HostIp"], "127.0.0.1");
    assert_eq!(v["80/tcp"][0]["HostPort"], port.to_string());
    let ps = d.ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps, format!("127.0.0.1:{port}->80/tcp\n"));
    // what was asked for, as Docker shows it
    let hc = d.ok(&["inspect", "-f", "{{json .HostConfig.PortBindings}}", "web"]);
    let v: serde_json::Value = serde_json::from_str(&hc).unwrap();
    assert_eq!(v["80/tcp"][0]["HostPort"], port.to_string());
    let ex = d.ok(&["inspect", "-f", "{{json .Config.ExposedPorts}}", "web"]);
    assert!(ex.contains("\"80/tcp\""), "{ex}");
    // all addresses: 127.0.0.1 (userland proxy) and the host's own address (DNAT)
    let p2 = free_port();
    let publish = format!("{p2}:80");
    d.ok(&[
        "run", "-d", "--name", "web2", "-p", &publish, "busybox", "sh", "-c", SERVE,
    ]);
    assert_eq!(
        get(Ipv4Addr::LOCALHOST, p2, "index.html"),
        "hello-from-httpd\n"
    );
    if let Some(addr) = host_address() {
        assert_eq!(
            get(addr, p2, "index.html"),
            "hello-from-httpd\n",
            "via {addr}"
        );
    }
    let ps = d.ok(&["ps", "--filter", "name=web2", "--format", "{{.Ports}}"]);
    assert_eq!(ps, format!("0.0.0.0:{p2}->80/tcp\n"));
    // rm frees the ports
    d.ok(&["rm", "-f", "web", "web2"]);
    TcpListener::bind(("127.0.0.1", port)).expect("port freed");
    TcpListener::bind(("0.0.0.0", p2)).expect("port freed");
    let t = std::process::Command::new("nft")
        .args(["list", "table", "inet", d.env.prefix()])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&t.stdout);
    assert!(!t.contains("dnat ip to"), "DNAT rules left: {t}");
}

#[test]
fn random_ports_ranges_and_publish_all() {
    let d = Daemon::start();
    let _l = Leftovers::new(&d);
    d.load_busybox();
    // -p 80: a random host port, readable back from inspect and `port`
    d.ok(&[
        "run", "-d", "--name", "rnd", "-p", "80", "busybox", "sh", "-c", SERVE,
    ]);
    let line = d.ok(&["port", "rnd", "80/tcp"]);
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    assert!(port > 0);
    assert_eq!(
        get(Ipv4Addr::LOCALHOST, port, "index.html"),
        "hello-from-httpd\n"
    );
    // -P: every exposed port (--expose here) gets a random host port
    d.ok(&[
        "run",
        "-d",
        "--name",
        "all",
        "-P",
        "--expose",
        "80",
        "--expose",
        "7000-7001/udp",
        "busybox",
        "sh",
        "-c",
        SERVE,
    ]);
    let out = d.ok(&["port", "all"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        out.contains("80/tcp -> 0.0.0.0:") && out.contains("7001/udp -> 0.0.0.0:"),
        "{out}"
    );
    // a range
    let base = free_port();
    let (a, b) = (base, base + 1);
    if TcpListener::bind(("0.0.0.0", b)).is_ok() {
        let publish = format!("{a}-{b}:80-81");
        d.ok(&[
            "run", "-d", "--name", "rng", "-p", &publish, "busybox", "sh", "-c", SERVE,
        ]);
        let out = d.ok(&["port", "rng"]);
        assert_eq!(
            out,
            format!("80/tcp -> 0.0.0.0:{a}\n81/tcp -> 0.0.0.0:{b}\n")
        );
        assert_eq!(
            get(Ipv4Addr::LOCALHOST, a, "index.html"),
            "hello-from-httpd\n"
        );
        d.ok(&["rm", "-f", "rng"]);
    }
    d.ok(&["rm", "-f", "rnd", "all"]);
}

#[test]
fn a_taken_port_is_refused_and_the_container_stays_created() {
    let d = Daemon::start();
    let _l = Leftovers::new(&d);
    d.load_busybox();
    let hold = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hold.local_addr().unwrap().port();
    let publish = format!("127.0.0.1:{port}:80");
    let o = d.berth(&[
        "run", "-d", "--name", "clash", "-p", &publish, "busybox", "sleep", "30",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains(&port.to_string()) && e.contains("127.0.0.1"),
        "{e}"
    );
    let st = d.ok(&["inspect", "-f", "{{.State.Status}}", "clash"]);
    assert_eq!(st, "created\n");
    // nothing half-made is left: no veth of ours besides the bridge
    let links = berth_testkit::cleanup::links_with_prefix(d.env.prefix());
    assert!(links.iter().all(|l| l.ends_with("b0")), "{links:?}");
    // once the port is free, the same container starts
    drop(hold);
    d.ok(&["start", "clash"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "clash"]),
        "running\n"
    );
    d.ok(&["rm", "-f", "clash"]);
}

#[test]
fn docker_cli_publishes_and_reads_ports() {
    let d = Daemon::start();
    let _l = Leftovers::new(&d);
    d.load_busybox();
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    d.docker_ok(&[
        "run", "-d", "--name", "dweb", "-p", &publish, "busybox", "sh", "-c", SERVE,
    ]);
    assert_eq!(
        get(Ipv4Addr::LOCALHOST, port, "index.html"),
        "hello-from-httpd\n"
    );
    let out = d.docker_ok(&["port", "dweb"]);
    assert_eq!(out, format!("80/tcp -> 127.0.0.1:{port}\n"));
    let ps = d.docker_ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps, format!("127.0.0.1:{port}->80/tcp\n"));
    // a range published on the same numbers is one group in PORTS, as docker shows it
    let base = free_port_run(3);
    let range = format!("127.0.0.1:{base}-{}:{base}-{}", base + 2, base + 2);
    d.docker_ok(&[
        "run", "-d", "--name", "drange", "-p", &range, "--expose", "443", "busybox", "sleep",
        "1000",
    ]);
    // exposed but unpublished ports are listed too, without an address
    let want = format!(
        "443/tcp, 127.0.0.1:{base}-{}->{base}-{}/tcp\n",
        base + 2,
        base + 2
    );
    let args = ["ps", "--filter", "name=drange", "--format", "{{.Ports}}"];
    assert_eq!(d.docker_ok(&args), want);
    assert_eq!(d.ok(&args), want);
    d.docker_ok(&["rm", "-f", "dweb", "drange"]);
    TcpListener::bind(("127.0.0.1", port)).expect("port freed");
}

/// The first of `n` consecutive ports free on 127.0.0.1 right now.
fn free_port_run(n: u16) -> u16 {
    for _ in 0..100 {
        let base = free_port();
        if base.checked_add(n).is_none() {
            continue;
        }
        if (1..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports");
}
