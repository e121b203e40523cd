//! Property tests: the parser, lexer, planner and ignore matcher never panic on arbitrary input.

use berth_build::dockerignore::{PatternMatcher, read_patterns};
use berth_build::lex::Lexer;
use berth_build::{BuildOptions, BuildPlan, ImageConfig, parse};
use proptest::prelude::*;

/// A string strategy compiled once (a `&str` strategy recompiles its regex per case).
fn re(pattern: &str) -> proptest::string::RegexGeneratorStrategy<String> {
    proptest::string::string_regex(pattern).expect("regex")
}

/// Text biased towards Dockerfile syntax.
fn dockerfile_like() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("FROM ".to_string()),
        Just("RUN ".to_string()),
        Just("COPY ".to_string()),
        Just("ADD ".to_string()),
        Just("ENV ".to_string()),
        Just("ARG ".to_string()),
        Just("LABEL ".to_string()),
        Just("HEALTHCHECK ".to_string()),
        Just("ONBUILD ".to_string()),
        Just("SHELL ".to_string()),
        Just("EXPOSE ".to_string()),
        Just("WORKDIR ".to_string()),
        Just("VOLUME ".to_string()),
        Just("CMD ".to_string()),
        Just(" AS ".to_string()),
        Just("--from=".to_string()),
        Just("--mount=type=cache,target=".to_string()),
        Just("<<EOF".to_string()),
        Just("<<-'E'".to_string()),
        Just("EOF".to_string()),
        Just("\n".to_string()),
        Just("\\\n".to_string()),
        Just("`\n".to_string()),
        Just("# escape=`\n".to_string()),
        Just("# syntax=x\n".to_string()),
        Just("[\"a\", \"b\"]".to_string()),
        Just("[1]".to_string()),
        Just("${A:-x}".to_string()),
        Just("${A".to_string()),
        Just("$A".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("=".to_string()),
        Just(" ".to_string()),
        Just("\t".to_string()),
        proptest::string::string_regex("[a-z0-9./:*?-]{0,6}").expect("regex"),
        any::<char>().prop_map(|c| c.to_string()),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn parser_never_panics_on_dockerfile_like_text(text in dockerfile_like()) {
        if let Ok(df) = parse(&text)
            && let Ok(plan) = BuildPlan::new(&df, BuildOptions::default())
        {
            {
                for &s in &plan.needed {
                    let _ = plan.stage_steps(s, &ImageConfig::default());
                }
            }
        }
    }

    #[test]
    fn copy_planning_never_panics(
        sources in proptest::collection::vec(re("[a-z*?/.\\[\\]^-]{0,8}"), 1..4),
        dest in re("[a-z./]{0,6}"),
        paths in proptest::collection::vec((re("[a-z]{1,3}(/[a-z]{1,3}){0,2}"), any::<bool>()), 0..8),
    ) {
        let ctx: Vec<berth_build::copy::ContextEntry> = paths
            .into_iter()
            .map(|(path, is_dir)| berth_build::copy::ContextEntry { path, is_dir })
            .collect();
        let _ = berth_build::copy::plan_copy(&sources, &dest, "/w", &ctx, &|_| false);
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = parse(&text);
    }

    #[test]
    fn lexer_never_panics(word in any::<String>(), tick in any::<bool>()) {
        let env = |n: &str| n.len().is_multiple_of(2).then(|| n.to_string());
        let lx = Lexer::new(if tick { '`' } else { '\\' });
        let _ = lx.process_word(&word, &env);
        let _ = lx.process_words(&word, &env);
        let raw = Lexer { escape: '\\', raw_quotes: true, raw_escapes: true };
        let _ = raw.process_words(&word, &env);
    }

}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, .. ProptestConfig::default() })]
    #[test]
    fn lexer_never_panics_on_substitutions(word in re("([$]{1,2}[{]?[A-Z]{0,2}[:#%/+?-]{0,2}[a-z*/]{0,3}[}]?['\"\\\\ ]?){1,6}")) {
        let env = |n: &str| (n == "A").then(|| "a/b/c".to_string());
        let _ = Lexer::new('\\').process_word(&word, &env);
    }

    #[test]
    fn ignore_matcher_never_panics(patterns in proptest::collection::vec(re("[a-z*?!\\[\\]\\\\/.^-]{0,8}"), 0..5), path in re("[a-z/.]{0,12}")) {
        if let Ok(pm) = PatternMatcher::new(&patterns) {
            let _ = pm.matches_or_parent_matches(&path);
            let _ = pm.matches(&path);
            let _ = pm.matches_exact(&path);
        }
        let _ = read_patterns(&patterns.join("\n"));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, .. ProptestConfig::default() })]

    #[test]
    fn onbuild_triggers_never_panic(trigger in dockerfile_like()) {
        let df = parse("FROM parent\nRUN x\n").unwrap();
        let plan = BuildPlan::new(&df, BuildOptions::default()).unwrap();
        let base = ImageConfig { on_build: vec![trigger], ..Default::default() };
        let _ = plan.stage_steps(0, &base);
    }
}
