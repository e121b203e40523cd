//! Docker's json-file log format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"RFC 3339 nano"}`; a line without its
//! newline is written when the stream ends (Docker also splits lines longer than 16 KiB).

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

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

/// `--log-opt max-size`/`max-file`: rotate when the file reaches `max_size` bytes, keeping
/// `max_file` files in all (`<log>`, `<log>.1` … `<log>.<max_file-1>`), as Docker's json-file
/// driver does; `max_file` 1 truncates in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_size: u64,
    pub max_file: u32,
}

impl Rotation {
    /// Reads `<container-dir>/log-config.json` (`{"Type":…,"Config":{"max-size":"10m",
    /// "max-file":"3"}}`, written by berthd); `None` when there is no size limit.
    pub fn from_config(path: &Path) -> Option<Rotation> {
        let text = std::fs::read(path).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
        let cfg = v.get("Config")?;
        let max_size = parse_size(cfg.get("max-size")?.as_str()?)?;
        let max_file = cfg
            .get("max-file")
            .and_then(|f| f.as_str())
            .and_then(|f| f.parse::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        (max_size > 0).then_some(Rotation { max_size, max_file })
    }
}

/// Docker's size strings: `1024`, `10k`, `10m`, `1g` (also `kb`, `mb`, `gb`; 1024-based).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n >= 0.0).then_some((n * mult as f64) as u64)
}

/// The log file and a partial line per stream.
#[derive(Debug)]
pub struct JsonLog {
    file: File,
    path: PathBuf,
    size: u64,
    rotation: Option<Rotation>,
    partial: [Vec<u8>; 2],
}

#[derive(serde::Serialize)]
struct Entry<'a> {
    log: &'a str,
    stream: &'a str,
    time: String,
}

impl JsonLog {
    /// Opens (appending to) the log at `path`, rotating it when `rotation` says so.
    pub fn open_rotating(path: &Path, rotation: Option<Rotation>) -> std::io::Result<JsonLog> {
        let file = File::options().create(true).append(true).open(path)?;
        Ok(JsonLog::from_file(file, path, rotation))
    }

    /// The log on an already open `file` (opened for appending at `path`, e.g. inherited
    /// across the shim's re-exec into monitor mode).
    pub fn from_file(file: File, path: &Path, rotation: Option<Rotation>) -> JsonLog {
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        JsonLog {
            file,
            path: path.to_owned(),
            size,
            rotation,
            partial: [Vec::new(), Vec::new()],
        }
    }

    /// The open log file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The rotation policy.
    pub fn rotation(&self) -> Option<Rotation> {
        self.rotation
    }

    fn rotated(&self, i: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{i}"));
        PathBuf::from(p)
    }

    /// Rotates once the file is full; a failure keeps writing to the current file.
    fn rotate_if_full(&mut self) {
        let Some(r) = self.rotation else {
            return;
        };
        if self.size < r.max_size {
            return;
        }
        if r.max_file <= 1 {
            if self.file.set_len(0).is_ok() {
                self.size = 0;
            }
            return;
        }
        for i in (1..r.max_file - 1).rev() {
            let _ = std::fs::rename(self.rotated(i), self.rotated(i + 1));
        }
        if std::fs::rename(&self.path, self.rotated(1)).is_err() {
            return;
        }
        // on failure, keep writing to the renamed file rather than losing lines
        if let Ok(f) = File::options().create(true).append(true).open(&self.path) {
            self.file = f;
            self.size = 0;
        }
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
            if self.file.write_all(&line).is_ok() {
                self.size += line.len() as u64;
                self.rotate_if_full();
            }
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
        let mut log = JsonLog::open_rotating(&p, None).unwrap();
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
    fn sizes_parse_like_docker() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("10k"), Some(10 * 1024));
        assert_eq!(parse_size("2m"), Some(2 << 20));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("3kb"), Some(3 * 1024));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn rotation_keeps_max_file_files_of_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r-json.log");
        let cfg = dir.path().join("log-config.json");
        std::fs::write(
            &cfg,
            br#"{"Type":"json-file","Config":{"max-size":"1k","max-file":"3"}}"#,
        )
        .unwrap();
        let rot = Rotation::from_config(&cfg).unwrap();
        assert_eq!(
            rot,
            Rotation {
                max_size: 1024,
                max_file: 3
            }
        );
        let mut log = JsonLog::open_rotating(&p, Some(rot)).unwrap();
        for i in 0..200 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        let names: Vec<String> = {
            let mut v: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("r-json.log"))
                .collect();
            v.sort();
            v
        };
        assert_eq!(names, ["r-json.log", "r-json.log.1", "r-json.log.2"]);
        for n in &names {
            let len = std::fs::metadata(dir.path().join(n)).unwrap().len();
            assert!(len < 1024 + 100, "{n}: {len}");
        }
        // the newest line is in the current file, older ones in .1 then .2
        let cur = std::fs::read_to_string(&p).unwrap();
        assert!(cur.is_empty() || cur.contains("line 199"), "{cur}");
        let one = std::fs::read_to_string(dir.path().join("r-json.log.1")).unwrap();
        let two = std::fs::read_to_string(dir.path().join("r-json.log.2")).unwrap();
        let first_num = |t: &str| -> u32 {
            let v: serde_json::Value = serde_json::from_str(t.lines().next().unwrap()).unwrap();
            v["log"].as_str().unwrap()[5..].trim().parse().unwrap()
        };
        assert!(first_num(&two) < first_num(&one));
        // max-file 1 truncates in place
        let q = dir.path().join("t-json.log");
        let mut log = JsonLog::open_rotating(
            &q,
            Some(Rotation {
                max_size: 512,
                max_file: 1,
            }),
        )
        .unwrap();
        for i in 0..100 {
            log.write(Stream::Stderr, format!("l{i}\n").as_bytes());
        }
        assert!(std::fs::metadata(&q).unwrap().len() < 512 + 100);
        assert!(!dir.path().join("t-json.log.1").exists());
    }

    #[test]
    fn long_lines_are_split() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("y-json.log");
        let mut log = JsonLog::open_rotating(&p, None).unwrap();
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
