//! Networks end to end through a real berthd: the default bridge (address, outbound rules,
//! no name resolution), user-defined networks with DNS by name and alias, isolation between
//! networks, `network create/ls/inspect/rm/prune/connect/disconnect`, `--network
//! none|host|container:`, `--ip`, concurrency, and cleanup after stop, rm and crashes.
//! Each daemon gets its own bridge device, subnets, device prefix and nft table.

mod common;

use std::process::Command;

use common::{Daemon, Leftovers, stderr, stdout};

/// Links on the host whose names start with `prefix`.
fn links(prefix: &str) -> Vec<String> {
    berth_testkit::cleanup::links_with_prefix(prefix)
}

/// Waits (up to 10 s) until the links with `prefix` are `want`: the kernel removes a
/// stopped container's veth with its namespace, asynchronously.
fn wait_links(prefix: &str, want: &[String]) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let now = links(prefix);
        if now == want || std::time::Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn nft_table(name: &str) -> Option<String> {
    let o = Command::new("nft")
        .args(["list", "table", "inet", name])
        .output()
        .unwrap();
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The body of `GET http://<host>/<path>` from a container on `network` (busybox `nc`:
/// this machine's static busybox `wget` segfaults, on the host too).
fn http_get(d: &Daemon, network: &str, host: &str, path: &str) -> String {
    let o = http_get_raw(d, network, host, path);
    assert!(o.status.success(), "GET {host}/{path}: {}", stderr(&o));
    let text = stdout(&o);
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default()
}

fn http_get_raw(d: &Daemon, network: &str, host: &str, path: &str) -> std::process::Output {
    let script = format!("printf 'GET /{path} HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {host} 80");
    d.berth(&[
        "run",
        "--rm",
        "--network",
        network,
        "busybox",
        "sh",
        "-c",
        &script,
    ])
}

/// `ip -4 -o addr` inside `ctr`'s network namespace (a container joining it).
fn exec_ip_addr(d: &Daemon, ctr: &str) -> String {
    let mode = format!("container:{ctr}");
    d.ok(&[
        "run",
        "--rm",
        "--network",
        &mode,
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
    ])
}

#[test]
fn default_bridge_gives_an_address_and_no_names() {
    let d = Daemon::start();
    let _l = Leftovers::new(&d);
    d.load_busybox();
    let prefix = d.env.prefix().to_owned();
    // the default bridge network, on the test's subnet and device
    let inspect = d.ok(&["network", "inspect", "bridge"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Driver"], "bridge");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], d.env.subnet().cidr());
    assert_eq!(
        v[0]["Options"]["com.docker.network.bridge.name"],
        format!("{prefix}b0")
    );
    let ls = d.ok(&["network", "ls"]);
    for n in ["bridge", "host", "none"] {
        assert!(ls.contains(n), "{ls}");
    }
    // run without --network: eth0 on the default bridge, gateway is the bridge
    let out = d.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr; ip route",
    ]);
    let gw = d.env.subnet().gateway().to_string();
    let net = d.env.subnet().network().to_string();
    let prefix3 = &net[..net.rfind('.').unwrap()];
    assert!(out.contains("eth0") && out.contains(prefix3), "{out}");
    assert!(out.contains(&format!("default via {gw}")), "{out}");
    // outbound: the masquerade rule lives in our own table, tagged by network
    let t = nft_table(&prefix).expect("our nft table exists");
    assert!(t.contains("masquerade"), "{t}");
    // the default bridge does not resolve container names
    d.ok(&["run", "-d", "--name", "named", "busybox", "sleep", "30"]);
    let o = d.berth(&["run", "--rm", "busybox", "nslookup", "named"]);
    assert!(
        !o.status.success() || !stdout(&o).contains("Address: "),
        "{}",
        stdout(&o)
    );
    let ip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "named"]);
    assert!(ip.trim().starts_with(prefix3), "{ip}");
    // but addresses work across the default bridge
    let o = d.ok(&[
        "run",
        "--rm",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        ip.trim(),
    ]);
    assert!(o.contains("1 packets received"), "{o}");
    // stop: its veth, rules, lease and namespace go at once
    d.ok(&["stop", "-t", "1", "named"]);
    let only_bridge = vec![format!("{prefix}b0")];
    assert_eq!(wait_links(&prefix, &only_bridge), only_bridge);
    let nid = d.ok(&["inspect", "-f", "{{.Id}}", "named"]);
    assert!(!d.env.run_root().join("netns").join(nid.trim()).exists());
    let t = nft_table(&prefix).unwrap();
    assert!(!t.contains(&nid.trim()[..20]), "{t}");
    // and it comes back on start
    d.ok(&["start", "named"]);
    let ip2 = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "named"]);
    assert!(ip2.trim().starts_with(prefix3), "{ip2}");
    d.ok(&["rm", "-f", "named"]);
    // nothing of the containers is left: only the bridge itself
    let left = wait_links(&prefix, &[format!("{prefix}b0")]);
    assert_eq!(left, vec![format!("{prefix}b0")], "{left:?}");
    let t = nft_table(&prefix).unwrap();
    assert!(!t.contains("\"c:"), "container rules left: {t}");
}

#[test]
fn app_reaches_db_by_name_on_a_user_network() {
    // the course notes: network create --driver=bridge app-net; db and app on it
    let d = Daemon::start_with_pools(2);
    let _l = Leftovers::new(&d);
    d.load_busybox();
    let id = d.ok(&["network", "create", "--driver=bridge", "app-net"]);
    assert_eq!(id.trim().len(), 64);
    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["network", "inspect", "app-net"])).unwrap();
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], d.pools[0]);
    d.ok(&[
        "run",
        "-d",
        "--network=app-net",
        "--name=db",
        "--network-alias",
        "database",
        "busybox",
        "sh",
        "-c",
        "echo hello-from-db > /tmp/i && httpd -f -p 80 -h /tmp",
    ]);
    // by name, alias and short id, from another container
    let dbid = d.ok(&["inspect", "-f", "{{.Id}}", "db"]);
    let short = &dbid.trim()[..12];
    for host in ["db", "database", short] {
        let out = http_get(&d, "app-net", host, "i");
        assert_eq!(out, "hello-from-db\n", "via {host}");
    }
    // resolv.conf points at the embedded server
    let rc = d.ok(&[
        "run",
        "--rm",
        "--network=app-net",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(rc.contains("nameserver 127.0.0.11"), "{rc}");
    // inspect shows the network and the container
    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["network", "inspect", "app-net"])).unwrap();
    let ctrs = v[0]["Containers"].as_object().unwrap();
    assert_eq!(ctrs.len(), 1);
    assert_eq!(ctrs[dbid.trim()]["Name"], "db");
    // rm is refused while db is attached, naming it
    let o = d.berth(&["network", "rm", "app-net"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("active endpoints") && stderr(&o).contains("db"),
        "{}",
        stderr(&o)
    );
    // names follow containers: db gone → name gone; a new db → the new address
    d.ok(&["rm", "-f", "db"]);
    let o = d.berth(&[
        "run",
        "--rm",
        "--network=app-net",
        "busybox",
        "nslookup",
        "db",
        "127.0.0.11",
    ]);
    assert!(
        !stdout(&o).contains(&d.pools[0][..d.pools[0].rfind('.').unwrap()]) || !o.status.success(),
        "{}",
        stdout(&o)
    );
    d.ok(&["network", "rm", "app-net"]);
    let o = d.berth(&["network", "inspect", "app-net"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("network app-net not found"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn two_networks_cannot_reach_each_other() {
    let d = Daemon::start_with_pools(2);
    let _l = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&["network", "create", "neta"]);
    d.ok(&["network", "create", "netb"]);
    d.ok(&[
        "run",
        "-d",
        "--network",
        "neta",
        "--name",
        "ca",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
    ]);
    let ip_a = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.neta.IPAddress}}",
        "ca",
    ]);
    let ip_a = ip_a.trim();
    assert!(!ip_a.is_empty());
    // same network: reachable
    let o = d.ok(&[
        "run",
        "--rm",
        "--network",
        "neta",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        ip_a,
    ]);
    assert!(o.contains("1 packets received"), "{o}");
    // the other network: neither ping nor TCP gets through, nor is the name known
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "netb",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        ip_a,
    ]);
    assert!(!o.status.success(), "ping crossed networks: {}", stdout(&o));
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "netb",
        "busybox",
        "nc",
        "-w",
        "2",
        ip_a,
        "80",
    ]);
    assert!(!o.status.success(), "tcp crossed networks");
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "netb",
        "busybox",
        "nslookup",
        "ca",
    ]);
    assert!(
        !o.status.success() || !stdout(&o).contains(ip_a),
        "{}",
        stdout(&o)
    );
    d.ok(&["rm", "-f", "ca"]);
}

#[test]
fn network_modes_none_host_container_and_fixed_ip() {
    let d = Daemon::start_with_pools(1);
    let _l = Leftovers::new(&d);
    d.load_busybox();
    // none: only lo
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    let names: Vec<&str> = out.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(names, vec!["lo"], "{out}");
    // host: the host's interfaces
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ip",
        "-o",
        "link",
    ]);
    assert!(
        out.contains(&format!("{}b0", d.env.prefix())) || out.lines().count() > 1,
        "{out}"
    );
    // a fixed address and a hostname on a user network
    let cidr = d.pools[0].clone();
    d.ok(&["network", "create", "--subnet", &cidr, "fixed"]);
    let base = &cidr[..cidr.rfind('.').unwrap()];
    let want = format!("{base}.77");
    d.ok(&[
        "run",
        "-d",
        "--network",
        "fixed",
        "--ip",
        &want,
        "--hostname",
        "web1",
        "--name",
        "w1",
        "busybox",
        "sleep",
        "60",
    ]);
    let out = exec_ip_addr(&d, "w1");
    assert!(out.contains(&format!("{want}/24")), "{out}");
    // container:<w> shares w's namespace
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "container:w1",
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
    ]);
    assert!(out.contains(&want), "{out}");
    // the address is taken while w runs
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "fixed",
        "--ip",
        &want,
        "busybox",
        "true",
    ]);
    assert!(!o.status.success(), "an address handed out twice");
    // the hostname resolves on the network
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "fixed",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "web1",
    ]);
    assert!(out.contains(&want), "{out}");
    d.ok(&["rm", "-f", "w1"]);
}

#[test]
fn connect_and_disconnect_a_running_container() {
    let d = Daemon::start_with_pools(1);
    let _l = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&["network", "create", "side"]);
    d.ok(&[
        "run", "-d", "--name", "srv", "busybox", "httpd", "-f", "-p", "80", "-h", "/etc",
    ]);
    d.ok(&["network", "connect", "--alias", "web", "side", "srv"]);
    let out = exec_ip_addr(&d, "srv");
    assert!(out.contains("eth1"), "{out}");
    // reachable by its alias from the new network, at once
    let out = http_get(&d, "side", "web", "hostname");
    assert!(!out.is_empty());
    let o = d.berth(&["network", "connect", "side", "srv"]);
    assert!(
        stderr(&o).contains("already exists in network side"),
        "{}",
        stderr(&o)
    );
    d.ok(&["network", "disconnect", "side", "srv"]);
    let out = exec_ip_addr(&d, "srv");
    assert!(!out.contains("eth1"), "{out}");
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "side",
        "busybox",
        "nslookup",
        "web",
    ]);
    assert!(
        !o.status.success() || !stdout(&o).contains("Name:"),
        "{}",
        stdout(&o)
    );
    let o = d.berth(&["network", "disconnect", "side", "srv"]);
    assert!(
        stderr(&o).contains("is not connected to network side"),
        "{}",
        stderr(&o)
    );
    // connect a created container: it joins when it starts
    d.ok(&["create", "--name", "later", "busybox", "sleep", "60"]);
    d.ok(&["network", "connect", "side", "later"]);
    d.ok(&["start", "later"]);
    let out = exec_ip_addr(&d, "later");
    assert!(out.contains("eth0") && out.contains("eth1"), "{out}");
    // events
    let ev = d.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "type=network",
    ]);
    for a in ["create", "connect", "disconnect"] {
        assert!(ev.contains(&format!("network {a}")), "{a}: {ev}");
    }
    d.ok(&["rm", "-f", "srv", "later"]);
    d.ok(&["network", "rm", "side"]);
    let ev = d.ok(&[
        "events",
        "--since",
        "5m",
        "--until",
        "0s",
        "--filter",
        "type=network",
    ]);
    assert!(ev.contains("network destroy"), "{ev}");
}

#[test]
fn run_joins_several_networks_as_docker_does() {
    let d = Daemon::start_with_pools(2);
    let _l = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&["network", "create", "front"]);
    d.ok(&["network", "create", "back"]);
    // the second network in docker's advanced syntax, with an alias
    d.ok(&[
        "run",
        "-d",
        "--name",
        "multi",
        "--network",
        "front",
        "--network",
        "name=back,alias=store",
        "busybox",
        "sleep",
        "60",
    ]);
    let out = exec_ip_addr(&d, "multi");
    assert!(out.contains("eth0") && out.contains("eth1"), "{out}");
    let nets = d.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.NetworkMode}}:{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "multi",
    ]);
    assert_eq!(nets.trim(), "front:back front");
    let aliases = d.ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.back.Aliases}}",
        "multi",
    ]);
    assert!(aliases.contains("store"), "{aliases}");
    // reachable by that alias from the second network
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "store",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    // the docker CLI sends several networks the same way
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "dmulti",
        "--network",
        "front",
        "--network",
        "back",
        "busybox",
        "sleep",
        "60",
    ]);
    let out = exec_ip_addr(&d, "dmulti");
    assert!(out.contains("eth0") && out.contains("eth1"), "{out}");
    // docker's refusals
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "front",
        "--network",
        "host",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("user-defined and non-user-defined"),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&[
        "run",
        "--rm",
        "--network",
        "front",
        "--network",
        "front",
        "busybox",
        "true",
    ]);
    assert!(
        stderr(&o).contains("\"front\" is specified multiple times"),
        "{}",
        stderr(&o)
    );
    d.ok(&["rm", "-f", "multi", "dmulti"]);
    d.ok(&["network", "rm", "front", "back"]);
}

#[test]
fn ls_filters_formats_and_prune() {
    let d = Daemon::start_with_pools(2);
    let _l = Leftovers::new(&d);
    d.ok(&["network", "create", "--label", "env=test", "keep-me"]);
    d.ok(&["network", "create", "other"]);
    let q = d.ok(&["network", "ls", "-q", "--filter", "name=keep"]);
    assert_eq!(q.lines().count(), 1);
    assert_eq!(q.trim().len(), 12);
    let full = d.ok(&[
        "network",
        "ls",
        "--no-trunc",
        "-q",
        "--filter",
        "label=env=test",
    ]);
    assert_eq!(full.trim().len(), 64);
    let f = d.ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}}",
        "--filter",
        "type=custom",
    ]);
    assert_eq!(f, "keep-me bridge\nother bridge\n");
    // docker's network context has a Label method
    let f = d.ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}}={{.Label \"env\"}}",
        "--filter",
        "type=custom",
    ]);
    assert_eq!(f, "keep-me=test\nother=\n");
    let header = d.ok(&["network", "ls"]);
    assert!(header.starts_with("NETWORK ID"), "{header}");
    let o = d.berth(&["network", "create", "other"]);
    assert!(
        stderr(&o).contains("network with name other already exists"),
        "{}",
        stderr(&o)
    );
    let o = d.berth(&["network", "rm", "bridge"]);
    assert!(stderr(&o).contains("pre-defined network"), "{}", stderr(&o));
    let out = d.ok(&["network", "prune", "-f", "--filter", "label!=env=test"]);
    assert_eq!(out, "Deleted Networks:\nother\n");
    let out = d.ok(&["network", "prune", "-f"]);
    assert_eq!(out, "Deleted Networks:\nkeep-me\n");
    // their bridges are gone with them
    let left = links(d.env.prefix());
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn twenty_concurrent_runs_get_twenty_addresses() {
    let d = Daemon::start_with_pools(1);
    let _l = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&["network", "create", "many"]);
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let host = d.host();
            let cfg = d.cli_config();
            std::thread::spawn(move || {
                let o = Command::new(env!("CARGO_BIN_EXE_berth"))
                    .args(["-H", &host, "run", "-d", "--network", "many", "--name"])
                    .arg(format!("c{i}"))
                    .args(["busybox", "sleep", "60"])
                    .env("BERTH_CLI_CONFIG", cfg)
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let mut ips: Vec<String> = (0..20)
        .map(|i| {
            d.ok(&[
                "inspect",
                "-f",
                "{{.NetworkSettings.Networks.many.IPAddress}}",
                &format!("c{i}"),
            ])
            .trim()
            .to_owned()
        })
        .collect();
    assert!(ips.iter().all(|i| !i.is_empty()), "{ips:?}");
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 20, "{ips:?}");
    let names: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    let mut args = vec!["rm", "-f"];
    args.extend(names.iter().map(String::as_str));
    d.ok(&args);
}

#[test]
fn crash_of_berthd_is_reconciled_at_the_next_start() {
    let mut d = Daemon::start_with_pools(1);
    let _l = Leftovers::new(&d);
    d.load_busybox();
    let prefix = d.env.prefix().to_owned();
    d.ok(&["network", "create", "crashnet"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "keeps",
        "--network",
        "crashnet",
        "busybox",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/etc",
    ]);
    d.ok(&["run", "-d", "--name", "dies", "busybox", "sleep", "600"]);
    let dies_pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", "dies"]);
    let before = links(&prefix);
    // kill -9 berthd (ours), then the container "dies" while no daemon watches
    d.kill_berthd();
    Command::new("kill")
        .args(["-9", dies_pid.trim()])
        .status()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    d.restart();
    // the survivor keeps its name and address; the dead one's veth and rules are gone
    let out = http_get(&d, "crashnet", "keeps", "hostname");
    assert!(!out.is_empty());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while links(&prefix).len() + 1 != before.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let after = links(&prefix);
    assert_eq!(
        after.len() + 1,
        before.len(),
        "before {before:?} after {after:?}"
    );
    let t = nft_table(&prefix).unwrap();
    let dies_id = d.ok(&["inspect", "-f", "{{.Id}}", "dies"]);
    assert!(!t.contains(dies_id.trim()), "{t}");
    d.ok(&["rm", "-f", "keeps", "dies"]);
    d.ok(&["network", "reload"]);
}

#[test]
fn course_notes_example_through_the_docker_cli() {
    let d = Daemon::start_with_pools(1);
    let _l = Leftovers::new(&d);
    d.load_busybox();
    let id = d.docker_ok(&["network", "create", "--driver=bridge", "app-net"]);
    assert_eq!(id.trim().len(), 64);
    let ls = d.docker_ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert!(
        ls.contains("app-net bridge local") && ls.contains("bridge bridge local"),
        "{ls}"
    );
    d.docker_ok(&[
        "run",
        "-d",
        "--network=app-net",
        "--name=db-test",
        "busybox",
        "sh",
        "-c",
        "echo db-answer > /tmp/i && exec httpd -f -p 27017 -h /tmp",
    ]);
    let script = "printf 'GET /i HTTP/1.0\\r\\n\\r\\n' | nc -w 5 db-test 27017";
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network=app-net",
        "busybox",
        "sh",
        "-c",
        script,
    ]);
    assert!(out.ends_with("db-answer\n"), "{out}");
    let ip = d.docker_ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        "db-test",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&d.docker_ok(&["network", "inspect", "app-net"])).unwrap();
    let c = v[0]["Containers"].as_object().unwrap();
    let entry = c.values().next().unwrap();
    assert_eq!(entry["Name"], "db-test");
    assert_eq!(entry["IPv4Address"], format!("{}/24", ip.trim()));
    // connect/disconnect through the docker CLI, with an alias
    d.docker_ok(&["run", "-d", "--name", "other", "busybox", "sleep", "60"]);
    d.docker_ok(&["network", "connect", "--alias", "side", "app-net", "other"]);
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network=app-net",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "side",
    ]);
    assert!(out.contains("1 packets received"), "{out}");
    d.docker_ok(&["network", "disconnect", "app-net", "other"]);
    let o = d.docker(&["network", "rm", "app-net"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("db-test"), "{}", stderr(&o));
    d.docker_ok(&["rm", "-f", "db-test", "other"]);
    d.docker_ok(&["network", "rm", "app-net"]);
}

#[test]
fn legacy_links_write_hosts_entries() {
    let d = Daemon::start();
    let _l = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&["run", "-d", "--name", "olddb", "busybox", "sleep", "60"]);
    let ip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "olddb"]);
    let hosts = d.ok(&[
        "run",
        "--rm",
        "--link",
        "olddb:database",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(
        hosts
            .lines()
            .any(|l| l.starts_with(ip.trim()) && l.contains("database") && l.contains("olddb")),
        "{hosts}"
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "--link",
        "olddb:database",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "database",
    ]);
    assert!(out.contains("1 packets received"), "{out}");
    // the container's own name line
    let hosts = d.ok(&[
        "run",
        "--rm",
        "--hostname",
        "me",
        "busybox",
        "cat",
        "/etc/hosts",
    ]);
    assert!(hosts.lines().last().unwrap().ends_with("\tme"), "{hosts}");
    d.ok(&["rm", "-f", "olddb"]);
}

#[test]
fn kill_of_the_shim_and_run_rm_leave_nothing_behind() {
    let d = Daemon::start_with_pools(1);
    let _l = Leftovers::new(&d);
    d.load_busybox();
    let prefix = d.env.prefix().to_owned();
    d.ok(&["network", "create", "shimnet"]);
    let bridges = links(&prefix);
    // --rm: gone with the container
    d.ok(&[
        "run",
        "--rm",
        "--network",
        "shimnet",
        "-p",
        "80",
        "busybox",
        "true",
    ]);
    assert_eq!(wait_links(&prefix, &bridges), bridges);
    // kill -9 of the shim: the daemon sees it die and tears the network down
    d.ok(&[
        "run",
        "-d",
        "--name",
        "victim",
        "--network",
        "shimnet",
        "-p",
        "80",
        "busybox",
        "sleep",
        "600",
    ]);
    assert_eq!(links(&prefix).len(), bridges.len() + 1);
    let id = d
        .ok(&["inspect", "-f", "{{.Id}}", "victim"])
        .trim()
        .to_owned();
    // the record's newer copy: state.json (written in place at the start) or config.json
    let dir = d.env.data_root().join("containers").join(&id);
    let v = ["config.json", "state.json"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .max_by_key(|v| v["seq"].as_u64().unwrap_or(0))
        .unwrap();
    let shim = v["state"]["shim_pid"].as_i64().unwrap();
    let pid = v["state"]["pid"].as_i64().unwrap();
    for p in [shim, pid] {
        Command::new("kill")
            .args(["-9", &p.to_string()])
            .status()
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while d
        .ok(&["inspect", "-f", "{{.State.Status}}", "victim"])
        .trim()
        == "running"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon did not notice"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while links(&prefix) != bridges && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(links(&prefix), bridges);
    let t = nft_table(&prefix).unwrap();
    assert!(!t.contains(&id[..20]), "{t}");
    let netns = d.env.run_root().join("netns").join(&id);
    assert!(!netns.exists(), "namespace mount left");
    // its address is free again: ipam holds only what runs
    let ipam = std::fs::read_to_string(d.env.run_root().join("network/ipam.json")).unwrap();
    assert!(!ipam.contains(&id), "{ipam}");
    d.ok(&["rm", "victim"]);
}

#[test]
fn create_options_gateway_ip_range_internal_and_bridge_name() {
    let d = Daemon::start_with_pools(2);
    let _l = Leftovers::new(&d);
    d.load_busybox();
    let cidr = d.pools[0].clone();
    let base = cidr[..cidr.rfind('.').unwrap()].to_owned();
    let dev = format!("{}opt", d.env.prefix());
    let opt = format!("com.docker.network.bridge.name={dev}");
    d.ok(&[
        "network",
        "create",
        "--subnet",
        &cidr,
        "--gateway",
        &format!("{base}.254"),
        "--ip-range",
        &format!("{base}.128/25"),
        "-o",
        &opt,
        "--label",
        "k=v",
        "opts",
    ]);
    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["network", "inspect", "opts"])).unwrap();
    let c = &v[0]["IPAM"]["Config"][0];
    assert_eq!(c["Gateway"], format!("{base}.254"));
    assert_eq!(c["IPRange"], format!("{base}.128/25"));
    assert_eq!(v[0]["Labels"]["k"], "v");
    assert!(
        links(d.env.prefix()).contains(&dev),
        "{:?}",
        links(d.env.prefix())
    );
    // addresses come from the range; the gateway is the bridge's address
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "opts",
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ip route",
    ]);
    assert!(out.contains(&format!("{base}.128/24")), "{out}");
    assert!(out.contains(&format!("default via {base}.254")), "{out}");
    // --internal: no masquerade rule for it; its containers still talk to each other
    d.ok(&["network", "create", "--internal", "inner"]);
    let v: serde_json::Value =
        serde_json::from_str(&d.ok(&["network", "inspect", "inner"])).unwrap();
    assert_eq!(v[0]["Internal"], true);
    let inner_subnet = v[0]["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = nft_table(d.env.prefix()).unwrap();
    assert!(
        !t.lines()
            .any(|l| l.contains("masquerade") && l.contains(&inner_subnet)),
        "{t}"
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "in1",
        "--network",
        "inner",
        "busybox",
        "sleep",
        "60",
    ]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "inner",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "in1",
    ]);
    assert!(out.contains("1 packets received"), "{out}");
    // bad requests are named
    let o = d.berth(&["network", "create", "--subnet", &cidr, "dup"]);
    assert!(stderr(&o).contains("overlaps"), "{}", stderr(&o));
    let o = d.berth(&["network", "create", "--subnet", "10.0.0.1/8", "hostbits"]);
    assert!(stderr(&o).contains("host bits"), "{}", stderr(&o));
    d.ok(&["rm", "-f", "in1"]);
}

#[test]
fn network_reload_reapplies_flushed_rules() {
    let d = Daemon::start();
    let _l = Leftovers::new(&d);
    d.load_busybox();
    let port = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let publish = format!("{port}:80");
    d.ok(&[
        "run", "-d", "--name", "rl", "-p", &publish, "busybox", "sleep", "60",
    ]);
    let table = d.env.prefix().to_owned();
    let before = nft_table(&table).unwrap();
    assert!(before.contains(&format!("dport {port}")), "{before}");
    // someone deletes our table
    assert!(
        Command::new("nft")
            .args(["delete", "table", "inet", &table])
            .status()
            .unwrap()
            .success()
    );
    assert!(nft_table(&table).is_none());
    d.ok(&["network", "reload"]);
    let after = nft_table(&table).unwrap();
    assert!(after.contains(&format!("dport {port}")), "{after}");
    assert!(after.contains("masquerade"), "{after}");
    d.ok(&["rm", "-f", "rl"]);
    let t = nft_table(&table).unwrap();
    assert!(!t.contains(&format!("dport {port}")), "{t}");
}

/// A one-answer DNS server on `addr:53` (UDP): every A query gets `answer`.
fn fake_upstream(addr: std::net::Ipv4Addr, answer: [u8; 4]) -> std::net::UdpSocket {
    let sock = std::net::UdpSocket::bind((addr, 53)).unwrap();
    let s = sock.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = s.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            // header: same id, a response, recursion available, one question, one answer
            let mut r = buf[..n].to_vec();
            r[2] = 0x81;
            r[3] = 0x80;
            r[6] = 0;
            r[7] = 1;
            r[8..12].copy_from_slice(&[0, 0, 0, 0]);
            r.truncate(n);
            // the question ends at the name's zero byte plus type and class
            let qend = 12 + buf[12..n].iter().position(|b| *b == 0).unwrap_or(0) + 5;
            r.truncate(qend.min(n));
            r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            r.extend_from_slice(&answer);
            let _ = s.send_to(&r, peer);
        }
    });
    sock
}

#[test]
fn other_names_are_forwarded_to_the_upstream_resolvers() {
    let d = Daemon::start_with_pools(1);
    let _l = Leftovers::new(&d);
    d.load_busybox();
    d.ok(&["network", "create", "fwd"]);
    // a fake upstream on a loopback address of our own (the daemon forwards from the host)
    let n = std::process::id();
    let addr = std::net::Ipv4Addr::new(127, 53, (n >> 8) as u8, (n as u8).max(2));
    let _up = fake_upstream(addr, [192, 0, 2, 99]);
    let dns = addr.to_string();
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "fwd",
        "--dns",
        &dns,
        "busybox",
        "nslookup",
        "outside.example",
        "127.0.0.11",
    ]);
    assert!(out.contains("192.0.2.99"), "{out}");
    // container names still come from the daemon's table
    d.ok(&[
        "run",
        "-d",
        "--name",
        "inside",
        "--network",
        "fwd",
        "busybox",
        "sleep",
        "60",
    ]);
    let out = d.ok(&[
        "run",
        "--rm",
        "--network",
        "fwd",
        "--dns",
        &dns,
        "busybox",
        "nslookup",
        "inside",
        "127.0.0.11",
    ]);
    assert!(!out.contains("192.0.2.99"), "{out}");
    let pool = &d.pools[0];
    assert!(out.contains(&pool[..pool.rfind('.').unwrap()]), "{out}");
    d.ok(&["rm", "-f", "inside"]);
}

#[test]
fn a_missing_network_is_named_and_no_pull_is_tried() {
    let d = Daemon::start();
    let _l = Leftovers::new(&d);
    d.load_busybox();
    for o in [
        d.berth(&["run", "--rm", "--network", "nope", "busybox", "true"]),
        d.docker(&["run", "--rm", "--network", "nope", "busybox", "true"]),
    ] {
        assert_eq!(o.status.code(), Some(125));
        let e = stderr(&o);
        assert!(e.contains("network nope not found"), "{e}");
        assert!(!e.contains("Pulling"), "{e}");
    }
    let o = d.berth(&["network", "connect", "nope", "x"]);
    assert!(
        stderr(&o).contains("network nope not found"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn connect_a_running_container_with_a_fixed_ip() {
    let d = Daemon::start_with_pools(1);
    let _l = Leftovers::new(&d);
    d.load_busybox();
    let cidr = d.pools[0].clone();
    let base = cidr[..cidr.rfind('.').unwrap()].to_owned();
    d.ok(&["network", "create", "--subnet", &cidr, "fixedc"]);
    d.ok(&["run", "-d", "--name", "rc", "busybox", "sleep", "60"]);
    let want = format!("{base}.42");
    d.ok(&["network", "connect", "--ip", &want, "fixedc", "rc"]);
    let out = exec_ip_addr(&d, "rc");
    assert!(out.contains(&format!("{want}/24")), "{out}");
    let ip = d.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.fixedc.IPAddress}}",
        "rc",
    ]);
    assert_eq!(ip.trim(), want);
    let o = d.berth(&["network", "connect", "--ip", "10.255.255.9", "bridge", "rc"]);
    assert!(!o.status.success());
    d.ok(&["rm", "-f", "rc"]);
}

#[test]
fn network_none_has_loopback_up_as_docker() {
    let d = Daemon::start();
    d.load_busybox();
    let _g = Leftovers::new(&d);
    let none = |cmd: &[&str]| {
        let mut a = vec!["run", "--rm", "--network", "none", "busybox"];
        a.extend_from_slice(cmd);
        d.ok(&a)
    };
    let out = none(&["ip", "-o", "addr", "show", "lo"]);
    assert!(out.contains("inet 127.0.0.1/8"), "{out}");
    let link = none(&["ip", "link", "show", "lo"]);
    assert!(link.contains("UP"), "{link}");
    // and only lo: no other device in a `none` container
    let links = none(&["ls", "/sys/class/net"]);
    assert_eq!(links.split_whitespace().collect::<Vec<_>>(), ["lo"]);
}
