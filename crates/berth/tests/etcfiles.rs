//! /etc/hostname, /etc/hosts, /etc/resolv.conf in containers (Docker's contents, bind
//! mounts, --add-host, --dns*, -h) through `berth` and the docker CLI (root; needs
//! `cargo build -p berthd -p berth-shim` first).

mod common;

use common::{Daemon, Leftovers, stderr, stdout};

const DEFAULT_HOSTS: &str = "127.0.0.1\tlocalhost\n\
::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\n\
ff00::0\tip6-mcastprefix\n\
ff02::1\tip6-allnodes\n\
ff02::2\tip6-allrouters\n";

/// The host's nameservers that are not loopback (Docker's filter).
fn host_nameservers() -> Vec<String> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(|a| a.trim().to_owned())
        .filter(|a| {
            !a.parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
        })
        .collect()
}

/// Lines of `mount` output whose mount point is one of the three files.
fn etc_mount_lines(mount_out: &str) -> Vec<&str> {
    mount_out
        .lines()
        .filter(|l| {
            ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
                .iter()
                .any(|p| l.contains(&format!(" on {p} type ")))
        })
        .collect()
}

#[test]
fn default_files_are_dockers_and_bind_mounted() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = d
        .ok(&[
            "create",
            "--name",
            "plain",
            "busybox",
            "sh",
            "-c",
            "cat /etc/hostname; echo ---; cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; mount",
        ])
        .trim()
        .to_owned();
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["inspect", "plain"])).unwrap();
    let dir = d.env.data_root().join("containers").join(&id);
    for (key, file) in [
        ("HostnamePath", "hostname"),
        ("HostsPath", "hosts"),
        ("ResolvConfPath", "resolv.conf"),
    ] {
        let p = dir.join(file);
        assert_eq!(v[0][key], p.display().to_string(), "{key}");
        assert!(p.is_file(), "{} missing", p.display());
    }
    d.ok(&["start", "plain"]);
    assert_eq!(d.ok(&["wait", "plain"]), "0\n");
    let out = d.ok(&["logs", "plain"]);
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 4, "{out}");
    assert_eq!(parts[0], format!("{}\n", &id[..12]));
    // the default bridge network: Docker's lines, then the container's address and hostname
    let own = parts[1]
        .strip_prefix(DEFAULT_HOSTS)
        .unwrap_or_else(|| panic!("{}", parts[1]));
    assert!(own.ends_with(&format!("\t{}\n", &id[..12])), "{own}");
    let servers: Vec<&str> = parts[2]
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    let expected = host_nameservers();
    if expected.is_empty() {
        assert_eq!(servers, ["8.8.8.8", "8.8.4.4"]);
    } else {
        assert_eq!(servers, expected);
    }
    assert!(
        !servers.iter().any(|s| s.starts_with("127.") || *s == "::1"),
        "{}",
        parts[2]
    );
    let mounts = etc_mount_lines(parts[3]);
    assert_eq!(mounts.len(), 3, "{}", parts[3]);
    for m in mounts {
        assert!(m.contains("(rw"), "{m}");
    }
    d.ok(&["rm", "plain"]);
}

#[test]
fn hostname_add_host_and_dns_flags() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let o = d.berth(&[
        "run",
        "--rm",
        "-h",
        "box1",
        "--add-host",
        "db:10.0.0.5",
        "--add-host",
        "six:2001:db8::1",
        "--dns",
        "192.0.2.53",
        "--dns",
        "192.0.2.54",
        "--dns-search",
        "a.test",
        "--dns-option",
        "ndots:2",
        "busybox",
        "sh",
        "-c",
        "hostname; cat /etc/hostname /etc/hosts /etc/resolv.conf",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with(&format!(
            "box1\nbox1\n{DEFAULT_HOSTS}10.0.0.5\tdb\n2001:db8::1\tsix\n"
        )),
        "{out}"
    );
    let resolv: Vec<&str> = out
        .lines()
        .filter(|l| {
            l.starts_with("nameserver") || l.starts_with("search") || l.starts_with("options")
        })
        .collect();
    assert_eq!(
        resolv,
        [
            "nameserver 192.0.2.53",
            "nameserver 192.0.2.54",
            "search a.test",
            "options ndots:2"
        ]
    );
    // host-gateway is refused with the entry named; a bad --dns too
    let o = d.berth(&[
        "run",
        "--rm",
        "--add-host",
        "gw:host-gateway",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("gw:host-gateway"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("host-gateway is not supported"),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&["run", "--rm", "--dns", "nope", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("nope is not an ip address"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn read_only_rootfs_keeps_the_files_writable_and_host_network_uses_host_resolv() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let o = d.berth(&[
        "run",
        "--rm",
        "--read-only",
        "busybox",
        "sh",
        "-c",
        "echo '10.1.1.1 extra' >> /etc/hosts && tail -n1 /etc/hosts; touch /newfile 2>/dev/null && echo rootfs-writable; true",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "10.1.1.1 extra\n");
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut host_hosts = std::fs::read_to_string("/etc/hosts").unwrap();
    if !host_hosts.is_empty() && !host_hosts.ends_with('\n') {
        host_hosts.push('\n');
    }
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "host",
        "--add-host",
        "h:10.2.2.2",
        "busybox",
        "sh",
        "-c",
        "cat /etc/resolv.conf; echo ---; cat /etc/hosts",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // --network host: the host's resolv.conf as is, the host's hosts plus --add-host
    assert_eq!(stdout(&o), format!("{host}---\n{host_hosts}10.2.2.2\th\n"));
}

#[test]
fn docker_cli_sees_the_same_files() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let run = d
        .docker_ok(&[
            "run",
            "-d",
            "--hostname",
            "dbox",
            "--add-host",
            "db=10.0.0.7",
            "--dns",
            "192.0.2.99",
            "--dns-search",
            "d.test",
            "--dns-option",
            "timeout:1",
            "busybox",
            "sh",
            "-c",
            "cat /etc/hostname /etc/hosts /etc/resolv.conf; mount",
        ])
        .trim()
        .to_owned();
    assert_eq!(d.docker_ok(&["wait", &run]), "0\n");
    let out = d.docker_ok(&["logs", &run]);
    d.docker_ok(&["rm", &run]);
    assert!(
        out.starts_with(&format!("dbox\n{DEFAULT_HOSTS}10.0.0.7\tdb\n")),
        "{out}"
    );
    assert!(
        out.contains("nameserver 192.0.2.99\nsearch d.test\noptions timeout:1\n"),
        "{out}"
    );
    assert_eq!(etc_mount_lines(&out).len(), 3, "{out}");
    let id = d
        .docker_ok(&["create", "--add-host", "x:10.9.9.9", "busybox", "true"])
        .trim()
        .to_owned();
    let paths = d.docker_ok(&[
        "inspect",
        "-f",
        "{{.HostnamePath}} {{.HostsPath}} {{.ResolvConfPath}} {{.HostConfig.ExtraHosts}}",
        &id,
    ]);
    let dir = d.env.data_root().join("containers").join(&id);
    assert_eq!(
        paths,
        format!(
            "{} {} {} [x:10.9.9.9]\n",
            dir.join("hostname").display(),
            dir.join("hosts").display(),
            dir.join("resolv.conf").display()
        )
    );
    d.docker_ok(&["rm", &id]);
}
