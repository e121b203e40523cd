//! `--log-opt max-size/max-file`: the shim rotates the json-file log as Docker's driver
//! does, and `logs` reads the rotated files oldest first (berth and the docker CLI).

mod common;

use common::{Daemon, Leftovers, stdout};

fn log_files(d: &Daemon, id: &str) -> Vec<String> {
    let dir = d.env.data_root().join("containers").join(id);
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{id}-json.log")))
        .collect();
    v.sort();
    v
}

#[test]
fn max_size_and_max_file_rotate_and_logs_reads_across_files() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let id = d
        .ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--log-opt",
            "max-size=2k",
            "--log-opt",
            "max-file=3",
            "busybox",
            "sh",
            "-c",
            "i=1; while [ $i -le 400 ]; do echo line $i; i=$((i+1)); done",
        ])
        .trim()
        .to_owned();
    assert_eq!(d.ok(&["wait", &id]), "0\n");
    let files = log_files(&d, &id);
    assert_eq!(
        files,
        [
            format!("{id}-json.log"),
            format!("{id}-json.log.1"),
            format!("{id}-json.log.2")
        ]
    );
    let dir = d.env.data_root().join("containers").join(&id);
    for f in &files {
        let len = std::fs::metadata(dir.join(f)).unwrap().len();
        assert!(len < 2048 + 200, "{f} is {len} bytes");
    }
    // what is kept is the newest part of the output, in order and without gaps
    for out in [d.ok(&["logs", &id]), {
        let o = d.docker(&["logs", &id]);
        assert!(o.status.success());
        stdout(&o)
    }] {
        let nums: Vec<u32> = out
            .lines()
            .map(|l| l.strip_prefix("line ").unwrap().parse().unwrap())
            .collect();
        assert_eq!(*nums.last().unwrap(), 400, "{out}");
        assert!(
            nums.len() > 50 && nums.len() < 400,
            "{} lines kept",
            nums.len()
        );
        assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{out}");
    }
    assert_eq!(d.ok(&["logs", "--tail", "2", &id]), "line 399\nline 400\n");
    d.ok(&["rm", &id]);
}
