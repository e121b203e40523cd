//! The storage flags of `run`/`create` (`-v`, `--mount`, `--tmpfs`, `--volumes-from`),
//! turned into Docker's create body as the docker CLI does: `-v src:dst` → `Binds`,
//! `-v /dst` → `Config.Volumes`, `--mount` → `HostConfig.Mounts` (parsed here, with the
//! CLI's messages), `--tmpfs` → `HostConfig.Tmpfs`.

use berth_types::mounts::{MountKind, parse_bind, parse_mount_flag, parse_tmpfs_flag};
use clap::Args;
use serde_json::{Value, json};

// `-v`, `--mount`, `--tmpfs`, `--volumes-from`.
#[derive(Debug, Args, Clone, Default)]
pub struct MountFlags {
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long = "mount")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long = "tmpfs")]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
}

/// `./x` and `.` sources become absolute, as the docker CLI does.
fn absolutize(src: &str) -> String {
    if (src == "." || src.starts_with("./") || src == ".." || src.starts_with("../"))
        && let Ok(cwd) = std::env::current_dir()
    {
        return berth_types::mounts::clean_path(&format!("{}/{src}", cwd.display()));
    }
    src.to_owned()
}

impl MountFlags {
    /// Adds the flags to a create body.
    pub fn apply(&self, body: &mut Value) -> anyhow::Result<()> {
        let mut binds = Vec::new();
        let mut volumes = serde_json::Map::new();
        for v in &self.volume {
            let (src, rest) = v.split_once(':').unwrap_or((v.as_str(), ""));
            let raw = if rest.is_empty() {
                v.clone()
            } else {
                format!("{}:{rest}", absolutize(src))
            };
            // the daemon validates binds (and answers with moby's messages); here only
            // `-v /dst` (no source) is told apart, as the docker CLI does
            match parse_bind(&raw) {
                Ok(m) if m.source.is_empty() => {
                    volumes.insert(m.target.clone(), json!({}));
                }
                _ => binds.push(raw),
            }
        }
        let mut mounts = Vec::new();
        for v in &self.mount {
            let mut m = parse_mount_flag(v).map_err(|e| {
                anyhow::anyhow!("invalid argument \"{v}\" for \"--mount\" flag: {e}")
            })?;
            if m.kind == MountKind::Bind {
                m.source = absolutize(&m.source);
            }
            let mut j = json!({
                "Type": m.kind.as_str(),
                "Source": m.source,
                "Target": m.target,
                "ReadOnly": m.read_only,
            });
            match m.kind {
                MountKind::Bind if !m.propagation.is_empty() => {
                    j["BindOptions"] = json!({"Propagation": m.propagation});
                }
                MountKind::Volume => {
                    let mut vo = json!({"NoCopy": m.nocopy});
                    if !m.volume_labels.is_empty() {
                        vo["Labels"] = json!(m.volume_labels);
                    }
                    if !m.driver.is_empty() || !m.volume_options.is_empty() {
                        vo["DriverConfig"] = json!({"Name": m.driver, "Options": m.volume_options});
                    }
                    j["VolumeOptions"] = vo;
                }
                MountKind::Tmpfs if m.tmpfs_size > 0 || m.tmpfs_mode > 0 => {
                    j["TmpfsOptions"] = json!({"SizeBytes": m.tmpfs_size, "Mode": m.tmpfs_mode});
                }
                _ => {}
            }
            mounts.push(j);
        }
        let mut tmpfs = serde_json::Map::new();
        for t in &self.tmpfs {
            let (dst, opts) = parse_tmpfs_flag(t).map_err(|e| {
                anyhow::anyhow!("invalid argument \"{t}\" for \"--tmpfs\" flag: {e}")
            })?;
            tmpfs.insert(dst, json!(opts));
        }
        let host = &mut body["HostConfig"];
        if !binds.is_empty() {
            host["Binds"] = json!(binds);
        }
        if !mounts.is_empty() {
            host["Mounts"] = json!(mounts);
        }
        if !tmpfs.is_empty() {
            host["Tmpfs"] = Value::Object(tmpfs);
        }
        if !self.volumes_from.is_empty() {
            host["VolumesFrom"] = json!(self.volumes_from);
        }
        if !volumes.is_empty() {
            body["Volumes"] = Value::Object(volumes);
        }
        Ok(())
    }
}

/// `ps`'s MOUNTS: volume names or bind sources, each cut to 15 characters unless
/// `no_trunc` (the docker CLI's `ContainerContext.Mounts`).
pub fn ps_mounts(summary: &Value, no_trunc: bool) -> String {
    summary["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let name = m["Name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or_else(|| m["Source"].as_str())
                .unwrap_or_default();
            if no_trunc || name.chars().count() <= 15 {
                name.to_owned()
            } else {
                let mut s: String = name.chars().take(14).collect();
                s.push('…');
                s
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_mounts_as_the_docker_cli() {
        let v = json!({"Mounts": [
            {"Type": "volume", "Name": "0123456789abcdef0123", "Source": "/x/_data"},
            {"Type": "bind", "Source": "/h"},
        ]});
        assert_eq!(ps_mounts(&v, false), "0123456789abcd…,/h");
        assert_eq!(ps_mounts(&v, true), "0123456789abcdef0123,/h");
    }

    #[test]
    fn flags_become_the_docker_cli_body() {
        let f = MountFlags {
            volume: vec!["data:/data".into(), "/anon".into(), "/h:/in:ro".into()],
            mount: vec![
                "type=tmpfs,dst=/t,tmpfs-size=1m".into(),
                "src=v2,dst=/v2,volume-nocopy".into(),
            ],
            tmpfs: vec!["/run:size=64k".into()],
            volumes_from: vec!["other:ro".into()],
        };
        let mut b = json!({"HostConfig": {}});
        f.apply(&mut b).unwrap();
        assert_eq!(b["HostConfig"]["Binds"], json!(["data:/data", "/h:/in:ro"]));
        assert_eq!(b["Volumes"], json!({"/anon": {}}));
        assert_eq!(
            b["HostConfig"]["Mounts"][0]["TmpfsOptions"]["SizeBytes"],
            1 << 20
        );
        assert_eq!(
            b["HostConfig"]["Mounts"][1]["VolumeOptions"]["NoCopy"],
            true
        );
        assert_eq!(b["HostConfig"]["Tmpfs"], json!({"/run": "size=64k"}));
        assert_eq!(b["HostConfig"]["VolumesFrom"], json!(["other:ro"]));
        let bad = MountFlags {
            mount: vec!["type=bind,target=/x,nope".into()],
            ..Default::default()
        };
        let e = bad.apply(&mut json!({"HostConfig": {}})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid argument \"type=bind,target=/x,nope\" for \"--mount\" flag: invalid field 'nope' must be a key=value pair"
        );
    }
}
