//! nftables rules in one table of Berth's own (`inet <table>`), driven through the `nft`
//! binary: scripts on stdin for changes (one atomic batch each), JSON listings (`nft -j -a`) to
//! find rules by their comment tag. Every rule carries a comment naming the network
//! (`n:<network id>`) or the container attachment (`c:<container id>@<network id>`) it belongs
//! to, so teardown deletes exactly those rules and nothing else.
//!
//! `nft` runs in the network namespace of the calling thread (a child process inherits the
//! spawning thread's namespace), which is how tests keep their rules inside their own netns.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::config::{NetworkConfig, PortMapping, Protocol};

/// nft failures.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("failed to run {binary:?}: {source}")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
    #[error("nft failed ({what}): {stderr}")]
    Nft { what: String, stderr: String },
    #[error("cannot parse nft's json listing of table {table:?}: {reason}")]
    Listing { table: String, reason: String },
    #[error("invalid nftables table name {0:?} (letters, digits and '_', at most 32 bytes)")]
    TableName(String),
}

/// One table of ours.
#[derive(Clone, Debug)]
pub struct Firewall {
    table: String,
    binary: String,
}

/// A rule found in our table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedRule {
    pub chain: String,
    pub handle: u64,
    pub comment: String,
}

/// The comment tag of a network's rules.
pub fn network_tag(network_id: &str) -> String {
    format!("n:{}", truncate(network_id, 64))
}

/// The comment tag of one container attachment's rules.
pub fn container_tag(container_id: &str, network_id: &str) -> String {
    format!(
        "c:{}@{}",
        truncate(container_id, 64),
        truncate(network_id, 48)
    )
}

fn truncate(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn quote(s: &str) -> String {
    // names and tags we emit never contain '"'; strip them defensively
    format!("\"{}\"", s.replace(['"', '\\', '\n'], ""))
}

impl Firewall {
    /// The table `inet <table>`.
    pub fn new(table: &str) -> Result<Firewall, FirewallError> {
        if table.is_empty()
            || table.len() > 32
            || !table.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(FirewallError::TableName(table.to_owned()));
        }
        Ok(Firewall {
            table: table.to_owned(),
            binary: "nft".to_owned(),
        })
    }

    /// Use another `nft` executable.
    pub fn with_binary(mut self, binary: &str) -> Firewall {
        self.binary = binary.to_owned();
        self
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn nft(&self, args: &[&str], stdin: Option<&str>, what: &str) -> Result<String, FirewallError> {
        let mut cmd = Command::new(&self.binary);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().map_err(|source| FirewallError::Spawn {
            binary: self.binary.clone(),
            source,
        })?;
        if let Some(text) = stdin
            && let Some(mut pipe) = child.stdin.take()
        {
            pipe.write_all(text.as_bytes())
                .map_err(|source| FirewallError::Spawn {
                    binary: self.binary.clone(),
                    source,
                })?;
        }
        let out = child
            .wait_with_output()
            .map_err(|source| FirewallError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(FirewallError::Nft {
                what: what.to_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn apply(&self, script: &str, what: &str) -> Result<(), FirewallError> {
        self.nft(&["-f", "-"], Some(script), what).map(|_| ())
    }

    /// Whether our table exists.
    pub fn exists(&self) -> Result<bool, FirewallError> {
        let out = self.nft(&["-j", "list", "tables", "inet"], None, "list tables")?;
        let v: Value = serde_json::from_str(&out).map_err(|e| FirewallError::Listing {
            table: self.table.clone(),
            reason: e.to_string(),
        })?;
        Ok(v["nftables"].as_array().is_some_and(|items| {
            items
                .iter()
                .any(|i| i["table"]["name"].as_str() == Some(self.table.as_str()))
        }))
    }

    /// Create the table with its chains and the bridge set, unless it exists.
    pub fn ensure_base(&self) -> Result<(), FirewallError> {
        if self.exists()? {
            return Ok(());
        }
        let t = &self.table;
        let script = format!(
            "table inet {t} {{\n\
             \tset bridges {{ type ifname; }}\n\
             \tchain ports {{ }}\n\
             \tchain isolation {{ }}\n\
             \tchain prerouting {{ type nat hook prerouting priority -100; policy accept; fib daddr type local jump ports; }}\n\
             \tchain output {{ type nat hook output priority -100; policy accept; ip daddr != 127.0.0.0/8 fib daddr type local jump ports; }}\n\
             \tchain postrouting {{ type nat hook postrouting priority 100; policy accept; }}\n\
             \tchain forward {{ type filter hook forward priority 0; policy accept; jump isolation; ct state established,related accept; }}\n\
             }}\n"
        );
        self.apply(&script, &format!("create table inet {t}"))
    }

    /// Delete the whole table (all of Berth's rules). Missing is fine.
    pub fn delete_table(&self) -> Result<(), FirewallError> {
        if !self.exists()? {
            return Ok(());
        }
        self.apply(
            &format!("delete table inet {}\n", self.table),
            "delete table",
        )
    }

    /// Every rule in our table that carries a comment.
    pub fn tagged_rules(&self) -> Result<Vec<TaggedRule>, FirewallError> {
        if !self.exists()? {
            return Ok(Vec::new());
        }
        let out = self.nft(
            &["-j", "-a", "list", "table", "inet", &self.table],
            None,
            "list table",
        )?;
        let v: Value = serde_json::from_str(&out).map_err(|e| FirewallError::Listing {
            table: self.table.clone(),
            reason: e.to_string(),
        })?;
        let items = v["nftables"]
            .as_array()
            .ok_or_else(|| FirewallError::Listing {
                table: self.table.clone(),
                reason: "no \"nftables\" array".into(),
            })?;
        Ok(items
            .iter()
            .filter_map(|i| {
                let r = i.get("rule")?;
                Some(TaggedRule {
                    chain: r["chain"].as_str()?.to_owned(),
                    handle: r["handle"].as_u64()?,
                    comment: r["comment"].as_str()?.to_owned(),
                })
            })
            .collect())
    }

    /// Delete every rule whose comment is `tag` (one batch). Returns how many went.
    pub fn delete_tagged(&self, tag: &str) -> Result<usize, FirewallError> {
        let rules: Vec<TaggedRule> = self
            .tagged_rules()?
            .into_iter()
            .filter(|r| r.comment == tag)
            .collect();
        if rules.is_empty() {
            return Ok(0);
        }
        let script: String = rules
            .iter()
            .map(|r| {
                format!(
                    "delete rule inet {} {} handle {}\n",
                    self.table, r.chain, r.handle
                )
            })
            .collect();
        self.apply(&script, &format!("delete rules tagged {tag:?}"))?;
        Ok(rules.len())
    }

    /// Install (purge, then add) a network's rules: isolation from other bridges, forwarding,
    /// masquerade (not for internal networks) and the hairpin masquerade.
    pub fn apply_network(&self, net: &NetworkConfig) -> Result<(), FirewallError> {
        self.ensure_base()?;
        let tag = network_tag(&net.id);
        self.delete_tagged(&tag)?;
        let (t, br, sub, c) = (
            &self.table,
            quote(&net.bridge),
            net.subnet.trunc(),
            quote(&tag),
        );
        let mut s = format!("add element inet {t} bridges {{ {br} }}\n");
        if net.internal {
            s += &format!(
                "add rule inet {t} isolation iifname {br} oifname != {br} drop comment {c}\n"
            );
            s += &format!(
                "add rule inet {t} isolation oifname {br} iifname != {br} drop comment {c}\n"
            );
        } else {
            s += &format!(
                "add rule inet {t} isolation iifname {br} oifname != {br} oifname @bridges drop comment {c}\n"
            );
            s += &format!("add rule inet {t} forward iifname {br} accept comment {c}\n");
            s += &format!(
                "add rule inet {t} forward oifname {br} ct status dnat accept comment {c}\n"
            );
            s += &format!(
                "add rule inet {t} postrouting ip saddr {sub} oifname != {br} masquerade comment {c}\n"
            );
            s += &format!(
                "add rule inet {t} postrouting oifname {br} ip saddr {sub} ct status dnat masquerade comment {c}\n"
            );
        }
        self.apply(&s, &format!("rules of network {:?}", net.name))
    }

    /// Remove a network's rules and its bridge from the isolation set. Missing is fine.
    pub fn remove_network(&self, net: &NetworkConfig) -> Result<(), FirewallError> {
        if !self.exists()? {
            return Ok(());
        }
        self.delete_tagged(&network_tag(&net.id))?;
        let script = format!(
            "delete element inet {} bridges {{ {} }}\n",
            self.table,
            quote(&net.bridge)
        );
        match self.apply(&script, "remove bridge from set") {
            Ok(()) => Ok(()),
            Err(FirewallError::Nft { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Install (purge, then add) the DNAT rules of one container attachment.
    pub fn apply_ports(
        &self,
        container_id: &str,
        network_id: &str,
        ip: Ipv4Addr,
        ports: &[PortMapping],
    ) -> Result<(), FirewallError> {
        self.ensure_base()?;
        let tag = container_tag(container_id, network_id);
        self.delete_tagged(&tag)?;
        if ports.is_empty() {
            return Ok(());
        }
        let c = quote(&tag);
        let script: String = ports
            .iter()
            .map(|p| {
                let daddr = p.host_ip.map(|h| format!("ip daddr {h} ")).unwrap_or_default();
                let proto = match p.protocol {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                };
                format!(
                    "add rule inet {} ports {daddr}{proto} dport {} dnat ip to {ip}:{} comment {c}\n",
                    self.table, p.host_port, p.container_port
                )
            })
            .collect();
        self.apply(&script, &format!("published ports of {container_id}"))
    }
}

/// Turn on IPv4 forwarding in the calling thread's namespace if it is off. Returns whether it
/// changed anything.
pub fn enable_ip_forward() -> std::io::Result<bool> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(path)?.trim() == "1" {
        return Ok(false);
    }
    std::fs::write(path, "1")?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_fit_nft_comments() {
        let long = "a".repeat(200);
        assert!(container_tag(&long, &long).len() <= 128);
        assert_eq!(network_tag("abc"), "n:abc");
        assert_eq!(container_tag("c1", "n1"), "c:c1@n1");
        assert!(Firewall::new("berth; flush ruleset").is_err());
        assert!(Firewall::new("berth_t1").is_ok());
    }
}
