//! Attaching to a container through its shim's `attach.sock` (protocol: the berth-shim
//! README): sessions whose output and input travel over channels, attaches requested
//! before `start` (held until the shim exists, so no output is lost), and resizes.
//!
//! berthd binds `<container-dir>/attach.sock` itself at start and hands the listener
//! to the shim as its stdin: attaches waiting for that start are connected (and have
//! sent their hello) before the shim even runs, and the shim accepts them before it
//! lets the container's process start.

use std::collections::HashMap;
use std::io::Write as _;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot};

use super::{ContainerError, Containers, Record, Status, lock};

/// Frame types of the shim protocol (Docker's stream frame header).
pub(crate) const STDIN: u8 = 0;
pub(crate) const STATUS: u8 = 4;

/// Input for a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes for its stdin.
    Data(Bytes),
    /// The client's stdin ended (closes the process's stdin with `StdinOnce`, and
    /// always for an exec). Dropping the sender instead is a detach.
    Eof,
}

/// Output of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// 1 stdout, 2 stderr (a tty's output is all 1).
    pub stream: u8,
    /// The bytes.
    pub data: Bytes,
}

/// What to attach to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachOptions {
    /// Send input to the container's stdin.
    pub stdin: bool,
    /// Receive its stdout.
    pub stdout: bool,
    /// Receive its stderr.
    pub stderr: bool,
    /// Replay the log first.
    pub logs: bool,
    /// Follow live output (`stream=1`).
    pub stream: bool,
}

/// An attached client's ends.
#[derive(Debug)]
pub struct Session {
    /// The container's full id.
    pub id: String,
    /// Whether the process has a tty (raw stream) or not (multiplexed).
    pub tty: bool,
    /// Whether its stdin is open to this session.
    pub stdin: bool,
    /// Input to the process (drop it to detach).
    pub input: mpsc::Sender<Input>,
    /// The process's output; ends when the process's streams end.
    pub output: mpsc::Receiver<Output>,
}

struct Waiter {
    hello: Vec<u8>,
    tx: oneshot::Sender<UnixStream>,
}

/// Attaches waiting for their container's next start.
#[derive(Default)]
pub struct Pending(Mutex<HashMap<String, Vec<Waiter>>>);

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.lock().map(|m| m.len()).unwrap_or(0);
        write!(f, "Pending({n} containers)")
    }
}

impl Pending {
    /// Drops the attaches waiting for a container that is gone (their streams end).
    pub(crate) fn forget(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// How `start` spawns the shim: its stdin (the attach listener) and extra arguments.
#[derive(Debug)]
pub struct ShimIo {
    /// The listener on `attach.sock`, as the shim's stdin.
    pub stdin: Stdio,
    /// `--attach`, `--stdin`, `--stdin-once`, `--console-size H,W`.
    pub args: Vec<String>,
}

/// `/proc/self/fd/<dirfd>/<name>`: a unix socket address of any directory depth (the
/// 108-byte `sun_path` limit would not fit `<data-root>/containers/<64 hex>/…`).
fn short_path(dir: &Path, name: &str) -> Result<(OwnedFd, PathBuf), ContainerError> {
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| ContainerError::io("open", dir)(e.into()))?;
    let p = PathBuf::from(format!("/proc/self/fd/{}/{name}", fd.as_raw_fd()));
    Ok((fd, p))
}

/// Connects to the shim of the container in `dir`.
pub(crate) fn connect(dir: &Path) -> Result<UnixStream, ContainerError> {
    let (_fd, p) = short_path(dir, "attach.sock")?;
    UnixStream::connect(&p).map_err(ContainerError::io("connect to", &dir.join("attach.sock")))
}

fn attach_hello(o: &AttachOptions) -> Vec<u8> {
    let mut h = serde_json::to_vec(&serde_json::json!({
        "attach": {"stdin": o.stdin, "stdout": o.stdout, "stderr": o.stderr}
    }))
    .unwrap_or_default();
    h.push(b'\n');
    h
}

fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&[kind, 0, 0, 0]);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// Relays between a shim connection and a session's channels until the shim closes it.
/// Status frames go to `on_status`. When `keep_draining`, output is read to the end
/// even after the session's receiver is gone (an exec's exit code comes last).
pub(crate) async fn relay(
    conn: UnixStream,
    mut input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Output>,
    mut on_status: impl FnMut(serde_json::Value) + Send,
    keep_draining: bool,
) {
    if conn.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(conn) = tokio::net::UnixStream::from_std(conn) else {
        return;
    };
    let (mut rd, mut wr) = conn.into_split();
    let writer = tokio::spawn(async move {
        while let Some(i) = input.recv().await {
            let f = match i {
                Input::Data(d) => encode(STDIN, &d),
                Input::Eof => encode(STDIN, &[]),
            };
            if wr.write_all(&f).await.is_err() {
                return;
            }
        }
        // detached: closing our side tells the shim
        let _ = wr.shutdown().await;
    });
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 32 * 1024];
    let mut receiver_gone = false;
    'read: loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 8 {
            let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
            if buf.len() < 8 + len {
                break;
            }
            let kind = buf[0];
            let payload = Bytes::copy_from_slice(&buf[8..8 + len]);
            buf.drain(..8 + len);
            if kind == STATUS {
                if let Ok(v) = serde_json::from_slice(&payload) {
                    on_status(v);
                }
                continue;
            }
            if receiver_gone {
                continue;
            }
            if output
                .send(Output {
                    stream: kind,
                    data: payload,
                })
                .await
                .is_err()
            {
                if !keep_draining {
                    break 'read;
                }
                receiver_gone = true;
            }
        }
    }
    writer.abort();
}

impl Containers {
    /// `POST /containers/{id}/attach`: a session on the running container, or one that
    /// begins when the container next starts.
    pub fn attach(
        self: &Arc<Self>,
        name: &str,
        opts: AttachOptions,
    ) -> Result<Session, ContainerError> {
        let hello = attach_hello(&opts);
        let (conn_tx, conn_rx) = oneshot::channel::<UnixStream>();
        let (rec, running) = {
            // lock order as in `start`: the store, then the waiters
            let inner = lock(&self.inner);
            let id = Self::resolve_in(&inner, name)?;
            let rec = inner.map[&id].clone();
            let running = rec.state.status == Status::Running;
            if rec.state.status == Status::Removing {
                return Err(ContainerError::Removing(id));
            }
            if !running && opts.stream {
                self.attach
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(id)
                    .or_default()
                    .push(Waiter {
                        hello: hello.clone(),
                        tx: conn_tx,
                    });
                (rec, false)
            } else {
                drop(conn_tx);
                (rec, true)
            }
        };
        let early = if running && opts.stream {
            let mut s = connect(&self.dir(&rec.id))?;
            s.write_all(&hello).map_err(ContainerError::io(
                "write to",
                &self.dir(&rec.id).join("attach.sock"),
            ))?;
            Some(s)
        } else {
            None
        };
        let (in_tx, in_rx) = mpsc::channel(64);
        let (out_tx, out_rx) = mpsc::channel(64);
        let backlog = if opts.logs {
            log_backlog(&self.log_path(&rec.id), &opts)
        } else {
            Vec::new()
        };
        let follow = opts.stream;
        let events = self.clone();
        let r2 = rec.clone();
        tokio::spawn(async move {
            for o in backlog {
                if out_tx.send(o).await.is_err() {
                    return;
                }
            }
            if !follow {
                return;
            }
            let conn = match early {
                Some(c) => c,
                None => match conn_rx.await {
                    Ok(c) => c,
                    Err(_) => return,
                },
            };
            events.publish(&r2, "attach", &[]);
            relay(conn, in_rx, out_tx, |_| {}, false).await;
        });
        Ok(Session {
            id: rec.id.clone(),
            tty: rec.spec.tty,
            stdin: opts.stdin && rec.spec.open_stdin,
            input: in_tx,
            output: out_rx,
        })
    }

    /// Called by `start` (store locked): binds `attach.sock`, connects the attaches
    /// waiting for this start and returns how to spawn the shim.
    pub(crate) fn prepare_attach(
        &self,
        rec: &Record,
        dir: &Path,
    ) -> Result<ShimIo, ContainerError> {
        let (_dirfd, path) = short_path(dir, "attach.sock")?;
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(ContainerError::io("bind", &dir.join("attach.sock")))?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .map_err(ContainerError::io("chmod", &dir.join("attach.sock")))?;
        }
        let waiters = self
            .attach
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&rec.id)
            .unwrap_or_default();
        for w in waiters {
            if w.tx.is_closed() {
                continue;
            }
            // queued in the listener's backlog; the shim accepts it before the start
            if let Ok(mut s) = UnixStream::connect(&path)
                && s.write_all(&w.hello).is_ok()
            {
                let _ = w.tx.send(s);
            }
        }
        let mut args = vec!["--attach".to_owned()];
        let s = &rec.spec;
        if s.open_stdin {
            args.push("--stdin".into());
        }
        if s.interactive.stdin_once {
            args.push("--stdin-once".into());
        }
        let [h, w] = s.interactive.console_size;
        if s.tty && h > 0 && w > 0 {
            args.push("--console-size".into());
            args.push(format!("{h},{w}"));
        }
        Ok(ShimIo {
            stdin: Stdio::from(OwnedFd::from(listener)),
            args,
        })
    }

    /// `POST /containers/{id}/resize` (and an exec's, with `exec`): sets the pty's
    /// window size through the shim.
    pub async fn resize(
        &self,
        name: &str,
        exec: Option<&str>,
        height: u16,
        width: u16,
    ) -> Result<(), ContainerError> {
        let rec = self.get(name)?;
        if rec.state.status != Status::Running {
            return Err(ContainerError::NotRunning(rec.id));
        }
        let dir = self.dir(&rec.id);
        let mut s = connect(&dir)?;
        let mut hello = serde_json::to_vec(&serde_json::json!({
            "resize": {"height": height, "width": width, "exec": exec}
        }))
        .unwrap_or_default();
        hello.push(b'\n');
        let sock = dir.join("attach.sock");
        s.write_all(&hello)
            .map_err(ContainerError::io("write to", &sock))?;
        s.set_nonblocking(true)
            .map_err(ContainerError::io("use", &sock))?;
        let mut s =
            tokio::net::UnixStream::from_std(s).map_err(ContainerError::io("use", &sock))?;
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            s.read_to_end(&mut answer),
        )
        .await;
        let v: serde_json::Value = if answer.len() > 8 {
            serde_json::from_slice(&answer[8..]).unwrap_or_default()
        } else {
            serde_json::Value::Null
        };
        match v.get("error").and_then(|e| e.as_str()) {
            Some(e) => Err(ContainerError::Shim {
                id: rec.id,
                why: e.to_owned(),
            }),
            None if v.get("ok").is_some() => Ok(()),
            None => Err(ContainerError::Shim {
                id: rec.id,
                why: "no answer to the resize".into(),
            }),
        }
    }
}

/// The log so far, as session output (`attach?logs=1`).
fn log_backlog(path: &Path, opts: &AttachOptions) -> Vec<Output> {
    #[derive(serde::Deserialize)]
    struct Entry {
        log: String,
        stream: String,
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<Entry>(l).ok())
        .filter_map(|e| {
            let stream = match e.stream.as_str() {
                "stdout" if opts.stdout => 1,
                "stderr" if opts.stderr => 2,
                _ => return None,
            };
            Some(Output {
                stream,
                data: Bytes::from(e.log),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_names_the_streams() {
        let h = attach_hello(&AttachOptions {
            stdin: true,
            stdout: true,
            ..Default::default()
        });
        assert_eq!(
            String::from_utf8(h).unwrap(),
            "{\"attach\":{\"stderr\":false,\"stdin\":true,\"stdout\":true}}\n"
        );
    }

    #[test]
    fn log_backlog_keeps_the_asked_streams() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-json.log");
        std::fs::write(
            &p,
            "{\"log\":\"out\\n\",\"stream\":\"stdout\",\"time\":\"t\"}\n{\"log\":\"err\\n\",\"stream\":\"stderr\",\"time\":\"t\"}\n",
        )
        .unwrap();
        let o = log_backlog(
            &p,
            &AttachOptions {
                stderr: true,
                ..Default::default()
            },
        );
        assert_eq!(
            o,
            vec![Output {
                stream: 2,
                data: Bytes::from_static(b"err\n")
            }]
        );
    }

    #[tokio::test]
    async fn relay_passes_frames_both_ways_and_reports_status() {
        let (ours, mut shim) = UnixStream::pair().unwrap();
        let (in_tx, in_rx) = mpsc::channel(4);
        let (out_tx, mut out_rx) = mpsc::channel(4);
        let (st_tx, st_rx) = std::sync::mpsc::channel();
        let t = tokio::spawn(relay(
            ours,
            in_rx,
            out_tx,
            move |v| {
                let _ = st_tx.send(v);
            },
            true,
        ));
        in_tx
            .send(Input::Data(Bytes::from_static(b"hi")))
            .await
            .unwrap();
        in_tx.send(Input::Eof).await.unwrap();
        let mut got = [0u8; 18];
        let shim2 = shim.try_clone().unwrap();
        let got = tokio::task::spawn_blocking(move || {
            use std::io::Read as _;
            let mut s = shim2;
            s.read_exact(&mut got).unwrap();
            got
        })
        .await
        .unwrap();
        assert_eq!(&got[..10], &[0, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
        assert_eq!(&got[10..], &[0, 0, 0, 0, 0, 0, 0, 0]);
        shim.write_all(&encode(2, b"oops")).unwrap();
        shim.write_all(&encode(STATUS, b"{\"exit_code\":3}"))
            .unwrap();
        drop(shim);
        let o = out_rx.recv().await.unwrap();
        assert_eq!(o.stream, 2);
        assert_eq!(o.data, Bytes::from_static(b"oops"));
        t.await.unwrap();
        assert_eq!(st_rx.recv().unwrap()["exit_code"], 3);
        assert!(out_rx.recv().await.is_none());
    }
}
