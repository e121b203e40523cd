//! `berth build` and `DOCKER_BUILDKIT=0 docker build` against a real berthd: config
//! instructions in inspect, the layer cache (rebuild all cached, one changed file reruns
//! from its COPY, survives a restart), multi-stage with --target and a scratch final
//! stage, .dockerignore, failing RUN, reproducible COPY-only images.
//!
//! Root; build the binaries first: `cargo build -p berthd -p berth-shim -p berth-runc`.

mod common;

use std::path::Path;

use common::{Daemon, Leftovers, stderr, stdout};
use serde_json::Value;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn inspect(d: &Daemon, name: &str) -> Value {
    let out = d.ok(&["image", "inspect", name]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

fn build(d: &Daemon, args: &[&str]) -> (String, String) {
    let mut full = vec!["build", "--progress", "plain"];
    full.extend_from_slice(args);
    let o = d.berth(&full);
    assert!(
        o.status.success(),
        "berth {full:?} failed:\n{}{}",
        stdout(&o),
        stderr(&o)
    );
    (stdout(&o), stderr(&o))
}

/// The course notes' node app (USER, WORKDIR, COPY --chown, package.json first) with
/// busybox standing in for node, plus every other config instruction.
const APP: &str = r#"# syntax=docker/dockerfile:1
FROM busybox
LABEL org.example.course="containers" maintainer="berth"
MAINTAINER Jane Doe <jane@example.com>
ARG GREETING=hello
ENV APP_HOME=/home/node/code NODE_ENV=production
RUN echo "node:x:1000:1000::/home/node:/bin/sh" >> /etc/passwd && echo "node:x:1000:" >> /etc/group && mkdir -p /home/node && chown node:node /home/node
USER node
WORKDIR $APP_HOME
COPY --chown=node:node package*.json ./
RUN echo "installed $GREETING" > deps.txt && ls -ln package.json
COPY --chown=node:node . .
EXPOSE 3000 53/udp
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=3s CMD wget -q -O- http://localhost:3000/ || exit 1
STOPSIGNAL SIGTERM
SHELL ["/bin/sh", "-c"]
ONBUILD RUN echo child build
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat index.js"]
"#;

fn app_context(dir: &Path) {
    write(dir, "Dockerfile", APP);
    write(dir, "package.json", "{\"name\": \"app\"}\n");
    write(dir, "package-lock.json", "{}\n");
    write(dir, "index.js", "console.log('hi')\n");
    write(dir, "node_modules/junk.js", "junk\n");
    write(dir, "secret.txt", "do not send\n");
    write(dir, ".dockerignore", "node_modules\n*.txt\n");
}

#[test]
fn config_instructions_land_in_inspect_and_history() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let ctx = tempfile::tempdir().unwrap();
    app_context(ctx.path());
    let (_, err) = build(&d, &["-t", "app:1", ctx.path().to_str().unwrap()]);
    assert!(err.contains("#1 [1/19] FROM busybox"), "{err}");
    assert!(
        err.contains("ls -ln package.json") || err.contains("package.json"),
        "{err}"
    );
    let v = inspect(&d, "app:1");
    let c = &v["Config"];
    assert_eq!(c["User"], "node");
    assert_eq!(c["WorkingDir"], "/home/node/code");
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .contains(&Value::from("APP_HOME=/home/node/code")),
        "{c}"
    );
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["cat index.js"]));
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"3000/tcp": {}, "53/udp": {}})
    );
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(c["Labels"]["org.example.course"], "containers");
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo child build"]));
    assert_eq!(c["Healthcheck"]["Interval"], 30_000_000_000i64);
    assert_eq!(v["Author"], "Jane Doe <jane@example.com>");
    // busybox's layer + adduser RUN + WORKDIR + 2 COPY + RUN = 6 layers
    let layers = v["RootFS"]["Layers"].as_array().unwrap();
    assert_eq!(layers.len(), 6, "{v}");
    // history: metadata steps are empty layers
    let h = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        "app:1",
    ]);
    let env_line = h
        .lines()
        .find(|l| l.contains("ENV APP_HOME=/home/node/code"))
        .unwrap_or_else(|| panic!("no ENV in history: {h}"));
    assert!(env_line.ends_with("|0B"), "{h}");
    assert!(
        h.lines().any(|l| l.contains("COPY") && !l.ends_with("|0B")),
        "{h}"
    );
    // the app runs as node, owns its files, and the ignored files are not there
    // the image's entrypoint is `/bin/sh -c`: the command is a script
    let out = d.ok(&[
        "run",
        "--rm",
        "app:1",
        "id -u; cat index.js deps.txt; stat -c '%U %a' package.json; ls node_modules secret.txt 2>&1 | wc -l; echo $NODE_ENV",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000", "{out}");
    assert_eq!(lines[1], "console.log('hi')");
    assert_eq!(lines[2], "installed hello");
    assert_eq!(lines[3], "node 644");
    assert_eq!(lines[4], "2", "ignored files were sent: {out}");
    assert_eq!(lines[5], "production");
    // a child image runs the ONBUILD trigger and does not inherit it
    let child = tempfile::tempdir().unwrap();
    write(child.path(), "Dockerfile", "FROM app:1\n");
    let (_, err) = build(&d, &["-t", "child:1", child.path().to_str().unwrap()]);
    assert!(err.contains("child build"), "{err}");
    assert!(
        inspect(&d, "child:1")["Config"]["OnBuild"].is_null(),
        "trigger inherited"
    );
}

/// Nothing of a build stays behind: no temp dir, no mount under the data root.
fn assert_no_build_leftovers(d: &Daemon) {
    let tmp = d.env.data_root().join("build/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "build temp dirs left: {left:?}");
    let root = d.env.data_root().display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let build_mounts: Vec<&str> = mounts
        .lines()
        .filter(|l| l.contains(&format!("{root}/build")))
        .collect();
    assert!(build_mounts.is_empty(), "{build_mounts:?}");
}

fn cached_steps(err: &str) -> usize {
    err.lines().filter(|l| l.ends_with(" CACHED")).count()
}

#[test]
fn rebuild_is_cached_one_file_reruns_from_its_copy_and_cache_survives_restart() {
    let mut d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nWORKDIR /app\nCOPY deps.txt .\nRUN cp deps.txt installed.txt\nCOPY src/ src/\nRUN cat src/* > all.txt\nCMD [\"cat\", \"/app/all.txt\"]\n",
    );
    write(ctx.path(), "deps.txt", "dep1\n");
    write(ctx.path(), "src/a.txt", "A\n");
    write(ctx.path(), "src/b.txt", "B\n");
    let p = ctx.path().to_str().unwrap();
    let (_, first) = build(&d, &["-t", "c:1", p]);
    assert_eq!(cached_steps(&first), 0, "{first}");
    let id1 = inspect(&d, "c:1")["Id"].clone();
    // a rebuild: every step cached, same image
    let (_, second) = build(&d, &["-t", "c:2", p]);
    assert_eq!(cached_steps(&second), 6, "{second}");
    assert_eq!(inspect(&d, "c:2")["Id"], id1);
    // one source file changed: the steps before its COPY are cached, the rest rerun
    write(ctx.path(), "src/b.txt", "B2\n");
    let (_, third) = build(&d, &["-t", "c:3", p]);
    assert_eq!(cached_steps(&third), 3, "{third}");
    assert!(
        third.contains("#5 [5/7] COPY src/ src/\n#5 DONE"),
        "{third}"
    );
    assert_eq!(d.ok(&["run", "--rm", "c:3"]), "A\nB2\n");
    // mtimes alone do not invalidate
    let f = std::fs::File::options()
        .write(true)
        .open(ctx.path().join("deps.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    let (_, fourth) = build(&d, &[p]);
    assert_eq!(cached_steps(&fourth), 6, "{fourth}");
    // --no-cache runs everything
    let (_, nocache) = build(&d, &["--no-cache", p]);
    assert_eq!(cached_steps(&nocache), 0, "{nocache}");
    // the cache survives a daemon restart
    let pid: i32 = std::fs::read_to_string(d.env.run_root().join("berthd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // (a zombie until the test's cleanup reaps it; its socket stays: wait a moment)
    std::thread::sleep(std::time::Duration::from_millis(1000));
    restart_berthd(&mut d);
    let (_, after) = build(&d, &["-t", "c:4", p]);
    assert_eq!(cached_steps(&after), 6, "{after}");
    // builder prune empties it
    let pruned = d.ok(&["builder", "prune", "-f"]);
    assert!(pruned.contains("Total reclaimed space:"), "{pruned}");
    let (_, again) = build(&d, &[p]);
    assert_eq!(cached_steps(&again), 0, "{again}");
    assert_no_build_leftovers(&d);
}

fn restart_berthd(d: &mut Daemon) {
    let log = std::fs::File::create(d.env.dir().join("berthd2.log")).unwrap();
    let child = std::process::Command::new(common::berthd_bin())
        .arg("--data-root")
        .arg(d.env.data_root())
        .arg("--exec-root")
        .arg(d.env.run_root())
        .arg("--config")
        .arg(d.env.dir().join("berth.toml"))
        .arg("-H")
        .arg(d.host())
        .args(common::net_args(&d.env, &d.pools))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    d.env.cleanup().child(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(d.env.socket()).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "berthd did not come up again"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn failing_run_gives_dockers_message_exit_1_and_no_image() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let before = d.ok(&["images", "-a", "-q"]);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN echo about to fail; false\n",
    );
    let o = d.berth(&[
        "build",
        "--progress",
        "plain",
        "-t",
        "broken:1",
        ctx.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(
            "The command '/bin/sh -c echo about to fail; false' returned a non-zero code: 1"
        ),
        "{err}"
    );
    assert!(
        err.contains("about to fail"),
        "the step's output is shown: {err}"
    );
    assert_eq!(d.ok(&["images", "-a", "-q"]), before);
    assert!(!d.berth(&["image", "inspect", "broken:1"]).status.success());
    // the docker CLI (classic builder) sees the same error and exit code
    let o = std::process::Command::new("/usr/local/bin/docker")
        .args(["build", "-t", "broken:2", ctx.path().to_str().unwrap()])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_BUILDKIT", "0")
        .env("DOCKER_CONFIG", d.env.dir().join("docker-cli"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("returned a non-zero code: 1"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    assert_eq!(d.ok(&["images", "-a", "-q"]), before);
    assert_no_build_leftovers(&d);
}

#[test]
fn multistage_target_scratch_final_stage_and_copy_from() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        r#"FROM busybox AS build
WORKDIR /src
COPY main.txt .
RUN mkdir -p /out && cp /bin/busybox /out/busybox && cat main.txt > /out/message
FROM busybox AS test
RUN echo tests ran > /result
FROM scratch
COPY --from=build /out/ /
COPY --from=busybox /etc/passwd /etc/passwd
ENTRYPOINT ["/busybox", "cat", "/message"]
"#,
    );
    write(ctx.path(), "main.txt", "built by the first stage\n");
    let p = ctx.path().to_str().unwrap();
    let (_, err) = build(&d, &["-t", "tiny:1", p]);
    // the test stage is not needed by the final stage: skipped
    assert!(
        !err.contains("tests ran") && !err.contains("RUN echo tests ran"),
        "{err}"
    );
    let v = inspect(&d, "tiny:1");
    assert_eq!(v["RootFS"]["Layers"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(
        d.ok(&["run", "--rm", "tiny:1"]),
        "built by the first stage\n"
    );
    // --target builds only up to that stage
    let (_, err) = build(&d, &["--target", "test", "-t", "tests:1", p]);
    assert!(err.contains("RUN echo tests ran"), "{err}");
    assert!(!err.contains("COPY main.txt"), "{err}");
    assert_eq!(
        d.ok(&["run", "--rm", "tests:1", "cat", "/result"]),
        "tests ran\n"
    );
}

#[test]
fn docker_cli_classic_builder_builds_against_berthd() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nARG WHO=world\nCOPY hello.txt /hello.txt\nRUN echo \"hello $WHO\" >> /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n",
    );
    write(ctx.path(), "hello.txt", "from the context\n");
    let run = |extra: &[&str]| {
        let mut args = vec!["build", "-t", "dock:1"];
        args.extend_from_slice(extra);
        args.push(ctx.path().to_str().unwrap());
        let o = std::process::Command::new("/usr/local/bin/docker")
            .args(&args)
            .env("DOCKER_HOST", d.host())
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CONFIG", d.env.dir().join("docker-cli"))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        stdout(&o)
    };
    let out = run(&["--build-arg", "WHO=docker"]);
    assert!(out.contains("Step 1/5 : FROM busybox"), "{out}");
    assert!(out.contains("Successfully built "), "{out}");
    assert!(out.contains("Successfully tagged dock:1"), "{out}");
    assert_eq!(
        d.ok(&["run", "--rm", "dock:1"]),
        "from the context\nhello docker\n"
    );
    let again = run(&["--build-arg", "WHO=docker"]);
    assert_eq!(again.matches(" ---> Using cache").count(), 4, "{again}");
    // a different build arg value misses from the RUN that uses it
    let other = run(&["--build-arg", "WHO=you"]);
    assert_eq!(other.matches(" ---> Using cache").count(), 2, "{other}");
    // -q prints only the id
    let q = run(&["-q"]);
    assert!(q.trim().starts_with("sha256:"), "{q}");
}

#[test]
fn source_date_epoch_makes_copy_only_images_reproducible() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM scratch\nCOPY files/ /files/\nCOPY top.txt /\n",
    );
    write(ctx.path(), "files/a.txt", "a\n");
    write(ctx.path(), "files/sub/b.txt", "b\n");
    write(ctx.path(), "top.txt", "top\n");
    let p = ctx.path().to_str().unwrap();
    let id = |tag: &str| {
        let (out, _) = build(
            &d,
            &[
                "-q",
                "--no-cache",
                "--build-arg",
                "SOURCE_DATE_EPOCH=1700000000",
                "-t",
                tag,
                p,
            ],
        );
        out.trim().to_owned()
    };
    let a = id("r:1");
    // touch the sources: new mtimes are clamped to the epoch
    for f in ["files/a.txt", "top.txt"] {
        let h = std::fs::File::options()
            .write(true)
            .open(ctx.path().join(f))
            .unwrap();
        h.set_modified(std::time::SystemTime::now()).unwrap();
    }
    let b = id("r:2");
    assert!(a.starts_with("sha256:"), "{a}");
    assert_eq!(a, b, "two builds with SOURCE_DATE_EPOCH differ");
    let v = inspect(&d, "r:1");
    assert_eq!(v["Created"], "2023-11-14T22:13:20Z");
    // byte-identical saves
    let s1 = d.env.dir().join("s1.tar");
    let s2 = d.env.dir().join("s2.tar");
    d.ok(&["save", "-o", s1.to_str().unwrap(), "r:1"]);
    d.ok(&["save", "-o", s2.to_str().unwrap(), "r:1"]);
    assert_eq!(std::fs::read(&s1).unwrap(), std::fs::read(&s2).unwrap());
}

#[test]
fn dockerfile_outside_the_context_stdin_dockerfile_and_labels() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let ctx = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    write(
        other.path(),
        "build.Dockerfile",
        "FROM busybox\nCOPY data.txt /data.txt\n",
    );
    write(ctx.path(), "data.txt", "data\n");
    let df = other.path().join("build.Dockerfile");
    let (_, _) = build(
        &d,
        &[
            "-f",
            df.to_str().unwrap(),
            "--label",
            "team=infra",
            "-t",
            "out:1",
            ctx.path().to_str().unwrap(),
        ],
    );
    assert_eq!(
        d.ok(&["run", "--rm", "out:1", "cat", "/data.txt"]),
        "data\n"
    );
    assert_eq!(inspect(&d, "out:1")["Config"]["Labels"]["team"], "infra");
    // --platform other than the host's is refused clearly, also when the context is far
    // larger than a socket buffer (the daemon reads it all before it answers)
    let big = tempfile::tempdir().unwrap();
    std::fs::write(big.path().join("big.bin"), vec![7u8; 16 << 20]).unwrap();
    let o = d.berth(&[
        "build",
        "--platform",
        "linux/s390x",
        "-f",
        df.to_str().unwrap(),
        big.path().to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("only for the host platform"),
        "{}",
        stderr(&o)
    );
    // a Dockerfile on stdin with no context
    let dfile = d.env.dir().join("stdin.Dockerfile");
    std::fs::write(&dfile, "FROM busybox\nENV FROM_STDIN=1\n").unwrap();
    let o = d.berth_stdin(&["build", "-q", "-t", "stdin:1", "-"], Some(&dfile));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        inspect(&d, "stdin:1")["Config"]["Env"]
            .as_array()
            .unwrap()
            .contains(&Value::from("FROM_STDIN=1"))
    );
    let iid = d.env.dir().join("iid");
    build(
        &d,
        &[
            "--iidfile",
            iid.to_str().unwrap(),
            ctx.path().to_str().unwrap(),
            "-f",
            df.to_str().unwrap(),
        ],
    );
    assert!(
        std::fs::read_to_string(&iid)
            .unwrap()
            .starts_with("sha256:")
    );
}

#[test]
fn independent_stages_build_in_parallel_sharing_a_cache_mount() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let ctx = tempfile::tempdir().unwrap();
    // each stage waits (up to 20 s) for the other's marker in a shared cache mount: a
    // sequential build would fail the first stage
    let wait = |me: &str, other: &str| {
        format!(
            "RUN --mount=type=cache,target=/shared,id=sync touch /shared/{me} && i=0; while [ ! -e /shared/{other} ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done; test -e /shared/{other} && echo {me} saw {other} > /{me}.txt"
        )
    };
    write(
        ctx.path(),
        "Dockerfile",
        &format!(
            "FROM busybox AS a\n{}\nFROM busybox AS b\n{}\nFROM busybox\nCOPY --from=a /a.txt /\nCOPY --from=b /b.txt /\nCMD [\"cat\", \"/a.txt\", \"/b.txt\"]\n",
            wait("a", "b"),
            wait("b", "a")
        ),
    );
    build(&d, &["-t", "par:1", ctx.path().to_str().unwrap()]);
    assert_eq!(d.ok(&["run", "--rm", "par:1"]), "a saw b\nb saw a\n");
    // the cache mount persists across builds (and is not part of any layer)
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=cache,target=/shared,id=sync ls /shared > /listing\n",
    );
    build(&d, &["-t", "par:2", ctx.path().to_str().unwrap()]);
    assert_eq!(d.ok(&["run", "--rm", "par:2", "cat", "/listing"]), "a\nb\n");
    let o = d.berth(&["run", "--rm", "par:2", "ls", "/shared"]);
    assert_eq!(stdout(&o), "", "cache mount content leaked into the image");
    assert_no_build_leftovers(&d);
}

#[test]
fn run_network_add_archives_and_heredocs() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let ctx = tempfile::tempdir().unwrap();
    // an archive ADD extracts
    let src = ctx.path().join("payload");
    write(&src, "inner/one.txt", "one\n");
    let st = std::process::Command::new("tar")
        .args([
            "-czf",
            ctx.path().join("payload.tar.gz").to_str().unwrap(),
            "-C",
            src.to_str().unwrap(),
            "inner",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nADD payload.tar.gz /opt/\nCOPY <<EOF /etc/greeting\nhello from a heredoc\nEOF\nRUN <<EOT\nset -e\necho line1 > /heredoc-run\necho line2 >> /heredoc-run\nEOT\nRUN cat /proc/net/dev | grep -c : > /ifaces\nRUN --network=host cat /proc/net/dev | grep -c : > /host-ifaces\n",
    );
    write(ctx.path(), ".dockerignore", "payload\n");
    build(&d, &["-t", "misc:1", ctx.path().to_str().unwrap()]);
    let out = d.ok(&[
        "run",
        "--rm",
        "misc:1",
        "cat",
        "/opt/inner/one.txt",
        "/etc/greeting",
        "/heredoc-run",
        "/ifaces",
    ]);
    assert_eq!(out, "one\nhello from a heredoc\nline1\nline2\n1\n");
    // --network=host sees the host's interfaces (more than lo)
    let host: usize = d
        .ok(&["run", "--rm", "misc:1", "cat", "/host-ifaces"])
        .trim()
        .parse()
        .unwrap();
    assert!(host > 1, "host network has {host} interfaces");
    // ADD of a URL fails clearly (no network here)
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nADD http://berth-unreachable.invalid/file.tar /x\n",
    );
    let o = d.berth(&["build", "--progress", "plain", ctx.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("failed to fetch http://berth-unreachable.invalid/file.tar"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn dockerfile_specific_ignore_file_chmod_and_numeric_chown() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "sub/app.Dockerfile",
        "FROM busybox\nCOPY --chmod=751 --chown=1234:5678 run.sh /run.sh\nCOPY . /ctx/\n",
    );
    write(ctx.path(), "sub/app.Dockerfile.dockerignore", "skip.me\n");
    // the general ignore file is not used when a Dockerfile-specific one exists
    write(ctx.path(), ".dockerignore", "run.sh\n");
    write(ctx.path(), "run.sh", "#!/bin/sh\necho run\n");
    write(ctx.path(), "skip.me", "ignored\n");
    write(ctx.path(), "keep.me", "kept\n");
    let df = ctx.path().join("sub/app.Dockerfile");
    build(
        &d,
        &[
            "-f",
            df.to_str().unwrap(),
            "-t",
            "ign:1",
            ctx.path().to_str().unwrap(),
        ],
    );
    let out = d.ok(&[
        "run",
        "--rm",
        "ign:1",
        "stat",
        "-c",
        "%a %u:%g %n",
        "/run.sh",
        "/ctx/keep.me",
    ]);
    assert_eq!(out, "751 1234:5678 /run.sh\n644 0:0 /ctx/keep.me\n");
    let o = d.berth(&["run", "--rm", "ign:1", "ls", "/ctx/skip.me"]);
    assert!(!o.status.success(), "skip.me was sent");
}

#[test]
fn missing_base_image_is_pulled_and_pull_refreshes() {
    use berth_testkit::{Flavor, Registry};
    let reg = Registry::start(Flavor::Plain).unwrap();
    reg.push_busybox("lib/busybox:1").unwrap();
    let d = Daemon::start_with_config(&format!("[registries]\ninsecure = [\"{}\"]\n", reg.host()));
    let _g = Leftovers::new(&d);
    let ctx = tempfile::tempdir().unwrap();
    let base = format!("{}/lib/busybox:1", reg.host());
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM {base}\nRUN echo pulled > /p\n"),
    );
    let (_, err) = build(&d, &["-t", "pulled:1", ctx.path().to_str().unwrap()]);
    assert!(err.contains(&format!("Pulling {base}")), "{err}");
    assert_eq!(d.ok(&["run", "--rm", "pulled:1", "cat", "/p"]), "pulled\n");
    // --pull pulls again even though the base is present; the RUN stays cached
    let (_, err) = build(
        &d,
        &["--pull", "-t", "pulled:2", ctx.path().to_str().unwrap()],
    );
    assert!(err.contains(&format!("Pulling {base}")), "{err}");
    assert_eq!(cached_steps(&err), 1, "{err}");
    // a base no registry has fails clearly
    write(
        ctx.path(),
        "Dockerfile",
        &format!("FROM {}/lib/nothing:1\n", reg.host()),
    );
    let o = d.berth(&["build", "--progress", "plain", ctx.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("pull access denied"), "{}", stderr(&o));
}

/// docker's scripts pass `--rm`, `--force-rm` and `--disable-content-trust`: accepted (Berth
/// keeps no intermediate containers either way); `--rm=false` is refused with why.
#[test]
fn docker_script_flags_are_accepted() {
    let d = Daemon::start();
    let _g = Leftovers::new(&d);
    d.load_busybox();
    let ctx = tempfile::tempdir().unwrap();
    write(
        ctx.path(),
        "Dockerfile",
        "FROM busybox\nRUN echo built > /f\n",
    );
    let dir = ctx.path().to_str().unwrap();
    build(
        &d,
        &[
            "--rm",
            "--force-rm",
            "--disable-content-trust",
            "-t",
            "flags:1",
            dir,
        ],
    );
    assert_eq!(
        d.ok(&["run", "--rm", "--network", "none", "flags:1", "cat", "/f"]),
        "built\n"
    );
    assert_eq!(d.ok(&["ps", "-aq"]), "", "no intermediate container left");
    let o = d.berth(&["build", "--rm=false", dir]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--rm=false is not supported"),
        "{}",
        stderr(&o)
    );
}
