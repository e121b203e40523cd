use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use berth_types::reference::Digest;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Manifest and layer media types of Docker schema 2 and OCI.
pub mod media_types {
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

    /// The Accept header for manifest requests: every type we can resolve.
    pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

    /// Whether `mt` is an image index / manifest list.
    pub fn is_index(mt: &str) -> bool {
        mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
    }

    /// Whether `mt` is a single-image manifest.
    pub fn is_manifest(mt: &str) -> bool {
        mt == OCI_MANIFEST || mt == DOCKER_MANIFEST
    }
}

/// An OS/architecture/variant triple, as in an index's `platform` field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let variant = variant.filter(|v| !v.is_empty()).map(str::to_owned);
    match arch {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => ("arm64".into(), variant.filter(|v| v != "v8")),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "arm" => ("arm".into(), Some(variant.unwrap_or_else(|| "v7".into()))),
        "i386" | "i686" | "386" => ("386".into(), variant),
        other => (other.to_owned(), variant),
    }
}

impl Platform {
    /// The platform this process runs on (`linux/amd64`, `linux/arm64`, …).
    pub fn host() -> Self {
        let (architecture, variant) = normalize_arch(std::env::consts::ARCH, None);
        Self {
            os: std::env::consts::OS.to_owned(),
            architecture,
            variant,
            os_version: None,
        }
    }

    /// Whether an index entry for `candidate` runs here, containerd-style: same OS and
    /// (normalized) architecture; a variant, when asked for, must match.
    pub fn matches(&self, candidate: &Platform) -> bool {
        let (want_arch, want_var) = normalize_arch(&self.architecture, self.variant.as_deref());
        let (arch, var) = normalize_arch(&candidate.architecture, candidate.variant.as_deref());
        self.os == candidate.os && want_arch == arch && (want_var.is_none() || want_var == var)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;
    /// Parses `os/arch[/variant]` as `--platform` takes it.
    fn from_str(s: &str) -> Result<Self, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = |m: &str| Error::InvalidPlatform {
            platform: s.to_owned(),
            message: m.to_owned(),
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad("empty component"));
        }
        let (os, arch, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, None),
            [os, arch, v] => (*os, *arch, Some(*v)),
            _ => return Err(bad("expected os/arch[/variant]")),
        };
        if !(os
            .chars()
            .chain(arch.chars())
            .chain(variant.unwrap_or("").chars()))
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        {
            return Err(bad("unexpected character"));
        }
        let (architecture, variant) = normalize_arch(&arch.to_lowercase(), variant);
        Ok(Self {
            os: os.to_lowercase(),
            architecture,
            variant,
            os_version: None,
        })
    }
}

/// A content descriptor (OCI `descriptor`, Docker schema 2 uses the same shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// A descriptor of `data` with `media_type`.
    pub fn of(media_type: &str, data: &[u8]) -> Self {
        Self {
            media_type: media_type.to_owned(),
            digest: Digest::sha256(data),
            size: data.len() as u64,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ManifestDoc {
    #[serde(rename = "schemaVersion")]
    pub schema_version: Option<u32>,
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    pub manifests: Option<Vec<Descriptor>>,
}

/// Decides the media type of manifest bytes: the Content-Type when it is one we know,
/// else the document's own `mediaType`, else its shape (OCI allows omitting both).
pub(crate) fn media_type_of(content_type: Option<&str>, doc: &ManifestDoc) -> Option<String> {
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim())
        .filter(|c| media_types::is_index(c) || media_types::is_manifest(c));
    if let Some(ct) = ct {
        return Some(ct.to_owned());
    }
    if let Some(mt) = &doc.media_type {
        return Some(mt.clone());
    }
    if doc.manifests.is_some() {
        return Some(media_types::OCI_INDEX.into());
    }
    if doc.config.is_some() && doc.layers.is_some() {
        return Some(media_types::OCI_MANIFEST.into());
    }
    None
}

/// Picks the entry of an index for `platform`; errors list what the index offers.
pub(crate) fn select_platform<'a>(
    reference: &str,
    entries: &'a [Descriptor],
    platform: &Platform,
) -> Result<&'a Descriptor, Error> {
    entries
        .iter()
        .filter(|d| media_types::is_manifest(&d.media_type))
        .find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p)))
        .ok_or_else(|| Error::NoMatchingPlatform {
            reference: reference.to_owned(),
            platform: platform.to_string(),
            available: entries
                .iter()
                .filter_map(|d| d.platform.as_ref().map(ToString::to_string))
                .collect(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn platform_parse_normalize_and_match() {
        assert_eq!(p("linux/x86_64").to_string(), "linux/amd64");
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64");
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64");
        assert_eq!(p("linux/arm").to_string(), "linux/arm/v7");
        assert_eq!(p("linux/arm/v6").to_string(), "linux/arm/v6");
        assert!(p("linux/arm64").matches(&p("linux/arm64/v8")));
        assert!(p("linux/arm").matches(&Platform {
            os: "linux".into(),
            architecture: "arm".into(),
            variant: None,
            os_version: None
        }));
        assert!(!p("linux/arm/v6").matches(&p("linux/arm/v7")));
        assert!(!p("linux/amd64").matches(&p("windows/amd64")));
        assert!(
            p("linux/amd64").matches(&p("linux/amd64/v3")),
            "no variant asked: any variant"
        );
        for bad in ["linux", "linux//amd64", "a/b/c/d", "linux/am d64", ""] {
            let e = bad.parse::<Platform>().unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        assert!(host.matches(&host));
    }

    #[test]
    fn selects_the_matching_index_entry_and_lists_the_rest() {
        let mk = |plat: &str, mt: &str, n: u8| Descriptor {
            media_type: mt.into(),
            digest: Digest::sha256(&[n]),
            size: 1,
            urls: vec![],
            annotations: BTreeMap::new(),
            platform: Some(if plat == "unknown/unknown" {
                Platform {
                    os: "unknown".into(),
                    architecture: "unknown".into(),
                    variant: None,
                    os_version: None,
                }
            } else {
                p(plat)
            }),
        };
        let entries = vec![
            mk("linux/amd64", media_types::OCI_MANIFEST, 1),
            mk("linux/arm64/v8", media_types::OCI_MANIFEST, 2),
            mk("linux/arm/v7", media_types::DOCKER_MANIFEST, 3),
            mk("unknown/unknown", media_types::OCI_MANIFEST, 4),
        ];
        assert_eq!(
            select_platform("r", &entries, &p("linux/arm64"))
                .unwrap()
                .digest,
            Digest::sha256(&[2])
        );
        assert_eq!(
            select_platform("r", &entries, &p("linux/arm"))
                .unwrap()
                .digest,
            Digest::sha256(&[3])
        );
        let e = select_platform("r", &entries, &p("linux/s390x"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("linux/s390x") && e.contains("linux/arm64") && e.contains("r"),
            "{e}"
        );
    }

    #[test]
    fn media_type_detection() {
        let doc: ManifestDoc =
            serde_json::from_str(r#"{"schemaVersion":2,"manifests":[]}"#).unwrap();
        assert_eq!(
            media_type_of(None, &doc).as_deref(),
            Some(media_types::OCI_INDEX)
        );
        assert_eq!(
            media_type_of(
                Some("application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8"),
                &doc
            )
            .as_deref(),
            Some(media_types::DOCKER_MANIFEST_LIST)
        );
        let doc: ManifestDoc = serde_json::from_str(r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#).unwrap();
        assert_eq!(
            media_type_of(Some("application/octet-stream"), &doc).as_deref(),
            Some(media_types::DOCKER_MANIFEST)
        );
    }
}
