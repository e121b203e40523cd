//! The core berthd wraps: store, lifecycle, ContainerSpec to OCI, volumes, logs, events,
//! health checks, reconciliation.
//!
//! This slice holds the image side: [`Engine`] owns the image store (berth-image) and the
//! event bus, and exposes every image operation the Engine API needs as one async method
//! each (blocking store work runs in `spawn_blocking`). API handlers only translate to
//! these calls.
#![forbid(unsafe_code)]

pub mod build;
pub mod config;
pub mod containers;
pub mod distribution;
pub mod error;
pub mod events;
pub mod images;
pub mod io;
pub mod networks;
pub mod system;
pub mod volumes;

use std::sync::Arc;

use berth_image::{ImageStore, StoreOptions};

pub use config::EngineConfig;
pub use error::{EngineError, ErrorKind};
pub use events::{Event, EventBus, EventFilter};

/// The engine: the only owner of berthd's state.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    images: ImageStore,
    events: Arc<EventBus>,
    containers: Arc<containers::Containers>,
    networks: Arc<networks::Networks>,
    id: String,
    volumes: Arc<volumes::Volumes>,
    /// Registry clients by registry and credentials (see `registry_client`).
    registry_clients: std::sync::Mutex<std::collections::HashMap<String, berth_registry::Client>>,
}

impl Engine {
    /// Opens (creating if needed) the state under the configured roots.
    pub fn open(config: EngineConfig) -> Result<Arc<Engine>, EngineError> {
        for d in [&config.data_root, &config.exec_root] {
            std::fs::create_dir_all(d).map_err(|source| EngineError::Io {
                op: "create directory",
                path: d.display().to_string(),
                source,
            })?;
        }
        let images = ImageStore::open(config.image_root(), StoreOptions::default())?;
        let id = engine_id(&config.data_root)?;
        let events = Arc::new(EventBus::new());
        let containers = containers::Containers::open(
            config.data_root.join("containers"),
            config.exec_root.join("runtime"),
            containers::default_shim_path(),
            images.clone(),
            events.clone(),
        )?;
        // after the containers' reconcile: users are rebuilt from the records it left
        let volumes = volumes::Volumes::open(
            config.data_root.join("volumes"),
            &config.data_root.join("containers"),
            events.clone(),
        )?;
        containers.set_volumes(volumes.clone());
        let networks = networks::Networks::open(
            &config.data_root,
            &config.exec_root,
            config.network.clone(),
            events.clone(),
        )?;
        containers.set_networks(networks.clone());
        containers.net_reconcile();
        // only now: a restart must not race the teardown of its old network state
        containers.restart_on_boot();
        Ok(Arc::new(Engine {
            config,
            images,
            events,
            containers,
            networks,
            id,
            volumes,
            registry_clients: Default::default(),
        }))
    }

    /// The configuration the engine was opened with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The event bus.
    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// The image store.
    pub fn image_store(&self) -> &ImageStore {
        &self.images
    }

    /// The persistent engine id (`/info` `ID`).
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Reads `<data_root>/engine-id`, creating it (atomically) on first start.
fn engine_id(data_root: &std::path::Path) -> Result<String, EngineError> {
    let path = data_root.join("engine-id");
    let io_err = |op: &'static str, source| EngineError::Io {
        op,
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("read", e)),
    }
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw)
        .map_err(|e| io_err("generate id for", std::io::Error::other(e.to_string())))?;
    let hex = hex::encode(raw);
    let id = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
    .to_uppercase();
    let tmp = data_root.join(format!(".engine-id.tmp-{}", std::process::id()));
    std::fs::write(&tmp, &id).map_err(|e| io_err("write", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_err("rename into place", e))?;
    Ok(id)
}
