//! Parser behaviour: directives, continuations, heredocs, JSON vs shell form, flags, errors.

use berth_build::{CommandLine, HealthcheckArgs, Kind, ParseErrorKind, parse};

fn kinds(text: &str) -> Vec<Kind> {
    parse(text)
        .unwrap_or_else(|e| panic!("parse failed: {e}\n{text}"))
        .instructions
        .into_iter()
        .map(|i| i.kind)
        .collect()
}

fn err_of(text: &str) -> (usize, ParseErrorKind, String) {
    let e = parse(text).expect_err("expected a parse error");
    (e.line, e.kind.clone(), e.to_string())
}

fn shell(s: &str) -> CommandLine {
    CommandLine::Shell(s.to_string())
}

fn exec(v: &[&str]) -> CommandLine {
    CommandLine::Exec(v.iter().map(|s| s.to_string()).collect())
}

#[test]
fn instructions_are_case_insensitive() {
    let k = kinds("from alpine\nRuN echo hi\ncmd [\"a\"]\n");
    assert_eq!(
        k,
        vec![
            Kind::From {
                image: "alpine".into(),
                name: None
            },
            Kind::Run {
                cmd: shell("echo hi")
            },
            Kind::Cmd { cmd: exec(&["a"]) },
        ]
    );
}

#[test]
fn from_with_stage_name_and_platform() {
    let df = parse("FROM --platform=linux/amd64 node:20 As Builder\n").unwrap();
    let i = &df.instructions[0];
    assert_eq!(
        i.kind,
        Kind::From {
            image: "node:20".into(),
            name: Some("builder".into())
        }
    );
    assert_eq!(i.flag("platform"), Some("linux/amd64"));
}

#[test]
fn from_argument_count_errors() {
    let (line, kind, msg) = err_of("\n\nFROM a b\n");
    assert_eq!(line, 3);
    assert_eq!(kind, ParseErrorKind::FromArguments);
    assert!(msg.contains("line 3"), "{msg}");
    assert_eq!(err_of("FROM\n").1, ParseErrorKind::FromArguments);
    assert_eq!(err_of("FROM a TO b\n").1, ParseErrorKind::FromArguments);
}

#[test]
fn directives_escape_and_syntax() {
    let df =
        parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM x\nRUN echo a `\n  b\n").unwrap();
    assert_eq!(df.directives.escape, '`');
    assert_eq!(df.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(
        df.instructions[1].kind,
        Kind::Run {
            cmd: shell("echo a   b")
        }
    );
}

#[test]
fn check_directive_is_recorded_and_ignored() {
    let df = parse("# check=skip=all\nFROM x\n").unwrap();
    assert_eq!(df.directives.check.as_deref(), Some("skip=all"));
    assert_eq!(df.instructions.len(), 1);
}

#[test]
fn directives_only_at_the_top() {
    // after a comment that is not a directive, `# escape=` is just a comment
    let df = parse("# hello\n# escape=`\nFROM x\nRUN a \\\n b\n").unwrap();
    assert_eq!(df.directives.escape, '\\');
    assert_eq!(df.instructions[1].kind, Kind::Run { cmd: shell("a  b") });
    // after an instruction too
    let df = parse("FROM x\n# escape=`\n").unwrap();
    assert_eq!(df.directives.escape, '\\');
}

#[test]
fn directive_errors() {
    let (line, kind, _) = err_of("# escape=x\nFROM a\n");
    assert_eq!(line, 1);
    assert_eq!(kind, ParseErrorKind::InvalidEscape("x".into()));
    let (line, kind, _) = err_of("# escape=`\n# escape=\\\nFROM a\n");
    assert_eq!(line, 2);
    assert_eq!(kind, ParseErrorKind::DuplicateDirective("escape".into()));
}

#[test]
fn continuation_drops_comments_and_empty_lines() {
    let text = "FROM x\nRUN apt-get update && \\\n# a comment\n\n    apt-get install -y \\\n   \n    curl\n";
    let k = kinds(text);
    assert_eq!(
        k[1],
        Kind::Run {
            cmd: shell("apt-get update &&     apt-get install -y     curl")
        }
    );
}

#[test]
fn whitespace_after_escape_still_continues() {
    let k = kinds("FROM x\nRUN echo a \\   \n b\n");
    assert_eq!(
        k[1],
        Kind::Run {
            cmd: shell("echo a  b")
        }
    );
}

#[test]
fn line_numbers_track_continuations() {
    let df = parse("FROM x\n\nRUN a \\\n b \\\n c\nUSER u\n").unwrap();
    assert_eq!(df.instructions[1].line, 3);
    assert_eq!(df.instructions[1].end_line, 5);
    assert_eq!(df.instructions[2].line, 6);
}

#[test]
fn crlf_and_bom() {
    let k = kinds("\u{feff}FROM x\r\nRUN a \\\r\n b\r\n");
    assert_eq!(k[1], Kind::Run { cmd: shell("a  b") });
}

#[test]
fn json_form_only_for_string_arrays() {
    let k = kinds(
        "FROM x\nCMD [\"node\", \"index.js\"]\nCMD [node]\nENTRYPOINT [\"a\" \"b\"]\nRUN [ \"echo\" , \"x\" ]\n",
    );
    assert_eq!(
        k[1],
        Kind::Cmd {
            cmd: exec(&["node", "index.js"])
        }
    );
    assert_eq!(
        k[2],
        Kind::Cmd {
            cmd: shell("[node]")
        }
    );
    assert_eq!(
        k[3],
        Kind::Entrypoint {
            cmd: shell("[\"a\" \"b\"]")
        }
    );
    assert_eq!(
        k[4],
        Kind::Run {
            cmd: exec(&["echo", "x"])
        }
    );
    let (line, kind, msg) = err_of("FROM x\nCMD [\"a\", 1]\n");
    assert_eq!(line, 2);
    assert_eq!(kind, ParseErrorKind::JsonNotStrings);
    assert!(msg.contains("strings only"), "{msg}");
}

#[test]
fn shell_requires_json() {
    let (line, kind, _) = err_of("FROM x\nSHELL /bin/bash -c\n");
    assert_eq!(
        (line, kind),
        (2, ParseErrorKind::JsonRequired("SHELL".into()))
    );
    let k = kinds("FROM x\nSHELL [\"/bin/bash\", \"-euo\", \"pipefail\", \"-c\"]\n");
    assert_eq!(
        k[1],
        Kind::Shell {
            shell: vec![
                "/bin/bash".into(),
                "-euo".into(),
                "pipefail".into(),
                "-c".into()
            ]
        }
    );
}

#[test]
fn env_both_forms() {
    let k = kinds("FROM x\nENV A 1 2  3\nENV B=2 C=\"x y\" D=a\\ b\n");
    assert_eq!(
        k[1],
        Kind::Env {
            pairs: vec![("A".into(), "1 2  3".into())]
        }
    );
    assert_eq!(
        k[2],
        Kind::Env {
            pairs: vec![
                ("B".into(), "2".into()),
                ("C".into(), "\"x y\"".into()),
                ("D".into(), "a\\ b".into())
            ]
        }
    );
    assert_eq!(
        err_of("FROM x\nENV A\n").1,
        ParseErrorKind::TwoArguments("ENV".into())
    );
    assert_eq!(
        err_of("FROM x\nENV A=1 B\n").1,
        ParseErrorKind::MissingEquals("B".into())
    );
    assert_eq!(
        err_of("FROM x\nENV\n").1,
        ParseErrorKind::AtLeastOneArgument("ENV".into())
    );
}

#[test]
fn arg_with_and_without_default() {
    let k = kinds("ARG A\nARG B=1 C\nFROM x\n");
    assert_eq!(
        k[0],
        Kind::Arg {
            args: vec![("A".into(), None)]
        }
    );
    assert_eq!(
        k[1],
        Kind::Arg {
            args: vec![("B".into(), Some("1".into())), ("C".into(), None)]
        }
    );
}

#[test]
fn copy_add_flags_and_sources() {
    let df = parse(
        "FROM x\nCOPY --from=build --chown=node:node --chmod=755 --link a b /dst/\nADD [\"a b\", \"/c\"]\nCOPY --from=0 /x .\n",
    )
    .unwrap();
    let c = &df.instructions[1];
    assert_eq!(
        c.kind,
        Kind::Copy {
            sources: vec!["a".into(), "b".into()],
            dest: "/dst/".into()
        }
    );
    assert_eq!(c.flag("from"), Some("build"));
    assert_eq!(c.flag("chown"), Some("node:node"));
    assert_eq!(c.flag("chmod"), Some("755"));
    assert_eq!(c.flag("link"), Some(""));
    assert_eq!(
        df.instructions[2].kind,
        Kind::Add {
            sources: vec!["a b".into()],
            dest: "/c".into()
        }
    );
    let (line, kind, msg) = err_of("FROM x\n\nCOPY onlyone\n");
    assert_eq!(line, 3);
    assert_eq!(kind, ParseErrorKind::AtLeastTwoArguments("COPY".into()));
    assert!(msg.contains("Destination could not be determined"), "{msg}");
}

#[test]
fn run_mount_and_network_flags() {
    let df = parse(
        "FROM x\nRUN --mount=type=cache,target=/root/.npm --mount=type=bind,source=a,target=/a --network=none npm ci\n",
    )
    .unwrap();
    let r = &df.instructions[1];
    assert_eq!(
        r.flag_values("mount"),
        vec![
            "type=cache,target=/root/.npm",
            "type=bind,source=a,target=/a"
        ]
    );
    assert_eq!(r.flag("network"), Some("none"));
    assert_eq!(
        r.kind,
        Kind::Run {
            cmd: shell("npm ci")
        }
    );
}

#[test]
fn flag_errors() {
    let (line, kind, _) = err_of("FROM x\nCOPY --frm=a b c\n");
    assert_eq!(line, 2);
    assert_eq!(
        kind,
        ParseErrorKind::UnknownFlag {
            instruction: "COPY".into(),
            flag: "frm".into()
        }
    );
    assert_eq!(
        err_of("FROM x\nCOPY --from a b\n").1,
        ParseErrorKind::FlagValue("from".into())
    );
    assert_eq!(
        err_of("FROM x\nCOPY --from=a --from=b c d\n").1,
        ParseErrorKind::DuplicateFlag("from".into())
    );
    assert!(matches!(
        err_of("FROM x\nENV --x=1 A=1\n").1,
        ParseErrorKind::UnknownFlag { .. }
    ));
}

#[test]
fn double_dash_ends_flags() {
    let df = parse("FROM x\nRUN -- --not-a-flag\n").unwrap();
    assert!(df.instructions[1].flags.is_empty());
    assert_eq!(
        df.instructions[1].kind,
        Kind::Run {
            cmd: shell("--not-a-flag")
        }
    );
}

#[test]
fn heredoc_run_and_copy() {
    let text = "FROM x\nRUN <<EOF\necho hi\necho $HOME\nEOF\nCOPY <<-\"END\" /etc/conf\n\tkey=value\n\tEND\nUSER x\n";
    let df = parse(text).unwrap();
    let run = &df.instructions[1];
    assert_eq!(run.heredocs.len(), 1);
    assert_eq!(run.heredocs[0].name, "EOF");
    assert_eq!(run.heredocs[0].content, "echo hi\necho $HOME\n");
    assert!(run.heredocs[0].expand);
    assert_eq!(run.line, 2);
    assert_eq!(run.end_line, 5);
    let copy = &df.instructions[2];
    assert_eq!(copy.heredocs[0].name, "END");
    assert_eq!(copy.heredocs[0].content, "key=value\n");
    assert!(!copy.heredocs[0].expand);
    assert!(copy.heredocs[0].chomp);
    assert_eq!(df.instructions[3].line, 9);
}

#[test]
fn several_heredocs_on_one_line() {
    let text = "FROM x\nRUN <<A cat /dev/stdin <<'B'\nfirst\nA\nsecond\nB\n";
    let df = parse(text).unwrap();
    let h = &df.instructions[1].heredocs;
    assert_eq!(h.len(), 2);
    assert_eq!(
        (h[0].name.as_str(), h[0].content.as_str(), h[0].expand),
        ("A", "first\n", true)
    );
    assert_eq!(
        (h[1].name.as_str(), h[1].content.as_str(), h[1].expand),
        ("B", "second\n", false)
    );
}

#[test]
fn heredoc_body_is_raw() {
    // continuation characters and comments inside a heredoc body are content
    let df = parse("FROM x\nRUN <<EOF\n# not a comment \\\nline\nEOF\n").unwrap();
    assert_eq!(
        df.instructions[1].heredocs[0].content,
        "# not a comment \\\nline\n"
    );
}

#[test]
fn unterminated_heredoc() {
    let (line, kind, msg) = err_of("FROM x\nRUN <<EOF\necho\n");
    assert_eq!(line, 2);
    assert_eq!(kind, ParseErrorKind::UnterminatedHeredoc("EOF".into()));
    assert!(msg.contains("line 2"), "{msg}");
}

#[test]
fn heredoc_not_in_other_instructions_or_json() {
    let df = parse("FROM x\nRUN [\"echo\", \"<<EOF\"]\nLABEL a=<<EOF\n").unwrap();
    assert!(df.instructions[1].heredocs.is_empty());
    assert!(df.instructions[2].heredocs.is_empty());
}

#[test]
fn healthcheck_forms() {
    let df = parse(
        "FROM x\nHEALTHCHECK --interval=5m --timeout=3s --retries=3 CMD curl -f http://localhost/ || exit 1\nHEALTHCHECK NONE\nHEALTHCHECK CMD [\"/bin/check\"]\n",
    )
    .unwrap();
    assert_eq!(
        df.instructions[1].kind,
        Kind::Healthcheck {
            check: HealthcheckArgs::Cmd(shell("curl -f http://localhost/ || exit 1"))
        }
    );
    assert_eq!(df.instructions[1].flag("interval"), Some("5m"));
    assert_eq!(
        df.instructions[2].kind,
        Kind::Healthcheck {
            check: HealthcheckArgs::None
        }
    );
    assert_eq!(
        df.instructions[3].kind,
        Kind::Healthcheck {
            check: HealthcheckArgs::Cmd(exec(&["/bin/check"]))
        }
    );
    assert_eq!(
        err_of("FROM x\nHEALTHCHECK RUN x\n").1,
        ParseErrorKind::HealthcheckType("RUN".into())
    );
    assert_eq!(
        err_of("FROM x\nHEALTHCHECK NONE x\n").1,
        ParseErrorKind::HealthcheckNoneArgs
    );
}

#[test]
fn onbuild_wraps_an_instruction() {
    let df = parse("FROM x\nONBUILD COPY --chown=a . /app\n").unwrap();
    match &df.instructions[1].kind {
        Kind::Onbuild {
            expression,
            trigger,
        } => {
            assert_eq!(expression, "COPY --chown=a . /app");
            assert_eq!(
                trigger.kind,
                Kind::Copy {
                    sources: vec![".".into()],
                    dest: "/app".into()
                }
            );
            assert_eq!(trigger.flag("chown"), Some("a"));
        }
        other => panic!("not onbuild: {other:?}"),
    }
    assert_eq!(
        err_of("FROM x\nONBUILD ONBUILD RUN x\n").1,
        ParseErrorKind::OnbuildTrigger("ONBUILD".into())
    );
    assert_eq!(
        err_of("FROM x\nONBUILD FROM y\n").1,
        ParseErrorKind::OnbuildTrigger("FROM".into())
    );
}

#[test]
fn misc_instructions() {
    let k = kinds(
        "FROM x\nWORKDIR /app\nUSER node:node\nEXPOSE 80 443/tcp  53/udp\nVOLUME /a /b\nVOLUME [\"/c\"]\nLABEL a=b \"c d\"=e\nSTOPSIGNAL SIGTERM\nMAINTAINER Jane <j@x>\n",
    );
    assert_eq!(
        k[1],
        Kind::Workdir {
            path: "/app".into()
        }
    );
    assert_eq!(
        k[2],
        Kind::User {
            user: "node:node".into()
        }
    );
    assert_eq!(
        k[3],
        Kind::Expose {
            ports: vec!["80".into(), "443/tcp".into(), "53/udp".into()]
        }
    );
    assert_eq!(
        k[4],
        Kind::Volume {
            paths: vec!["/a".into(), "/b".into()]
        }
    );
    assert_eq!(
        k[5],
        Kind::Volume {
            paths: vec!["/c".into()]
        }
    );
    assert_eq!(
        k[6],
        Kind::Label {
            pairs: vec![("a".into(), "b".into()), ("\"c d\"".into(), "e".into())]
        }
    );
    assert_eq!(
        k[7],
        Kind::Stopsignal {
            signal: "SIGTERM".into()
        }
    );
    assert_eq!(
        k[8],
        Kind::Maintainer {
            name: "Jane <j@x>".into()
        }
    );
}

#[test]
fn missing_argument_errors_name_the_line() {
    for (text, kind) in [
        (
            "FROM x\nRUN\n",
            ParseErrorKind::AtLeastOneArgument("RUN".into()),
        ),
        (
            "FROM x\nCMD\n",
            ParseErrorKind::AtLeastOneArgument("CMD".into()),
        ),
        (
            "FROM x\nWORKDIR\n",
            ParseErrorKind::ExactlyOneArgument("WORKDIR".into()),
        ),
        (
            "FROM x\nUSER\n",
            ParseErrorKind::ExactlyOneArgument("USER".into()),
        ),
        (
            "FROM x\nEXPOSE\n",
            ParseErrorKind::AtLeastOneArgument("EXPOSE".into()),
        ),
        (
            "FROM x\nARG\n",
            ParseErrorKind::AtLeastOneArgument("ARG".into()),
        ),
        (
            "FROM x\nVOLUME\n",
            ParseErrorKind::AtLeastOneArgument("VOLUME".into()),
        ),
    ] {
        let (line, k, msg) = err_of(text);
        assert_eq!(line, 2, "{text}");
        assert_eq!(k, kind, "{text}");
        assert!(
            msg.starts_with("dockerfile parse error on line 2: "),
            "{msg}"
        );
    }
}

#[test]
fn unknown_instruction() {
    let (line, kind, msg) = err_of("FROM x\n# c\nFOO bar\n");
    assert_eq!(line, 3);
    assert_eq!(kind, ParseErrorKind::UnknownInstruction("FOO".into()));
    assert_eq!(
        msg,
        "dockerfile parse error on line 3: unknown instruction: FOO"
    );
}

#[test]
fn comments_and_blank_lines_are_skipped() {
    let k = kinds("\n# comment\n   # indented comment\nFROM x\n\n\nRUN a # not a comment\n");
    assert_eq!(k.len(), 2);
    assert_eq!(
        k[1],
        Kind::Run {
            cmd: shell("a # not a comment")
        }
    );
}

#[test]
fn original_text_is_kept() {
    let df = parse("FROM x\ncopy --chown=a  a b\n").unwrap();
    assert_eq!(df.instructions[1].original, "copy --chown=a  a b");
    assert_eq!(df.instructions[1].name(), "COPY");
}
