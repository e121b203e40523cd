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
}

impl EngineConfig {
    /// A configuration with these roots and default registry settings.
    pub fn new(data_root: impl Into<PathBuf>, exec_root: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_root: data_root.into(),
            exec_root: exec_root.into(),
            config_file: None,
            registries: RegistryConfig::default(),
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
