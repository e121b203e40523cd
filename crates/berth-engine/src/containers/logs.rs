//! `GET /containers/{id}/logs`: the json-file log turned into Docker's stream — 8-byte
//! frames `[stream,0,0,0,len_be32]` + payload when the container has no tty, raw bytes
//! when it has one. `follow` keeps reading until the container is no longer running.

use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncBufReadExt as _;

use super::{Containers, Record, Status};
use crate::io::ByteStream;

/// What the client asked for.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Keep streaming while the container runs.
    pub follow: bool,
    /// Only the last n lines (`None` = all).
    pub tail: Option<usize>,
    /// Prefix each line with its RFC 3339 time.
    pub timestamps: bool,
    /// Only lines at or after this time (unix nanoseconds).
    pub since: Option<i128>,
    /// Only lines before this time (unix nanoseconds).
    pub until: Option<i128>,
}

/// Docker's `since`/`until` query value: unix seconds with an optional fraction
/// (`1700000000.123456789`), as the CLI sends; 0 means unset.
pub fn parse_unix_nanos(s: &str) -> Option<i128> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i128 = secs.parse().ok()?;
    let mut f = frac.chars().take(9).collect::<String>();
    while f.len() < 9 {
        f.push('0');
    }
    let nanos: i128 = f.parse().ok()?;
    let v = secs * 1_000_000_000 + nanos;
    (v != 0).then_some(v)
}

fn in_window(time: &str, opts: &LogOptions) -> bool {
    if opts.since.is_none() && opts.until.is_none() {
        return true;
    }
    let Ok(t) = time.parse::<jiff::Timestamp>() else {
        return true;
    };
    let t = t.as_nanosecond();
    opts.since.is_none_or(|s| t >= s) && opts.until.is_none_or(|u| t < u)
}

#[derive(Debug, serde::Deserialize)]
struct Entry {
    log: String,
    stream: String,
    time: String,
}

/// One frame (or raw bytes for a tty) for `payload` from `stream` (1 stdout, 2 stderr).
pub fn frame(stream: u8, payload: &[u8], tty: bool) -> Bytes {
    if tty {
        return Bytes::copy_from_slice(payload);
    }
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&[stream, 0, 0, 0]);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    Bytes::from(v)
}

fn encode(line: &str, opts: &LogOptions, tty: bool) -> Option<Bytes> {
    let e: Entry = serde_json::from_str(line.trim_end()).ok()?;
    if !in_window(&e.time, opts) {
        return None;
    }
    let stream = match e.stream.as_str() {
        "stdout" if opts.stdout => 1,
        "stderr" if opts.stderr => 2,
        _ => return None,
    };
    let payload = if opts.timestamps {
        format!("{} {}", e.time, e.log)
    } else {
        e.log
    };
    Some(frame(stream, payload.as_bytes(), tty))
}

/// `<log>.1`, `<log>.2` … that exist, newest first.
fn rotated_files(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for i in 1.. {
        let mut p = path.as_os_str().to_owned();
        p.push(format!(".{i}"));
        let p = std::path::PathBuf::from(p);
        if !p.exists() {
            break;
        }
        out.push(p);
    }
    out
}

/// The log stream of container `rec`.
pub fn stream(c: Arc<Containers>, rec: &Record, opts: LogOptions) -> ByteStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(64);
    let path = c.log_path(&rec.id);
    let tty = rec.spec.tty;
    let id = rec.id.clone();
    tokio::spawn(async move {
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) => {
                let _ = tx
                    .send(Err(io::Error::new(
                        e.kind(),
                        format!("open log {}: {e}", path.display()),
                    )))
                    .await;
                return;
            }
        };
        let mut ino = file.metadata().await.map(|m| m.ino()).unwrap_or(0);
        let mut reader = tokio::io::BufReader::new(file);
        let mut pending = String::new();
        // what is there now, with tail applied: rotated files (`--log-opt max-file`)
        // first, oldest (`<log>.N`) to newest (`<log>.1`)
        let mut first = Vec::new();
        for p in rotated_files(&path).iter().rev() {
            if let Ok(text) = tokio::fs::read_to_string(p).await {
                first.extend(text.lines().map(|l| format!("{l}\n")));
            }
        }
        loop {
            match reader.read_line(&mut pending).await {
                Ok(0) | Err(_) => break,
                Ok(_) if pending.ends_with('\n') => first.push(std::mem::take(&mut pending)),
                Ok(_) => break,
            }
        }
        let skip = opts
            .tail
            .map(|n| first.len().saturating_sub(n))
            .unwrap_or(0);
        for l in &first[skip..] {
            if let Some(b) = encode(l, &opts, tty)
                && tx.send(Ok(b)).await.is_err()
            {
                return;
            }
        }
        if !opts.follow {
            return;
        }
        let mut changed = c.subscribe();
        let mut last_pass = false;
        loop {
            loop {
                match reader.read_line(&mut pending).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) if pending.ends_with('\n') => {
                        let l = std::mem::take(&mut pending);
                        if let Some(b) = encode(&l, &opts, tty)
                            && tx.send(Ok(b)).await.is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                }
            }
            if last_pass {
                return;
            }
            // rotated (`--log-opt max-size`): the old file is read to its end above,
            // then follow the new one
            let now_ino = tokio::fs::metadata(&path)
                .await
                .map(|m| m.ino())
                .unwrap_or(ino);
            if now_ino != ino
                && let Ok(f) = tokio::fs::File::open(&path).await
            {
                ino = now_ino;
                reader = tokio::io::BufReader::new(f);
                continue;
            }
            let running = c
                .get(&id)
                .map(|r| r.state.status == Status::Running)
                .unwrap_or(false);
            if !running {
                // the shim wrote every line before it exited: one more pass gets them
                last_pass = true;
                continue;
            }
            tokio::select! {
                _ = changed.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|x| (x, rx))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_filters() {
        let o = LogOptions {
            stdout: true,
            stderr: false,
            ..Default::default()
        };
        let line = r#"{"log":"hi\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}"#;
        assert_eq!(
            &encode(line, &o, false).unwrap()[..],
            b"\x01\0\0\0\0\0\0\x03hi\n"
        );
        assert_eq!(&encode(line, &o, true).unwrap()[..], b"hi\n");
        let err = r#"{"log":"x","stream":"stderr","time":"t"}"#;
        assert!(encode(err, &o, false).is_none());
        let o = LogOptions {
            stderr: true,
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(&encode(err, &o, true).unwrap()[..], b"t x");
    }
}
