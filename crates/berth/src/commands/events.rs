//! `berth events`: live (or bounded by `--until`) event stream.

use anyhow::{anyhow, bail};
use berth_api::client::{Client, empty, for_each_json_line};
use hyper::Method;
use serde_json::Value;

use crate::cli::EventsArgs;
use crate::commands::{filters_json, out};
use crate::format::{Format, rfc3339_nano};

/// Parses a Go duration (`1h30m`, `10s`, `250ms`) into nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    Some(total as i64)
}

/// docker's `GetTimestamp`: a duration before now, RFC 3339 (or a date), or Unix
/// `seconds[.nanos]`; returned as the `seconds.nanos` string the API takes.
pub fn timestamp(value: &str, now_nanos: i64) -> anyhow::Result<String> {
    let nanos = if let Some(d) = parse_duration(value) {
        now_nanos - d
    } else if let Ok(t) = value.parse::<jiff::Timestamp>() {
        t.as_nanosecond() as i64
    } else if let Ok(d) = value.parse::<jiff::civil::DateTime>() {
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|e| anyhow!("{e}"))?
            .timestamp()
            .as_nanosecond() as i64
    } else if let Ok(d) = value.parse::<jiff::civil::Date>() {
        d.to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|e| anyhow!("{e}"))?
            .timestamp()
            .as_nanosecond() as i64
    } else {
        let (s, f) = value.split_once('.').unwrap_or((value, "0"));
        match (s.parse::<i64>(), format!("{f:0<9}")[..9].parse::<i64>()) {
            (Ok(s), Ok(f)) => s * 1_000_000_000 + f,
            _ => bail!(
                "invalid value for timestamp {value:?}: expected a duration (10m), RFC 3339 time or Unix timestamp"
            ),
        }
    };
    Ok(format!(
        "{}.{:09}",
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000)
    ))
}

/// One event as `docker events` prints it.
pub fn event_line(e: &Value) -> String {
    let t = e.get("timeNano").and_then(Value::as_i64).unwrap_or(0);
    let kind = e.get("Type").and_then(Value::as_str).unwrap_or_default();
    let action = e.get("Action").and_then(Value::as_str).unwrap_or_default();
    let id = e
        .pointer("/Actor/ID")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let attrs: Vec<String> = e
        .pointer("/Actor/Attributes")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let mut s = format!("{} {kind} {action} {id}", rfc3339_nano(t));
    if !attrs.is_empty() {
        s.push_str(&format!(" ({})", attrs.join(", ")));
    }
    s
}

/// `berth events`.
pub async fn events(c: &Client, a: &EventsArgs) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now().as_nanosecond() as i64;
    let mut q = vec![];
    if let Some(s) = &a.since {
        q.push(("since", timestamp(s, now)?));
    }
    if let Some(u) = &a.until {
        q.push(("until", timestamp(u, now)?));
    }
    if let Some(f) = filters_json(&a.filter)? {
        q.push(("filters", f));
    }
    let fmt = a
        .format
        .as_deref()
        .map(|f| Format::parse(f, f))
        .transpose()?;
    let resp = c.send(Method::GET, "/events", &q, empty(), &[]).await?;
    let mut failure = None;
    for_each_json_line::<Value>(resp, "events", |e| {
        let line = match &fmt {
            Some(f) => {
                let mut data = e.clone();
                if let Some(o) = data.as_object_mut() {
                    o.insert("ID".into(), e.get("id").cloned().unwrap_or(Value::Null));
                    o.insert(
                        "Status".into(),
                        e.get("status").cloned().unwrap_or(Value::Null),
                    );
                    o.insert("From".into(), e.get("from").cloned().unwrap_or(Value::Null));
                    o.insert("Time".into(), e.get("time").cloned().unwrap_or(Value::Null));
                    o.insert(
                        "TimeNano".into(),
                        e.get("timeNano").cloned().unwrap_or(Value::Null),
                    );
                    o.insert(
                        "Scope".into(),
                        e.get("scope").cloned().unwrap_or(Value::Null),
                    );
                }
                match f.render(&Value::Null, std::slice::from_ref(&data)) {
                    Ok(s) => s,
                    Err(err) => {
                        failure = Some(err);
                        return Err(berth_api::client::ClientError::Request(
                            "template failed".into(),
                        ));
                    }
                }
            }
            None => event_line(&e) + "\n",
        };
        out(&line).map_err(|err| berth_api::client::ClientError::Request(err.to_string()))
    })
    .await
    .map_err(|e| match failure.take() {
        Some(f) => f,
        None => e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_timestamps_like_docker() {
        assert_eq!(parse_duration("10s"), Some(10_000_000_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_duration("x"), None);
        let now = 1_735_689_600_000_000_000;
        assert_eq!(timestamp("10s", now).unwrap(), "1735689590.000000000");
        assert_eq!(
            timestamp("2025-01-01T00:00:00Z", now).unwrap(),
            "1735689600.000000000"
        );
        assert_eq!(
            timestamp("1735689600", now).unwrap(),
            "1735689600.000000000"
        );
        assert_eq!(
            timestamp("1735689600.5", now).unwrap(),
            "1735689600.500000000"
        );
        assert!(timestamp("soon", now).is_err());
    }

    #[test]
    fn lines_look_like_docker_events() {
        let e: Value = serde_json::from_str(r#"{"Type":"image","Action":"tag","Actor":{"ID":"sha256:ab","Attributes":{"name":"x:1"}},"timeNano":1735689600157250000}"#).unwrap();
        assert_eq!(
            event_line(&e),
            "2025-01-01T00:00:00.15725Z image tag sha256:ab (name=x:1)"
        );
    }
}
