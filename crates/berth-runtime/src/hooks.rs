//! OCI hooks: run with the container state JSON on stdin, with an optional timeout.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::Error;

pub fn run_hooks(
    kind: &'static str,
    hooks: Option<&Vec<Hook>>,
    state_json: &[u8],
) -> Result<(), Error> {
    for h in hooks.map(Vec::as_slice).unwrap_or(&[]) {
        run_hook(kind, h, state_json)?;
    }
    Ok(())
}

pub fn run_hook(kind: &'static str, h: &Hook, state_json: &[u8]) -> Result<(), Error> {
    let path = h.path().to_string_lossy().into_owned();
    let fail = |why: String| Error::Hook {
        kind,
        path: path.clone(),
        why,
    };
    let args = h.args().clone().unwrap_or_default();
    let mut cmd = Command::new(h.path());
    if let Some((a0, rest)) = args.split_first() {
        cmd.arg0(a0).args(rest);
    }
    cmd.env_clear();
    for kv in h.env().as_deref().unwrap_or(&[]) {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| fail(format!("spawn: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // a hook that ignores stdin may close it early: EPIPE is fine
        let _ = stdin.write_all(state_json);
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    loop {
        match child.try_wait().map_err(|e| fail(format!("wait: {e}")))? {
            Some(st) if st.success() => return Ok(()),
            Some(st) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return Err(fail(format!("{st}: {}", err.trim())));
            }
            None => {}
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "timed out after {}s",
                h.timeout().unwrap_or(0)
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
