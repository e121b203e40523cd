//! `/volumes…`: list, create, inspect, remove, prune. Each decodes Docker's request,
//! calls one engine method and encodes the answer.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use berth_engine::volumes::CreateOptions;
use serde::Deserialize;

use crate::error::ApiError;
use crate::server::{ApiResult, Ctx, Req};
use crate::version::ApiVersion;

/// `POST /volumes/create` body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateVolumeBody {
    /// Name (empty: random).
    pub name: String,
    /// Driver (`local`).
    pub driver: String,
    /// DriverOpts.
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
}

/// Routes `/volumes…`; `None` when the path is not a volume route.
pub async fn route(ctx: &Ctx, req: &Req, body: Body) -> Option<ApiResult> {
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    if segs.first() != Some(&"volumes") {
        return None;
    }
    let r = match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["volumes"]) => list(ctx, req).await,
        ("POST", ["volumes", "create"]) => create(ctx, body).await,
        ("POST", ["volumes", "prune"]) => prune(ctx, req).await,
        ("GET", ["volumes", name]) => inspect(ctx, name).await,
        ("DELETE", ["volumes", name]) => remove(ctx, name, req).await,
        _ => return None,
    };
    Some(r)
}

async fn list(ctx: &Ctx, req: &Req) -> ApiResult {
    let filters = req.query.filters().map_err(ApiError::bad_request)?;
    Ok(Json(ctx.engine.list_volumes(filters).await?).into_response())
}

async fn create(ctx: &Ctx, body: Body) -> ApiResult {
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(format!("cannot read request body: {e}")))?;
    let b: CreateVolumeBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        CreateVolumeBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON in request body: {e}")))?
    };
    let v = ctx
        .engine
        .create_volume(CreateOptions {
            name: b.name,
            driver: b.driver,
            labels: b.labels.unwrap_or_default(),
            options: b.driver_opts.unwrap_or_default(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn inspect(ctx: &Ctx, name: &str) -> ApiResult {
    Ok(Json(ctx.engine.inspect_volume(name).await?).into_response())
}

async fn remove(ctx: &Ctx, name: &str, req: &Req) -> ApiResult {
    ctx.engine
        .remove_volume(name, req.query.bool("force"))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(ctx: &Ctx, req: &Req) -> ApiResult {
    let filters = req.query.filters().map_err(ApiError::bad_request)?;
    // API < 1.42 prunes every unused volume; from 1.42 only anonymous ones unless
    // `all=true` (moby's volume routes)
    let all_by_default = req.version
        < (ApiVersion {
            major: 1,
            minor: 42,
        });
    Ok(Json(ctx.engine.prune_volumes(filters, all_by_default).await?).into_response())
}

/// One `HostConfig.Mounts` entry (moby `api/types/mount.Mount`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiMount {
    /// bind, volume, tmpfs.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Source.
    pub source: String,
    /// Target.
    pub target: String,
    /// ReadOnly.
    pub read_only: bool,
    /// BindOptions.
    pub bind_options: Option<ApiBindOptions>,
    /// VolumeOptions.
    pub volume_options: Option<ApiVolumeOptions>,
    /// TmpfsOptions.
    pub tmpfs_options: Option<ApiTmpfsOptions>,
}

/// `BindOptions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiBindOptions {
    /// Propagation.
    pub propagation: String,
}

/// `VolumeOptions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiVolumeOptions {
    /// NoCopy.
    pub no_copy: bool,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// DriverConfig.
    pub driver_config: Option<ApiDriver>,
}

/// `DriverConfig`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiDriver {
    /// Name.
    pub name: String,
    /// Options.
    pub options: Option<BTreeMap<String, String>>,
}

/// `TmpfsOptions`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiTmpfsOptions {
    /// SizeBytes.
    pub size_bytes: i64,
    /// Mode (Go `os.FileMode`, permission bits).
    pub mode: u32,
}

/// The storage fields of Docker's create body.
#[derive(Debug, Default)]
pub struct StorageFields {
    /// `HostConfig.Binds`.
    pub binds: Option<Vec<String>>,
    /// `HostConfig.Mounts`.
    pub mounts: Option<Vec<ApiMount>>,
    /// `HostConfig.Tmpfs`.
    pub tmpfs: Option<BTreeMap<String, String>>,
    /// `HostConfig.VolumesFrom`.
    pub volumes_from: Option<Vec<String>>,
    /// `Config.Volumes` (keys).
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
}

/// Translates the storage fields into a checked [`StorageSpec`] (400 with moby's
/// message when a mount is invalid).
pub fn storage_spec(f: StorageFields) -> Result<berth_types::mounts::StorageSpec, ApiError> {
    use berth_types::mounts::{MountOrigin, MountSpec, StorageSpec, mount_kind};
    let mut mounts = Vec::new();
    for m in f.mounts.unwrap_or_default() {
        let kind = mount_kind(&m.kind).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let vo = m.volume_options.unwrap_or_default();
        let dc = vo.driver_config.unwrap_or_default();
        let to = m.tmpfs_options.unwrap_or_default();
        mounts.push(MountSpec {
            kind,
            source: m.source,
            target: m.target,
            read_only: m.read_only,
            propagation: m.bind_options.map(|b| b.propagation).unwrap_or_default(),
            nocopy: vo.no_copy,
            tmpfs_size: to.size_bytes,
            tmpfs_mode: to.mode & 0o7777,
            origin: MountOrigin::Mount,
            driver: dc.name,
            volume_labels: vo.labels.unwrap_or_default(),
            volume_options: dc.options.unwrap_or_default(),
            ..Default::default()
        });
    }
    let s = StorageSpec {
        binds: f.binds.unwrap_or_default(),
        mounts,
        tmpfs: f.tmpfs.unwrap_or_default(),
        volumes_from: f.volumes_from.unwrap_or_default(),
        volumes: f.volumes.unwrap_or_default().into_keys().collect(),
    };
    s.mount_specs()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_body_storage_becomes_a_spec() {
        let mounts: Vec<ApiMount> = serde_json::from_value(serde_json::json!([
            {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 448}},
            {"Type": "volume", "Source": "vv", "Target": "/v", "VolumeOptions": {"NoCopy": true}}
        ]))
        .unwrap();
        let s = storage_spec(StorageFields {
            binds: Some(vec!["/h:/b:ro".into()]),
            mounts: Some(mounts),
            tmpfs: Some([("/run".to_owned(), "size=1m".to_owned())].into()),
            volumes_from: Some(vec!["other:ro".into()]),
            volumes: Some([("/anon".to_owned(), serde_json::json!({}))].into()),
        })
        .unwrap();
        let specs = s.mount_specs().unwrap();
        assert_eq!(specs.len(), 4);
        assert_eq!(specs[1].tmpfs_mode, 0o700);
        assert!(specs[2].nocopy);
        let e = storage_spec(StorageFields {
            binds: Some(vec!["/h:/b:bogus".into()]),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e.message, "invalid mode: bogus");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }
}
