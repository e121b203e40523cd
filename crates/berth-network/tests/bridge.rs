//! Bridge networks in test-made namespaces: containers talk, networks are isolated, teardown
//! leaves nothing. Needs root, `ip` (iproute2) and `nft`.

mod common;

use std::net::{SocketAddr, SocketAddrV4};

use berth_network::config::format_mac;
use berth_network::firewall::{container_tag, network_tag};
use common::{TcpServer, World, tcp_talk};

#[test]
fn two_containers_on_one_bridge_talk() {
    let w = World::new("two_containers_on_one_bridge_talk");
    let net = w.network("a", 101, false);
    w.manager.create_network(&net).unwrap();
    let (c1, c2) = (w.container("1"), w.container("2"));
    let a1 = w
        .manager
        .setup(&net, &w.endpoint(&c1, "1", vec![]))
        .unwrap();
    let a2 = w
        .manager
        .setup(&net, &w.endpoint(&c2, "2", vec![]))
        .unwrap();
    assert_ne!(a1.result.ip, a2.result.ip);
    assert_eq!(a1.result.gateway, net.gateway());
    assert!(net.subnet.contains(&a1.result.ip));

    // inside the container: eth0 with a Docker-style MAC, the address, a default route, lo up
    let link = c1.ip(&["-o", "link", "show", "eth0"]);
    assert!(
        link.contains(&format_mac(&a1.result.mac))
            && format_mac(&a1.result.mac).starts_with("02:42:"),
        "{link}"
    );
    assert!(
        link.contains("state UP") || link.contains("LOWER_UP"),
        "{link}"
    );
    let addr = c1.ip(&["-o", "-4", "addr", "show", "eth0"]);
    assert!(addr.contains(&format!("{}/24", a1.result.ip)), "{addr}");
    let route = c1.ip(&["route", "show", "default"]);
    assert!(route.contains(&format!("via {}", net.gateway())), "{route}");
    assert!(c1.ip(&["-o", "link", "show", "lo"]).contains("UP"));
    // host side: veth attached to the bridge
    let veth = w.host.ip(&["-o", "link", "show", &a1.result.host_veth]);
    assert!(veth.contains(&format!("master {}", net.bridge)), "{veth}");

    let _srv = TcpServer::start(&c2.path(), 7000, "hello from c2:");
    let reply = tcp_talk(
        &c1.path(),
        SocketAddr::V4(SocketAddrV4::new(a2.result.ip, 7000)),
        "ping",
    )
    .unwrap();
    assert_eq!(reply, "hello from c2:ping");

    w.manager
        .teardown(&net, &w.endpoint(&c1, "1", vec![]))
        .unwrap();
    w.manager
        .teardown(&net, &w.endpoint(&c2, "2", vec![]))
        .unwrap();
    w.manager.remove_network(&net).unwrap();
}

#[test]
fn bridge_networks_are_isolated() {
    let w = World::new("bridge_networks_are_isolated");
    let (na, nb) = (w.network("a", 102, false), w.network("b", 103, false));
    w.manager.create_network(&na).unwrap();
    w.manager.create_network(&nb).unwrap();
    let (ca, cb) = (w.container("a"), w.container("b"));
    let _ea = w.manager.setup(&na, &w.endpoint(&ca, "a", vec![])).unwrap();
    let eb = w.manager.setup(&nb, &w.endpoint(&cb, "b", vec![])).unwrap();
    let _srv = TcpServer::start(&cb.path(), 7001, "b:");
    let to = SocketAddr::V4(SocketAddrV4::new(eb.result.ip, 7001));

    let blocked = tcp_talk(&ca.path(), to, "x");
    assert!(blocked.is_err(), "network a reached network b: {blocked:?}");

    // control: without the isolation rules the same connection goes through, so it was the
    // rules (not missing forwarding) that blocked it
    let fw = w.manager.firewall();
    common::in_ns(&w.host.path(), || {
        fw.delete_tagged(&network_tag(&na.id)).unwrap();
        fw.delete_tagged(&network_tag(&nb.id)).unwrap();
    });
    assert_eq!(tcp_talk(&ca.path(), to, "x").unwrap(), "b:x");

    // reload re-applies the rules from the desired state: blocked again
    let desired = vec![
        berth_network::DesiredNetwork {
            network: na.clone(),
            endpoints: vec![],
        },
        berth_network::DesiredNetwork {
            network: nb.clone(),
            endpoints: vec![],
        },
    ];
    w.manager.reload(&desired).unwrap();
    assert!(tcp_talk(&ca.path(), to, "x").is_err());
}

#[test]
fn internal_network_does_not_reach_other_bridges() {
    let w = World::new("internal_network_does_not_reach_other_bridges");
    let (ni, no) = (w.network("i", 104, true), w.network("o", 105, false));
    w.manager.create_network(&ni).unwrap();
    w.manager.create_network(&no).unwrap();
    let (ci, co, ci2) = (w.container("i"), w.container("o"), w.container("j"));
    let _ei = w.manager.setup(&ni, &w.endpoint(&ci, "i", vec![])).unwrap();
    let ei2 = w
        .manager
        .setup(&ni, &w.endpoint(&ci2, "j", vec![]))
        .unwrap();
    let eo = w.manager.setup(&no, &w.endpoint(&co, "o", vec![])).unwrap();
    let _s1 = TcpServer::start(&co.path(), 7002, "o:");
    let _s2 = TcpServer::start(&ci2.path(), 7002, "j:");
    assert!(
        tcp_talk(
            &ci.path(),
            SocketAddr::V4(SocketAddrV4::new(eo.result.ip, 7002)),
            "x"
        )
        .is_err()
    );
    // inside the internal network traffic still flows
    assert_eq!(
        tcp_talk(
            &ci.path(),
            SocketAddr::V4(SocketAddrV4::new(ei2.result.ip, 7002)),
            "x"
        )
        .unwrap(),
        "j:x"
    );
    // no masquerade rule for the internal subnet
    let rules = common::in_ns(&w.host.path(), || {
        std::process::Command::new("nft")
            .args([
                "list",
                "chain",
                "inet",
                w.manager.firewall().table(),
                "postrouting",
            ])
            .output()
            .unwrap()
    });
    let text = String::from_utf8_lossy(&rules.stdout);
    assert!(
        !text.contains(&ni.subnet.to_string()) && text.contains(&no.subnet.to_string()),
        "{text}"
    );
}

#[test]
fn teardown_leaves_no_veth_rule_or_lease() {
    let w = World::new("teardown_leaves_no_veth_rule_or_lease");
    let net = w.network("t", 106, false);
    w.manager.create_network(&net).unwrap();
    let c = w.container("t");
    let ep = w.endpoint(
        &c,
        "t",
        berth_network::PortMapping::parse("127.0.0.1:18080:80").unwrap(),
    );
    let att = w.manager.setup(&net, &ep).unwrap();
    let tag = container_tag(&ep.container_id, &net.id);
    let fw = w.manager.firewall();
    let count = |tag: &str| {
        common::in_ns(&w.host.path(), || {
            fw.tagged_rules()
                .unwrap()
                .iter()
                .filter(|r| r.comment == tag)
                .count()
        })
    };
    assert_eq!(count(&tag), 1);
    assert_eq!(w.manager.ipam().leases(&net.id).unwrap().len(), 1);

    drop(att.proxy);
    w.manager.teardown(&net, &ep).unwrap();
    assert_eq!(count(&tag), 0);
    let links = w.host.ip(&["-o", "link"]);
    assert!(!links.contains(&att.result.host_veth), "{links}");
    assert!(c.ip(&["-o", "link"]).lines().all(|l| !l.contains("eth0")));
    assert!(w.manager.ipam().leases(&net.id).unwrap().is_empty());
    // the port is free again
    let l = common::in_ns(&w.host.path(), || {
        std::net::TcpListener::bind("127.0.0.1:18080")
    });
    assert!(l.is_ok());
    drop(l);
    // a second teardown: everything is already gone, which is success
    w.manager.teardown(&net, &ep).unwrap();

    w.manager.remove_network(&net).unwrap();
    assert!(!w.host.ip(&["-o", "link"]).contains(&net.bridge));
    assert_eq!(count(&network_tag(&net.id)), 0);
    w.manager.remove_network(&net).unwrap();
}

#[test]
fn concurrent_setups_on_one_network_never_share_an_address() {
    let w = World::new("concurrent_setups_on_one_network_never_share_an_address");
    let net = w.network("k", 114, false);
    // no create_network first: concurrent setups also race to create the bridge
    let nss: Vec<common::Netns> = (0..10).map(|i| w.container(&format!("k{i}"))).collect();
    let results: Vec<berth_network::EndpointResult> = std::thread::scope(|s| {
        let handles: Vec<_> = nss
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let (w, net) = (&w, &net);
                s.spawn(move || {
                    w.manager
                        .setup(net, &w.endpoint(ns, &format!("k{i}"), vec![]))
                        .unwrap()
                        .result
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ips: Vec<_> = results.iter().map(|r| r.ip).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 10, "{results:?}");
    // every one of them is really reachable at its address
    let _srv = TcpServer::start(&nss[9].path(), 7003, "k9:");
    for ns in &nss[..9] {
        let to = SocketAddr::V4(SocketAddrV4::new(results[9].ip, 7003));
        assert_eq!(tcp_talk(&ns.path(), to, "?").unwrap(), "k9:?");
    }
}
