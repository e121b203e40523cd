//! `/networks…` routes: each decodes Docker's request, calls one engine method, encodes
//! the answer (moby `api/server/router/network`).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use berth_engine::networks::CreateRequest;
use berth_types::net::EndpointSpec;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::server::{ApiResult, Ctx, Req};

/// `POST /networks/create` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateBody {
    /// Name.
    pub name: String,
    /// Driver.
    pub driver: String,
    /// Internal.
    pub internal: bool,
    /// Attachable.
    pub attachable: bool,
    /// EnableIPv6 (refused when true).
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    /// IPAM.
    #[serde(rename = "IPAM")]
    pub ipam: Option<IpamBody>,
    /// Options.
    pub options: Option<BTreeMap<String, String>>,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
}

/// `IPAM`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamBody {
    /// Driver.
    pub driver: String,
    /// Config.
    pub config: Option<Vec<IpamConfigBody>>,
}

/// One `IPAM.Config` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfigBody {
    /// Subnet.
    pub subnet: String,
    /// IPRange.
    #[serde(rename = "IPRange")]
    pub ip_range: String,
    /// Gateway.
    pub gateway: String,
}

/// An `EndpointSettings` (connect bodies and `NetworkingConfig.EndpointsConfig`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointBody {
    /// IPAMConfig.
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpam>,
    /// Links.
    pub links: Option<Vec<String>>,
    /// Aliases.
    pub aliases: Option<Vec<String>>,
    /// MacAddress.
    pub mac_address: String,
}

/// `IPAMConfig` of an endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointIpam {
    /// IPv4Address.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
}

impl EndpointBody {
    /// The engine's view.
    pub fn into_spec(self) -> EndpointSpec {
        EndpointSpec {
            aliases: self.aliases.unwrap_or_default(),
            ipv4_address: self.ipam_config.map(|i| i.ipv4_address).unwrap_or_default(),
            links: self.links.unwrap_or_default(),
            mac_address: self.mac_address,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<EndpointBody>,
    force: bool,
}

impl NetworkCreateBody {
    /// The engine's request.
    pub fn into_request(self) -> Result<CreateRequest, ApiError> {
        if self.enable_ipv6 == Some(true) {
            return Err(ApiError::bad_request("IPv6 networks are not supported"));
        }
        let ipam = self.ipam.unwrap_or_default();
        if !ipam.driver.is_empty() && ipam.driver != "default" {
            return Err(ApiError::bad_request(format!(
                "IPAM driver {:?} is not supported (default only)",
                ipam.driver
            )));
        }
        let configs = ipam.config.unwrap_or_default();
        if configs.len() > 1 {
            return Err(ApiError::bad_request(
                "only one IPAM config (one IPv4 subnet) per network is supported",
            ));
        }
        let c = configs.into_iter().next().unwrap_or_default();
        let opt = |s: String| (!s.is_empty()).then_some(s);
        Ok(CreateRequest {
            name: self.name,
            driver: self.driver,
            subnet: opt(c.subnet),
            gateway: opt(c.gateway),
            ip_range: opt(c.ip_range),
            internal: self.internal,
            attachable: self.attachable,
            labels: self.labels.unwrap_or_default(),
            options: self.options.unwrap_or_default(),
        })
    }
}

async fn body_json<T: for<'de> Deserialize<'de> + Default>(body: Body) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in request body: {e}")))
}

/// `GET /networks` filters: name, id (prefix), driver, label, type (builtin/custom).
fn matches(v: &Value, f: &BTreeMap<String, Vec<String>>) -> bool {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    for (k, vals) in f {
        let ok = match k.as_str() {
            "name" => vals.iter().any(|x| s("Name").contains(x.as_str())),
            "id" => vals.iter().any(|x| s("Id").starts_with(x.as_str())),
            "driver" => vals.iter().any(|x| s("Driver") == *x),
            "scope" => vals.iter().any(|x| x == "local"),
            "type" => vals.iter().any(|x| {
                let builtin = matches!(s("Name").as_str(), "bridge" | "host" | "none");
                (x == "builtin" && builtin) || (x == "custom" && !builtin)
            }),
            "label" => vals.iter().all(|x| match x.split_once('=') {
                Some((lk, lv)) => v["Labels"][lk].as_str() == Some(lv),
                None => v["Labels"].get(x).is_some(),
            }),
            "dangling" => vals.iter().any(|x| {
                let empty = v["Containers"].as_object().is_none_or(|m| m.is_empty());
                let builtin = matches!(s("Name").as_str(), "bridge" | "host" | "none");
                let want = matches!(x.as_str(), "true" | "1");
                want == (empty && !builtin)
            }),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Routes `/networks…`; `None` when the path is not one of them.
pub async fn route(ctx: &Ctx, req: &Req, body: Body) -> Option<ApiResult> {
    let path = req.path.trim_start_matches('/').to_owned();
    let segs: Vec<&str> = path.split('/').collect();
    let r = match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["networks"]) => list(ctx, req).await,
        ("POST", ["networks", "create"]) => create(ctx, body).await,
        ("POST", ["networks", "prune"]) => prune(ctx, req).await,
        ("POST", ["networks", "reload"]) => reload(ctx).await,
        ("GET", ["networks", id]) => ctx
            .engine
            .inspect_network(id)
            .await
            .map(|v| Json(v).into_response())
            .map_err(ApiError::from),
        ("DELETE", ["networks", id]) => match ctx.engine.remove_network(id).await {
            Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
            Err(e) => Err(e.into()),
        },
        ("POST", ["networks", id, "connect"]) => connect(ctx, id, body).await,
        ("POST", ["networks", id, "disconnect"]) => disconnect(ctx, id, body).await,
        _ => return None,
    };
    Some(r)
}

async fn list(ctx: &Ctx, req: &Req) -> ApiResult {
    let f = req.query.filters().map_err(ApiError::bad_request)?;
    for k in f.keys() {
        if !matches!(
            k.as_str(),
            "name" | "id" | "driver" | "scope" | "type" | "label" | "dangling"
        ) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    let v: Vec<Value> = ctx
        .engine
        .list_networks()
        .await
        .into_iter()
        .filter(|v| matches(v, &f))
        .collect();
    Ok(Json(v).into_response())
}

async fn create(ctx: &Ctx, body: Body) -> ApiResult {
    let b: NetworkCreateBody = body_json(body).await?;
    let r = ctx.engine.create_network(b.into_request()?).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"Id": r.id, "Warning": ""})),
    )
        .into_response())
}

async fn prune(ctx: &Ctx, req: &Req) -> ApiResult {
    let f = req.query.filters().map_err(ApiError::bad_request)?;
    let labels = f.get("label").cloned().unwrap_or_default();
    let not_labels = f.get("label!").cloned().unwrap_or_default();
    let gone = ctx.engine.prune_networks(labels, not_labels).await?;
    Ok(Json(json!({"NetworksDeleted": gone})).into_response())
}

async fn reload(ctx: &Ctx) -> ApiResult {
    ctx.engine.reload_networks().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn connect(ctx: &Ctx, id: &str, body: Body) -> ApiResult {
    let b: ConnectBody = body_json(body).await?;
    let ep = b.endpoint_config.unwrap_or_default().into_spec();
    ctx.engine.connect_network(id, &b.container, ep).await?;
    Ok(StatusCode::OK.into_response())
}

async fn disconnect(ctx: &Ctx, id: &str, body: Body) -> ApiResult {
    let b: ConnectBody = body_json(body).await?;
    ctx.engine
        .disconnect_network(id, &b.container, b.force)
        .await?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_becomes_a_request() {
        let b: NetworkCreateBody = serde_json::from_value(json!({
            "Name": "app-net", "Driver": "bridge", "Internal": true,
            "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.5.0.0/24", "Gateway": "10.5.0.254", "IPRange": "10.5.0.128/25"}]},
            "Options": {"com.docker.network.bridge.name": "br-app"},
            "Labels": {"a": "b"}
        }))
        .unwrap();
        let r = b.into_request().unwrap();
        assert_eq!(r.name, "app-net");
        assert_eq!(r.subnet.as_deref(), Some("10.5.0.0/24"));
        assert_eq!(r.gateway.as_deref(), Some("10.5.0.254"));
        assert_eq!(r.ip_range.as_deref(), Some("10.5.0.128/25"));
        assert!(r.internal);
        assert_eq!(r.options["com.docker.network.bridge.name"], "br-app");
        let b: NetworkCreateBody =
            serde_json::from_value(json!({"Name": "x", "EnableIPv6": true})).unwrap();
        assert_eq!(
            b.into_request().unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn list_filters() {
        let v = json!({"Name": "app-net", "Id": "abcdef", "Driver": "bridge",
                       "Labels": {"env": "test"}, "Containers": {}});
        let f = |k: &str, x: &str| BTreeMap::from([(k.to_owned(), vec![x.to_owned()])]);
        assert!(matches(&v, &f("name", "app")));
        assert!(!matches(&v, &f("name", "db")));
        assert!(matches(&v, &f("id", "abc")));
        assert!(matches(&v, &f("label", "env=test")));
        assert!(!matches(&v, &f("label", "env=prod")));
        assert!(matches(&v, &f("type", "custom")));
        assert!(matches(&v, &f("dangling", "true")));
        assert!(matches(&v, &f("driver", "bridge")));
    }

    #[test]
    fn endpoint_body_becomes_a_spec() {
        let b: EndpointBody = serde_json::from_value(json!({
            "IPAMConfig": {"IPv4Address": "10.5.0.9"}, "Aliases": ["db", "x"]
        }))
        .unwrap();
        let s = b.into_spec();
        assert_eq!(s.ipv4_address, "10.5.0.9");
        assert_eq!(s.aliases, vec!["db", "x"]);
    }
}

/// The networking fields of `POST /containers/create` (flattened into the create body).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetConfigBody {
    /// ExposedPorts (`{"80/tcp": {}}`).
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// MacAddress (deprecated top-level form).
    pub mac_address: String,
    /// NetworkingConfig.
    pub networking_config: Option<NetworkingConfigBody>,
}

/// `NetworkingConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfigBody {
    /// EndpointsConfig.
    pub endpoints_config: Option<BTreeMap<String, Option<EndpointBody>>>,
}

/// The networking fields of `HostConfig` (flattened into it).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetHostConfigBody {
    /// PortBindings (`{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}`).
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBindingBody>>>>,
    /// PublishAllPorts.
    pub publish_all_ports: bool,
    /// Links (`name:alias`).
    pub links: Option<Vec<String>>,
}

/// One host binding of a port.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBindingBody {
    /// HostIp.
    pub host_ip: String,
    /// HostPort (empty: random).
    pub host_port: String,
}

/// The create body's networking as the spec's [`berth_types::net::NetSpec`].
pub fn net_spec(
    c: NetConfigBody,
    h: NetHostConfigBody,
    mode: &berth_types::spec::NetworkMode,
) -> Result<berth_types::net::NetSpec, ApiError> {
    let mut spec = berth_types::net::NetSpec {
        publish_all: h.publish_all_ports,
        links: h.links.unwrap_or_default(),
        mac_address: c.mac_address,
        ..Default::default()
    };
    for (port, binds) in h.port_bindings.unwrap_or_default() {
        let (p, proto) = port.split_once('/').unwrap_or((&port, "tcp"));
        for b in binds.unwrap_or_default() {
            let ip = if b.host_ip.is_empty() {
                String::new()
            } else if b.host_ip.contains(':') {
                return Err(ApiError::bad_request(format!(
                    "IPv6 host addresses are not supported: {}",
                    b.host_ip
                )));
            } else {
                format!("{}:", b.host_ip)
            };
            let entry = if ip.is_empty() && b.host_port.is_empty() {
                format!("{p}/{proto}")
            } else {
                format!("{ip}{}:{p}/{proto}", b.host_port)
            };
            spec.publish.push(entry);
        }
    }
    for k in c.exposed_ports.unwrap_or_default().keys() {
        spec.expose.push(k.clone());
    }
    for (name, ep) in c
        .networking_config
        .and_then(|n| n.endpoints_config)
        .unwrap_or_default()
    {
        let mut ep = ep.unwrap_or_default().into_spec();
        // `--link` on a user network arrives in the endpoint; keep them together
        if mode.network_name() == Some(name.as_str()) || name == mode.as_str() {
            spec.links.extend(std::mem::take(&mut ep.links));
        }
        spec.networks.insert(name, ep);
    }
    Ok(spec)
}

#[cfg(test)]
mod create_tests {
    use super::*;

    #[test]
    fn create_body_networking_becomes_a_net_spec() {
        let c: NetConfigBody = serde_json::from_value(json!({
            "ExposedPorts": {"80/tcp": {}},
            "NetworkingConfig": {"EndpointsConfig": {"app-net": {"Aliases": ["db"], "IPAMConfig": {"IPv4Address": "10.1.0.5"}}}}
        }))
        .unwrap();
        let h: NetHostConfigBody = serde_json::from_value(json!({
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}], "53/udp": [{"HostIp": "", "HostPort": ""}]},
            "PublishAllPorts": true,
            "Links": ["db:database"]
        }))
        .unwrap();
        let mode = berth_types::spec::NetworkMode::Named("app-net".into());
        let s = net_spec(c, h, &mode).unwrap();
        assert!(
            s.publish.contains(&"127.0.0.1:8080:80/tcp".to_owned()),
            "{:?}",
            s.publish
        );
        assert!(s.publish.contains(&"53/udp".to_owned()), "{:?}", s.publish);
        assert!(s.publish_all);
        assert_eq!(s.expose, vec!["80/tcp"]);
        assert_eq!(s.links, vec!["db:database"]);
        assert_eq!(s.networks["app-net"].aliases, vec!["db"]);
        assert_eq!(s.networks["app-net"].ipv4_address, "10.1.0.5");
    }
}
