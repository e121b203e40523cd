//! Stages, ARG/ENV scoping, expansion, image config and history.

use std::collections::BTreeMap;

use berth_build::{
    Base, BuildOptions, BuildPlan, ImageConfig, Op, PlanError, Source, StagePlan, parse,
};

fn opts(args: &[(&str, &str)], target: Option<&str>) -> BuildOptions {
    BuildOptions {
        build_args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        target: target.map(str::to_string),
        ..Default::default()
    }
}

fn plan(text: &str, o: BuildOptions) -> BuildPlan {
    BuildPlan::new(&parse(text).unwrap(), o).unwrap_or_else(|e| panic!("plan failed: {e}"))
}

/// Plans every needed stage; external images get `base`.
fn steps(text: &str, o: BuildOptions, base: &ImageConfig) -> Vec<StagePlan> {
    let p = plan(text, o);
    let mut f = |_: &str| Ok::<_, String>(base.clone());
    p.plan_all(&mut f)
        .unwrap_or_else(|e| panic!("steps failed: {e}"))
}

fn node_base() -> ImageConfig {
    ImageConfig {
        env: vec![
            "PATH=/usr/local/bin:/usr/bin:/bin".into(),
            "NODE_VERSION=20.11.0".into(),
        ],
        cmd: Some(vec!["node".into()]),
        entrypoint: Some(vec!["docker-entrypoint.sh".into()]),
        ..Default::default()
    }
}

#[test]
fn node_app_config_and_history() {
    let text = "FROM node:20\nUSER node\nWORKDIR /home/node/code\nCOPY --chown=node:node package*.json .\nRUN npm ci\nCOPY --chown=node . .\nEXPOSE 8080\nCMD [\"node\", \"index.js\"]\n";
    let plans = steps(text, BuildOptions::default(), &node_base());
    assert_eq!(plans.len(), 1);
    let s = &plans[0];
    assert_eq!(s.steps.len(), 7);
    let c = &s.config;
    assert_eq!(c.user, "node");
    assert_eq!(c.working_dir, "/home/node/code");
    assert_eq!(
        c.cmd,
        Some(vec!["node".to_string(), "index.js".to_string()])
    );
    assert_eq!(c.entrypoint, Some(vec!["docker-entrypoint.sh".to_string()]));
    assert!(c.exposed_ports.contains_key("8080/tcp"));
    assert_eq!(c.env, node_base().env);

    let h: Vec<(&str, bool)> = s
        .steps
        .iter()
        .map(|st| (st.history.created_by.as_str(), st.history.empty_layer))
        .collect();
    assert_eq!(h[0], ("/bin/sh -c #(nop)  USER node", true));
    assert_eq!(h[1], ("/bin/sh -c #(nop) WORKDIR /home/node/code", true));
    assert!(!h[2].1);
    assert_eq!(h[3], ("/bin/sh -c npm ci", false));
    assert_eq!(h[5], ("/bin/sh -c #(nop)  EXPOSE 8080", true));
    assert_eq!(
        h[6],
        ("/bin/sh -c #(nop)  CMD [\"node\" \"index.js\"]", true)
    );

    match &s.steps[2].op {
        Op::Copy(c) => {
            assert_eq!(c.sources, vec!["package*.json"]);
            assert_eq!(c.dest_resolved, "/home/node/code/");
            assert_eq!(
                c.chown
                    .as_ref()
                    .map(|x| (x.user.as_str(), x.group.as_deref())),
                Some(("node", Some("node")))
            );
            assert_eq!(c.from, None);
        }
        other => panic!("not a copy: {other:?}"),
    }
    match &s.steps[3].op {
        Op::Run {
            argv,
            env,
            working_dir,
            user,
            ..
        } => {
            assert_eq!(
                argv,
                &vec![
                    "/bin/sh".to_string(),
                    "-c".to_string(),
                    "npm ci".to_string()
                ]
            );
            assert_eq!(working_dir, "/home/node/code");
            assert_eq!(user, "node");
            assert_eq!(env, &node_base().env);
        }
        other => panic!("not a run: {other:?}"),
    }
    let hist = s.steps[2].copy_created_by("multi", "abc").unwrap();
    assert_eq!(hist, "/bin/sh -c #(nop) COPY multi:abc in . ");
}

#[test]
fn arg_before_from_only_in_from_unless_redeclared() {
    let text = "ARG VERSION=3.19\nARG OTHER=o\nFROM alpine:${VERSION}\nRUN echo $VERSION\nLABEL v=\"$VERSION\" o=\"$OTHER\"\nARG VERSION\nLABEL w=$VERSION\n";
    let p = plan(text, BuildOptions::default());
    assert_eq!(p.stages[0].base, Base::Image("alpine:3.19".into()));
    let s = &p.stage_steps(0, &ImageConfig::default()).unwrap();
    let labels = &s.config.labels;
    assert_eq!(labels["v"], "");
    assert_eq!(labels["o"], "");
    assert_eq!(labels["w"], "3.19");
    // the RUN before the redeclaration saw no build arg
    assert!(s.steps[0].used_args.is_empty());
}

#[test]
fn build_args_override_defaults_and_env_wins() {
    let text =
        "ARG V=1\nFROM scratch\nARG V\nARG W=w\nLABEL a=$V b=$W\nENV W=env\nLABEL c=$W\nRUN echo\n";
    let plans = steps(
        text,
        opts(&[("V", "9"), ("W", "x")], None),
        &ImageConfig::default(),
    );
    let s = &plans[0];
    assert_eq!(s.config.labels["a"], "9");
    assert_eq!(s.config.labels["b"], "x");
    assert_eq!(s.config.labels["c"], "env");
    // the LABEL step used both args
    let label = &s.steps[2];
    assert_eq!(
        label.used_args,
        BTreeMap::from([
            ("V".to_string(), "9".to_string()),
            ("W".to_string(), "x".to_string())
        ])
    );
    // RUN sees V as a build arg, W is shadowed by ENV
    let run = s.steps.last().unwrap();
    assert_eq!(
        run.used_args,
        BTreeMap::from([("V".to_string(), "9".to_string())])
    );
    assert_eq!(run.history.created_by, "|1 V=9 /bin/sh -c echo");
    match &run.op {
        Op::Run { env, .. } => assert_eq!(env, &vec!["W=env".to_string(), "V=9".to_string()]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unused_build_args_are_reported() {
    let p = plan(
        "ARG A\nFROM scratch\nARG B\n",
        opts(
            &[("A", "1"), ("B", "2"), ("C", "3"), ("HTTP_PROXY", "x")],
            None,
        ),
    );
    assert_eq!(p.unused_build_args(), vec!["C".to_string()]);
}

#[test]
fn predefined_platform_and_proxy_args() {
    let host = berth_build::Platform::host();
    let text = "FROM scratch\nARG TARGETARCH\nARG TARGETPLATFORM\nLABEL arch=$TARGETARCH p=$TARGETPLATFORM nodecl=$BUILDOS\nRUN true\n";
    let plans = steps(
        text,
        opts(&[("http_proxy", "http://proxy:3128")], None),
        &ImageConfig::default(),
    );
    let s = &plans[0];
    assert_eq!(s.config.labels["arch"], host.architecture);
    assert_eq!(s.config.labels["p"], host.to_string());
    assert_eq!(s.config.labels["nodecl"], "");
    match &s.steps.last().unwrap().op {
        Op::Run { env, .. } => assert!(
            env.contains(&"http_proxy=http://proxy:3128".to_string()),
            "{env:?}"
        ),
        other => panic!("{other:?}"),
    }
    // proxy values stay out of history
    assert!(!s.steps.last().unwrap().history.created_by.contains("proxy"));
    // BUILDPLATFORM is usable in FROM --platform
    let p = plan(
        "FROM --platform=$BUILDPLATFORM scratch\n",
        BuildOptions::default(),
    );
    assert_eq!(
        p.stages[0].platform.as_deref(),
        Some(host.to_string().as_str())
    );
}

#[test]
fn foreign_platform_is_a_clear_error() {
    let e = BuildPlan::new(
        &parse("FROM --platform=linux/s390x alpine\n").unwrap(),
        BuildOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, PlanError::Platform { line: 1, .. }), "{e}");
    assert!(e.to_string().contains("linux/s390x"), "{e}");
}

#[test]
fn env_expansion_uses_values_before_the_instruction() {
    let text = "FROM base\nENV A=1\nENV A=2 B=$A\nENV PATH=/opt/bin:$PATH\nWORKDIR $A\nWORKDIR sub\nUSER ${USERNAME:-app}\n";
    let base = ImageConfig {
        env: vec!["PATH=/bin".into()],
        ..Default::default()
    };
    let plans = steps(text, BuildOptions::default(), &base);
    let c = &plans[0].config;
    assert_eq!(c.env, vec!["PATH=/opt/bin:/bin", "A=2", "B=1"]);
    assert_eq!(c.working_dir, "/2/sub");
    assert_eq!(c.user, "app");
    assert_eq!(
        plans[0].steps[1].history.created_by,
        "/bin/sh -c #(nop)  ENV A=2 B=1"
    );
}

#[test]
fn run_cmd_entrypoint_are_not_expanded() {
    let text = "FROM scratch\nENV X=1\nRUN echo $X\nCMD echo $X\nENTRYPOINT [\"/bin/sh\", \"-c\", \"echo $X\"]\n";
    let plans = steps(text, BuildOptions::default(), &ImageConfig::default());
    let c = &plans[0].config;
    assert_eq!(
        c.entrypoint,
        Some(vec!["/bin/sh".into(), "-c".into(), "echo $X".into()])
    );
    // ENTRYPOINT after CMD in the same stage keeps CMD
    assert_eq!(
        c.cmd,
        Some(vec!["/bin/sh".into(), "-c".into(), "echo $X".into()])
    );
    match &plans[0].steps[1].op {
        Op::Run { argv, .. } => assert_eq!(argv[2], "echo $X"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn entrypoint_resets_inherited_cmd() {
    let plans = steps(
        "FROM node:20\nENTRYPOINT [\"/app\"]\n",
        BuildOptions::default(),
        &node_base(),
    );
    assert_eq!(plans[0].config.cmd, None);
    assert_eq!(plans[0].config.entrypoint, Some(vec!["/app".to_string()]));
}

#[test]
fn shell_changes_shell_form() {
    let text = "FROM scratch\nSHELL [\"/bin/bash\", \"-c\"]\nRUN echo hi\nCMD run\n";
    let plans = steps(text, BuildOptions::default(), &ImageConfig::default());
    let s = &plans[0];
    assert_eq!(s.config.shell, Some(vec!["/bin/bash".into(), "-c".into()]));
    assert_eq!(s.steps[1].history.created_by, "/bin/bash -c echo hi");
    assert_eq!(
        s.config.cmd,
        Some(vec!["/bin/bash".into(), "-c".into(), "run".into()])
    );
    assert_eq!(
        s.steps[2].history.created_by,
        "/bin/bash -c #(nop)  CMD [\"/bin/bash\" \"-c\" \"run\"]"
    );
}

#[test]
fn metadata_instructions_fill_the_config() {
    let text = "FROM scratch\nARG P=8080\nEXPOSE $P 53/udp 9000-9001\nVOLUME [\"/data\", \"/logs\"]\nLABEL org.opencontainers.image.title=\"my app\" version=1\nSTOPSIGNAL SIGQUIT\nHEALTHCHECK --interval=30s --timeout=3s --start-period=1m --retries=3 CMD curl -f http://localhost/ || exit 1\nONBUILD RUN echo child\nMAINTAINER Jane\n";
    let plans = steps(text, BuildOptions::default(), &ImageConfig::default());
    let s = &plans[0];
    let c = &s.config;
    let ports: Vec<&str> = c.exposed_ports.keys().map(String::as_str).collect();
    assert_eq!(ports, vec!["53/udp", "8080/tcp", "9000/tcp", "9001/tcp"]);
    let vols: Vec<&str> = c.volumes.keys().map(String::as_str).collect();
    assert_eq!(vols, vec!["/data", "/logs"]);
    assert_eq!(c.labels["org.opencontainers.image.title"], "my app");
    assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
    let h = c.healthcheck.as_ref().unwrap();
    assert_eq!(
        h.test,
        vec!["CMD-SHELL", "curl -f http://localhost/ || exit 1"]
    );
    assert_eq!(
        (h.interval, h.timeout, h.start_period, h.retries),
        (30_000_000_000, 3_000_000_000, 60_000_000_000, 3)
    );
    assert_eq!(c.on_build, vec!["RUN echo child"]);
    assert_eq!(s.author.as_deref(), Some("Jane"));
    let hist: Vec<&str> = s
        .steps
        .iter()
        .map(|x| x.history.created_by.as_str())
        .collect();
    assert_eq!(hist[1], "/bin/sh -c #(nop)  EXPOSE 8080 53/udp 9000-9001");
    assert_eq!(hist[2], "/bin/sh -c #(nop)  VOLUME [/data /logs]");
    assert_eq!(
        hist[5],
        "/bin/sh -c #(nop)  HEALTHCHECK &{[\"CMD-SHELL\" \"curl -f http://localhost/ || exit 1\"] \"30s\" \"3s\" \"1m0s\" \"0s\" '\\x03'}"
    );
    assert_eq!(hist[6], "/bin/sh -c #(nop)  ONBUILD RUN echo child");
    assert!(s.steps.iter().all(|x| x.history.empty_layer));
    // config serialises with Docker's field names
    let j = serde_json::to_value(c).unwrap();
    assert_eq!(j["ExposedPorts"]["8080/tcp"], serde_json::json!({}));
    assert_eq!(j["Healthcheck"]["Interval"], 30_000_000_000i64);
    assert_eq!(j["StopSignal"], "SIGQUIT");
    assert_eq!(j["OnBuild"][0], "RUN echo child");
}

#[test]
fn healthcheck_none_and_bad_values() {
    let plans = steps(
        "FROM scratch\nHEALTHCHECK NONE\n",
        BuildOptions::default(),
        &ImageConfig::default(),
    );
    assert_eq!(
        plans[0].config.healthcheck.as_ref().unwrap().test,
        vec!["NONE"]
    );
    let p = plan(
        "FROM scratch\nHEALTHCHECK --interval=1us CMD true\n",
        BuildOptions::default(),
    );
    let e = p.stage_steps(0, &ImageConfig::default()).unwrap_err();
    assert!(e.to_string().contains("cannot be less than 1ms"), "{e}");
    let p = plan(
        "FROM scratch\nHEALTHCHECK --retries=-1 CMD true\n",
        BuildOptions::default(),
    );
    assert!(p.stage_steps(0, &ImageConfig::default()).is_err());
    let p = plan(
        "FROM scratch\nHEALTHCHECK --timeout=abc CMD true\n",
        BuildOptions::default(),
    );
    let e = p.stage_steps(0, &ImageConfig::default()).unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn invalid_values_name_the_line() {
    for (text, needle) in [
        ("FROM scratch\nEXPOSE abc\n", "invalid containerPort"),
        ("FROM scratch\nSTOPSIGNAL SIGNOPE\n", "invalid signal"),
        ("FROM scratch\nVOLUME \"\"\n", "empty string"),
        ("FROM scratch\nLABEL a=\"${X:?must set X}\"\n", "must set X"),
        ("FROM scratch\nCOPY --chmod=999 a /b\n", "invalid chmod"),
        ("FROM scratch\nCOPY a b /c\n", "must be a directory"),
        (
            "FROM scratch\nRUN --network=bridge2 true\n",
            "unsupported network mode",
        ),
        (
            "FROM scratch\nRUN --mount=type=nfs,target=/x true\n",
            "not supported",
        ),
        (
            "FROM scratch\nRUN --mount=type=cache true\n",
            "target is required",
        ),
    ] {
        let p = plan(text, BuildOptions::default());
        let e = p
            .stage_steps(0, &ImageConfig::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{text}: {e}");
        assert!(e.contains(needle), "{text}: {e}");
    }
}

#[test]
fn run_mounts_and_network_are_parsed() {
    let text = "FROM scratch\nARG CACHE=/root/.npm\nRUN --mount=type=cache,target=$CACHE,sharing=locked --network=none npm ci\n";
    let plans = steps(text, BuildOptions::default(), &ImageConfig::default());
    match &plans[0].steps[1].op {
        Op::Run {
            mounts, network, ..
        } => {
            assert_eq!(mounts.len(), 1);
            assert_eq!(mounts[0].kind, "cache");
            assert_eq!(mounts[0].target, "/root/.npm");
            assert_eq!(mounts[0].sharing.as_deref(), Some("locked"));
            assert_eq!(network.as_deref(), Some("none"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn heredocs_in_run_and_copy() {
    let text = "FROM scratch\nENV NAME=world\nRUN <<EOF\necho hello\nEOF\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\nRUN cat <<A > /x\n$NAME\nA\nCOPY <<EOT /greeting\nhello \"$NAME\"\nEOT\nCOPY <<'EOT' /raw\n$NAME\nEOT\n";
    let plans = steps(text, BuildOptions::default(), &ImageConfig::default());
    let s = &plans[0].steps;
    match &s[1].op {
        Op::Run { argv, script, .. } => {
            assert_eq!(
                argv,
                &vec![
                    "/bin/sh".to_string(),
                    "-c".to_string(),
                    "echo hello\n".to_string()
                ]
            );
            assert!(script.is_none());
        }
        other => panic!("{other:?}"),
    }
    match &s[2].op {
        Op::Run { script, argv, .. } => {
            assert_eq!(
                script.as_deref(),
                Some("#!/usr/bin/env python3\nprint(1)\n")
            );
            assert!(argv.is_empty());
        }
        other => panic!("{other:?}"),
    }
    match &s[3].op {
        Op::Run { argv, .. } => assert_eq!(argv[2], "cat <<A > /x\n$NAME\nA"),
        other => panic!("{other:?}"),
    }
    match &s[4].op {
        Op::Copy(c) => {
            assert!(c.sources.is_empty());
            assert_eq!(
                c.heredocs,
                vec![("EOT".to_string(), "hello \"world\"\n".to_string())]
            );
            assert_eq!(c.dest_resolved, "/greeting");
        }
        other => panic!("{other:?}"),
    }
    match &s[5].op {
        Op::Copy(c) => assert_eq!(c.heredocs, vec![("EOT".to_string(), "$NAME\n".to_string())]),
        other => panic!("{other:?}"),
    }
}

const MULTI: &str = "FROM node:20 AS deps\nRUN npm ci\n\nFROM node:20 AS assets\nRUN build-assets\n\nFROM deps AS build\nCOPY --from=assets /out /app/public\nRUN npm run build\n\nFROM alpine:3.19 AS unused\nRUN true\n\nFROM nginx:latest\nCOPY --from=build /app/dist /usr/share/nginx/html\nCOPY --from=busybox:latest /bin/busybox /bin/\nCOPY --from=1 /x /y\n";

#[test]
fn stages_dependencies_and_levels() {
    let p = plan(MULTI, BuildOptions::default());
    assert_eq!(p.stages.len(), 5);
    assert_eq!(p.target, 4);
    assert_eq!(p.stages[2].base, Base::Stage(0));
    assert_eq!(
        p.stages[2].deps.iter().copied().collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(
        p.stages[4].deps.iter().copied().collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(p.stages[4].images.contains("busybox:latest"));
    assert_eq!(p.needed, vec![0, 1, 2, 4]);
    assert_eq!(p.levels, vec![vec![0, 1], vec![2], vec![4]]);
    let ext: Vec<String> = p.external_images().into_iter().collect();
    assert_eq!(ext, vec!["busybox:latest", "nginx:latest", "node:20"]);
}

#[test]
fn target_prunes_stages() {
    let p = plan(MULTI, opts(&[], Some("build")));
    assert_eq!(p.target, 2);
    assert_eq!(p.needed, vec![0, 1, 2]);
    let p = plan(MULTI, opts(&[], Some("Deps")));
    assert_eq!(p.needed, vec![0]);
    let e = BuildPlan::new(&parse(MULTI).unwrap(), opts(&[], Some("nope"))).unwrap_err();
    assert_eq!(e, PlanError::TargetNotFound("nope".into()));
}

#[test]
fn stage_config_flows_to_dependent_stage_and_copy_from() {
    let plans = steps(MULTI, BuildOptions::default(), &node_base());
    assert_eq!(
        plans.iter().map(|p| p.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 4]
    );
    let last = plans.last().unwrap();
    let froms: Vec<Option<Source>> = last
        .steps
        .iter()
        .map(|s| match &s.op {
            Op::Copy(c) => c.from.clone(),
            _ => None,
        })
        .collect();
    assert_eq!(
        froms,
        vec![
            Some(Source::Stage(2)),
            Some(Source::Image("busybox:latest".into())),
            Some(Source::Stage(1))
        ]
    );
}

#[test]
fn stage_errors() {
    let e = |t: &str| BuildPlan::new(&parse(t).unwrap(), BuildOptions::default()).unwrap_err();
    assert!(matches!(
        e("FROM a AS x\nFROM b AS x\n"),
        PlanError::DuplicateStage { line: 2, .. }
    ));
    assert!(matches!(
        e("FROM a AS 1x\n"),
        PlanError::InvalidStageName { line: 1, .. }
    ));
    assert!(matches!(
        e("RUN x\nFROM a\n"),
        PlanError::BeforeFrom { line: 1, .. }
    ));
    assert_eq!(e("ARG A\n"), PlanError::NoStages);
    assert!(
        e("FROM a\nCOPY --from=0 /x /y\n")
            .to_string()
            .contains("refers to current")
    );
    assert!(
        e("ARG B\nFROM ${B}\n")
            .to_string()
            .contains("should not be blank")
    );
}

#[test]
fn copy_from_expands_args() {
    let p = plan(
        "FROM a AS one\nFROM b\nARG SRC=one\nCOPY --from=$SRC /x /y\n",
        BuildOptions::default(),
    );
    assert_eq!(p.needed, vec![0, 1]);
}

#[test]
fn onbuild_triggers_of_the_base_run_first() {
    let base = ImageConfig {
        on_build: vec!["ENV FROM_PARENT=1".into(), "COPY . /app/src".into()],
        ..Default::default()
    };
    let plans = steps("FROM parent\nRUN make\n", BuildOptions::default(), &base);
    let s = &plans[0];
    assert_eq!(s.steps.len(), 3);
    assert!(s.steps[0].from_onbuild && s.steps[1].from_onbuild && !s.steps[2].from_onbuild);
    assert_eq!(s.config.env_get("FROM_PARENT"), Some("1"));
    assert!(s.config.on_build.is_empty());
}

#[test]
fn dest_resolution_against_workdir() {
    let text = "FROM scratch\nCOPY a rel\nWORKDIR /app\nCOPY a rel\nCOPY a b ./\nCOPY a /abs/\n";
    let plans = steps(text, BuildOptions::default(), &ImageConfig::default());
    let d: Vec<String> = plans[0]
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::Copy(c) => Some(c.dest_resolved.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(d, vec!["/rel", "/app/rel", "/app/", "/abs/"]);
}

#[test]
fn progress_labels_like_buildkit() {
    let p = plan(MULTI, BuildOptions::default());
    assert_eq!(
        p.progress_label(2, 1, 2, "RUN npm run build"),
        "[build 2/3] RUN npm run build"
    );
    assert_eq!(
        p.progress_label(4, 0, 3, "FROM nginx:latest"),
        "[stage-4 1/4] FROM nginx:latest"
    );
    let single = plan("FROM a\nRUN x\n", BuildOptions::default());
    assert_eq!(single.progress_label(0, 1, 1, "RUN x"), "[2/2] RUN x");
}

#[test]
fn boolean_flags() {
    let text = "FROM scratch\nCOPY --link a /a\nCOPY --link=false a /b\nCOPY --link=true --parents a /c/\n";
    let plans = steps(text, BuildOptions::default(), &ImageConfig::default());
    let links: Vec<(bool, bool)> = plans[0]
        .steps
        .iter()
        .filter_map(|s| match &s.op {
            Op::Copy(c) => Some((c.link, c.parents)),
            _ => None,
        })
        .collect();
    assert_eq!(links, vec![(true, false), (false, false), (true, true)]);
    let p = plan(
        "FROM scratch\nCOPY --link=maybe a /a\n",
        BuildOptions::default(),
    );
    let e = p
        .stage_steps(0, &ImageConfig::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("--link"), "{e}");
}

#[test]
fn run_mount_from_resolves_stages_and_images() {
    let text = "FROM a AS tools\nFROM b\nRUN --mount=type=bind,from=tools,source=/bin,target=/t --mount=type=bind,from=busybox,target=/bb ls /t\n";
    let p = plan(text, BuildOptions::default());
    assert_eq!(p.needed, vec![0, 1]);
    assert!(p.stages[1].images.contains("busybox"));
    let s = p.stage_steps(1, &ImageConfig::default()).unwrap();
    match &s.steps[0].op {
        Op::Run { mounts, .. } => {
            assert_eq!(mounts[0].from_source, Some(Source::Stage(0)));
            assert_eq!(mounts[0].source.as_deref(), Some("/bin"));
            assert_eq!(mounts[1].from_source, Some(Source::Image("busybox".into())));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn workdir_is_an_operation() {
    let plans = steps(
        "FROM scratch\nWORKDIR /app\nWORKDIR ../srv/./x\n",
        BuildOptions::default(),
        &ImageConfig::default(),
    );
    let ops: Vec<&Op> = plans[0].steps.iter().map(|s| &s.op).collect();
    assert_eq!(
        ops,
        vec![
            &Op::Workdir {
                path: "/app".into()
            },
            &Op::Workdir {
                path: "/srv/x".into()
            }
        ]
    );
}
