//! Engine settings: where state lives and what `berth.toml` says.

use std::path::{Path, PathBuf};

use berth_registry::RegistryConfig;

use crate::error::EngineError;

/// Default persistent state directory (`--data-root`, `BERTH_ROOT`).
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";
/// Default runtime state directory (`--exec-root`, `BERTH_RUNROOT`).
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth";
/// Default configuration file (`--config`, `BERTH_CONFIG`).
pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/berth.toml";

/// Everything the engine needs to open its state.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Persistent state: images, containers, volumes.
    pub data_root: PathBuf,
    /// Runtime state: sockets, pid files.
    pub exec_root: PathBuf,
    /// The configuration file the registry settings came from, if any.
    pub config_file: Option<PathBuf>,
    /// `[registries]` of berth.toml.
    pub registries: RegistryConfig,
    /// Networking: default bridge, address pools, device prefix, nft table.
    pub network: NetOptions,
}

/// berthd's networking settings (`--bridge`, `--bip`, `--default-address-pool`,
/// `--net-prefix`, `--nft-table`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetOptions {
    /// The default bridge network's device (`-b/--bridge`, Docker's `docker0`); `none`
    /// disables the default bridge (containers then get only loopback). `None`: what the
    /// last start used (kept in `<data-root>/network/settings.json`), else `berth0`.
    pub bridge: Option<String>,
    /// The default bridge's address and prefix (`--bip 10.1.0.1/24`); picked from the
    /// pools when `None`.
    pub bip: Option<String>,
    /// Pools user-defined networks (and the default bridge, without `--bip`) get their
    /// subnets from; Docker's defaults when empty.
    pub pools: Vec<berth_network::SubnetPool>,
    /// Prefix of every device the engine names itself (user-network bridges, host-side
    /// veths); empty means Docker's `br-<id>` and `veth<hash>`. `None`: as last time.
    pub prefix: Option<String>,
    /// The nftables table (family inet) holding every rule of the engine. `None`: as
    /// last time, else `berth`.
    pub nft_table: Option<String>,
}

impl EngineConfig {
    /// A configuration with these roots and default registry settings.
    pub fn new(data_root: impl Into<PathBuf>, exec_root: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_root: data_root.into(),
            exec_root: exec_root.into(),
            config_file: None,
            registries: RegistryConfig::default(),
            network: NetOptions::default(),
        }
    }

    /// Reads berth.toml at `path` (a missing file means defaults).
    pub fn with_config_file(mut self, path: &Path) -> Result<Self, EngineError> {
        self.registries = RegistryConfig::load_or_default(path)
            .map_err(|e| EngineError::Config(format!("{}: {e}", path.display())))?;
        self.config_file = Some(path.to_owned());
        Ok(self)
    }

    /// Where the image store lives.
    pub fn image_root(&self) -> PathBuf {
        self.data_root.join("image")
    }
}
