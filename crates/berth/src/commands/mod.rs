//! One module per command group; each command resolves its arguments, calls the API and
//! prints Docker's output.

pub mod attach;
pub mod build;
pub mod commit;
pub mod compose;
pub mod containers;
pub mod cp;
pub mod events;
pub mod exec;
pub mod images;
pub mod lifecycle;
pub mod login;
pub mod networks;
pub mod ps;
pub mod run_flags;
pub mod run_mounts;
pub mod run_net;
pub mod system;
pub mod transfer;
pub mod volumes;

use std::collections::BTreeMap;

/// `--filter k=v` flags → the `filters` JSON (map form, as the docker CLI sends).
pub fn filters_json(flags: &[String]) -> anyhow::Result<Option<String>> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut m: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in flags {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value): {f:?}"))?;
        m.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.to_owned(), true);
    }
    Ok(Some(serde_json::to_string(&m)?))
}

/// Writes to stdout, mapping a closed pipe to a quiet exit.
pub fn out(s: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut o = std::io::stdout().lock();
    o.write_all(s.as_bytes())?;
    o.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_map_form_json() {
        assert_eq!(filters_json(&[]).unwrap(), None);
        assert_eq!(
            filters_json(&["dangling=true".into(), "label=a=b".into()])
                .unwrap()
                .unwrap(),
            r#"{"dangling":{"true":true},"label":{"a=b":true}}"#
        );
        assert!(filters_json(&["nope".into()]).is_err());
    }
}
