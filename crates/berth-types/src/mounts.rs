//! Storage of a container: `-v`/`HostConfig.Binds`, `--mount`/`HostConfig.Mounts`,
//! `--tmpfs`/`HostConfig.Tmpfs`, `--volumes-from`, image/`Config.Volumes`, and the
//! resolved mount points a container records. Parsers follow moby's
//! `volume/mounts/linux_parser.go` and docker/cli's `opts/mount.go`, error messages
//! included (clients show them as they are).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a mount is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A host path bound in.
    Bind,
    /// A named or anonymous volume.
    #[default]
    Volume,
    /// A fresh tmpfs.
    Tmpfs,
}

impl MountKind {
    /// Docker's word.
    pub fn as_str(&self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Volume => "volume",
            MountKind::Tmpfs => "tmpfs",
        }
    }
}

/// Where a mount request came from (inspect shows them in different places).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountOrigin {
    /// `-v` / `HostConfig.Binds`.
    #[default]
    Bind,
    /// `--mount` / `HostConfig.Mounts`.
    Mount,
    /// `-v /path` / `Config.Volumes`.
    Config,
}

/// One requested mount, parsed and checked (the daemon-side checks that need the
/// filesystem, such as a bind source's existence, happen at create).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MountSpec {
    /// bind, volume or tmpfs.
    pub kind: MountKind,
    /// The host path (bind) or volume name (empty: anonymous volume).
    pub source: String,
    /// The path in the container (cleaned).
    pub target: String,
    /// Read-only.
    pub read_only: bool,
    /// Bind propagation (`rprivate` when not given).
    pub propagation: String,
    /// Do not copy the image's content into an empty volume.
    pub nocopy: bool,
    /// tmpfs size in bytes (0: the kernel's default).
    pub tmpfs_size: i64,
    /// tmpfs mode (0: the kernel's default).
    pub tmpfs_mode: u32,
    /// `-v`'s mode string as typed (`ro,Z`), shown by inspect.
    pub mode: String,
    /// Where it came from.
    pub origin: MountOrigin,
    /// Volume driver (`--mount volume-driver=`), empty = local.
    pub driver: String,
    /// Labels for a volume created by this mount (`volume-label=`).
    pub volume_labels: BTreeMap<String, String>,
    /// Driver options for a volume created by this mount (`volume-opt=`).
    pub volume_options: BTreeMap<String, String>,
}

/// The storage part of a [`crate::spec::ContainerSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageSpec {
    /// `HostConfig.Binds` as given (`-v src:dst[:mode]`).
    pub binds: Vec<String>,
    /// `HostConfig.Mounts` (`--mount`), parsed.
    pub mounts: Vec<MountSpec>,
    /// `HostConfig.Tmpfs`: destination → options (`--tmpfs /run:size=64m`).
    pub tmpfs: BTreeMap<String, String>,
    /// `HostConfig.VolumesFrom`: `container[:ro|rw]`.
    pub volumes_from: Vec<String>,
    /// `Config.Volumes` keys (anonymous volumes, `-v /path`).
    pub volumes: Vec<String>,
}

/// A mount the container has, as `inspect` `Mounts` shows it and as the OCI spec gets it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MountPoint {
    /// bind, volume or tmpfs.
    pub kind: MountKind,
    /// The volume's name (volumes only).
    pub name: String,
    /// The host path bound in (`_data` of a volume; empty for tmpfs).
    pub source: String,
    /// The path in the container.
    pub destination: String,
    /// The volume driver (volumes only).
    pub driver: String,
    /// `-v`'s mode string.
    pub mode: String,
    /// Writable.
    pub rw: bool,
    /// Bind propagation (binds only).
    pub propagation: String,
    /// An anonymous volume (removed with `rm -v` and `--rm`).
    pub anonymous: bool,
    /// tmpfs mount options (`size=…,mode=…`).
    pub tmpfs_options: String,
}

/// Why a mount request is invalid (moby's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// A `-v` string that cannot be split.
    #[error("invalid volume specification: '{0}'")]
    InvalidSpec(String),
    /// A `-v` string whose parts are wrong.
    #[error("invalid volume specification: '{raw}': {why}")]
    InvalidSpecWhy {
        /// The string.
        raw: String,
        /// What is wrong.
        why: Box<MountError>,
    },
    /// An unknown mode.
    #[error("invalid mode: {0}")]
    InvalidMode(String),
    /// A mount config the daemon refuses.
    #[error("invalid mount config for type \"{kind}\": {why}")]
    Config {
        /// bind, volume, tmpfs or the unknown type.
        kind: String,
        /// What is wrong.
        why: String,
    },
    /// A `--mount` field the CLI refuses.
    #[error("{0}")]
    Field(String),
    /// Two mounts on one destination.
    #[error("Duplicate mount point: {0}")]
    Duplicate(String),
    /// An empty `--volumes-from`.
    #[error("volumes-from specification cannot be an empty string")]
    EmptyVolumesFrom,
}

const PROPAGATIONS: [&str; 6] = [
    "private", "rprivate", "slave", "rslave", "shared", "rshared",
];

/// moby's `linuxValidMountMode`: comma-separated rw/ro, z/Z, a propagation, nocopy,
/// a consistency; at most one of each.
pub fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut counts = [0u8; 5];
    for o in mode.split(',') {
        let i = match o {
            "rw" | "ro" => 0,
            "z" | "Z" => 1,
            p if PROPAGATIONS.contains(&p) => 2,
            "nocopy" => 3,
            "consistent" | "cached" | "delegated" => 4,
            _ => return false,
        };
        counts[i] += 1;
    }
    counts.iter().all(|c| *c <= 1)
}

/// `path.Clean` for absolute Unix paths.
pub fn clean_path(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    if p.starts_with('/') {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

fn config_err(kind: MountKind, why: impl Into<String>) -> MountError {
    MountError::Config {
        kind: kind.as_str().into(),
        why: why.into(),
    }
}

fn check_target(kind: MountKind, target: &str) -> Result<(), MountError> {
    if target.is_empty() {
        return Err(config_err(kind, "field Target must not be empty"));
    }
    if clean_path(target) == "/" {
        return Err(config_err(
            kind,
            "invalid specification: destination can't be '/'",
        ));
    }
    if !target.starts_with('/') {
        return Err(config_err(
            kind,
            format!("invalid mount path: '{target}' mount path must be absolute"),
        ));
    }
    Ok(())
}

/// Docker's volume name rule (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`).
pub fn valid_volume_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// The error for a bad volume name (moby's local driver message).
pub fn volume_name_error(name: &str) -> String {
    format!(
        "\"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
    )
}

impl MountSpec {
    /// moby's `validateMountConfigImpl` minus the filesystem checks.
    pub fn validate(&self) -> Result<(), MountError> {
        check_target(self.kind, &self.target)?;
        match self.kind {
            MountKind::Bind => {
                if self.source.is_empty() {
                    return Err(config_err(self.kind, "field Source must not be empty"));
                }
                if !self.propagation.is_empty()
                    && !PROPAGATIONS.contains(&self.propagation.as_str())
                {
                    return Err(config_err(
                        self.kind,
                        format!("invalid propagation mode: {}", self.propagation),
                    ));
                }
                if !self.source.starts_with('/') {
                    return Err(config_err(
                        self.kind,
                        format!(
                            "invalid mount path: '{}' mount path must be absolute",
                            self.source
                        ),
                    ));
                }
            }
            MountKind::Volume => {
                if self.read_only && self.source.is_empty() {
                    return Err(config_err(
                        self.kind,
                        "must not set ReadOnly mode when using anonymous volumes",
                    ));
                }
            }
            MountKind::Tmpfs => {
                if !self.source.is_empty() {
                    return Err(config_err(self.kind, "field Source must not be specified"));
                }
            }
        }
        Ok(())
    }

    /// The destination, cleaned.
    pub fn destination(&self) -> String {
        clean_path(&self.target)
    }
}

/// Parses one `-v`/`Binds` entry (`dst`, `src:dst`, `src:dst:mode`) as moby's
/// `ParseMountRaw`: an absolute source is a bind, anything else a volume name.
pub fn parse_bind(raw: &str) -> Result<MountSpec, MountError> {
    let arr: Vec<&str> = raw.splitn(4, ':').collect();
    if arr[0].is_empty() {
        return Err(MountError::InvalidSpec(raw.into()));
    }
    let (source, target, mode) = match arr.len() {
        1 => ("", arr[0], ""),
        2 => {
            if valid_mode(arr[1]) {
                // a destination plus a mode is not a volume (`/foo:rw`)
                return Err(MountError::InvalidSpec(raw.into()));
            }
            (arr[0], arr[1], "")
        }
        3 => (arr[0], arr[1], arr[2]),
        _ => return Err(MountError::InvalidSpec(raw.into())),
    };
    if !valid_mode(mode) {
        return Err(MountError::InvalidMode(mode.into()));
    }
    let opts: Vec<&str> = mode.split(',').collect();
    let kind = if source.starts_with('/') {
        MountKind::Bind
    } else {
        MountKind::Volume
    };
    let propagation = opts
        .iter()
        .find(|o| PROPAGATIONS.contains(o))
        .map(|p| (*p).to_owned())
        .unwrap_or_default();
    let m = MountSpec {
        kind,
        source: if kind == MountKind::Bind {
            clean_path(source)
        } else {
            source.to_owned()
        },
        target: target.to_owned(),
        read_only: opts.contains(&"ro"),
        propagation,
        nocopy: opts.contains(&"nocopy"),
        mode: mode.to_owned(),
        origin: if source.is_empty() {
            MountOrigin::Config
        } else {
            MountOrigin::Bind
        },
        ..Default::default()
    };
    m.validate().map_err(|e| MountError::InvalidSpecWhy {
        raw: raw.into(),
        why: Box::new(e),
    })?;
    Ok(m)
}

/// go-units `RAMInBytes` (binary multiples; `b`, `k`, `m`, `g`, `t`, `p`, optional `b`/`ib`).
pub fn ram_in_bytes(s: &str) -> Option<i64> {
    let t = s.trim().to_ascii_lowercase();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(end);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let mult: i64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    Some((n * mult as f64) as i64)
}

fn parse_bool(key: &str, val: &str) -> Result<bool, MountError> {
    match val {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(MountError::Field(format!("invalid value for {key}: {val}"))),
    }
}

/// Splits a CSV line (`--mount` values may quote fields).
fn csv_fields(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Parses a `--mount` value as docker/cli's `MountOpt.Set` (type defaults to volume),
/// then checks it as the daemon would.
pub fn parse_mount_flag(value: &str) -> Result<MountSpec, MountError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(MountError::Field("value is empty".into()));
    }
    let mut m = MountSpec {
        origin: MountOrigin::Mount,
        ..Default::default()
    };
    let mut kind = "volume".to_owned();
    let (mut has_volume, mut has_bind, mut has_tmpfs) = (false, false, false);
    for field in csv_fields(value) {
        let Some((key, val)) = field.split_once('=') else {
            match field.as_str() {
                "readonly" | "ro" => m.read_only = true,
                "volume-nocopy" => {
                    m.nocopy = true;
                    has_volume = true;
                }
                "bind-nonrecursive" => has_bind = true,
                _ => {
                    return Err(MountError::Field(format!(
                        "invalid field '{field}' must be a key=value pair"
                    )));
                }
            }
            continue;
        };
        match key {
            "type" => kind = val.to_ascii_lowercase(),
            "source" | "src" => m.source = val.to_owned(),
            "target" | "dst" | "destination" => m.target = val.to_owned(),
            "readonly" | "ro" => m.read_only = parse_bool(key, val)?,
            "consistency" => {}
            "bind-propagation" => {
                m.propagation = val.to_ascii_lowercase();
                has_bind = true;
            }
            "bind-nonrecursive" => {
                parse_bool(key, val)?;
                has_bind = true;
            }
            "volume-nocopy" => {
                m.nocopy = parse_bool("volume-nocopy", val)?;
                has_volume = true;
            }
            "volume-label" => {
                let (k, v) = val.split_once('=').unwrap_or((val, ""));
                if !k.is_empty() {
                    m.volume_labels.insert(k.into(), v.into());
                }
                has_volume = true;
            }
            "volume-driver" => {
                m.driver = val.to_owned();
                has_volume = true;
            }
            "volume-opt" => {
                let (k, v) = val.split_once('=').unwrap_or((val, ""));
                if !k.is_empty() {
                    m.volume_options.insert(k.into(), v.into());
                }
                has_volume = true;
            }
            "tmpfs-size" => {
                m.tmpfs_size = ram_in_bytes(val)
                    .ok_or_else(|| MountError::Field(format!("invalid value for {key}: {val}")))?;
                has_tmpfs = true;
            }
            "tmpfs-mode" => {
                m.tmpfs_mode = u32::from_str_radix(val, 8)
                    .map_err(|_| MountError::Field(format!("invalid value for {key}: {val}")))?;
                has_tmpfs = true;
            }
            _ => {
                return Err(MountError::Field(format!(
                    "unexpected key '{key}' in '{field}'"
                )));
            }
        }
    }
    if kind.is_empty() {
        return Err(MountError::Field("type is required".into()));
    }
    if m.target.is_empty() {
        return Err(MountError::Field("target is required".into()));
    }
    for (set, prefix, want) in [
        (has_volume, "volume", "volume"),
        (has_bind, "bind", "bind"),
        (has_tmpfs, "tmpfs", "tmpfs"),
    ] {
        if set && kind != want {
            return Err(MountError::Field(format!(
                "cannot mix '{prefix}-*' options with mount type '{kind}'"
            )));
        }
    }
    m.kind = mount_kind(&kind)?;
    m.validate()?;
    Ok(m)
}

/// `bind`/`volume`/`tmpfs`; anything else is moby's "mount type unknown".
pub fn mount_kind(kind: &str) -> Result<MountKind, MountError> {
    match kind {
        "bind" => Ok(MountKind::Bind),
        "volume" => Ok(MountKind::Volume),
        "tmpfs" => Ok(MountKind::Tmpfs),
        other => Err(MountError::Config {
            kind: other.into(),
            why: "mount type unknown".into(),
        }),
    }
}

/// `--tmpfs /path[:opts]` → (destination, options).
pub fn parse_tmpfs_flag(value: &str) -> Result<(String, String), MountError> {
    let (dst, opts) = value.split_once(':').unwrap_or((value, ""));
    check_target(MountKind::Tmpfs, dst)?;
    Ok((dst.to_owned(), opts.to_owned()))
}

/// `--volumes-from ctr[:mode]` → (container, mode) as moby's `ParseVolumesFrom`.
pub fn parse_volumes_from(spec: &str) -> Result<(String, String), MountError> {
    if spec.is_empty() {
        return Err(MountError::EmptyVolumesFrom);
    }
    let (id, mode) = spec.split_once(':').unwrap_or((spec, ""));
    if mode.is_empty() {
        return Ok((id.into(), "rw".into()));
    }
    if !valid_mode(mode)
        || mode
            .split(',')
            .any(|o| PROPAGATIONS.contains(&o) || o == "nocopy")
    {
        return Err(MountError::InvalidMode(mode.into()));
    }
    Ok((id.into(), mode.into()))
}

/// Formats a tmpfs size as moby's `ConvertTmpfsOptions` (largest even suffix).
pub fn tmpfs_size_option(size: i64) -> String {
    for (suffix, div) in [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if size % div == 0 {
            return format!("size={}{suffix}", size / div);
        }
    }
    format!("size={size}")
}

impl StorageSpec {
    /// Every requested mount (binds, then `--mount`s, then `Config.Volumes`), parsed and
    /// checked, with Docker's duplicate-destination error. `--tmpfs` entries are
    /// checked too but stay in [`StorageSpec::tmpfs`].
    pub fn mount_specs(&self) -> Result<Vec<MountSpec>, MountError> {
        let mut out: Vec<MountSpec> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for b in &self.binds {
            let m = parse_bind(b)?;
            if !seen.insert(m.destination()) {
                return Err(MountError::Duplicate(m.destination()));
            }
            out.push(m);
        }
        for m in &self.mounts {
            m.validate()?;
            if !seen.insert(m.destination()) {
                return Err(MountError::Duplicate(m.destination()));
            }
            out.push(m.clone());
        }
        for dst in self.tmpfs.keys() {
            check_target(MountKind::Tmpfs, dst)?;
            if !seen.insert(clean_path(dst)) {
                return Err(MountError::Duplicate(clean_path(dst)));
            }
        }
        for v in &self.volumes {
            // Config.Volumes: overridden by a bind/mount on the same path
            if seen.contains(&clean_path(v)) {
                continue;
            }
            check_target(MountKind::Volume, v)?;
            seen.insert(clean_path(v));
            out.push(MountSpec {
                kind: MountKind::Volume,
                target: v.clone(),
                origin: MountOrigin::Config,
                ..Default::default()
            });
        }
        for v in &self.volumes_from {
            parse_volumes_from(v)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_like_moby() {
        let m = parse_bind("data:/srv").unwrap();
        assert_eq!(
            (m.kind, m.source.as_str(), m.target.as_str(), m.read_only),
            (MountKind::Volume, "data", "/srv", false)
        );
        let m = parse_bind("/host/dir/:/in:ro,Z").unwrap();
        assert_eq!(
            (m.kind, m.source.as_str(), m.read_only, m.mode.as_str()),
            (MountKind::Bind, "/host/dir", true, "ro,Z")
        );
        let m = parse_bind("/anon").unwrap();
        assert_eq!((m.kind, m.source.as_str()), (MountKind::Volume, ""));
        let m = parse_bind("vv:/x:nocopy").unwrap();
        assert!(m.nocopy);
        let m = parse_bind("/a:/b:rshared").unwrap();
        assert_eq!(m.propagation, "rshared");
        assert_eq!(
            parse_bind("/foo:rw").unwrap_err().to_string(),
            "invalid volume specification: '/foo:rw'"
        );
        assert_eq!(
            parse_bind("/a:/b:xyz").unwrap_err().to_string(),
            "invalid mode: xyz"
        );
        assert_eq!(
            parse_bind("/a:/b:ro,rw").unwrap_err().to_string(),
            "invalid mode: ro,rw"
        );
        assert_eq!(
            parse_bind("/a:/").unwrap_err().to_string(),
            "invalid volume specification: '/a:/': invalid mount config for type \"bind\": invalid specification: destination can't be '/'"
        );
        assert_eq!(
            parse_bind("/a:rel").unwrap_err().to_string(),
            "invalid volume specification: '/a:rel': invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"
        );
        assert!(parse_bind(":/x").is_err());
        assert!(parse_bind("a:b:c:d").is_err());
    }

    #[test]
    fn mount_flags_parse_like_the_docker_cli() {
        let m =
            parse_mount_flag("type=bind,source=/src,target=/dst,readonly,bind-propagation=rslave")
                .unwrap();
        assert_eq!(
            (m.kind, m.source.as_str(), m.target.as_str(), m.read_only),
            (MountKind::Bind, "/src", "/dst", true)
        );
        assert_eq!(m.propagation, "rslave");
        let m = parse_mount_flag("src=vol,dst=/data,volume-nocopy").unwrap();
        assert_eq!((m.kind, m.nocopy), (MountKind::Volume, true));
        let m =
            parse_mount_flag("type=tmpfs,destination=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        assert_eq!(
            (m.kind, m.tmpfs_size, m.tmpfs_mode),
            (MountKind::Tmpfs, 64 << 20, 0o1770)
        );
        let m = parse_mount_flag("type=volume,target=/d,ro=true").unwrap_err();
        assert_eq!(
            m.to_string(),
            "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes"
        );
        for (flag, msg) in [
            (
                "type=bind,target=/x,bogus",
                "invalid field 'bogus' must be a key=value pair",
            ),
            (
                "type=bind,target=/x,foo=bar",
                "unexpected key 'foo' in 'foo=bar'",
            ),
            ("type=bind,src=/a", "target is required"),
            (
                "type=tmpfs,target=/x,volume-nocopy",
                "cannot mix 'volume-*' options with mount type 'tmpfs'",
            ),
            (
                "type=volume,target=/x,tmpfs-size=1m",
                "cannot mix 'tmpfs-*' options with mount type 'volume'",
            ),
            (
                "type=tmpfs,target=/x,tmpfs-size=lots",
                "invalid value for tmpfs-size: lots",
            ),
            (
                "type=bind,target=/x",
                "invalid mount config for type \"bind\": field Source must not be empty",
            ),
            (
                "type=bind,src=/a,target=/x,bind-propagation=odd",
                "invalid mount config for type \"bind\": invalid propagation mode: odd",
            ),
            (
                "type=tmpfs,src=x,target=/x",
                "invalid mount config for type \"tmpfs\": field Source must not be specified",
            ),
            (
                "type=nfs,target=/x",
                "invalid mount config for type \"nfs\": mount type unknown",
            ),
            (
                "type=bind,src=/a,target=/x,ro=maybe",
                "invalid value for ro: maybe",
            ),
        ] {
            assert_eq!(
                parse_mount_flag(flag).unwrap_err().to_string(),
                msg,
                "{flag}"
            );
        }
    }

    #[test]
    fn storage_specs_merge_and_refuse_duplicates() {
        let s = StorageSpec {
            binds: vec!["vv:/data".into()],
            volumes: vec!["/data".into(), "/cache".into()],
            tmpfs: [("/run".to_owned(), "size=1m".to_owned())].into(),
            ..Default::default()
        };
        let m = s.mount_specs().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].target, "/cache");
        assert_eq!(m[1].origin, MountOrigin::Config);
        let s = StorageSpec {
            binds: vec!["v:/data".into(), "/h:/data/".into()],
            ..Default::default()
        };
        assert_eq!(
            s.mount_specs().unwrap_err().to_string(),
            "Duplicate mount point: /data"
        );
        assert_eq!(parse_volumes_from("c").unwrap(), ("c".into(), "rw".into()));
        assert_eq!(parse_volumes_from("c:ro").unwrap().1, "ro");
        assert!(parse_volumes_from("c:rshared").is_err());
        assert!(parse_volumes_from("").is_err());
        assert_eq!(parse_tmpfs_flag("/run:size=1m").unwrap().1, "size=1m");
        assert!(parse_tmpfs_flag("run").is_err());
        assert_eq!(tmpfs_size_option(64 << 20), "size=64m");
        assert_eq!(tmpfs_size_option(1000), "size=1000");
        assert_eq!(clean_path("/a/./b/../c/"), "/a/c");
        assert!(valid_volume_name("my-vol_1.x"));
        assert!(!valid_volume_name("a"));
    }
}
