//! docker-py (PyPI `docker`) against berthd: images.list/get/load, tag, remove. The
//! package is installed once into a venv under the target dir.

mod common;

use std::process::Command;

use common::{Daemon, busybox_id, python};

#[test]
fn docker_py_lists_gets_loads_tags_and_removes_images() {
    let py = python();
    let d = Daemon::start();
    let archive = berth_testkit::images::busybox_docker_archive().unwrap();
    let script = r#"
import sys, io, docker
c = docker.DockerClient(base_url=sys.argv[1])
assert c.ping()
assert c.version()["ApiVersion"] == "1.44"
with open(sys.argv[2], "rb") as f:
    loaded = c.images.load(f.read())
assert [i.tags for i in loaded] == [["busybox:latest"]], [i.tags for i in loaded]
imgs = c.images.list()
assert len(imgs) == 1 and imgs[0].tags == ["busybox:latest"], imgs
img = c.images.get("busybox")
print(img.id)
assert img.attrs["Config"]["Cmd"] == ["sh"]
assert img.tag("pyrepo", "v1")
assert sorted(c.images.get("pyrepo:v1").tags) == ["busybox:latest", "pyrepo:v1"]
assert len(c.images.list(filters={"reference": "pyrepo"})) == 1
assert [i.short_id for i in c.images.list(all=True)] == [img.short_id]
data = b"".join(img.save())
assert len(data) > 100000
c.images.remove("pyrepo:v1")
try:
    c.images.get("pyrepo:v1")
    raise SystemExit("expected NotFound")
except docker.errors.ImageNotFound:
    pass
try:
    c.api.leave_swarm(force=True)
except docker.errors.APIError as e:
    assert e.status_code == 503
print("ok")
"#;
    let out = Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(d.host())
        .arg(&archive)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\nok\n", busybox_id())
    );
}

#[test]
fn docker_py_pulls_and_pushes_through_berthd() {
    use berth_testkit::{Flavor, Registry};
    let py = python();
    let reg = Registry::start(Flavor::Plain).unwrap();
    reg.push_busybox("py/busybox:1").unwrap();
    let d = Daemon::start_with_config(&format!("[registries]\ninsecure = [\"{}\"]\n", reg.host()));
    let script = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
host = sys.argv[2]
img = c.images.pull(host + "/py/busybox", tag="1")
print(img.id)
assert img.tags == [host + "/py/busybox:1"], img.tags
assert img.tag(host + "/py/copy", "2")
out = c.images.push(host + "/py/copy", tag="2")
assert '"Digest"' in out or "digest: sha256:" in out, out
try:
    c.images.pull(host + "/py/nothing", tag="1")
    raise SystemExit("expected NotFound")
except docker.errors.NotFound:
    pass
print("ok")
"#;
    let out = Command::new(&py)
        .arg("-c")
        .arg(script)
        .arg(d.host())
        .arg(reg.host())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\nok\n", busybox_id())
    );
    assert_eq!(
        reg.get("/v2/py/copy/manifests/2", None).unwrap().status,
        200
    );
}
