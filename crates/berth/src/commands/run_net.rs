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
    /// Adds these flags and the `--network` values to a create body.
    pub fn apply(&self, body: &mut Value, networks: &[String]) -> anyhow::Result<()> {
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
        let attachments = self.endpoints(networks)?;
        if !attachments.is_empty() {
            body["NetworkingConfig"] = json!({"EndpointsConfig": attachments});
        }
        Ok(())
    }

    /// `NetworkingConfig.EndpointsConfig` for the `--network` values (docker/cli's
    /// `parseNetworkOpts`): the first network takes `--ip`, `--network-alias` and
    /// `--mac-address`; a single network without options needs no endpoint.
    fn endpoints(&self, networks: &[String]) -> anyhow::Result<serde_json::Map<String, Value>> {
        let mut list: Vec<Attachment> = networks
            .iter()
            .map(|n| Attachment::parse(n))
            .collect::<anyhow::Result<_>>()?;
        if list.is_empty() {
            list.push(Attachment::named("default"));
        }
        let (mut user, mut builtin) = (false, false);
        let mut out = serde_json::Map::new();
        let count = list.len();
        for (i, mut a) in list.into_iter().enumerate() {
            if is_user_defined(&a.name) {
                user = true;
            } else {
                builtin = true;
            }
            if i == 0 {
                if !self.network_alias.is_empty() {
                    if !a.aliases.is_empty() {
                        anyhow::bail!(
                            "conflicting options: cannot specify both --network-alias and per-network alias"
                        );
                    }
                    a.aliases = self.network_alias.clone();
                }
                if let Some(ip) = &self.ip {
                    if a.ip.is_some() {
                        anyhow::bail!(
                            "conflicting options: cannot specify both --ip and per-network IPv4 address"
                        );
                    }
                    a.ip = Some(ip.clone());
                }
                if let Some(m) = &self.mac_address {
                    if a.mac.is_some() {
                        anyhow::bail!(
                            "conflicting options: cannot specify both --mac-address and per-network MAC address"
                        );
                    }
                    a.mac = Some(m.clone());
                }
            }
            let name = if a.name == "default" {
                "bridge".to_owned()
            } else {
                a.name.clone()
            };
            if out.contains_key(&name) {
                anyhow::bail!("network {:?} is specified multiple times", a.name);
            }
            if count == 1 && a.is_plain() {
                continue;
            }
            out.insert(name, a.endpoint());
        }
        if user && builtin {
            anyhow::bail!(
                "conflicting options: cannot attach both user-defined and non-user-defined network-modes"
            );
        }
        Ok(out)
    }
}

/// `HostConfig.NetworkMode` for the `--network` values: the first one's network.
pub fn network_mode(networks: &[String]) -> String {
    networks
        .first()
        .map(|n| {
            Attachment::parse(n)
                .map(|a| a.name)
                .unwrap_or_else(|_| n.clone())
        })
        .unwrap_or_else(|| "default".into())
}

/// Docker's built-in network modes; every other name is a user-defined network.
fn is_user_defined(name: &str) -> bool {
    !matches!(name, "default" | "bridge" | "host" | "none") && !name.starts_with("container:")
}

/// One `--network` value: a name, or docker's advanced syntax
/// `name=NET[,alias=A][,ip=IP][,mac-address=MAC][,driver-opt=K=V]`.
#[derive(Debug, Default)]
struct Attachment {
    name: String,
    aliases: Vec<String>,
    ip: Option<String>,
    mac: Option<String>,
    driver_opts: BTreeMap<String, String>,
}

impl Attachment {
    fn named(name: &str) -> Attachment {
        Attachment {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    fn parse(v: &str) -> anyhow::Result<Attachment> {
        if !v.contains('=') {
            return Ok(Attachment::named(v));
        }
        let mut a = Attachment::default();
        for field in v.split(',') {
            let (k, val) = field.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("invalid field {field:?} must be a key=value pair")
            })?;
            match k.trim().to_ascii_lowercase().as_str() {
                "name" => a.name = val.to_owned(),
                "alias" => a.aliases.push(val.to_owned()),
                "ip" => a.ip = Some(val.to_owned()),
                "mac-address" => a.mac = Some(val.to_owned()),
                "driver-opt" => {
                    let (dk, dv) = val.split_once('=').ok_or_else(|| {
                        anyhow::anyhow!("invalid driver-opt {val:?}: expected key=value")
                    })?;
                    a.driver_opts.insert(dk.to_owned(), dv.to_owned());
                }
                other => anyhow::bail!("invalid field key {other}"),
            }
        }
        if a.name.is_empty() {
            anyhow::bail!("network name must be set: {v:?}");
        }
        Ok(a)
    }

    fn is_plain(&self) -> bool {
        self.aliases.is_empty()
            && self.ip.is_none()
            && self.mac.is_none()
            && self.driver_opts.is_empty()
    }

    fn endpoint(&self) -> Value {
        let mut ep = json!({});
        if !self.aliases.is_empty() {
            ep["Aliases"] = json!(self.aliases);
        }
        if let Some(ip) = &self.ip {
            ep["IPAMConfig"] = json!({"IPv4Address": ip});
        }
        if let Some(m) = &self.mac {
            ep["MacAddress"] = json!(m);
        }
        if !self.driver_opts.is_empty() {
            ep["DriverOpts"] = json!(self.driver_opts);
        }
        ep
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
    // docker/cli's DisplayablePorts: sorted by private port, IP, public port, type;
    // ports published on the same number are grouped into ranges per IP and protocol
    // (`0.0.0.0:8000-8002->8000-8002/tcp`), unpublished ones per protocol (`80-81/tcp`),
    // other mappings listed one by one after the groups.
    struct Port {
        private: u64,
        ip: String,
        public: u64,
        proto: String,
    }
    let mut ports: Vec<Port> = v["Ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| Port {
            private: p["PrivatePort"].as_u64().unwrap_or(0),
            ip: p["IP"].as_str().unwrap_or_default().to_owned(),
            public: p["PublicPort"].as_u64().unwrap_or(0),
            proto: p["Type"].as_str().unwrap_or("tcp").to_owned(),
        })
        .collect();
    ports.sort_by(|a, b| {
        (a.private, &a.ip, a.public, &a.proto).cmp(&(b.private, &b.ip, b.public, &b.proto))
    });
    let form = |ip: &str, proto: &str, first: u64, last: u64| {
        let mut g = first.to_string();
        if first != last {
            g = format!("{g}-{last}");
        }
        if !ip.is_empty() {
            g = format!("{ip}:{g}->{g}");
        }
        format!("{g}/{proto}")
    };
    // (ip, proto) → (first, last), in the order the keys were first seen
    let mut groups: Vec<((String, String), (u64, u64))> = Vec::new();
    let mut result = Vec::new();
    let mut mappings = Vec::new();
    for p in &ports {
        let key = if p.ip.is_empty() {
            (String::new(), p.proto.clone())
        } else {
            if p.public != p.private {
                mappings.push(format!("{}:{}->{}/{}", p.ip, p.public, p.private, p.proto));
                continue;
            }
            (p.ip.clone(), p.proto.clone())
        };
        match groups.iter_mut().find(|(k, _)| *k == key) {
            None => groups.push((key, (p.private, p.private))),
            Some((_, g)) if p.private == g.1 + 1 => g.1 = p.private,
            Some((k, g)) => {
                result.push(form(&k.0, &k.1, g.0, g.1));
                *g = (p.private, p.private);
            }
        }
    }
    for ((ip, proto), (first, last)) in &groups {
        result.push(form(ip, proto, *first, *last));
    }
    result.extend(mappings);
    result.join(", ")
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
    fn ports_column_groups_ranges_like_the_docker_cli() {
        let port = |ip: &str, private: u64, public: u64, proto: &str| serde_json::json!({"IP": ip, "PrivatePort": private, "PublicPort": public, "Type": proto});
        let v = serde_json::json!({"Ports": [
            port("0.0.0.0", 8002, 8002, "tcp"),
            port("0.0.0.0", 8000, 8000, "tcp"),
            port("0.0.0.0", 8001, 8001, "tcp"),
            port("0.0.0.0", 80, 8080, "tcp"),
            port("", 53, 0, "udp"),
            port("", 54, 0, "udp"),
            port("", 9000, 0, "tcp"),
            port("127.0.0.1", 5000, 5000, "tcp"),
            port("0.0.0.0", 7000, 7000, "tcp"),
        ]});
        assert_eq!(
            ps_ports(&v),
            // as docker's: a group cut short by a gap comes before the groups still open
            "0.0.0.0:7000->7000/tcp, 53-54/udp, 127.0.0.1:5000->5000/tcp, \
             0.0.0.0:8000-8002->8000-8002/tcp, 9000/tcp, 0.0.0.0:8080->80/tcp"
        );
        assert_eq!(ps_ports(&serde_json::json!({"Ports": []})), "");
    }

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
        f.apply(&mut b, &["app-net".into()]).unwrap();
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
    fn several_networks_and_the_advanced_syntax_like_the_docker_cli() {
        let nets = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let body = |f: &NetFlags, n: &[String]| {
            let mut b = json!({});
            f.apply(&mut b, n).map(|()| b["NetworkingConfig"].clone())
        };
        let plain = NetFlags::default();
        // one network without options: no endpoint (the daemon makes it)
        assert_eq!(body(&plain, &nets(&["n1"])).unwrap(), Value::Null);
        assert_eq!(body(&plain, &[]).unwrap(), Value::Null);
        assert_eq!(network_mode(&nets(&["n1", "n2"])), "n1");
        assert_eq!(network_mode(&[]), "default");
        assert_eq!(network_mode(&nets(&["name=n3,alias=x"])), "n3");
        // several: one endpoint each; --ip and --network-alias go to the first
        let f = NetFlags {
            ip: Some("10.1.0.9".into()),
            network_alias: vec!["db".into()],
            ..Default::default()
        };
        let b = body(
            &f,
            &nets(&["n1", "name=n2,alias=cache,ip=10.2.0.5,driver-opt=k=v"]),
        )
        .unwrap();
        let eps = &b["EndpointsConfig"];
        assert_eq!(eps["n1"]["Aliases"], json!(["db"]));
        assert_eq!(eps["n1"]["IPAMConfig"]["IPv4Address"], "10.1.0.9");
        assert_eq!(eps["n2"]["Aliases"], json!(["cache"]));
        assert_eq!(eps["n2"]["IPAMConfig"]["IPv4Address"], "10.2.0.5");
        assert_eq!(eps["n2"]["DriverOpts"]["k"], "v");
        // docker's refusals
        let err = |f: &NetFlags, n: &[&str]| body(f, &nets(n)).unwrap_err().to_string();
        assert!(err(&plain, &["n1", "n1"]).contains("specified multiple times"));
        assert!(err(&plain, &["n1", "host"]).contains("user-defined and non-user-defined"));
        assert!(err(&f, &["name=n1,alias=x"]).contains("--network-alias and per-network alias"));
        assert!(err(&plain, &["name=n1,colour=red"]).contains("invalid field key colour"));
        assert!(err(&plain, &["alias=x"]).contains("network name must be set"));
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
        // as the docker CLI renders it: mappings to another port number come last
        assert_eq!(ps_ports(&s), "443/tcp, 0.0.0.0:8080->80/tcp");
    }
}
