//! Test images built once per test run and shared: built into a temp path, then renamed
//! into a cache directory under the cargo target dir, under an exclusive file lock so
//! parallel test processes neither race nor build twice.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::Error;

/// Bump when the busybox recipe changes, so stale cached images are not reused.
const RECIPE_VERSION: &str = "busybox-1";

/// The fixed creation time of cached test images (2023-11-14T22:13:20Z): reproducible
/// bytes, so every run gets the same digests.
pub const TEST_IMAGE_EPOCH: i64 = 1_700_000_000;

/// The tag of the cached busybox images.
pub const BUSYBOX_TAG: &str = "busybox:latest";

/// `$CARGO_TARGET_DIR/berth-test-images`, else `<target dir of the running test
/// binary>/berth-test-images`, else `target/berth-test-images` of this workspace.
pub fn cache_dir() -> PathBuf {
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR").filter(|t| !t.is_empty()) {
        return PathBuf::from(t).join("berth-test-images");
    }
    // target/<profile>/deps/<test binary>
    let exe = std::env::current_exe().ok();
    let deps = exe.as_deref().and_then(|e| {
        e.ancestors()
            .find(|a| a.file_name().is_some_and(|n| n == "deps"))
    });
    if let Some(target) = deps.and_then(Path::parent).and_then(Path::parent) {
        return target.join("berth-test-images");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/berth-test-images")
}

fn busybox_key() -> Result<String, Error> {
    let bin = fs::read(berth_mkimage::BUSYBOX_BIN)
        .map_err(|e| Error::io("read", berth_mkimage::BUSYBOX_BIN, e))?;
    let mut h = Sha256::new();
    h.update(RECIPE_VERSION.as_bytes());
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(&bin);
    Ok(hex::encode(h.finalize())[..12].to_string())
}

/// Return `cache_dir()/name`, building it with `build(tmp_path)` first if it is not there.
fn cached(name: &str, build: impl FnOnce(&Path) -> Result<(), Error>) -> Result<PathBuf, Error> {
    let dir = cache_dir();
    let done = dir.join(name);
    if done.exists() {
        return Ok(done);
    }
    fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    let lock_path = dir.join(".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io("open", &lock_path, e))?;
    lock.lock().map_err(|e| Error::io("lock", &lock_path, e))?;
    if done.exists() {
        return Ok(done);
    }
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    let _ = fs::remove_file(&tmp);
    let built = build(&tmp);
    if let Err(e) = built {
        let _ = fs::remove_dir_all(&tmp);
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    fs::rename(&tmp, &done).map_err(|e| Error::io("rename into place", &done, e))?;
    Ok(done)
}

fn busybox_image() -> Result<berth_mkimage::Image, Error> {
    let scratch = crate::TestDir::new("img")
        .map_err(|e| Error::io("create temp dir in", std::env::temp_dir(), e))?;
    Ok(berth_mkimage::busybox_image(
        scratch.path(),
        BUSYBOX_TAG,
        Some(TEST_IMAGE_EPOCH),
    )?)
}

/// A docker-archive of the busybox image (`busybox:latest`, `Cmd ["sh"]`), shared by all
/// tests: do not modify it.
pub fn busybox_docker_archive() -> Result<PathBuf, Error> {
    let name = format!("busybox-{}.tar", busybox_key()?);
    cached(&name, |tmp| {
        Ok(busybox_image()?.write_docker_archive(tmp, false)?)
    })
}

/// An OCI image layout holding the busybox image under the tag `latest`
/// (`oci:<path>:latest`), shared by all tests: do not modify it.
pub fn busybox_oci_layout() -> Result<PathBuf, Error> {
    let name = format!("busybox-{}.oci", busybox_key()?);
    cached(&name, |tmp| Ok(busybox_image()?.write_oci_layout(tmp)?))
}

/// The busybox image's manifest digest as written to [`busybox_oci_layout`] (and its config
/// digest, the image id): read back from the cached layout.
pub fn busybox_digests() -> Result<(String, String), Error> {
    let layout = busybox_oci_layout()?;
    let index_path = layout.join("index.json");
    let index = fs::read(&index_path).map_err(|e| Error::io("read", &index_path, e))?;
    let index: berth_mkimage::config::Index = serde_json::from_slice(&index)
        .map_err(|e| Error::io("parse", &index_path, std::io::Error::other(e)))?;
    let manifest_digest = index.manifests[0].digest.clone();
    let mpath = layout
        .join("blobs/sha256")
        .join(manifest_digest.trim_start_matches("sha256:"));
    let m = fs::read(&mpath).map_err(|e| Error::io("read", &mpath, e))?;
    let m: berth_mkimage::config::Manifest = serde_json::from_slice(&m)
        .map_err(|e| Error::io("parse", &mpath, std::io::Error::other(e)))?;
    Ok((manifest_digest, m.config.digest))
}
