//! Variable expansion as BuildKit's shell.Lex.

use std::collections::BTreeMap;

use berth_build::lex::{LexError, Lexer, glob_match};

fn env() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("A", "alpha"),
        ("E", ""),
        ("P", "/usr/local/bin/node"),
        ("S", "a b  c"),
    ])
}

fn word(s: &str) -> Result<String, LexError> {
    let e = env();
    let f = |n: &str| e.get(n).map(|v| v.to_string());
    Lexer::new('\\').process_word(s, &f).map(|x| x.value)
}

fn words(s: &str) -> Vec<String> {
    let e = env();
    let f = |n: &str| e.get(n).map(|v| v.to_string());
    Lexer::new('\\').process_words(s, &f).unwrap().0
}

#[test]
fn plain_and_braced() {
    assert_eq!(word("$A").unwrap(), "alpha");
    assert_eq!(word("${A}x").unwrap(), "alphax");
    assert_eq!(word("$Ax").unwrap(), "");
    assert_eq!(word("x$NOPE.y").unwrap(), "x.y");
    assert_eq!(word("cost $").unwrap(), "cost $");
    assert_eq!(word("$1a").unwrap(), "a");
    assert_eq!(word("$12a").unwrap(), "a");
    assert_eq!(word("a$$b").unwrap(), "ab");
    assert_eq!(word("trailing\\").unwrap(), "trailing");
}

#[test]
fn defaults_and_alternatives() {
    assert_eq!(word("${NOPE:-d}").unwrap(), "d");
    assert_eq!(word("${E:-d}").unwrap(), "d");
    assert_eq!(word("${E-d}").unwrap(), "");
    assert_eq!(word("${NOPE-d}").unwrap(), "d");
    assert_eq!(word("${A:-d}").unwrap(), "alpha");
    assert_eq!(word("${A:+set}").unwrap(), "set");
    assert_eq!(word("${E:+set}").unwrap(), "");
    assert_eq!(word("${E+set}").unwrap(), "set");
    assert_eq!(word("${NOPE+set}").unwrap(), "");
    assert_eq!(word("${NOPE:-$A}").unwrap(), "alpha");
    assert_eq!(word("${NOPE:-${A}-x}").unwrap(), "alpha-x");
}

#[test]
fn required_values() {
    assert_eq!(word("${A:?no}").unwrap(), "alpha");
    assert_eq!(
        word("${NOPE:?must be set}").unwrap_err(),
        LexError::Required {
            name: "NOPE".into(),
            message: "must be set".into()
        }
    );
    assert_eq!(
        word("${E:?}").unwrap_err().to_string(),
        "E: is not allowed to be empty"
    );
    assert_eq!(
        word("${NOPE?}").unwrap_err().to_string(),
        "NOPE: is not allowed to be unset"
    );
    assert_eq!(word("${E?x}").unwrap(), "");
}

#[test]
fn pattern_removal_and_replacement() {
    assert_eq!(word("${P#*/}").unwrap(), "usr/local/bin/node");
    assert_eq!(word("${P##*/}").unwrap(), "node");
    assert_eq!(word("${P%/*}").unwrap(), "/usr/local/bin");
    assert_eq!(word("${P%%/*}").unwrap(), "");
    assert_eq!(word("${A/l/L}").unwrap(), "aLpha");
    assert_eq!(word("${S// /_}").unwrap(), "a_b__c");
    assert_eq!(word("${A/a}").unwrap(), "lpha");
}

#[test]
fn quotes_and_escapes() {
    assert_eq!(word("'$A'").unwrap(), "$A");
    assert_eq!(word("\"$A b\"").unwrap(), "alpha b");
    assert_eq!(word("\\$A").unwrap(), "$A");
    assert_eq!(word("\"\\$A\"").unwrap(), "$A");
    assert_eq!(word("\"a\\b\"").unwrap(), "a\\b");
    assert_eq!(word("a\\ b").unwrap(), "a b");
    assert_eq!(
        word("'unterminated").unwrap_err(),
        LexError::UnterminatedSingleQuote
    );
    assert_eq!(
        word("\"unterminated").unwrap_err(),
        LexError::UnterminatedDoubleQuote
    );
    assert!(matches!(
        word("${A").unwrap_err(),
        LexError::MissingBrace(_)
    ));
    assert!(matches!(
        word("${A:=x}").unwrap_err(),
        LexError::UnsupportedModifier { .. }
    ));
}

#[test]
fn backtick_escape() {
    let e = env();
    let f = |n: &str| e.get(n).map(|v| v.to_string());
    let lx = Lexer::new('`');
    assert_eq!(lx.process_word("`$A", &f).unwrap().value, "$A");
    assert_eq!(
        lx.process_word("c:\\dir\\$A", &f).unwrap().value,
        "c:\\dir\\alpha"
    );
}

#[test]
fn word_splitting() {
    assert_eq!(words("a  b"), vec!["a", "b"]);
    assert_eq!(words("\"a  b\" c"), vec!["a  b", "c"]);
    assert_eq!(words("$S"), vec!["a", "b", "c"]);
    assert_eq!(words("\"$S\""), vec!["a b  c"]);
    assert_eq!(words("''"), vec![""]);
    assert_eq!(words("x$E y"), vec!["x", "y"]);
}

#[test]
fn used_names_are_reported() {
    let e = env();
    let f = |n: &str| e.get(n).map(|v| v.to_string());
    let x = Lexer::new('\\')
        .process_word("$A ${NOPE:-x} '$Q'", &f)
        .unwrap();
    assert_eq!(x.used.into_iter().collect::<Vec<_>>(), vec!["A", "NOPE"]);
}

#[test]
fn globs() {
    assert!(glob_match("*.json", "package.json"));
    assert!(glob_match("a?c", "abc"));
    assert!(glob_match("[a-c]x", "bx"));
    assert!(!glob_match("[!a-c]x", "bx"));
    assert!(glob_match("\\*", "*"));
    assert!(!glob_match("a*", "b"));
}
