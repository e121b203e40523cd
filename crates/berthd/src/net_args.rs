//! berthd's networking flags.

use berth_engine::config::NetOptions;

/// `--bridge`, `--bip`, `--default-address-pool`, `--net-prefix`, `--nft-table`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NetArgs {
    /// The default bridge network's device, created if missing; "none" disables the default
    /// bridge [default: berth0]
    #[arg(short = 'b', long = "bridge", value_name = "NAME")]
    pub bridge: Option<String>,
    /// The default bridge's address and prefix (e.g. 10.1.0.1/24)
    #[arg(long = "bip", value_name = "CIDR")]
    pub bip: Option<String>,
    /// Pool of subnets for networks, repeatable (base=10.10.0.0/16,size=24) [default:
    /// Docker's pools]
    #[arg(long = "default-address-pool", value_name = "POOL")]
    pub pools: Vec<String>,
    /// Prefix of the bridges and veths berthd names itself (at most 8 characters), so that
    /// several daemons on one host never collide [default: br-/veth]
    #[arg(long = "net-prefix", value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// The nftables table (family inet) holding every rule of berthd [default: berth]
    #[arg(long = "nft-table", value_name = "NAME")]
    pub nft_table: Option<String>,
}

impl NetArgs {
    /// The engine's settings.
    pub fn resolve(&self) -> anyhow::Result<NetOptions> {
        let mut o = NetOptions::default();
        if let Some(b) = &self.bridge {
            if b.is_empty() || b.len() > 15 {
                anyhow::bail!("invalid --bridge {b:?}: a device name of 1 to 15 characters");
            }
            o.bridge = Some(b.clone());
        }
        o.bip = self.bip.clone();
        for p in &self.pools {
            o.pools
                .push(berth_engine::networks::parse_pool(p).map_err(anyhow::Error::msg)?);
        }
        if let Some(p) = &self.prefix {
            if p.len() > 8 || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                anyhow::bail!("invalid --net-prefix {p:?}: up to 8 letters, digits or '-'");
            }
            o.prefix = Some(p.clone());
        }
        if let Some(t) = &self.nft_table {
            o.nft_table = Some(t.clone());
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_resolve_to_engine_settings() {
        let a = NetArgs {
            bridge: Some("bt1br".into()),
            bip: Some("10.199.3.1/24".into()),
            pools: vec!["base=10.199.4.0/24,size=24".into()],
            prefix: Some("bt1".into()),
            nft_table: Some("bt1".into()),
        };
        let o = a.resolve().unwrap();
        assert_eq!(o.bridge.as_deref(), Some("bt1br"));
        assert_eq!(o.pools.len(), 1);
        assert_eq!(o.nft_table.as_deref(), Some("bt1"));
        let d = NetArgs::default().resolve().unwrap();
        assert_eq!((d.bridge, d.nft_table), (None, None));
        let bad = NetArgs {
            prefix: Some("much-too-long".into()),
            ..Default::default()
        };
        assert!(bad.resolve().is_err());
    }
}
