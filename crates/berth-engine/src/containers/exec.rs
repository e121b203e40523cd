//! `exec`: processes started in a running container by its shim (the shim is
//! single-threaded, as `berth_runtime::Container::exec` requires, and a subreaper, so it
//! waits for them). The engine keeps each exec's record (Docker's exec inspect), builds
//! its OCI process from the container's bundle, and relays its streams.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use berth_types::spec::ContainerSpec;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::attach::{Output, Session, connect, relay};
use super::{ContainerError, Containers, Status, names, oci};

/// `POST /containers/{id}/exec`'s body, normalized.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecConfig {
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// `KEY=value` added to (or replacing in) the container's environment.
    pub env: Vec<String>,
    /// `user[:group]`; empty means the container's.
    pub user: String,
    /// Empty means the container's.
    pub workdir: String,
    /// Give it a pty.
    pub tty: bool,
    /// Every capability of the daemon's bounding set.
    pub privileged: bool,
    /// Attach its stdin.
    pub attach_stdin: bool,
    /// Attach its stdout.
    pub attach_stdout: bool,
    /// Attach its stderr.
    pub attach_stderr: bool,
    /// `[height, width]` of its pty at start (zeros: unknown).
    pub console_size: [u16; 2],
}

/// One exec, as `GET /exec/{id}/json` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRecord {
    /// Its id (64 hex).
    pub id: String,
    /// The container's full id.
    pub container_id: String,
    /// What was asked for.
    pub config: ExecConfig,
    /// Whether it was started.
    pub started: bool,
    /// Whether its process runs.
    pub running: bool,
    /// Its exit code once it ended.
    pub exit_code: Option<i32>,
    /// Its host pid while running.
    pub pid: i32,
    /// When it ended (finished execs are forgotten a while later, as moby's exec GC).
    pub ended_at: Option<std::time::Instant>,
}

/// How long a finished exec stays inspectable.
const KEEP_FINISHED: std::time::Duration = std::time::Duration::from_secs(300);

/// The execs of every container.
#[derive(Debug, Default)]
pub struct Execs(Mutex<HashMap<String, ExecRecord>>);

impl Execs {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, ExecRecord>) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Docker's exec inspect JSON.
pub fn inspect_json(e: &ExecRecord) -> Value {
    let c = &e.config;
    json!({
        "ID": e.id,
        "Running": e.running,
        "ExitCode": e.exit_code,
        "ProcessConfig": {
            "tty": c.tty,
            "entrypoint": c.cmd.first().cloned().unwrap_or_default(),
            "arguments": c.cmd.iter().skip(1).collect::<Vec<_>>(),
            "privileged": c.privileged,
            "user": c.user,
        },
        "OpenStdin": c.attach_stdin,
        "OpenStderr": c.attach_stderr,
        "OpenStdout": c.attach_stdout,
        "CanRemove": false,
        "ContainerID": e.container_id,
        "DetachKeys": "",
        "Pid": e.pid,
    })
}

/// Merges `extra` `KEY=value` entries into `base` (same key: replaced).
fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let key = |s: &str| s.split_once('=').map_or(s, |(k, _)| k).to_owned();
    let mut out: Vec<String> = base.to_vec();
    for e in extra {
        let k = key(e);
        match out.iter_mut().find(|b| key(b) == k) {
            Some(slot) => *slot = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

/// The exec's OCI process: the container's, with the exec's command, environment,
/// directory, user, tty and (privileged) capabilities.
pub fn build_process(bundle_spec: &Value, cfg: &ExecConfig) -> Result<Value, ContainerError> {
    let mut p = bundle_spec
        .get("process")
        .cloned()
        .unwrap_or_else(|| json!({}));
    p["args"] = json!(cfg.cmd);
    let base: Vec<String> = p
        .get("env")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default();
    p["env"] = json!(merge_env(&base, &cfg.env));
    if !cfg.workdir.is_empty() {
        p["cwd"] = json!(cfg.workdir);
    }
    p["terminal"] = json!(cfg.tty);
    if let Some(o) = p.as_object_mut() {
        o.remove("consoleSize");
    }
    let [h, w] = cfg.console_size;
    if cfg.tty && h > 0 && w > 0 {
        p["consoleSize"] = json!({"height": h, "width": w});
    }
    if !cfg.user.is_empty() {
        let root = bundle_spec["root"]["path"].as_str().unwrap_or("/");
        let (uid, gid) = oci::resolve_user(&cfg.user, std::path::Path::new(root))?;
        p["user"] = json!({"uid": uid, "gid": gid});
    }
    if cfg.privileged {
        let all = oci::capabilities(
            &ContainerSpec {
                privileged: true,
                ..Default::default()
            },
            oci::own_bounding_set(),
        );
        p["capabilities"] = json!({
            "bounding": all, "effective": all, "permitted": all, "inheritable": all,
        });
    }
    Ok(p)
}

impl Containers {
    /// `POST /containers/{id}/exec`: records an exec of a running container.
    pub fn exec_create(&self, name: &str, cfg: ExecConfig) -> Result<String, ContainerError> {
        let rec = self.get(name)?;
        if rec.state.status != Status::Running {
            return Err(ContainerError::NotRunning(rec.id));
        }
        if cfg.cmd.is_empty() {
            return Err(ContainerError::Shim {
                id: rec.id,
                why: "no exec command specified".into(),
            });
        }
        let id = names::random_id();
        let action = format!("exec_create: {}", cfg.cmd.join(" "));
        let live: std::collections::HashSet<String> =
            self.all().into_iter().map(|r| r.id).collect();
        self.execs.with(|m| {
            // health checks exec every few seconds: forget what ended long ago and the
            // execs of removed containers
            m.retain(|_, x| {
                live.contains(&x.container_id)
                    && x.ended_at.is_none_or(|t| t.elapsed() < KEEP_FINISHED)
            });
            m.insert(
                id.clone(),
                ExecRecord {
                    id: id.clone(),
                    container_id: rec.id.clone(),
                    config: cfg,
                    started: false,
                    running: false,
                    exit_code: None,
                    pid: 0,
                    ended_at: None,
                },
            )
        });
        self.publish(&rec, &action, &[("execID", id.clone())]);
        Ok(id)
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, id: &str) -> Result<ExecRecord, ContainerError> {
        self.execs
            .with(|m| m.get(id).cloned())
            .ok_or_else(|| ContainerError::NoSuchExec(id.to_owned()))
    }

    /// `POST /exec/{id}/start`: starts the process through the shim. `detach` runs it
    /// with no client (its output is discarded); the session ends when it exits.
    pub fn exec_start(
        self: &Arc<Self>,
        exec_id: &str,
        detach: bool,
        console_size: Option<[u16; 2]>,
    ) -> Result<Session, ContainerError> {
        let mut e = self.exec_inspect(exec_id)?;
        if e.started {
            return Err(ContainerError::ExecStarted(exec_id.to_owned()));
        }
        let rec = self.get(&e.container_id)?;
        if rec.state.status != Status::Running {
            return Err(ContainerError::NotRunning(rec.id));
        }
        if let Some(cs) = console_size.filter(|[h, w]| *h > 0 && *w > 0) {
            e.config.console_size = cs;
        }
        let dir = self.dir(&rec.id);
        let bundle = dir.join("bundle/config.json");
        let spec: Value = std::fs::read(&bundle)
            .map_err(ContainerError::io("read", &bundle))
            .and_then(|b| {
                serde_json::from_slice(&b).map_err(|source| ContainerError::Corrupt {
                    path: bundle.display().to_string(),
                    source,
                })
            })?;
        let process = build_process(&spec, &e.config)?;
        let stdin = e.config.attach_stdin && !detach;
        let mut hello = serde_json::to_vec(&json!({
            "exec": {"id": exec_id, "process": process, "stdin": stdin}
        }))
        .unwrap_or_default();
        hello.push(b'\n');
        let mut conn = connect(&dir)?;
        conn.write_all(&hello)
            .map_err(ContainerError::io("write to", &dir.join("attach.sock")))?;
        self.execs.with(|m| {
            if let Some(x) = m.get_mut(exec_id) {
                x.started = true;
                x.config.console_size = e.config.console_size;
            }
        });
        let action = format!("exec_start: {}", e.config.cmd.join(" "));
        self.publish(&rec, &action, &[("execID", exec_id.to_owned())]);

        let (in_tx, in_rx) = mpsc::channel(64);
        let (out_tx, out_rx) = mpsc::channel(64);
        let me = self.clone();
        let id = exec_id.to_owned();
        let err_tx = out_tx.clone();
        let keep_input = detach.then(|| in_tx.clone());
        tokio::spawn(async move {
            let me2 = me.clone();
            let id2 = id.clone();
            let on_status = move |v: Value| {
                let code = v.get("exit_code").and_then(Value::as_i64).map(|c| c as i32);
                if let Some(msg) = v.get("error").and_then(Value::as_str) {
                    let _ = err_tx.try_send(Output {
                        stream: 2,
                        data: Bytes::from(format!("{msg}\r\n")),
                    });
                }
                let pid = v.get("pid").and_then(Value::as_i64).map(|p| p as i32);
                me2.execs.with(|m| {
                    if let Some(x) = m.get_mut(&id2) {
                        if let Some(pid) = pid {
                            x.pid = pid;
                            x.running = true;
                        }
                        if code.is_some() {
                            x.running = false;
                            x.exit_code = code;
                            x.ended_at.get_or_insert_with(std::time::Instant::now);
                        }
                    }
                });
            };
            relay(conn, in_rx, out_tx, on_status, true).await;
            drop(keep_input);
            // the shim closed the connection: the exec is over (a shim that died
            // leaves no exit code: Docker reports 126 for a lost exec)
            let ended = me.execs.with(|m| {
                m.get_mut(&id).map(|x| {
                    x.running = false;
                    x.ended_at.get_or_insert_with(std::time::Instant::now);
                    if x.exit_code.is_none() {
                        x.exit_code = Some(126);
                    }
                    x.clone()
                })
            });
            if let (Some(x), Ok(rec)) = (ended, me.get(&e.container_id)) {
                me.publish(
                    &rec,
                    "exec_die",
                    &[
                        ("execID", x.id.clone()),
                        ("exitCode", x.exit_code.unwrap_or(0).to_string()),
                    ],
                );
            }
        });
        Ok(Session {
            id: rec.id,
            tty: e.config.tty,
            stdin,
            input: in_tx,
            output: out_rx,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_is_merged_by_key() {
        let base = vec!["PATH=/bin".to_owned(), "A=1".to_owned()];
        assert_eq!(
            merge_env(&base, &["A=2".into(), "B=3".into()]),
            vec!["PATH=/bin", "A=2", "B=3"]
        );
    }

    #[test]
    fn process_takes_the_exec_settings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n",
        )
        .unwrap();
        let spec = json!({
            "root": {"path": dir.path()},
            "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"], "terminal": false,
                        "user": {"uid": 0, "gid": 0},
                        "capabilities": {"bounding": ["CAP_CHOWN"]}}
        });
        let p = build_process(
            &spec,
            &ExecConfig {
                cmd: vec!["id".into(), "-u".into()],
                env: vec!["X=1".into()],
                user: "nobody".into(),
                workdir: "/tmp".into(),
                tty: true,
                console_size: [30, 100],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(p["args"], json!(["id", "-u"]));
        assert_eq!(p["env"], json!(["PATH=/bin", "X=1"]));
        assert_eq!(p["cwd"], "/tmp");
        assert_eq!(p["terminal"], true);
        assert_eq!(p["consoleSize"], json!({"height": 30, "width": 100}));
        assert_eq!(p["user"], json!({"uid": 65534, "gid": 65534}));
        assert_eq!(p["capabilities"]["bounding"], json!(["CAP_CHOWN"]));
        let e = build_process(
            &spec,
            &ExecConfig {
                cmd: vec!["id".into()],
                user: "ghost".into(),
                ..Default::default()
            },
        );
        assert!(e.is_err());
    }

    #[test]
    fn inspect_shows_docker_fields() {
        let v = inspect_json(&ExecRecord {
            id: "e".into(),
            container_id: "c".into(),
            config: ExecConfig {
                cmd: vec!["sh".into(), "-c".into(), "true".into()],
                ..Default::default()
            },
            started: true,
            running: false,
            exit_code: Some(3),
            pid: 0,
            ended_at: None,
        });
        assert_eq!(v["ExitCode"], 3);
        assert_eq!(v["ProcessConfig"]["entrypoint"], "sh");
        assert_eq!(v["ProcessConfig"]["arguments"], json!(["-c", "true"]));
        assert_eq!(v["Running"], false);
    }
}
