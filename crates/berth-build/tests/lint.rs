//! BuildKit-style build check warnings.

use berth_build::lint::lint;
use berth_build::parse;

fn rules(text: &str) -> Vec<(usize, &'static str)> {
    lint(&parse(text).unwrap())
        .into_iter()
        .map(|w| (w.line, w.rule))
        .collect()
}

#[test]
fn warnings_with_lines() {
    let text = "FROM node:20 as Build\nMAINTAINER me\nCMD node index.js\nCMD [\"node\"]\nFROM alpine AS final\nENTRYPOINT [\"/x\"]\n";
    assert_eq!(
        rules(text),
        vec![
            (1, "FromAsCasing"),
            (1, "StageNameCasing"),
            (2, "MaintainerDeprecated"),
            (3, "JSONArgsRecommended"),
            (3, "MultipleInstructionsDisallowed"),
        ]
    );
    let w = lint(&parse("FROM a\nENTRYPOINT run\n").unwrap());
    assert_eq!(
        w[0].message,
        "JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals"
    );
}

#[test]
fn clean_dockerfile_has_no_warnings() {
    assert!(rules("FROM node:20 AS build\nRUN npm ci\nFROM nginx\nCMD [\"nginx\"]\n").is_empty());
}

#[test]
fn check_directive_skips_rules() {
    assert_eq!(
        rules("# check=skip=JSONArgsRecommended\nFROM a\nCMD x\nMAINTAINER m\n"),
        vec![(4, "MaintainerDeprecated")]
    );
    assert!(rules("# check=skip=all\nFROM a\nCMD x\n").is_empty());
}
