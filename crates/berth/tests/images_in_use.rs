//! Images that containers use, end to end through `berth` and the real docker CLI 28
//! against a per-test berthd (root; needs `cargo build -p berthd -p berth-shim -p berth`):
//! `rmi` refuses with Docker's conflict message, `rmi -f` only untags (the image stays
//! dangling while the container exists), and `image prune` never removes a held image.

mod common;

use common::{Daemon, Leftovers, busybox_id, stderr, stdout};

/// The hex of the busybox image id, without `sha256:`.
fn busybox_hex() -> String {
    let id = busybox_id();
    id.trim_start_matches("sha256:").to_owned()
}

/// Docker's refusal of `rmi busybox` while container `holder` uses it.
fn conflict(holder: &str) -> String {
    format!(
        "Error response from daemon: conflict: unable to remove repository reference \"busybox\" (must force) - container {} is using its referenced image {}\n",
        &holder[..12],
        &busybox_hex()[..12]
    )
}

/// Which CLI a step runs through.
#[derive(Clone, Copy, Debug)]
enum Cli {
    Berth,
    Docker,
}

impl Cli {
    fn run(self, d: &Daemon, args: &[&str]) -> std::process::Output {
        match self {
            Cli::Berth => d.berth(args),
            Cli::Docker => d.docker(args),
        }
    }

    fn ok(self, d: &Daemon, args: &[&str]) -> String {
        match self {
            Cli::Berth => d.ok(args),
            Cli::Docker => d.docker_ok(args),
        }
    }
}

/// Ids (full, with `sha256:`) that `images -q --no-trunc <extra>` lists.
fn image_ids(cli: Cli, d: &Daemon, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["images", "-q", "--no-trunc"];
    args.extend_from_slice(extra);
    cli.ok(d, &args).lines().map(str::to_owned).collect()
}

/// Brief item 1: `rmi busybox` fails with exit 1 and Docker's conflict message naming the container,
/// for a running and for a stopped (created) container, through both CLIs; the image and
/// its tag stay.
fn rmi_refused(cli: Cli) {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let running = cli
        .ok(&d, &["run", "-d", "busybox", "sleep", "100"])
        .trim()
        .to_owned();
    assert_eq!(running.len(), 64, "{running}");
    let o = cli.run(&d, &["rmi", "busybox"]);
    assert_eq!(o.status.code(), Some(1), "{cli:?}: {}", stderr(&o));
    assert_eq!(stderr(&o), conflict(&running), "{cli:?}");
    assert_eq!(stdout(&o), "", "{cli:?}");
    assert_eq!(cli.ok(&d, &["rm", "-f", &running]), format!("{running}\n"));

    let stopped = cli.ok(&d, &["create", "busybox"]).trim().to_owned();
    assert_eq!(stopped.len(), 64, "{stopped}");
    let o = cli.run(&d, &["rmi", "busybox"]);
    assert_eq!(o.status.code(), Some(1), "{cli:?}: {}", stderr(&o));
    assert_eq!(stderr(&o), conflict(&stopped), "{cli:?}");
    // still tagged and listed
    assert_eq!(
        cli.ok(
            &d,
            &["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]
        ),
        format!("busybox:latest {}\n", &busybox_hex()[..12])
    );
    cli.ok(&d, &["rm", &stopped]);
    // unused now: removed
    let out = cli.ok(&d, &["rmi", "busybox"]);
    assert!(out.starts_with("Untagged: busybox:latest\n"), "{out}");
    assert!(
        out.ends_with(&format!("Deleted: {}\n", busybox_id())),
        "{out}"
    );
    assert_eq!(image_ids(cli, &d, &["-a"]), Vec::<String>::new());
}

#[test]
fn berth_rmi_of_an_image_in_use_is_a_conflict() {
    rmi_refused(Cli::Berth);
}

#[test]
fn docker_cli_rmi_of_an_image_in_use_is_a_conflict() {
    rmi_refused(Cli::Docker);
}

/// Brief item 2: `rmi -f busybox` untags; the image stays, dangling, while the container exists;
/// after `rm`, `image prune -f` removes it.
fn force_rmi_leaves_dangling(cli: Cli) {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = cli
        .ok(&d, &["run", "-d", "busybox", "sleep", "100"])
        .trim()
        .to_owned();
    let out = cli.ok(&d, &["rmi", "-f", "busybox"]);
    assert_eq!(out, "Untagged: busybox:latest\n", "{cli:?}");
    let img = busybox_id();
    // no tag any more, but the image is there and dangling
    assert_eq!(image_ids(cli, &d, &["-a"]), vec![img.clone()], "{cli:?}");
    assert_eq!(
        image_ids(cli, &d, &["--filter", "dangling=true"]),
        vec![img.clone()],
        "{cli:?}"
    );
    assert_eq!(
        image_ids(cli, &d, &["--filter", "dangling=false"]),
        Vec::<String>::new(),
        "{cli:?}"
    );
    assert_eq!(
        cli.ok(
            &d,
            &["images", "-a", "--format", "{{.Repository}}:{{.Tag}}"]
        ),
        "<none>:<none>\n",
        "{cli:?}"
    );
    // the container keeps running from it, and new names no longer resolve
    assert_eq!(
        cli.ok(&d, &["inspect", "-f", "{{.State.Running}} {{.Image}}", &id]),
        format!("true {img}\n")
    );
    // (`--pull never`: both CLIs would pull the missing name from Docker Hub otherwise)
    let o = cli.run(&d, &["create", "--pull", "never", "busybox"]);
    assert_ne!(o.status.code(), Some(0), "{cli:?}: busybox still resolves");
    assert!(
        stderr(&o).contains("No such image"),
        "{cli:?}: {}",
        stderr(&o)
    );
    // prune while held: nothing goes
    let out = cli.ok(&d, &["image", "prune", "-f"]);
    assert!(!out.contains(&img), "{cli:?}: {out}");
    assert_eq!(image_ids(cli, &d, &["-a"]), vec![img.clone()], "{cli:?}");
    // after rm the dangling image is pruned
    cli.ok(&d, &["rm", "-f", &id]);
    let out = cli.ok(&d, &["image", "prune", "-f"]);
    assert!(
        out.starts_with(&format!("Deleted Images:\ndeleted: {img}\n")),
        "{cli:?}: {out}"
    );
    assert!(out.contains("Total reclaimed space: "), "{cli:?}: {out}");
    assert_eq!(image_ids(cli, &d, &["-a"]), Vec::<String>::new(), "{cli:?}");
    // and its layers left the store: nothing mounted under the data root
    assert!(berth_testkit::cleanup::mounts_under(&d.env.data_root()).is_empty());
}

#[test]
fn berth_force_rmi_leaves_a_dangling_image_until_prune() {
    force_rmi_leaves_dangling(Cli::Berth);
}

#[test]
fn docker_cli_force_rmi_leaves_a_dangling_image_until_prune() {
    force_rmi_leaves_dangling(Cli::Docker);
}

/// Brief item 3: `image prune -a -f` never removes an image a container (stopped or running) uses,
/// tagged or dangling; once no container uses it, it goes.
fn prune_all_keeps_used(cli: Cli) {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let img = busybox_id();
    let stopped = cli.ok(&d, &["create", "busybox"]).trim().to_owned();
    let out = cli.ok(&d, &["image", "prune", "-a", "-f"]);
    assert!(!out.contains(&img), "{cli:?}: {out}");
    assert_eq!(image_ids(cli, &d, &[]), vec![img.clone()], "{cli:?}");
    assert_eq!(
        cli.ok(&d, &["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "busybox:latest\n"
    );
    let running = cli
        .ok(&d, &["run", "-d", "busybox", "sleep", "100"])
        .trim()
        .to_owned();
    cli.ok(&d, &["rm", &stopped]);
    let out = cli.ok(&d, &["image", "prune", "-a", "-f"]);
    assert!(!out.contains(&img), "{cli:?}: {out}");
    assert_eq!(image_ids(cli, &d, &[]), vec![img.clone()], "{cli:?}");
    // dangling and held: still kept by prune -a
    assert_eq!(
        cli.ok(&d, &["rmi", "-f", "busybox"]),
        "Untagged: busybox:latest\n"
    );
    let out = cli.ok(&d, &["image", "prune", "-a", "-f"]);
    assert!(!out.contains(&img), "{cli:?}: {out}");
    assert_eq!(image_ids(cli, &d, &["-a"]), vec![img.clone()], "{cli:?}");
    assert_eq!(
        cli.ok(&d, &["inspect", "-f", "{{.State.Running}}", &running]),
        "true\n"
    );
    cli.ok(&d, &["rm", "-f", &running]);
    let out = cli.ok(&d, &["image", "prune", "-a", "-f"]);
    assert!(out.contains(&format!("deleted: {img}\n")), "{cli:?}: {out}");
    assert_eq!(image_ids(cli, &d, &["-a"]), Vec::<String>::new(), "{cli:?}");
}

#[test]
fn berth_prune_all_keeps_images_in_use() {
    prune_all_keeps_used(Cli::Berth);
}

#[test]
fn docker_cli_prune_all_keeps_images_in_use() {
    prune_all_keeps_used(Cli::Docker);
}
