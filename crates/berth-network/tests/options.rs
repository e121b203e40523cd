//! Endpoint options, subnet picking against a namespace's routes, ip_forward and reload, in
//! test-made namespaces. Needs root, `ip` and `nft`.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use berth_network::firewall::container_tag;
use berth_network::ipam::IpamError;
use berth_network::manager::NetError;
use berth_network::subnet::host_routes;
use berth_network::{DesiredNetwork, Firewall, PortMapping, SubnetPool, pick_subnet};
use common::{Netns, TcpServer, World, tcp_talk};

#[test]
fn requested_ip_custom_mac_and_mtu() {
    let w = World::new("requested_ip_custom_mac_and_mtu");
    let mut net = w.network("m", 109, false);
    net.mtu = Some(1400);
    w.manager.create_network(&net).unwrap();
    let c = w.container("m");
    let mut ep = w.endpoint(&c, "m", vec![]);
    let wanted = Ipv4Addr::from(u32::from(net.subnet.network()) + 50);
    ep.requested_ip = Some(wanted);
    ep.mac = Some([0x02, 0x42, 0xde, 0xad, 0xbe, 0xef]);
    let att = w.manager.setup(&net, &ep).unwrap();
    assert_eq!(att.result.ip, wanted);
    let link = c.ip(&["-o", "link", "show", "eth0"]);
    assert!(
        link.contains("mtu 1400") && link.contains("02:42:de:ad:be:ef"),
        "{link}"
    );
    assert!(
        w.host
            .ip(&["-o", "link", "show", &net.bridge])
            .contains("mtu 1400")
    );

    // the same --ip for another container is refused, and nothing of it is left behind
    let c2 = w.container("n");
    let mut ep2 = w.endpoint(&c2, "n", vec![]);
    ep2.requested_ip = Some(wanted);
    let err = w.manager.setup(&net, &ep2).unwrap_err();
    assert!(
        matches!(err, NetError::Ipam(IpamError::InUse { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains(&wanted.to_string()) && err.to_string().contains(&ep.container_id),
        "{err}"
    );
    assert!(!c2.ip(&["-o", "link"]).contains("eth0"));
    assert_eq!(w.manager.ipam().leases(&net.id).unwrap().len(), 1);
}

#[test]
fn subnet_picking_avoids_routes_of_the_namespace() {
    let ns = Netns::new(format!(
        "bnt{}r",
        common::token("subnet_picking_avoids_routes_of_the_namespace")
    ));
    ns.ip(&["route", "add", "10.60.0.0/24", "dev", "lo"]);
    ns.ip(&["route", "add", "10.60.2.0/23", "dev", "lo"]);
    let routes = common::in_ns(&ns.path(), host_routes).unwrap();
    assert!(
        routes.contains(&"10.60.0.0/24".parse().unwrap()),
        "{routes:?}"
    );
    let pool = [SubnetPool {
        base: "10.60.0.0/16".parse().unwrap(),
        size: 24,
    }];
    let mut taken = routes.clone();
    taken.push("10.60.1.0/24".parse().unwrap()); // another network
    assert_eq!(
        pick_subnet(&pool, &taken),
        Some("10.60.4.0/24".parse().unwrap())
    );
}

#[test]
fn ip_forward_only_for_non_internal_networks() {
    let w = World::new("ip_forward_only_for_non_internal_networks");
    let read = || {
        common::in_ns(&w.host.path(), || {
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap()
        })
    };
    common::in_ns(&w.host.path(), || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "0").unwrap()
    });
    w.manager
        .create_network(&w.network("i", 110, true))
        .unwrap();
    assert_eq!(
        read().trim(),
        "0",
        "an internal network needs no forwarding"
    );
    w.manager
        .create_network(&w.network("e", 111, false))
        .unwrap();
    assert_eq!(read().trim(), "1");
}

#[test]
fn reload_restores_missing_rules_and_drops_stale_ones() {
    let w = World::new("reload_restores_missing_rules_and_drops_stale_ones");
    let net = w.network("r", 112, false);
    w.manager.create_network(&net).unwrap();
    let (c1, c2) = (w.container("1"), w.container("2"));
    let ep1 = w.endpoint(&c1, "1", PortMapping::parse("18101:80").unwrap());
    let ep2 = w.endpoint(&c2, "2", PortMapping::parse("18102:80").unwrap());
    let a1 = w.manager.setup(&net, &ep1).unwrap();
    let a2 = w.manager.setup(&net, &ep2).unwrap();
    drop((a1.proxy, a2.proxy));
    let _srv = TcpServer::start(&c1.path(), 80, "c1:");
    let gw = SocketAddr::V4(SocketAddrV4::new(net.gateway(), 18101));
    assert_eq!(tcp_talk(&w.host.path(), gw, "a").unwrap(), "c1:a");

    // someone deleted our table behind our back (as after a reboot of the firewall)
    common::in_ns(&w.host.path(), || {
        Firewall::new(w.manager.firewall().table())
            .unwrap()
            .delete_table()
            .unwrap()
    });
    assert!(tcp_talk(&w.host.path(), gw, "b").is_err());

    // reload from the desired state (it re-reads the table): only container 1 is still wanted
    let desired = [DesiredNetwork {
        network: net.clone(),
        endpoints: vec![(ep1.container_id.clone(), a1.result.clone())],
    }];
    w.manager.reload(&desired).unwrap();
    assert_eq!(tcp_talk(&w.host.path(), gw, "c").unwrap(), "c1:c");
    let fw = w.manager.firewall();
    let tags: Vec<String> = common::in_ns(&w.host.path(), || fw.tagged_rules().unwrap())
        .into_iter()
        .map(|r| r.comment)
        .collect();
    assert!(tags.contains(&container_tag(&ep1.container_id, &net.id)));

    // a stale attachment's rules (container 2 is no longer desired) go on reload
    fw.invalidate();
    common::in_ns(&w.host.path(), || {
        fw.apply_ports(&ep2.container_id, &net.id, a2.result.ip, &ep2.ports)
            .unwrap()
    });
    w.manager.reload(&desired).unwrap();
    let tags: Vec<String> = common::in_ns(&w.host.path(), || fw.tagged_rules().unwrap())
        .into_iter()
        .map(|r| r.comment)
        .collect();
    assert!(
        !tags.contains(&container_tag(&ep2.container_id, &net.id)),
        "{tags:?}"
    );
    assert!(
        tags.contains(&container_tag(&ep1.container_id, &net.id)),
        "{tags:?}"
    );
}

#[test]
fn setup_into_a_missing_namespace_fails_cleanly() {
    let w = World::new("setup_into_a_missing_namespace_fails_cleanly");
    let net = w.network("g", 115, false);
    w.manager.create_network(&net).unwrap();
    let c = w.container("g");
    let mut ep = w.endpoint(&c, "g", PortMapping::parse("18121:80").unwrap());
    ep.netns = berth_network::NetnsRef::Path(format!("/run/netns/bnt{}-missing", w.token).into());
    let err = w.manager.setup(&net, &ep).unwrap_err();
    assert!(matches!(err, NetError::ContainerNetns { .. }), "{err}");
    assert!(err.to_string().contains("-missing"), "{err}");
    assert!(w.manager.ipam().leases(&net.id).unwrap().is_empty());
    assert!(!w.host.ip(&["-o", "link"]).contains("veth"));
    // the port was given back
    assert!(
        common::in_ns(&w.host.path(), || std::net::TcpListener::bind(
            "0.0.0.0:18121"
        ))
        .is_ok()
    );
}

#[test]
fn teardown_keeps_going_and_reports_every_error() {
    let w = World::new("teardown_keeps_going_and_reports_every_error");
    let net = w.network("f", 116, false);
    w.manager.create_network(&net).unwrap();
    let c = w.container("f");
    let ep = w.endpoint(&c, "f", vec![]);
    let att = w.manager.setup(&net, &ep).unwrap();
    // a manager over the same host and leases whose firewall cannot run
    let broken = berth_network::NetworkManager::new(
        Some(w.host.path()),
        w.manager.firewall().table(),
        w.manager.ipam().clone(),
    )
    .unwrap()
    .with_firewall(
        Firewall::new(w.manager.firewall().table())
            .unwrap()
            .with_binary("/nonexistent/nft"),
    );
    let err = broken.teardown(&net, &ep).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert!(err.to_string().contains("/nonexistent/nft"), "{err}");
    // the steps after the failed one still ran
    assert!(!w.host.ip(&["-o", "link"]).contains(&att.result.host_veth));
    assert!(w.manager.ipam().leases(&net.id).unwrap().is_empty());
    // and a working teardown afterwards removes the rest (the rules)
    w.manager.teardown(&net, &ep).unwrap();
}

#[test]
fn reconcile_removes_what_a_crash_left_behind() {
    let w = World::new("reconcile_removes_what_a_crash_left_behind");
    let net = w.network("z", 117, false);
    w.manager.create_network(&net).unwrap();
    let (c1, c2) = (w.container("1"), w.container("2"));
    let ep1 = w.endpoint(&c1, "1", vec![]);
    let ep2 = w.endpoint(&c2, "2", PortMapping::parse("18131:80").unwrap());
    let a1 = w.manager.setup(&net, &ep1).unwrap();
    let a2 = w.manager.setup(&net, &ep2).unwrap();
    // the "daemon" dies: container 2 is gone without teardown (its proxy with it)
    drop(a2.proxy);
    let desired = [DesiredNetwork {
        network: net.clone(),
        endpoints: vec![(ep1.container_id.clone(), a1.result.clone())],
    }];
    let deleted = w.manager.reconcile(&desired).unwrap();
    assert_eq!(deleted, vec![a2.result.host_veth.clone()]);
    let links = w.host.ip(&["-o", "link"]);
    assert!(
        !links.contains(&a2.result.host_veth) && links.contains(&a1.result.host_veth),
        "{links}"
    );
    let leases = w.manager.ipam().leases(&net.id).unwrap();
    assert_eq!(leases.values().collect::<Vec<_>>(), vec![&ep1.container_id]);
    let fw = w.manager.firewall();
    let tags: Vec<String> = common::in_ns(&w.host.path(), || fw.tagged_rules().unwrap())
        .into_iter()
        .map(|r| r.comment)
        .collect();
    assert!(
        !tags.contains(&container_tag(&ep2.container_id, &net.id)),
        "{tags:?}"
    );
    // nothing more to do the second time
    assert!(w.manager.reconcile(&desired).unwrap().is_empty());
}
