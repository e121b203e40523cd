//! Docker's json-file log format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"RFC 3339 nano"}`; a line without its
//! newline is written when the stream ends (Docker also splits lines longer than 16 KiB).

use std::fs::File;
use std::io::Write as _;
use std::path::Path;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Docker's maximum line size in the json-file driver (longer lines are split).
const MAX_LINE: usize = 16 * 1024;

/// The log file and a partial line per stream.
#[derive(Debug)]
pub struct JsonLog {
    file: File,
    partial: [Vec<u8>; 2],
}

#[derive(serde::Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: String,
}

impl JsonLog {
    /// Opens (appending to) the log at `path`.
    pub fn open(path: &Path) -> std::io::Result<JsonLog> {
        let file = File::options().create(true).append(true).open(path)?;
        Ok(JsonLog {
            file,
            partial: [Vec::new(), Vec::new()],
        })
    }

    fn emit(&mut self, stream: Stream, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        let e = Entry {
            log: &text,
            stream: stream.as_str(),
            time: jiff::Timestamp::now().to_string(),
        };
        if let Ok(mut line) = serde_json::to_vec(&e) {
            line.push(b'\n');
            // a full disk loses log lines, never the container
            let _ = self.file.write_all(&line);
        }
    }

    /// Appends output; complete lines are written at once.
    pub fn write(&mut self, stream: Stream, data: &[u8]) {
        let i = stream as usize;
        let mut buf = std::mem::take(&mut self.partial[i]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + nl + 1;
            self.emit(stream, &buf[start..end]);
            start = end;
        }
        let mut rest = buf.split_off(start);
        while rest.len() >= MAX_LINE {
            let tail = rest.split_off(MAX_LINE);
            self.emit(stream, &rest);
            rest = tail;
        }
        self.partial[i] = rest;
    }

    /// Writes a pending partial line (the stream ended without a newline).
    pub fn flush_partial(&mut self, stream: Stream) {
        let rest = std::mem::take(&mut self.partial[stream as usize]);
        if !rest.is_empty() {
            self.emit(stream, &rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_docker_json_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-json.log");
        let mut log = JsonLog::open(&p).unwrap();
        log.write(Stream::Stdout, b"hel");
        log.write(Stream::Stderr, b"oops\n");
        log.write(Stream::Stdout, b"lo\nwor");
        log.flush_partial(Stream::Stdout);
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["log"], "oops\n");
        assert_eq!(lines[0]["stream"], "stderr");
        assert_eq!(lines[1]["log"], "hello\n");
        assert_eq!(lines[1]["stream"], "stdout");
        assert_eq!(lines[2]["log"], "wor");
        assert!(lines[2]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn long_lines_are_split() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("y-json.log");
        let mut log = JsonLog::open(&p).unwrap();
        log.write(Stream::Stdout, &vec![b'a'; MAX_LINE + 10]);
        log.flush_partial(Stream::Stdout);
        let text = std::fs::read_to_string(&p).unwrap();
        let lens: Vec<usize> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["log"]
                    .as_str()
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(lens, vec![MAX_LINE, 10]);
    }
}
