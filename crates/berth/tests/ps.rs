//! `ps` with many containers: Docker's order (newest first) and the same bytes from
//! `berth ps` as from the real docker CLI 28 against the same berthd, for the default
//! table and every flag (-a, -q, -n, -l, -s, --no-trunc, --filter, --format). Root; needs
//! `cargo build -p berthd -p berth-shim` first.

mod common;

use common::{Daemon, Leftovers};

/// `berth args` and `docker args` print the same. Time columns ("5 seconds ago") may
/// tick between the two runs: a few tries, each comparing one berth run with the docker
/// runs just before and after it.
fn same_as_docker(d: &Daemon, args: &[&str]) -> String {
    let mut last = (String::new(), String::new(), String::new());
    for _ in 0..5 {
        let before = d.docker_ok(args);
        let ours = d.ok(args);
        let after = d.docker_ok(args);
        if ours == before || ours == after {
            return ours;
        }
        last = (before, ours, after);
    }
    panic!(
        "berth {args:?} differs from the docker CLI:\n--- docker\n{}--- berth\n{}--- docker again\n{}",
        last.0, last.1, last.2
    );
}

#[test]
fn ps_with_many_containers_matches_the_docker_cli() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let mut ids = Vec::new();
    for i in 0..40 {
        let name = format!("ps-{i}");
        let mut args = vec!["create", "--name", &name, "--network", "none"];
        let label;
        if i % 7 == 0 {
            label = format!("tier=t{i}");
            args.extend(["--label", &label]);
        }
        if i == 5 {
            args.extend(["-v", "psvol:/data"]);
        }
        args.push("busybox");
        if i % 3 == 0 {
            args.extend(["sh", "-c", "echo \"a long command line\"; sleep 1000"]);
        } else {
            args.push("true");
        }
        ids.push(d.ok(&args).trim().to_owned());
    }
    d.ok(&["start", "ps-3"]);
    d.ok(&["start", "ps-4"]);

    // newest first, as Docker lists them
    let listed = d.ok(&["ps", "-aq", "--no-trunc"]);
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed.lines().collect::<Vec<_>>(), newest_first);
    assert_eq!(d.ok(&["ps", "-q"]).lines().count(), 1, "only ps-3 runs");

    let table = same_as_docker(&d, &["ps", "-a"]);
    assert_eq!(table.lines().count(), 41);
    assert!(
        table.starts_with("CONTAINER ID   IMAGE     COMMAND"),
        "{table}"
    );
    assert!(table.lines().nth(1).unwrap().ends_with(" ps-39"), "{table}");
    for args in [
        &["ps"][..],
        &["ps", "-a", "--no-trunc"],
        &["ps", "-aq"],
        &["ps", "-n", "5"],
        &["ps", "-l"],
        &["ps", "-a", "-s"],
        &["ps", "-a", "--filter", "name=ps-1"],
        &["ps", "-a", "--filter", "label=tier"],
        &["ps", "-a", "--filter", "status=exited"],
        &["ps", "-a", "--format", "table"],
        &["ps", "-a", "--format", "{{json .}}"],
        &["ps", "-a", "--format", "json"],
        &[
            "ps",
            "-a",
            "--format",
            "table {{.ID}}\t{{.Names}}\t{{.Size}}",
        ],
        &[
            "ps",
            "-a",
            "--format",
            "{{.Names}} {{.CreatedAt}} {{.Networks}} {{.Mounts}} {{.LocalVolumes}} {{.State}} {{.Labels}}",
        ],
        // the Label method of docker's container context
        &["ps", "-a", "--format", "{{.Names}}={{.Label \"tier\"}}"],
    ] {
        same_as_docker(&d, args);
    }
    // several label filters must all hold (compose finds a service's containers so)
    assert_eq!(
        d.ok(&[
            "ps",
            "-a",
            "--format",
            "{{.Names}}",
            "--filter",
            "label=tier",
            "--filter",
            "label=tier=t7",
        ])
        .trim(),
        "ps-7"
    );
    let sized = d.ok(&["ps", "-a", "-s", "-n", "1"]);
    assert!(sized.contains("(virtual "), "{sized}");

    let names: Vec<String> = (0..40).map(|i| format!("ps-{i}")).collect();
    let mut rm = vec!["rm", "-f", "-v"];
    rm.extend(names.iter().map(String::as_str));
    d.ok(&rm);
    d.ok(&["volume", "rm", "psvol"]);
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}
