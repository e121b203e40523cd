//! nftables rules in one table of Berth's own (`inet <table>`), driven through the `nft`
//! binary: scripts on stdin for changes (one atomic batch each), JSON listings (`nft -j -a`) to
//! find rules by their comment tag. Every rule carries a comment naming the network
//! (`n:<network id>`) or the container attachment (`c:<container id>@<network id>`) it belongs
//! to, so teardown deletes exactly those rules and nothing else.
//!
//! The tag → rule-handle map is cached in memory (filled from one listing, kept current from
//! `nft --echo --handle` output, dropped on any error), so a setup costs one `nft` call and an
//! attachment without published ports on a network already in place costs none. Berth's
//! daemon is the table's only writer; [`Firewall::invalidate`] (done by reload) re-reads it.
//!
//! `nft` runs in the network namespace of the calling thread (a child process inherits the
//! spawning thread's namespace), which is how tests keep their rules inside their own netns.

use std::collections::HashMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

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
    cache: Arc<Mutex<Option<Cache>>>,
}

/// What we know of our table: whether it exists and tag -> (chain, handle) of its rules.
#[derive(Clone, Debug, Default)]
struct Cache {
    exists: bool,
    rules: HashMap<String, Vec<(String, u64)>>,
}

impl Cache {
    fn from_listing(listing: Option<Vec<TaggedRule>>) -> Cache {
        let mut c = Cache {
            exists: listing.is_some(),
            rules: HashMap::new(),
        };
        for r in listing.unwrap_or_default() {
            c.rules
                .entry(r.comment)
                .or_default()
                .push((r.chain, r.handle));
        }
        c
    }
}

/// Rules added, from `nft --echo --handle` text: `add rule inet T CHAIN ... comment "TAG" # handle N`.
fn parse_echo(table: &str, out: &str) -> Option<Vec<TaggedRule>> {
    let prefix = format!("add rule inet {table} ");
    let mut rules = Vec::new();
    for line in out.lines() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let chain = rest.split_whitespace().next()?.to_owned();
        let (body, handle) = rest.rsplit_once(" # handle ")?;
        let handle: u64 = handle.trim().parse().ok()?;
        // base rules carry no comment: not ours to track
        let Some((_, comment)) = body.rsplit_once("comment \"") else {
            continue;
        };
        let comment = comment.strip_suffix('"')?.to_owned();
        rules.push(TaggedRule {
            chain,
            handle,
            comment,
        });
    }
    Some(rules)
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
            cache: Arc::new(Mutex::new(None)),
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

    /// Forget the cached view of the table; the next call lists it again.
    pub fn invalidate(&self) {
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Run `f` on the cached view (listing the table first if needed); any error drops the cache.
    fn with_cache<T>(
        &self,
        f: impl FnOnce(&mut Cache) -> Result<T, FirewallError>,
    ) -> Result<T, FirewallError> {
        let mut guard = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(Cache::from_listing(self.listing()?));
        }
        let cache = guard.as_mut().expect("filled above");
        let out = f(cache);
        if out.is_err() {
            *guard = None;
        }
        out
    }

    /// Whether our table exists.
    pub fn exists(&self) -> Result<bool, FirewallError> {
        self.with_cache(|c| Ok(c.exists))
    }

    /// Our table's tagged rules, `None` when the table does not exist (one `nft` call).
    fn listing(&self) -> Result<Option<Vec<TaggedRule>>, FirewallError> {
        let out = match self.nft(
            &["-j", "-a", "list", "table", "inet", &self.table],
            None,
            "list table",
        ) {
            Ok(out) => out,
            Err(FirewallError::Nft { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
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
        Ok(Some(
            items
                .iter()
                .filter_map(|i| {
                    let r = i.get("rule")?;
                    Some(TaggedRule {
                        chain: r["chain"].as_str()?.to_owned(),
                        handle: r["handle"].as_u64()?,
                        comment: r["comment"].as_str()?.to_owned(),
                    })
                })
                .collect(),
        ))
    }

    fn base_script(&self) -> String {
        let t = &self.table;
        format!(
            "table inet {t} {{\n\
             \tset bridges {{ type ifname; }}\n\
             \tchain ports {{ }}\n\
             \tchain isolation {{ }}\n\
             \tchain prerouting {{ type nat hook prerouting priority -100; policy accept; iifname != @bridges fib daddr type local jump ports; }}\n\
             \tchain output {{ type nat hook output priority -100; policy accept; fib daddr type local jump ports; }}\n\
             \tchain postrouting {{ type nat hook postrouting priority 100; policy accept; }}\n\
             \tchain forward {{ type filter hook forward priority 0; policy accept; jump isolation; ct state established,related accept; }}\n\
             }}\n"
        )
    }

    /// Create the table with its chains and the bridge set, unless it exists.
    pub fn ensure_base(&self) -> Result<(), FirewallError> {
        self.replace(&[], &format!("create table inet {}", self.table))
    }

    /// Delete the whole table (all of Berth's rules). Missing is fine.
    pub fn delete_table(&self) -> Result<(), FirewallError> {
        let out = self.with_cache(|c| {
            if c.exists {
                self.apply(
                    &format!("delete table inet {}\n", self.table),
                    "delete table",
                )?;
            }
            Ok(())
        });
        self.invalidate();
        out
    }

    /// Every rule in our table that carries a comment (listed afresh; refreshes the cache).
    pub fn tagged_rules(&self) -> Result<Vec<TaggedRule>, FirewallError> {
        let listing = self.listing()?;
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Cache::from_listing(listing.clone()));
        Ok(listing.unwrap_or_default())
    }

    /// In ONE nft transaction: create the table if missing, delete every rule tagged with one
    /// of the `changes`' tags and add the new rules. Nothing is ever half-applied, and there is
    /// no window in which a network is without its isolation rules.
    pub fn replace(&self, changes: &[(String, String)], what: &str) -> Result<(), FirewallError> {
        self.with_cache(|cache| {
            let mut script = String::new();
            if !cache.exists {
                script += &self.base_script();
            }
            for (tag, _) in changes {
                for (chain, handle) in cache.rules.get(tag).into_iter().flatten() {
                    script += &format!("delete rule inet {} {chain} handle {handle}\n", self.table);
                }
            }
            for (_, rules) in changes {
                script += rules;
            }
            if script.is_empty() {
                return Ok(());
            }
            let out = self.nft(&["--echo", "--handle", "-f", "-"], Some(&script), what)?;
            let added = parse_echo(&self.table, &out).ok_or_else(|| FirewallError::Listing {
                table: self.table.clone(),
                reason: format!("unexpected nft --echo output {out:?}"),
            })?;
            cache.exists = true;
            for (tag, _) in changes {
                cache.rules.remove(tag);
            }
            for r in added {
                cache
                    .rules
                    .entry(r.comment)
                    .or_default()
                    .push((r.chain, r.handle));
            }
            Ok(())
        })
    }

    /// Delete every rule whose comment is `tag` (one batch). Returns how many went.
    pub fn delete_tagged(&self, tag: &str) -> Result<usize, FirewallError> {
        self.with_cache(|cache| {
            let Some(rules) = cache.rules.get(tag).filter(|r| !r.is_empty()) else {
                return Ok(0);
            };
            let script: String = rules
                .iter()
                .map(|(chain, handle)| {
                    format!("delete rule inet {} {chain} handle {handle}\n", self.table)
                })
                .collect();
            self.apply(&script, &format!("delete rules tagged {tag:?}"))?;
            let n = rules.len();
            cache.rules.remove(tag);
            Ok(n)
        })
    }

    /// Whether rules tagged `tag` are in place (from the cache).
    pub fn has_tag(&self, tag: &str) -> Result<bool, FirewallError> {
        self.with_cache(|c| Ok(c.rules.get(tag).is_some_and(|r| !r.is_empty())))
    }

    /// The rules of a network: isolation from other bridges, forwarding, masquerade (not for
    /// internal networks) and the hairpin masquerade.
    pub fn network_rules(&self, net: &NetworkConfig) -> (String, String) {
        let tag = network_tag(&net.id);
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
            // 127.0.0.1:port DNAT'ed into the bridge (route_localnet on it): the container
            // must answer the bridge's address, not a loopback one
            s += &format!(
                "add rule inet {t} postrouting oifname {br} ip saddr 127.0.0.0/8 masquerade comment {c}\n"
            );
        }
        (tag, s)
    }

    /// The DNAT rules of one container attachment.
    pub fn port_rules(
        &self,
        container_id: &str,
        network_id: &str,
        ip: Ipv4Addr,
        ports: &[PortMapping],
    ) -> (String, String) {
        let tag = container_tag(container_id, network_id);
        let c = quote(&tag);
        let s = ports
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
        (tag, s)
    }

    /// Install (purge, then add, atomically) a network's rules.
    pub fn apply_network(&self, net: &NetworkConfig) -> Result<(), FirewallError> {
        self.replace(
            &[self.network_rules(net)],
            &format!("rules of network {:?}", net.name),
        )
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
            Err(e) => {
                self.invalidate();
                Err(e)
            }
        }
    }

    /// Install (purge, then add, atomically) the DNAT rules of one container attachment.
    pub fn apply_ports(
        &self,
        container_id: &str,
        network_id: &str,
        ip: Ipv4Addr,
        ports: &[PortMapping],
    ) -> Result<(), FirewallError> {
        self.replace(
            &[self.port_rules(container_id, network_id, ip, ports)],
            &format!("published ports of {container_id}"),
        )
    }

    /// One attachment's DNAT rules, plus the network's rules when they are not in place yet,
    /// in one transaction (setup's path; no `nft` call at all when there is nothing to change).
    pub fn apply_endpoint(
        &self,
        net: &NetworkConfig,
        container_id: &str,
        ip: Ipv4Addr,
        ports: &[PortMapping],
    ) -> Result<(), FirewallError> {
        let mut changes = Vec::new();
        if !self.has_tag(&network_tag(&net.id))? {
            changes.push(self.network_rules(net));
        }
        changes.push(self.port_rules(container_id, &net.id, ip, ports));
        self.replace(
            &changes,
            &format!("rules of {container_id} on network {:?}", net.name),
        )
    }
}

/// Let `bridge` route packets from 127.0.0.0/8 (`route_localnet`), so that 127.0.0.1:port
/// DNAT'ed to a container goes through the kernel rather than the userland proxy.
pub fn enable_route_localnet(bridge: &str) -> std::io::Result<()> {
    let path = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    if std::fs::read_to_string(&path)?.trim() == "1" {
        return Ok(());
    }
    std::fs::write(path, "1")
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
    fn parses_echo_output() {
        let out = "add table inet t # handle 2\nadd rule inet t forward iifname \"b\" accept comment \"n:x\" # handle 7\n\
add rule inet t ports tcp dport 80 dnat ip to 10.0.0.2:80 comment \"c:a@n\" # handle 9\n# new generation 3 by process 1 (nft)\n";
        assert_eq!(
            parse_echo("t", out).unwrap(),
            vec![
                TaggedRule {
                    chain: "forward".into(),
                    handle: 7,
                    comment: "n:x".into()
                },
                TaggedRule {
                    chain: "ports".into(),
                    handle: 9,
                    comment: "c:a@n".into()
                },
            ]
        );
        assert!(parse_echo("t", "add rule inet t c accept comment \"a\" # handle x\n").is_none());
        assert_eq!(
            parse_echo("t", "add rule inet t forward jump isolation # handle 10\n").unwrap(),
            vec![]
        );
    }

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
