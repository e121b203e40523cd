//! docker-py (PyPI `docker`, in the venv tests/docker_py.rs prepares) against berthd:
//! `containers.run(stdin_open, tty)` with an attach socket, `exec_run` (exit codes,
//! user/workdir/environment, demuxed streams, a stdin socket), `attach(logs=True)`,
//! exec inspect and the exec events.

mod common;

use std::process::Command;

use common::{Daemon, Leftovers, python};

const SCRIPT: &str = r#"
import sys, time, socket, docker
c = docker.DockerClient(base_url=sys.argv[1])

def recv_until(sock, needle, limit=10):
    data = b""
    end = time.time() + limit
    sock.settimeout(0.5)
    while needle not in data and time.time() < end:
        try:
            d = sock.recv(4096)
        except socket.timeout:
            continue
        if not d:
            break
        data += d
    return data

# a tty container with an open stdin, driven through the attach socket
ct = c.containers.run("busybox", "sh", stdin_open=True, tty=True, detach=True,
                      network_mode="none", name="pytty")
assert ct.attrs["Config"]["Tty"] and ct.attrs["Config"]["OpenStdin"]
s = c.api.attach_socket(ct.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
raw = s._sock
raw.sendall(b"echo py-$((40+2))\n")
got = recv_until(raw, b"py-42")
assert b"py-42" in got, got
raw.sendall(b"exit 4\n")
assert ct.wait(timeout=20)["StatusCode"] == 4
raw.close()
ct.remove()

# exec_run: output, exit codes, user/workdir/environment, demux
ct = c.containers.run("busybox", "sleep 1000", detach=True, network_mode="none", name="pyexec")
r = ct.exec_run("sh -c 'echo out; exit 3'")
assert r.exit_code == 3 and r.output == b"out\n", r
r = ct.exec_run(["sh", "-c", "id -u; pwd; echo $FOO"], user="nobody", workdir="/tmp",
                environment={"FOO": "bar"})
assert r.exit_code == 0 and r.output == b"65534\n/tmp\nbar\n", r
r = ct.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
assert r.output == (b"o\n", b"e\n"), r
r = ct.exec_run("/no/such")
assert r.exit_code == 127, r
r = ct.exec_run(["sh", "-c", "echo tty"], tty=True)
assert r.output == b"tty\r\n", r
r = ct.exec_run(["sh", "-c", "sleep 0.1; touch /tmp/det"], detach=True)
assert r.output in (b"", "", None), r

# an exec's stdin through its socket
e = c.api.exec_create(ct.id, ["cat"], stdin=True)
s = c.api.exec_start(e["Id"], socket=True)
raw = s._sock
raw.sendall(b"to cat\n")
raw.shutdown(socket.SHUT_WR)
got = recv_until(raw, b"to cat\n")
assert got.endswith(b"to cat\n") and got[0] == 1, got
raw.close()
for _ in range(100):
    info = c.api.exec_inspect(e["Id"])
    if not info["Running"] and info["ExitCode"] is not None:
        break
    time.sleep(0.05)
assert info["ExitCode"] == 0 and info["ProcessConfig"]["entrypoint"] == "cat", info
ct.remove(force=True)

# attach with logs to an exited container
ct = c.containers.run("busybox", ["sh", "-c", "echo logged"], detach=True, network_mode="none")
ct.wait(timeout=20)
assert ct.attach(stdout=True, stderr=True, logs=True, stream=False) == b"logged\n"
ct.remove()

# the exec events
ev = [e["Action"] for e in c.events(since=0, until=int(time.time()) + 1, decode=True)
      if e.get("Type") == "container"]
assert any(a.startswith("exec_create: ") for a in ev), ev
assert any(a.startswith("exec_start: ") for a in ev), ev
assert "exec_die" in ev, ev
print("ok")
"#;

#[test]
fn docker_py_tty_attach_socket_exec_run_and_events() {
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
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}
