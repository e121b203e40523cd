//! Rows, the markdown table and the JSON document.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::stats::Stats;

/// What a tool got in a scenario.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    /// Real figures.
    Measured(Stats),
    /// Berth lacks the feature (binary or subcommand missing): no figure.
    NotYet {
        /// What was probed and missing.
        reason: String,
    },
    /// The peer is not installed.
    NotInstalled {
        /// What is missing.
        reason: String,
    },
    /// The tool failed.
    Error {
        /// Its error.
        message: String,
    },
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// Tool name (`berth`, `podman`, ...).
    pub tool: String,
    /// What the times measure.
    pub unit: String,
    /// The result.
    pub outcome: Outcome,
    /// Extra figures (e.g. `monitor_rss_mb`, `mb_per_s`).
    pub extra: BTreeMap<String, f64>,
    /// Berth median / this tool's median, on peer rows when both are measured.
    pub ratio_berth_over_peer: Option<f64>,
}

/// Fill in the Berth/peer ratios: for each scenario, the Berth tool's median over each
/// measured peer's.
pub fn add_ratios(rows: &mut [Row], berth_tools: &[&str]) {
    let berth: BTreeMap<String, f64> = rows
        .iter()
        .filter(|r| berth_tools.contains(&r.tool.as_str()))
        .filter_map(|r| match &r.outcome {
            Outcome::Measured(s) => Some((r.scenario.clone(), s.median_ms)),
            _ => None,
        })
        .collect();
    for r in rows.iter_mut() {
        if berth_tools.contains(&r.tool.as_str()) {
            continue;
        }
        if let (Some(b), Outcome::Measured(s)) = (berth.get(&r.scenario), &r.outcome)
            && s.median_ms > 0.0
        {
            r.ratio_berth_over_peer = Some(b / s.median_ms);
        }
    }
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// The markdown table.
pub fn markdown(rows: &[Row], header: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{header}\n");
    let _ = writeln!(
        s,
        "| scenario | tool | median ms | min ms | max ms | runs | Berth/peer | notes |"
    );
    let _ = writeln!(s, "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for r in rows {
        let extra: Vec<String> = r.extra.iter().map(|(k, v)| format!("{k}={v:.1}")).collect();
        let mut notes = r.unit.clone();
        if !extra.is_empty() {
            notes.push_str("; ");
            notes.push_str(&extra.join(", "));
        }
        let ratio = r
            .ratio_berth_over_peer
            .map(|x| format!("{x:.2}×"))
            .unwrap_or_else(|| "—".into());
        let line = match &r.outcome {
            Outcome::Measured(st) => format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                r.scenario,
                r.tool,
                ms(st.median_ms),
                ms(st.min_ms),
                ms(st.max_ms),
                st.runs,
                ratio,
                notes
            ),
            Outcome::NotYet { reason } => {
                format!(
                    "| {} | {} | not yet | | | | — | {} |",
                    r.scenario,
                    r.tool,
                    reason.replace('|', "/")
                )
            }
            Outcome::NotInstalled { reason } => {
                format!(
                    "| {} | {} | not installed | | | | — | {} |",
                    r.scenario,
                    r.tool,
                    reason.replace('|', "/")
                )
            }
            Outcome::Error { message } => {
                let m: String = message
                    .replace('|', "/")
                    .replace('\n', " ")
                    .chars()
                    .take(200)
                    .collect();
                format!("| {} | {} | error | | | | — | {m} |", r.scenario, r.tool)
            }
        };
        let _ = writeln!(s, "{line}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(scenario: &str, tool: &str, outcome: Outcome) -> Row {
        Row {
            scenario: scenario.into(),
            tool: tool.into(),
            unit: "per run".into(),
            outcome,
            extra: BTreeMap::new(),
            ratio_berth_over_peer: None,
        }
    }

    fn measured(m: f64) -> Outcome {
        Outcome::Measured(Stats {
            median_ms: m,
            min_ms: m,
            max_ms: m,
            runs: 1,
        })
    }

    #[test]
    fn ratios_only_when_berth_is_measured() {
        let mut rows = vec![
            row("a", "berth", measured(10.0)),
            row("a", "podman", measured(40.0)),
            row(
                "b",
                "berth",
                Outcome::NotYet {
                    reason: "no berth binary".into(),
                },
            ),
            row("b", "podman", measured(40.0)),
        ];
        add_ratios(&mut rows, &["berth"]);
        assert_eq!(rows[1].ratio_berth_over_peer, Some(0.25));
        assert_eq!(rows[3].ratio_berth_over_peer, None);
        let md = markdown(&rows, "# t");
        assert!(
            md.contains("| a | podman | 40.0 | 40.0 | 40.0 | 1 | 0.25× |"),
            "{md}"
        );
        assert!(md.contains("| b | berth | not yet |"), "{md}");
    }
}
