//! Network namespaces (root, real kernel): a container that asks for a new one gets its
//! own, fresh (only `lo`, brought up), different from its neighbour's; one that does not shares ours.
//! The runtime makes the namespace on a helper thread while it prepares the rest of the
//! container, and the init joins it: from the outside this must look like CLONE_NEWNET.

use std::os::unix::fs::MetadataExt;

use berth_runtime::Container;

mod common;

use common::{Env, unique};

fn netns(pid: i32) -> u64 {
    std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .ino()
}

fn interfaces(pid: i32) -> Vec<String> {
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap();
    dev.lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|n| n.trim().to_string()))
        .collect()
}

#[test]
fn each_container_gets_a_fresh_network_namespace() {
    let mut env = Env::new();
    let (a, b) = (unique("a"), unique("b"));
    let ca = Container::create(&a, env.spec(&a, &["sleep", "100"], |_| {}), &env.opts()).unwrap();
    let cb = Container::create(&b, env.spec(&b, &["sleep", "100"], |_| {}), &env.opts()).unwrap();
    let me = netns(std::process::id() as i32);
    let (na, nb) = (netns(ca.pid()), netns(cb.pid()));
    assert_ne!(na, me, "container a is in our network namespace");
    assert_ne!(nb, me, "container b is in our network namespace");
    assert_ne!(na, nb, "two containers share a network namespace");
    assert_eq!(interfaces(ca.pid()), ["lo"]);
    // lo is up (as Docker's and crun's containers have it): the kernel gave it ::1, and
    // the neighbour's lo is its own
    let flags =
        std::fs::read_to_string(format!("/proc/{}/net/if_inet6", ca.pid())).unwrap_or_default();
    assert!(
        flags
            .lines()
            .any(|l| l.starts_with("00000000000000000000000000000001") && l.ends_with(" lo")),
        "lo has no ::1: {flags}"
    );
    let up = |pid: i32| {
        let out = std::process::Command::new("nsenter")
            .args([
                "-t",
                &pid.to_string(),
                "-n",
                "cat",
                "/sys/class/net/lo/flags",
            ])
            .output()
            .unwrap();
        let hex = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        u32::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap_or(0) & 1 == 1
    };
    assert!(up(ca.pid()) && up(cb.pid()), "lo is down");
    for c in [ca, cb] {
        c.delete(true).unwrap();
    }
}

#[test]
fn without_a_network_namespace_the_container_shares_ours() {
    let mut env = Env::new();
    let id = unique("c");
    let spec = env.spec(&id, &["sleep", "100"], |s| {
        s["linux"]["namespaces"] =
            serde_json::json!([{"type": "pid"}, {"type": "mount"}, {"type": "uts"}, {"type": "ipc"}]);
    });
    let c = Container::create(&id, spec, &env.opts()).unwrap();
    assert_eq!(netns(c.pid()), netns(std::process::id() as i32));
    c.delete(true).unwrap();
}
