//! The embedded DNS server bound at 127.0.0.11:53 inside a test-made container namespace,
//! served from a runtime in a test-made "host" namespace that also runs a fake upstream
//! resolver on its loopback. Needs root and `ip`.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use berth_network::dns::{DOCKER_DNS, bind_in_netns, upstreams_from_resolv_conf};
use berth_network::{DnsServer, DnsTable};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::sync::oneshot;

const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);

/// A fake upstream resolver on 127.0.0.1:53 inside `ns`: answers every A query with 203.0.113.7.
struct FakeUpstream {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeUpstream {
    fn start(ns: &Path) -> FakeUpstream {
        let sock = common::in_ns(ns, || UdpSocket::bind("127.0.0.1:53").unwrap());
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut r = Message::response(q.id, OpCode::Query);
                r.add_queries(q.queries.clone());
                if let Some(first) = q.queries.first() {
                    r.add_answer(Record::from_rdata(
                        first.name().clone(),
                        30,
                        RData::A(A(UPSTREAM_ANSWER)),
                    ));
                }
                let _ = sock.send_to(&r.to_vec().unwrap(), from);
            }
        });
        FakeUpstream {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The DNS server's runtime, on a thread inside the host namespace; stops on drop.
struct Runner {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Runner {
    fn start(host: PathBuf, server: DnsServer, container: &Path) -> Runner {
        let (udp, tcp) = bind_in_netns(container, DOCKER_DNS).unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            berth_network::netns::enter(&host).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let handle = server.serve(udp, tcp).unwrap();
                ready_tx.send(()).unwrap();
                let _ = rx.await;
                handle.stop();
            });
        });
        ready_rx.recv().unwrap();
        Runner {
            stop: Some(tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn query_msg(name: &str, rtype: RecordType) -> Message {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m
}

fn answers(reply: &Message) -> Vec<IpAddr> {
    reply
        .answers
        .iter()
        .filter_map(|r| r.data.ip_addr())
        .collect()
}

/// Ask 127.0.0.11:53 over UDP from inside `ns`.
fn ask_udp(ns: &Path, name: &str, rtype: RecordType) -> Message {
    let q = query_msg(name, rtype).to_vec().unwrap();
    common::in_ns(ns, || {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.send_to(&q, DOCKER_DNS).unwrap();
        let mut buf = [0u8; 4096];
        let (n, _) = s.recv_from(&mut buf).unwrap();
        Message::from_vec(&buf[..n]).unwrap()
    })
}

/// Ask over TCP (length-prefixed) from inside `ns`.
fn ask_tcp(ns: &Path, name: &str) -> Message {
    let q = query_msg(name, RecordType::A).to_vec().unwrap();
    common::in_ns(ns, || {
        let mut s = TcpStream::connect_timeout(&DOCKER_DNS, Duration::from_secs(2)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
        s.write_all(&q).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        s.read_exact(&mut buf).unwrap();
        Message::from_vec(&buf).unwrap()
    })
}

#[test]
fn dns_resolves_names_and_aliases_updates_in_place_and_forwards() {
    let token = common::token("dns_resolves_names_and_aliases_updates_in_place_and_forwards");
    let host = common::Netns::new(format!("bnt{token}h"));
    let ctr = common::Netns::new(format!("bnt{token}c"));
    let _upstream = FakeUpstream::start(&host.path());

    let table = DnsTable::new();
    let db: IpAddr = "10.200.0.2".parse().unwrap();
    table.add("app-net", "db", db);
    table.add("app-net", "database", db);
    table.add("other-net", "secret", "10.201.0.2".parse().unwrap());
    let upstreams = upstreams_from_resolv_conf("nameserver 127.0.0.11\nnameserver 127.0.0.1\n");
    let server = DnsServer::new(table.clone(), vec!["app-net".into()], upstreams);
    let _runner = Runner::start(host.path(), server.clone(), &ctr.path());

    // name and alias, case-insensitive, with and without the trailing dot
    let r = ask_udp(&ctr.path(), "db", RecordType::A);
    assert_eq!(
        (r.response_code, r.id, answers(&r)),
        (ResponseCode::NoError, 0x4242, vec![db])
    );
    assert!(r.authoritative);
    assert_eq!(
        answers(&ask_udp(&ctr.path(), "DataBase.", RecordType::A)),
        vec![db]
    );
    // a known name without an IPv6 address: no error, no answer (not forwarded)
    let r = ask_udp(&ctr.path(), "db", RecordType::AAAA);
    assert_eq!(
        (r.response_code, r.answers.len()),
        (ResponseCode::NoError, 0)
    );
    // over TCP too
    assert_eq!(answers(&ask_tcp(&ctr.path(), "database")), vec![db]);

    // other names go to the (fake) upstream, reached from the host namespace
    assert_eq!(
        answers(&ask_udp(&ctr.path(), "example.org", RecordType::A)),
        vec![IpAddr::V4(UPSTREAM_ANSWER)]
    );
    // names of a network this container is not on are not answered locally
    assert_eq!(
        answers(&ask_udp(&ctr.path(), "secret", RecordType::A)),
        vec![IpAddr::V4(UPSTREAM_ANSWER)]
    );

    // updates in place, with the listeners running
    let cache: IpAddr = "10.200.0.3".parse().unwrap();
    table.add("app-net", "cache", cache);
    assert_eq!(
        answers(&ask_udp(&ctr.path(), "cache", RecordType::A)),
        vec![cache]
    );
    table.remove_ip("app-net", db);
    assert_eq!(
        answers(&ask_udp(&ctr.path(), "db", RecordType::A)),
        vec![IpAddr::V4(UPSTREAM_ANSWER)]
    );
    server.set_networks(vec!["app-net".into(), "other-net".into()]);
    assert_eq!(
        answers(&ask_udp(&ctr.path(), "secret", RecordType::A)),
        vec!["10.201.0.2".parse::<IpAddr>().unwrap()]
    );

    // no upstream answering: SERVFAIL for names we do not know
    server.set_upstreams(vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9)]);
    let r = ask_udp(&ctr.path(), "nowhere.example", RecordType::A);
    assert_eq!(r.response_code, ResponseCode::ServFail);
}
