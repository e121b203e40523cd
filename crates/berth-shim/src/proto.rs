//! The shim ↔ berthd protocol on `<container-dir>/attach.sock` (see the README).
//!
//! A client connects and sends one hello line of JSON, then frames both ways. Frames
//! are Docker's stream frames: `[type, 0, 0, 0, len_be32]` + payload.
//! - client → shim: type 0 = bytes for the target's stdin; an empty type-0 frame is
//!   stdin EOF (closing the socket without it is a detach, stdin stays open).
//! - shim → client: 1 = stdout, 2 = stderr (a tty's output is all type 1), 4 = a
//!   status line of JSON: `{"pid":n}` (exec started), `{"exit_code":n}` (exec ended),
//!   `{"error":"…","exit_code":n}` (exec failed), `{"ok":true}` (resize done).

use oci_spec::runtime::Process;
use serde::{Deserialize, Serialize};

/// Frame types.
pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const STATUS: u8 = 4;

/// The first line a client sends.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hello {
    /// Attach to the container's streams.
    Attach {
        #[serde(default)]
        stdin: bool,
        #[serde(default)]
        stdout: bool,
        #[serde(default)]
        stderr: bool,
    },
    /// Set the window size of the container's pty (or of exec `exec`'s).
    Resize {
        height: u16,
        width: u16,
        #[serde(default)]
        exec: Option<String>,
    },
    /// Run `process` in the container; this connection carries its streams.
    Exec {
        id: String,
        process: Box<Process>,
        #[serde(default)]
        stdin: bool,
    },
}

/// A status frame's payload.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Status<'a> {
    Started { pid: i32 },
    Exited { exit_code: i32 },
    Failed { error: &'a str, exit_code: i32 },
    Ok { ok: bool },
    Error { error: &'a str },
}

/// One encoded frame.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&[kind, 0, 0, 0]);
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

/// A status frame.
pub fn status_frame(s: &Status<'_>) -> Vec<u8> {
    frame(STATUS, &serde_json::to_vec(s).unwrap_or_default())
}

/// Takes one whole frame off the front of `buf`: `(type, payload)`.
pub fn take_frame(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    if buf.len() < 8 {
        return None;
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if buf.len() < 8 + len {
        return None;
    }
    let kind = buf[0];
    let payload = buf[8..8 + len].to_vec();
    buf.drain(..8 + len);
    Some((kind, payload))
}

/// Takes the hello line off the front of `buf`, once it is complete.
pub fn take_hello(buf: &mut Vec<u8>) -> Option<Result<Hello, String>> {
    let i = buf.iter().position(|&b| b == b'\n')?;
    let line: Vec<u8> = buf.drain(..=i).collect();
    Some(serde_json::from_slice(&line[..i]).map_err(|e| format!("invalid hello: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_wait_for_whole_frames() {
        let mut buf = frame(STDIN, b"hello");
        buf.extend(frame(STDIN, b""));
        let tail = buf.split_off(10);
        let mut b = buf;
        assert_eq!(take_frame(&mut b), None);
        b.extend(tail);
        assert_eq!(take_frame(&mut b), Some((STDIN, b"hello".to_vec())));
        assert_eq!(take_frame(&mut b), Some((STDIN, Vec::new())));
        assert!(b.is_empty());
    }

    #[test]
    fn hellos_parse() {
        let mut b = b"{\"attach\":{\"stdin\":true,\"stdout\":true}}\nrest".to_vec();
        match take_hello(&mut b) {
            Some(Ok(Hello::Attach {
                stdin: true,
                stdout: true,
                stderr: false,
            })) => {}
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(b, b"rest");
        let mut b = b"{\"resize\":{\"height\":40,\"width\":120}}\n".to_vec();
        assert!(matches!(
            take_hello(&mut b),
            Some(Ok(Hello::Resize {
                height: 40,
                width: 120,
                exec: None
            }))
        ));
        let mut b = b"{\"exec\":{\"id\":\"e1\",\"process\":{\"args\":[\"true\"],\"cwd\":\"/\",\"user\":{\"uid\":0,\"gid\":0}}}}\n"
            .to_vec();
        match take_hello(&mut b) {
            Some(Ok(Hello::Exec { id, process, stdin })) => {
                assert_eq!(id, "e1");
                assert!(!stdin);
                assert_eq!(process.args().as_deref(), Some(&["true".to_owned()][..]));
            }
            other => panic!("unexpected {other:?}"),
        }
        let mut b = b"{\"nope\":1}\n".to_vec();
        assert!(matches!(take_hello(&mut b), Some(Err(_))));
        let mut b = b"{\"attach\":".to_vec();
        assert!(take_hello(&mut b).is_none());
    }

    #[test]
    fn status_lines_are_json() {
        let f = status_frame(&Status::Failed {
            error: "no such file",
            exit_code: 127,
        });
        let mut b = f;
        let (k, p) = take_frame(&mut b).unwrap();
        assert_eq!(k, STATUS);
        let v: serde_json::Value = serde_json::from_slice(&p).unwrap();
        assert_eq!(v["exit_code"], 127);
        assert_eq!(v["error"], "no such file");
    }
}
