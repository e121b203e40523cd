//! Query strings as moby reads them: repeated keys, its boolean rule, JSON filters in
//! both the map and the list form.

use std::collections::BTreeMap;

/// A decoded query string (keys may repeat; extra keys are ignored by handlers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Decodes `a=1&b=x%20y`.
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order.
    pub fn get_all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// moby's `BoolValue`: absent, "", "0", "no", "false", "none" (any case) are false;
    /// anything else is true.
    pub fn bool(&self, key: &str) -> bool {
        self.get(key).is_some_and(parse_bool)
    }

    /// The `filters` parameter decoded to key → values.
    pub fn filters(&self) -> Result<BTreeMap<String, Vec<String>>, String> {
        match self.get("filters") {
            None | Some("") => Ok(BTreeMap::new()),
            Some(f) => parse_filters(f),
        }
    }
}

/// moby's boolean rule for query values.
pub fn parse_bool(v: &str) -> bool {
    !matches!(
        v.to_ascii_lowercase().as_str(),
        "" | "0" | "no" | "false" | "none"
    )
}

/// Decodes `{"label":{"a=b":true}}` (CLI) or `{"label":["a=b"]}` (docker-py, compose).
pub fn parse_filters(s: &str) -> Result<BTreeMap<String, Vec<String>>, String> {
    let v: serde_json::Value =
        serde_json::from_str(s).map_err(|e| format!("invalid filter: {s:?} is not JSON: {e}"))?;
    let obj = v
        .as_object()
        .ok_or_else(|| format!("invalid filter: {s:?} is not a JSON object"))?;
    let mut out = BTreeMap::new();
    for (k, val) in obj {
        let values: Vec<String> = match val {
            serde_json::Value::Object(m) => m
                .iter()
                .filter(|(_, on)| on.as_bool().unwrap_or(true))
                .map(|(x, _)| x.clone())
                .collect(),
            serde_json::Value::Array(a) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect(),
            serde_json::Value::String(x) => vec![x.clone()],
            other => return Err(format!("invalid filter: value of {k:?} is {other}")),
        };
        out.insert(k.clone(), values);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_follow_moby() {
        for f in ["", "0", "no", "false", "FALSE", "None", "False"] {
            assert!(!parse_bool(f), "{f}");
        }
        for t in ["1", "true", "True", "yes", "anything"] {
            assert!(parse_bool(t), "{t}");
        }
        let q = Query::parse(Some("all=True&quiet=0&x=1&x=2"));
        assert!(q.bool("all"));
        assert!(!q.bool("quiet"));
        assert!(!q.bool("missing"));
        assert_eq!(q.get_all("x"), ["1", "2"]);
        assert_eq!(q.get("x"), Some("2"));
    }

    #[test]
    fn filters_accept_map_and_list_forms() {
        let a = parse_filters(r#"{"label":{"a=b":true},"dangling":{"true":true}}"#).unwrap();
        let b = parse_filters(r#"{"label":["a=b"],"dangling":["true"]}"#).unwrap();
        assert_eq!(a, b);
        assert_eq!(a["label"], ["a=b"]);
        assert!(parse_filters("nope").unwrap_err().contains("not JSON"));
        let q = Query::parse(Some("filters=%7B%22reference%22%3A%5B%22busy%2A%22%5D%7D"));
        assert_eq!(q.filters().unwrap()["reference"], ["busy*"]);
    }
}
