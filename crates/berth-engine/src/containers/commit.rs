//! `docker commit` (the container's image + its upper dir as a new layer, config
//! changes applied), `docker diff` (A/C/D from the upper dir) and `docker export` (a tar
//! of the merged rootfs).

use berth_image::diff::{Change, DiffOptions, changes, write_layer_tar};
use berth_types::reference::Reference;
use serde_json::{Value, json};

use crate::io::{ByteStream, channel_writer};
use crate::{Engine, EngineError};

/// What `POST /commit` asks for.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// `container=`.
    pub container: String,
    /// `repo=` (may be empty: an untagged image).
    pub repo: Option<String>,
    /// `tag=`.
    pub tag: Option<String>,
    /// `comment=` (history comment).
    pub comment: Option<String>,
    /// `author=`.
    pub author: Option<String>,
    /// `changes=` (Dockerfile instructions: CMD, ENTRYPOINT, ENV, …).
    pub changes: Vec<String>,
    /// `pause=`: freeze a running container while its upper dir is read (Docker's
    /// default).
    pub pause: bool,
}

fn strs(v: &[String]) -> Value {
    if v.is_empty() { Value::Null } else { json!(v) }
}

impl Engine {
    /// `POST /commit`: returns the new image id.
    pub async fn commit_container(&self, req: CommitRequest) -> Result<String, EngineError> {
        let rec = self.containers.get(&req.container)?;
        let tag = match req.repo.as_deref().filter(|r| !r.is_empty()) {
            Some(repo) => {
                let full = match req.tag.as_deref().filter(|t| !t.is_empty()) {
                    Some(t) => format!("{repo}:{t}"),
                    None => repo.to_owned(),
                };
                Some(Reference::parse(&full).map_err(|e| {
                    EngineError::InvalidParameter(format!("invalid reference format {full:?}: {e}"))
                })?)
            }
            None => None,
        };
        // freeze a running container while its changes are read (unless already paused)
        let paused_here = req.pause
            && rec.state.status == super::Status::Running
            && !rec.state.paused
            && self.containers.pause(&rec.id).is_ok();
        let cid = rec.id.clone();
        let result = self.commit_inner(rec, req, tag).await;
        if paused_here {
            let _ = self.containers.unpause(&cid);
        }
        result.map(|r| r.0)
    }

    async fn commit_inner(
        &self,
        rec: super::Record,
        req: CommitRequest,
        tag: Option<Reference>,
    ) -> Result<(String, String), EngineError> {
        let dir = self.containers.dir(&rec.id);
        let store = self.images.clone();
        let comment = req.comment.clone().unwrap_or_default();
        let cid = rec.id.clone();
        let id = tokio::task::spawn_blocking(move || -> Result<String, EngineError> {
            let image: berth_types::reference::Digest = rec
                .image_id
                .parse()
                .map_err(|e| EngineError::Task(format!("container image id {:?}: {e}", rec.image_id)))?;
            let base = store.resolve(image.as_str())?;
            let mut config = store.config(&image)?;
            // the container's configuration becomes the image's
            let mut c = config.get("config").cloned().unwrap_or(json!({}));
            if !c.is_object() {
                c = json!({});
            }
            c["Cmd"] = strs(&rec.cmd);
            c["Entrypoint"] = strs(&rec.entrypoint);
            c["Env"] = json!(rec.env);
            c["WorkingDir"] = json!(if rec.workdir == "/" && c["WorkingDir"].as_str().unwrap_or("").is_empty() { "" } else { rec.workdir.as_str() });
            if !rec.spec.user.is_empty() {
                c["User"] = json!(rec.spec.user);
            }
            if !rec.spec.labels.is_empty() {
                let mut labels = c["Labels"].as_object().cloned().unwrap_or_default();
                for (k, v) in &rec.spec.labels {
                    labels.insert(k.clone(), json!(v));
                }
                c["Labels"] = Value::Object(labels);
            }
            let mut map = c.as_object().cloned().unwrap_or_default();
            berth_image::import::apply_changes(&mut map, &req.changes)?;
            config["config"] = Value::Object(map);
            let lease = store.lease();
            lease.add_image(&image);
            let parent_chain = base.layers.last().map(|l| l.chain_id.clone());
            let layer = store.commit_dir_layer(
                &dir.join("upper"),
                parent_chain.as_ref(),
                &DiffOptions {
                    source_date_epoch: None,
                    overlay: true,
                    keep_source: true,
                },
                &lease,
            )?;
            let now = jiff::Timestamp::now().to_string();
            config["created"] = json!(now);
            if let Some(a) = req.author.as_deref().filter(|a| !a.is_empty()) {
                config["author"] = json!(a);
            }
            let mut h = json!({"created": now, "created_by": std::iter::once(rec.path.clone()).chain(rec.args.clone()).collect::<Vec<_>>().join(" ")});
            if let Some(a) = req.author.as_deref().filter(|a| !a.is_empty()) {
                h["author"] = json!(a);
            }
            if let Some(cm) = req.comment.as_deref().filter(|c| !c.is_empty()) {
                h["comment"] = json!(cm);
            }
            let mut layers = base.layers.clone();
            match &layer {
                Some(l) => {
                    if let Some(d) = config["rootfs"]["diff_ids"].as_array_mut() {
                        d.push(json!(l.diff_id.to_string()));
                    } else {
                        config["rootfs"] = json!({"type": "layers", "diff_ids": [l.diff_id.to_string()]});
                    }
                    layers.push(l.clone());
                }
                None => h["empty_layer"] = json!(true),
            }
            match config.get_mut("history").and_then(Value::as_array_mut) {
                Some(list) => list.push(h),
                None => config["history"] = json!([h]),
            }
            let tags: Vec<Reference> = tag.into_iter().collect();
            let id = store.create_image(&config, layers, Some(&image), &tags, &lease)?;
            Ok(id.to_string())
        })
        .await
        .map_err(|e| EngineError::Task(e.to_string()))??;
        self.events.publish(
            crate::events::Event::new("container", "commit", &cid)
                .attr("comment", &comment)
                .attr("imageID", &id),
        );
        Ok((id, cid))
    }

    /// `GET /containers/{id}/changes`.
    pub async fn container_changes(&self, name: &str) -> Result<Vec<Change>, EngineError> {
        let rec = self.containers.get(name)?;
        let dir = self.containers.dir(&rec.id);
        tokio::task::spawn_blocking(move || Ok(changes(&dir.join("upper"), &rec.lowerdirs)?))
            .await
            .map_err(|e| EngineError::Task(e.to_string()))?
    }

    /// `GET /containers/{id}/export`: a tar of the merged root file system.
    pub async fn export_container(&self, name: &str) -> Result<ByteStream, EngineError> {
        let rec = self.containers.get(name)?;
        let dir = self.containers.dir(&rec.id);
        let overlay =
            super::rootfs::Overlay::new(&dir, rec.lowerdirs.clone()).volatile(rec.spec.auto_remove);
        overlay.mount()?;
        let (writer, stream) = channel_writer();
        tokio::task::spawn_blocking(move || {
            let mut bw = std::io::BufWriter::with_capacity(256 * 1024, writer);
            let res = write_layer_tar(&overlay.merged, &mut bw, &DiffOptions::default());
            match (res, bw.into_inner()) {
                (Ok(_), Ok(_)) => {}
                (Err(e), Ok(w)) => w.fail(std::io::Error::other(e.to_string())),
                (_, Err(e)) => tracing::warn!(error = %e.error(), "export stream"),
            }
        });
        Ok(stream)
    }
}
