//! Bridge and veth plumbing over rtnetlink.
//!
//! Each function takes a connected [`Handle`]; the socket behind it belongs to the network
//! namespace of the thread that opened it (see [`crate::netns::block_on_in`]), which is how the
//! container side is configured: a second connection opened from a thread inside its namespace.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

const EEXIST: i32 = 17;
const ENODEV: i32 = 19;
const ENOENT: i32 = 2;

/// A netlink request that failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("failed to {op} {dev:?}: {source}")]
    Netlink {
        op: &'static str,
        dev: String,
        source: rtnetlink::Error,
    },
    #[error("failed to open a netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("link {0:?} does not exist")]
    Missing(String),
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

fn nl(op: &'static str, dev: &str) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let dev = dev.to_owned();
    move |source| LinkError::Netlink { op, dev, source }
}

/// Open a netlink connection in the calling thread's namespace; must run inside a tokio runtime.
pub fn connect() -> Result<Handle, LinkError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(LinkError::Socket)?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Index of the link called `name`, `None` when there is none.
pub async fn index_of(h: &Handle, name: &str) -> Result<Option<u32>, LinkError> {
    match h
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await
    {
        Ok(Some(msg)) => Ok(Some(msg.header.index)),
        Ok(None) => Ok(None),
        Err(e) if matches!(errno(&e), Some(ENODEV)) => Ok(None),
        Err(e) => Err(nl("look up", name)(e)),
    }
}

async fn require(h: &Handle, name: &str) -> Result<u32, LinkError> {
    index_of(h, name)
        .await?
        .ok_or_else(|| LinkError::Missing(name.to_owned()))
}

/// Create the bridge if missing (idempotent), give it the gateway address and bring it up.
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
    mtu: u32,
) -> Result<u32, LinkError> {
    if index_of(h, name).await?.is_none() {
        // a fixed MAC: otherwise the bridge takes its lowest port's MAC, which changes as
        // containers come and go and leaves stale gateway entries in their ARP caches
        let g = gateway.octets();
        let mac = vec![0x02, 0x42, g[0], g[1], g[2], g[3]];
        match h
            .link()
            .add(LinkBridge::new(name).mtu(mtu).address(mac).build())
            .execute()
            .await
        {
            Ok(()) => {}
            Err(e) if errno(&e) == Some(EEXIST) => {}
            Err(e) => return Err(nl("create bridge", name)(e)),
        }
    }
    let idx = require(h, name).await?;
    match h
        .address()
        .add(idx, IpAddr::V4(gateway), prefix)
        .execute()
        .await
    {
        Ok(()) => {}
        Err(e) if errno(&e) == Some(EEXIST) => {}
        Err(e) => return Err(nl("add gateway address to", name)(e)),
    }
    h.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(nl("bring up", name))?;
    Ok(idx)
}

/// Names of the links enslaved to the bridge `bridge_idx`.
pub async fn ports_of(h: &Handle, bridge_idx: u32) -> Result<Vec<String>, LinkError> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let mut links = h.link().get().execute();
    let mut out = Vec::new();
    while let Some(msg) = links
        .try_next()
        .await
        .map_err(nl("list links of", &bridge_idx.to_string()))?
    {
        let mut name = None;
        let mut controller = None;
        for a in &msg.attributes {
            match a {
                LinkAttribute::IfName(n) => name = Some(n.clone()),
                LinkAttribute::Controller(c) => controller = Some(*c),
                _ => {}
            }
        }
        if controller == Some(bridge_idx)
            && let Some(n) = name
        {
            out.push(n);
        }
    }
    Ok(out)
}

/// Delete a link by name. Returns `false` when it was already gone.
pub async fn delete_link(h: &Handle, name: &str) -> Result<bool, LinkError> {
    let Some(idx) = index_of(h, name).await? else {
        return Ok(false);
    };
    match h.link().del(idx).execute().await {
        Ok(()) => Ok(true),
        Err(e) if matches!(errno(&e), Some(ENODEV | ENOENT)) => Ok(false),
        Err(e) => Err(nl("delete", name)(e)),
    }
}

/// Create the veth pair in one request: `host` attached to the bridge `bridge_idx` and up,
/// its peer created directly inside the namespace `netns` under its final name with its MAC
/// and MTU (no move between namespaces, no rename: both cost an RCU grace period).
pub async fn create_veth(
    h: &Handle,
    host: &str,
    bridge_idx: u32,
    mtu: u32,
    peer_name: &str,
    peer_mac: [u8; 6],
    netns: &impl AsRawFd,
) -> Result<(), LinkError> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(peer_name.to_owned())
        .address(peer_mac.to_vec())
        .mtu(mtu)
        .setns_by_fd(netns.as_raw_fd())
        .build();
    let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(host.to_owned())
        .mtu(mtu)
        .controller(bridge_idx)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(nl("create veth", host))
}

/// Inside the container namespace: add the address to `ifname`, bring it and `lo` up and
/// route the default via `gateway`.
pub async fn configure_container(
    h: &Handle,
    ifname: &str,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<(), LinkError> {
    let idx = require(h, ifname).await?;
    h.address()
        .add(idx, IpAddr::V4(ip), prefix)
        .execute()
        .await
        .map_err(nl("add address to", ifname))?;
    h.link()
        .set(LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .map_err(nl("bring up", ifname))?;
    if let Some(lo) = index_of(h, "lo").await? {
        h.link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(nl("bring up", "lo"))?;
    }
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .output_interface(idx)
        .build();
    match h.route().add(route).execute().await {
        Ok(()) => {}
        Err(e) if errno(&e) == Some(EEXIST) => {}
        Err(e) => return Err(nl("add default route on", ifname)(e)),
    }
    Ok(())
}
