//! `docker import`: a rootfs tarball (plain or compressed) becomes a one-layer image,
//! with `--change` instructions applied to its config and `-m` as its history comment.

use std::io::{self, Read};

use berth_types::reference::{Digest, Reference};
use serde_json::{Map, Value, json};

use crate::archive::synth_manifest;
use crate::error::StoreError;
use crate::store::{ImageStore, LayerRecord, now_rfc3339};

/// Options of `import`.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `--change` instructions (CMD, ENTRYPOINT, ENV, WORKDIR, EXPOSE, USER, LABEL).
    pub changes: Vec<String>,
    /// `-m`: the history comment.
    pub message: Option<String>,
    /// The tag to give the image.
    pub tag: Option<String>,
}

/// A Dockerfile-style argument list: JSON array, else shell form (`/bin/sh -c`).
fn command(arg: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Vec<String>>(arg.trim()) {
        return json!(v);
    }
    json!(["/bin/sh", "-c", arg.trim()])
}

/// `KEY=VALUE [KEY=VALUE…]` (values may be double-quoted) or the legacy `KEY VALUE`.
fn pairs(arg: &str, change: &str) -> Result<Vec<(String, String)>, StoreError> {
    let arg = arg.trim();
    if !arg.contains('=')
        || arg
            .split_whitespace()
            .next()
            .is_some_and(|w| !w.contains('='))
    {
        let (k, v) = arg
            .split_once(char::is_whitespace)
            .ok_or_else(|| StoreError::BadChange(change.to_owned()))?;
        return Ok(vec![(k.to_owned(), v.trim().to_owned())]);
    }
    let mut out = Vec::new();
    let mut chars = arg.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        let mut val = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            for c in chars.by_ref() {
                if c == '"' {
                    break;
                }
                val.push(c);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        if key.is_empty() {
            return Err(StoreError::BadChange(change.to_owned()));
        }
        out.push((key, val));
    }
    Ok(out)
}

/// Applies `--change` instructions to a container config object.
pub fn apply_changes(
    config: &mut Map<String, Value>,
    changes: &[String],
) -> Result<(), StoreError> {
    for change in changes {
        let (inst, arg) = change
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| StoreError::BadChange(change.clone()))?;
        match inst.to_ascii_uppercase().as_str() {
            "CMD" => {
                config.insert("Cmd".into(), command(arg));
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), command(arg));
            }
            "WORKDIR" => {
                config.insert("WorkingDir".into(), json!(arg.trim()));
            }
            "USER" => {
                config.insert("User".into(), json!(arg.trim()));
            }
            "ENV" => {
                let env = config.entry("Env").or_insert_with(|| json!([]));
                let list = env
                    .as_array_mut()
                    .ok_or_else(|| StoreError::BadChange(change.clone()))?;
                for (k, v) in pairs(arg, change)? {
                    list.retain(|e| {
                        e.as_str()
                            .is_none_or(|s| s.split_once('=').map(|x| x.0) != Some(k.as_str()))
                    });
                    list.push(json!(format!("{k}={v}")));
                }
            }
            "LABEL" => {
                let labels = config.entry("Labels").or_insert_with(|| json!({}));
                let map = labels
                    .as_object_mut()
                    .ok_or_else(|| StoreError::BadChange(change.clone()))?;
                for (k, v) in pairs(arg, change)? {
                    map.insert(k, json!(v));
                }
            }
            "EXPOSE" => {
                let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
                let map = ports
                    .as_object_mut()
                    .ok_or_else(|| StoreError::BadChange(change.clone()))?;
                for p in arg.split_whitespace() {
                    let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                    if num.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                        return Err(StoreError::BadChange(change.clone()));
                    }
                    map.insert(format!("{num}/{proto}"), json!({}));
                }
            }
            _ => return Err(StoreError::BadChange(change.clone())),
        }
    }
    Ok(())
}

impl ImageStore {
    /// `docker import`: stores the tarball as a layer blob, unpacks it and makes a
    /// one-layer image of it for the host platform.
    pub fn import(
        &self,
        mut reader: impl Read,
        opts: &ImportOptions,
    ) -> Result<Digest, StoreError> {
        let tag = opts.tag.as_deref().map(Reference::parse).transpose()?;
        let _hold = self.layers().trash().hold(); // the purger pauses (see Trash::hold)
        let mut container = Map::new();
        apply_changes(&mut container, &opts.changes)?;
        let lease = self.lease();
        let mut w = self.blobs().writer()?;
        io::copy(&mut reader, &mut w).map_err(|e| StoreError::Io {
            op: "read import stream",
            path: "-".into(),
            source: e,
        })?;
        let (blob, size) = w.commit(None)?;
        lease.add_blob(&blob);
        let (meta, compression) = self.unpack_blob(&blob, None, &lease)?;
        let now = now_rfc3339();
        let platform = crate::pull::host_platform();
        let config = json!({
            "architecture": platform.architecture,
            "os": platform.os,
            "created": now,
            "config": Value::Object(container),
            "rootfs": {"type": "layers", "diff_ids": [meta.diff_id.to_string()]},
            "history": [{"created": now, "created_by": "", "comment": opts.message.clone().unwrap_or_else(|| "Imported from -".into())}],
        });
        let cbytes = serde_json::to_vec(&config).map_err(|e| StoreError::Task(e.to_string()))?;
        lease.add_blob(&Digest::sha256(&cbytes));
        let id = self.blobs().put(&cbytes)?;
        lease.add_image(&id);
        let layers = vec![LayerRecord {
            blob,
            media_type: compression.docker_media_type().to_owned(),
            size,
            diff_id: meta.diff_id.clone(),
            chain_id: meta.chain_id.clone(),
        }];
        let manifest = synth_manifest(&id, cbytes.len() as u64, &layers, false);
        let mbytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::Task(e.to_string()))?;
        lease.add_blob(&Digest::sha256(&mbytes));
        let mdigest = self.blobs().put(&mbytes)?;
        let tags: Vec<Reference> = tag.into_iter().collect();
        self.commit_image(&id, Some(mdigest), layers, &tags, None, &lease)?;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_fill_the_config() {
        let mut c = Map::new();
        let changes: Vec<String> = [
            r#"CMD ["/bin/sh","-c","echo hi"]"#,
            "ENTRYPOINT /init --flag",
            "ENV A=1 B=\"two words\"",
            "ENV C 3",
            "WORKDIR /srv",
            "EXPOSE 80 53/udp",
            "USER 1000:1000",
            "LABEL org.example=yes",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        apply_changes(&mut c, &changes).unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/init --flag"]));
        assert_eq!(c["Env"], json!(["A=1", "B=two words", "C=3"]));
        assert_eq!(c["WorkingDir"], json!("/srv"));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["User"], json!("1000:1000"));
        assert_eq!(c["Labels"], json!({"org.example": "yes"}));
        let err = apply_changes(&mut c, &["RUN rm -rf /".to_string()]).unwrap_err();
        assert!(err.to_string().contains("RUN rm -rf /"), "{err}");
    }
}
