//! docker-py (PyPI `docker`) driving the container lifecycle through berthd: run, list,
//! inspect attrs, logs (also followed), stats, top, put/get archive (cp), pause, rename,
//! restart, events, wait, stop, remove, networks and published ports.

mod common;

use std::process::Command;

use common::{Daemon, Leftovers, python};

const SCRIPT: &str = r#"
import io, sys, tarfile, time, datetime, docker
c = docker.DockerClient(base_url=sys.argv[1])
since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=1)

ctr = c.containers.run("busybox", ["sh", "-c", "echo one; echo two >&2; sleep 100"],
                       detach=True, name="pyweb", labels={"app": "py"}, network_mode="none")
assert ctr.name == "pyweb"
ctr.reload()
assert ctr.status == "running", ctr.status
assert ctr.attrs["Config"]["Labels"] == {"app": "py"}
assert ctr.attrs["State"]["Running"] is True
assert [x.name for x in c.containers.list(filters={"label": "app=py"})] == ["pyweb"]
assert c.containers.get(ctr.short_id).id == ctr.id
first_id = ctr.id

# logs, then followed: both streams, in order
for _ in range(100):
    if ctr.logs() == b"one\ntwo\n":
        break
    time.sleep(0.05)
assert ctr.logs(stdout=True, stderr=False) == b"one\n", ctr.logs(stdout=True, stderr=False)
assert ctr.logs(stdout=False, stderr=True) == b"two\n"
stream = ctr.logs(stream=True, follow=True)
assert next(stream) == b"one\n"

# stats and top
s = ctr.stats(stream=False)
assert s["memory_stats"]["usage"] > 0, s["memory_stats"]
assert s["pids_stats"]["current"] >= 1
assert "sleep 100" in " ".join(" ".join(p) for p in ctr.top()["Processes"])

# put_archive / get_archive (cp)
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w") as t:
    data = b"hello from docker-py\n"
    info = tarfile.TarInfo("greeting.txt")
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))
assert ctr.put_archive("/tmp", buf.getvalue())
assert ctr.exec_run(["cat", "/tmp/greeting.txt"]).output == b"hello from docker-py\n"
bits, stat = ctr.get_archive("/tmp/greeting.txt")
assert stat["name"] == "greeting.txt" and stat["size"] == 21, stat
with tarfile.open(fileobj=io.BytesIO(b"".join(bits))) as t:
    assert t.extractfile("greeting.txt").read() == b"hello from docker-py\n"

# pause, rename, restart
ctr.pause(); ctr.reload()
assert ctr.status == "paused", ctr.status
ctr.unpause()
ctr.rename("pyweb2"); ctr.reload()
assert ctr.name == "pyweb2"
ctr.restart(timeout=0); ctr.reload()
assert ctr.status == "running" and ctr.attrs["RestartCount"] == 0

# stop, wait, remove
ctr.stop(timeout=0)
assert ctr.wait()["StatusCode"] == 137
ctr.remove()
try:
    c.containers.get("pyweb2")
    raise SystemExit("expected NotFound")
except docker.errors.NotFound:
    pass

# a network, a published port, name resolution
net = c.networks.create("pynet", driver="bridge")
srv = c.containers.run("busybox", ["sh", "-c", "echo hi-from-srv | nc -l -p 80"], detach=True,
                       name="pysrv", network="pynet", ports={"80/tcp": ("127.0.0.1", None)})
srv.reload()
port = srv.ports["80/tcp"][0]
assert port["HostIp"] == "127.0.0.1" and int(port["HostPort"]) > 0, port
out = c.containers.run("busybox", ["sh", "-c", "sleep 0.3; nc pysrv 80 </dev/null"],
                       network="pynet", remove=True)
assert out == b"hi-from-srv\n", out
srv.wait(); srv.remove()
net.remove()

# events between then and now, filtered by type and event
until = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=1)
actions = [e["Action"] for e in c.events(since=since, until=until, decode=True,
                                         filters={"type": "container", "container": first_id})]
for a in ["create", "start", "pause", "unpause", "rename", "die", "destroy"]:
    assert a in actions, (a, actions)
print("ok")
"#;

#[test]
fn docker_py_drives_the_container_lifecycle() {
    let py = python();
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let out = Command::new(&py)
        .arg("-c")
        .arg(SCRIPT)
        .arg(d.host())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}
