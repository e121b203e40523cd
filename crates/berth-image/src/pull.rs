//! `pull` (and `pull -a`) from a registry: streaming download → hash → decompress →
//! untar in one pass per layer, layers in parallel.

use crate::docs::Platform;

/// The platform of this machine in OCI spelling (`linux/amd64`, `linux/arm64/v8`).
pub fn host_platform() -> Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    Platform {
        architecture: architecture.to_owned(),
        os: "linux".to_owned(),
        variant: None,
    }
}
