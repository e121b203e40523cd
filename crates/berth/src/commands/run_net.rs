//! The networking flags of `run`/`create` (`--ip`, `--network-alias`, `--link`, `-p`, `-P`,
//! `--expose`, `--mac-address`; `--network` itself lives with the other create flags) and
//! `berth port`.

use std::collections::BTreeMap;

use berth_api::client::Client;
use clap::Args;
use serde_json::{Value, json};

use crate::commands::out;

// Networking flags, flattened into the create flags.
#[derive(Debug, Args, Clone, Default)]
pub struct NetFlags {
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long = "ip")]
    pub ip: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// Add link to another container
    #[arg(long = "link")]
    pub link: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long = "expose")]
    pub expose: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
}

fn range(s: &str) -> anyhow::Result<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid containerPort: {s}"))?;
    let b: u16 = b
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid containerPort: {s}"))?;
    if b < a {
        anyhow::bail!("invalid range specified for container port: {s}");
    }
    Ok((a, b))
}

/// Docker's `nat.ParsePortSpec`: `-p` → (`port/proto`, host ip, host port) entries.
pub fn parse_publish(spec: &str) -> anyhow::Result<Vec<(String, String, String)>> {
    let (rest, proto) = spec.rsplit_once('/').unwrap_or((spec, "tcp"));
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        anyhow::bail!("invalid proto: {proto}");
    }
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match parts.as_slice() {
        [c] => ("", "", *c),
        [h, c] => ("", *h, *c),
        [ip, h, c] => (*ip, *h, *c),
        _ => anyhow::bail!("invalid port specification: {spec:?}"),
    };
    if !ip.is_empty() && ip.parse::<std::net::Ipv4Addr>().is_err() {
        anyhow::bail!("invalid IP address: {ip}");
    }
    let (c0, c1) = range(ctr)?;
    let host_range = if host.is_empty() {
        None
    } else {
        let (h0, h1) = range(host).map_err(|_| anyhow::anyhow!("invalid hostPort: {host}"))?;
        if h1 - h0 != c1 - c0 && h0 != h1 {
            anyhow::bail!(
                "invalid ranges specified for container and host Ports: {ctr} and {host}"
            );
        }
        Some(h0)
    };
    Ok((0..=(c1 - c0))
        .map(|i| {
            let hp = host_range.map(|h| (h + i).to_string()).unwrap_or_default();
            (format!("{}/{proto}", c0 + i), ip.to_owned(), hp)
        })
        .collect())
}

impl NetFlags {
    /// Adds these flags to a create body (whose `HostConfig.NetworkMode` is set).
    pub fn apply(&self, body: &mut Value) -> anyhow::Result<()> {
        let mut exposed: BTreeMap<String, Value> = BTreeMap::new();
        let mut bindings: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for p in &self.publish {
            for (port, ip, hp) in parse_publish(p)? {
                exposed.insert(port.clone(), json!({}));
                bindings
                    .entry(port)
                    .or_default()
                    .push(json!({"HostIp": ip, "HostPort": hp}));
            }
        }
        for e in &self.expose {
            let (ports, proto) = e.split_once('/').unwrap_or((e, "tcp"));
            let (a, b) = range(ports)?;
            for p in a..=b {
                exposed.insert(format!("{p}/{proto}"), json!({}));
            }
        }
        if !exposed.is_empty() {
            body["ExposedPorts"] = json!(exposed);
        }
        if !bindings.is_empty() {
            body["HostConfig"]["PortBindings"] = json!(bindings);
        }
        if self.publish_all {
            body["HostConfig"]["PublishAllPorts"] = json!(true);
        }
        if !self.link.is_empty() {
            body["HostConfig"]["Links"] = json!(self.link);
        }
        if let Some(m) = &self.mac_address {
            body["MacAddress"] = json!(m);
        }
        let mode = body["HostConfig"]["NetworkMode"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        if self.ip.is_some() || !self.network_alias.is_empty() || self.mac_address.is_some() {
            let name = if mode == "default" {
                "bridge".to_owned()
            } else {
                mode
            };
            let mut ep = json!({"Aliases": self.network_alias});
            if let Some(ip) = &self.ip {
                ep["IPAMConfig"] = json!({"IPv4Address": ip});
            }
            if let Some(m) = &self.mac_address {
                ep["MacAddress"] = json!(m);
            }
            body["NetworkingConfig"] = json!({"EndpointsConfig": {name: ep}});
        }
        Ok(())
    }
}

// `port`.
#[derive(Debug, Args)]
pub struct PortArgs {
    /// The container
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

/// The lines of `port` for an inspect document.
pub fn port_lines(inspect: &Value, filter: Option<&str>) -> anyhow::Result<Vec<String>> {
    let ports = inspect["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let want = filter.map(|f| {
        if f.contains('/') {
            f.to_owned()
        } else {
            format!("{f}/tcp")
        }
    });
    let mut keys: Vec<&String> = ports.keys().collect();
    keys.sort_by_key(|k| {
        let (p, proto) = k.split_once('/').unwrap_or((k, ""));
        (p.parse::<u32>().unwrap_or(0), proto.to_owned())
    });
    let mut lines = Vec::new();
    for k in keys {
        if want.as_ref().is_some_and(|w| w != k) {
            continue;
        }
        for b in ports[k].as_array().into_iter().flatten() {
            let addr = format!(
                "{}:{}",
                b["HostIp"].as_str().unwrap_or("0.0.0.0"),
                b["HostPort"].as_str().unwrap_or_default()
            );
            lines.push(if want.is_some() {
                addr
            } else {
                format!("{k} -> {addr}")
            });
        }
    }
    if let Some(w) = want
        && lines.is_empty()
    {
        let name = inspect["Name"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches('/');
        anyhow::bail!("Error: No public port '{w}' published for {name}");
    }
    Ok(lines)
}

/// `berth port`.
pub async fn port(c: &Client, a: &PortArgs) -> anyhow::Result<()> {
    let v: Value = c
        .get_json(&format!("/containers/{}/json", a.container), &[])
        .await?;
    let lines = port_lines(&v, a.port.as_deref())?;
    let mut s = String::new();
    for l in lines {
        s.push_str(&l);
        s.push('\n');
    }
    out(&s)
}

/// The PORTS column of `ps` (`0.0.0.0:8080->80/tcp, 443/tcp`).
pub fn ps_ports(v: &Value) -> String {
    let mut items: Vec<(u64, String, String)> = v["Ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let private = p["PrivatePort"].as_u64().unwrap_or(0);
            let proto = p["Type"].as_str().unwrap_or("tcp").to_owned();
            let s = match p["PublicPort"].as_u64() {
                Some(public) if public != 0 => format!(
                    "{}:{public}->{private}/{proto}",
                    p["IP"].as_str().unwrap_or("0.0.0.0")
                ),
                _ => format!("{private}/{proto}"),
            };
            (private, proto, s)
        })
        .collect();
    items.sort();
    items
        .into_iter()
        .map(|(_, _, s)| s)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The NETWORKS column of `ps`.
pub fn ps_networks(v: &Value) -> String {
    let mut names: Vec<String> = v["NetworkSettings"]["Networks"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    if names.is_empty() {
        return v["HostConfig"]["NetworkMode"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    names.sort();
    names.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs_parse_like_docker() {
        assert_eq!(
            parse_publish("127.0.0.1:8080:80").unwrap(),
            vec![("80/tcp".into(), "127.0.0.1".into(), "8080".into())]
        );
        assert_eq!(
            parse_publish("53/udp").unwrap(),
            vec![("53/udp".into(), String::new(), String::new())]
        );
        let r = parse_publish("8000-8001:9000-9001").unwrap();
        assert_eq!(r[1], ("9001/tcp".into(), String::new(), "8001".into()));
        assert!(parse_publish("a:b:c:d").is_err());
        assert!(parse_publish("80/xyz").is_err());
    }

    #[test]
    fn flags_become_docker_body() {
        let f = NetFlags {
            ip: Some("10.1.0.9".into()),
            network_alias: vec!["db".into()],
            publish: vec!["8080:80".into()],
            publish_all: true,
            expose: vec!["9000-9001/udp".into()],
            link: vec!["a:b".into()],
            ..Default::default()
        };
        let mut b = json!({"HostConfig": {"NetworkMode": "app-net"}});
        f.apply(&mut b).unwrap();
        assert_eq!(
            b["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
            "8080"
        );
        assert!(b["ExposedPorts"]["9001/udp"].is_object());
        assert_eq!(b["HostConfig"]["PublishAllPorts"], true);
        assert_eq!(b["HostConfig"]["Links"][0], "a:b");
        let ep = &b["NetworkingConfig"]["EndpointsConfig"]["app-net"];
        assert_eq!(ep["Aliases"][0], "db");
        assert_eq!(ep["IPAMConfig"]["IPv4Address"], "10.1.0.9");
    }

    #[test]
    fn port_output_and_ps_column() {
        let v = json!({"Name": "/web", "NetworkSettings": {"Ports": {
            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": null}}});
        assert_eq!(
            port_lines(&v, None).unwrap(),
            vec!["80/tcp -> 0.0.0.0:8080"]
        );
        assert_eq!(port_lines(&v, Some("80")).unwrap(), vec!["0.0.0.0:8080"]);
        let e = port_lines(&v, Some("81")).unwrap_err().to_string();
        assert!(
            e.contains("No public port '81/tcp' published for web"),
            "{e}"
        );
        let s = json!({"Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
                                  {"PrivatePort": 443, "Type": "tcp"}]});
        assert_eq!(ps_ports(&s), "0.0.0.0:8080->80/tcp, 443/tcp");
    }
}
