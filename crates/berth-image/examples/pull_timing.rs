//! Times one pull into a fresh store: `pull_timing <root> <reference> [insecure-host]`.
//! Used to compare against `skopeo copy` / `podman pull` by hand or from bench/.

use std::sync::Arc;
use std::time::Instant;

use berth_image::{ImageStore, StoreOptions};
use berth_registry::{Client, Credentials, NoProgress, Platform, RegistryConfig};
use berth_types::reference::Reference;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (root, reference) = match (args.get(1), args.get(2)) {
        (Some(r), Some(i)) => (r.clone(), i.clone()),
        _ => return Err("usage: pull_timing <root> <reference> [insecure-host]".into()),
    };
    let cfg = RegistryConfig {
        insecure: args.get(3).cloned().into_iter().collect(),
        ..Default::default()
    };
    let client = Client::new(cfg, Credentials::anonymous())?;
    let store = ImageStore::open(&root, StoreOptions::default())?;
    let start = Instant::now();
    let pulled = store
        .pull(
            &client,
            &Reference::parse(&reference)?,
            &Platform::host(),
            Arc::new(NoProgress),
        )
        .await?;
    println!("{} {:.3}s", pulled.id, start.elapsed().as_secs_f64());
    Ok(())
}
