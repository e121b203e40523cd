//! Published ports in test-made namespaces: DNAT from outside and from the host itself, the
//! 127.0.0.1 path through the userland proxy, and a taken port refused before anything is set
//! up. Needs root, `ip` and `nft`.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use berth_network::firewall::container_tag;
use berth_network::manager::NetError;
use berth_network::proxy::ProxyError;
use berth_network::{PortMapping, Protocol};
use common::{Netns, TcpServer, UdpServer, World, tcp_talk, udp_talk};

fn sa(ip: Ipv4Addr, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(ip, port))
}

#[test]
fn published_ports_dnat_and_localhost_proxy() {
    let w = World::new("published_ports_dnat_and_localhost_proxy");
    // an outside client `x` wired to the host by a veth: host 192.0.2.1, client 192.0.2.2
    let x = Netns::new(format!("bnt{}x", w.token));
    let (xh, xc) = (format!("xh{}", w.token), format!("xc{}", w.token));
    w.host.ip(&[
        "link", "add", &xh, "type", "veth", "peer", "name", &xc, "netns", &x.name,
    ]);
    w.host.ip(&["addr", "add", "192.0.2.1/24", "dev", &xh]);
    w.host.ip(&["link", "set", &xh, "up"]);
    x.ip(&["addr", "add", "192.0.2.2/24", "dev", &xc]);
    x.ip(&["link", "set", &xc, "up"]);
    let host_ip = Ipv4Addr::new(192, 0, 2, 1);

    let net = w.network("p", 107, false);
    w.manager.create_network(&net).unwrap();
    let c = w.container("c");
    let mut ports = PortMapping::parse("18081:80").unwrap();
    ports.extend(PortMapping::parse("18082:5353/udp").unwrap());
    ports.extend(PortMapping::parse("127.0.0.1:18083:80").unwrap());
    let ep = w.endpoint(&c, "c", ports);
    let att = w.manager.setup(&net, &ep).unwrap();
    assert_eq!(att.proxy.as_ref().unwrap().addresses().len(), 3);
    let _tcp = TcpServer::start(&c.path(), 80, "ctr:");
    let _udp = UdpServer::start(&c.path(), 5353, "ctr-udp:");

    // DNAT in prerouting: from outside to the host's address
    assert_eq!(
        tcp_talk(&x.path(), sa(host_ip, 18081), "a").unwrap(),
        "ctr:a"
    );
    assert_eq!(
        udp_talk(&x.path(), sa(host_ip, 18082), "b").unwrap(),
        "ctr-udp:b"
    );
    // DNAT in output: from the host itself to its own address
    assert_eq!(
        tcp_talk(&w.host.path(), sa(host_ip, 18081), "c").unwrap(),
        "ctr:c"
    );
    // 127.0.0.1: DNAT too (the bridge has route_localnet; loopback sources are masqueraded)
    assert_eq!(
        tcp_talk(&w.host.path(), sa(Ipv4Addr::LOCALHOST, 18081), "d").unwrap(),
        "ctr:d"
    );
    assert_eq!(
        udp_talk(&w.host.path(), sa(Ipv4Addr::LOCALHOST, 18082), "e").unwrap(),
        "ctr-udp:e"
    );
    assert_eq!(
        tcp_talk(&w.host.path(), sa(Ipv4Addr::LOCALHOST, 18083), "f").unwrap(),
        "ctr:f"
    );
    // a 127.0.0.1-only publish is not reachable on the host's other addresses
    assert!(tcp_talk(&x.path(), sa(host_ip, 18083), "g").is_err());

    // stopping the proxy frees the sockets; DNAT (127.0.0.1 included) does not depend on it
    att.proxy.unwrap().stop();
    assert_eq!(
        tcp_talk(&w.host.path(), sa(Ipv4Addr::LOCALHOST, 18081), "h").unwrap(),
        "ctr:h"
    );
    assert_eq!(
        tcp_talk(&x.path(), sa(host_ip, 18081), "i").unwrap(),
        "ctr:i"
    );
    assert_eq!(
        tcp_talk(&w.host.path(), sa(host_ip, 18081), "k").unwrap(),
        "ctr:k"
    );
    assert_eq!(
        udp_talk(&x.path(), sa(host_ip, 18082), "l").unwrap(),
        "ctr-udp:l"
    );

    w.manager.teardown(&net, &ep).unwrap();
    assert!(tcp_talk(&x.path(), sa(host_ip, 18081), "j").is_err());
}

#[test]
fn taken_host_port_is_refused_before_setup() {
    let w = World::new("taken_host_port_is_refused_before_setup");
    let net = w.network("q", 108, false);
    w.manager.create_network(&net).unwrap();
    let c = w.container("c");
    let busy = common::in_ns(&w.host.path(), || {
        std::net::TcpListener::bind("0.0.0.0:18090").unwrap()
    });
    let ep = w.endpoint(&c, "c", PortMapping::parse("18090:80").unwrap());
    let err = w.manager.setup(&net, &ep).unwrap_err();
    match &err {
        NetError::Proxy(ProxyError::Bind { addr, protocol, .. }) => {
            assert_eq!((addr.port(), *protocol), (18090, Protocol::Tcp));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("0.0.0.0:18090/tcp is already in use"),
        "{err}"
    );
    // nothing was set up: no veth, no eth0, no lease, no rule
    let links = w.host.ip(&["-o", "link"]);
    assert!(!links.contains("veth"), "{links}");
    assert!(!c.ip(&["-o", "link"]).contains("eth0"));
    assert!(w.manager.ipam().leases(&net.id).unwrap().is_empty());
    let tag = container_tag(&ep.container_id, &net.id);
    let fw = w.manager.firewall();
    assert!(
        common::in_ns(&w.host.path(), || fw.tagged_rules().unwrap())
            .iter()
            .all(|r| r.comment != tag)
    );

    // a udp port taken the same way, and the second mapping's failure releases the first
    let busy_udp = common::in_ns(&w.host.path(), || {
        std::net::UdpSocket::bind("0.0.0.0:18092").unwrap()
    });
    let mut ports = PortMapping::parse("18091:80").unwrap();
    ports.extend(PortMapping::parse("18092:53/udp").unwrap());
    let err = w
        .manager
        .setup(&net, &w.endpoint(&c, "c", ports))
        .unwrap_err();
    assert!(err.to_string().contains("18092/udp"), "{err}");
    let free = common::in_ns(&w.host.path(), || {
        std::net::TcpListener::bind("0.0.0.0:18091")
    });
    assert!(free.is_ok(), "port 18091 still held after a failed setup");
    drop((busy, busy_udp, free));

    // once free, the same setup succeeds
    let att = w.manager.setup(&net, &ep).unwrap();
    drop(att.proxy);
    w.manager.teardown(&net, &ep).unwrap();
}

#[test]
fn containers_reach_published_ports_through_the_host_address() {
    let w = World::new("containers_reach_published_ports_through_the_host_address");
    let net = w.network("h", 113, false);
    w.manager.create_network(&net).unwrap();
    let (c, d) = (w.container("c"), w.container("d"));
    let ep = w.endpoint(&c, "c", PortMapping::parse("18111:80").unwrap());
    let _att = w.manager.setup(&net, &ep).unwrap();
    let _other = w.manager.setup(&net, &w.endpoint(&d, "d", vec![])).unwrap();
    let _srv = TcpServer::start(&c.path(), 80, "c:");
    let host_addr = sa(net.gateway(), 18111);
    // another container on the bridge, through the host's address (DNAT + masquerade)
    assert_eq!(tcp_talk(&d.path(), host_addr, "1").unwrap(), "c:1");
    // the container itself (hairpin)
    assert_eq!(tcp_talk(&c.path(), host_addr, "2").unwrap(), "c:2");
}
