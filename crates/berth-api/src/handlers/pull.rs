//! `POST /images/create?fromImage=` (pull) and `POST /images/{name}/push`: the transfer
//! runs in a task; its per-blob events become Docker's JSON progress messages. An error
//! before any byte moved is answered with its status (404 for an unknown repository, as
//! moby); later errors arrive inside the 200 stream.

use std::collections::HashSet;

use axum::http::HeaderMap;
use berth_engine::distribution::{RegistryAuth, TransferEvent, decode_registry_auth};
use berth_engine::{EngineError, ErrorKind};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::handlers::streamed;
use crate::jsonmessage::{JsonMessage, ProgressDetail};
use crate::server::{ApiResult, Ctx, Req};

fn auth_of(headers: &HeaderMap) -> Result<RegistryAuth, ApiError> {
    match headers.get("X-Registry-Auth").and_then(|h| h.to_str().ok()) {
        Some(h) => Ok(decode_registry_auth(h)?),
        None => Ok(RegistryAuth::default()),
    }
}

fn short(d: &berth_types::reference::Digest) -> String {
    d.hex().chars().take(12).collect()
}

/// Docker's text bar (`jsonmessage.JSONProgress.String`), for clients that print it.
fn bar(current: u64, total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    let width = 50usize;
    let n = ((current.min(total) as f64 / total as f64) * width as f64) as usize;
    let body = if n < width {
        format!("{}>{}", "=".repeat(n), " ".repeat(width - n - 1))
    } else {
        "=".repeat(width)
    };
    format!("[{body}] {:>8}/{}", human(current), human(total))
}

fn human(n: u64) -> String {
    crate::units::human_size(n)
}

fn line(m: JsonMessage) -> Result<Bytes, std::io::Error> {
    Ok(m.to_line())
}

fn transfer_line(ev: &TransferEvent, push: bool, seen: &mut HashSet<String>) -> Vec<JsonMessage> {
    let detail = |current, total| {
        Some(ProgressDetail {
            current: Some(current),
            total: Some(total),
        })
    };
    match ev {
        TransferEvent::Start { digest, total } => {
            let id = short(digest);
            let mut v = Vec::new();
            if seen.insert(id.clone()) {
                v.push(JsonMessage::status(
                    if push {
                        "Preparing"
                    } else {
                        "Pulling fs layer"
                    },
                    Some(&id),
                ));
            }
            let mut m =
                JsonMessage::status(if push { "Pushing" } else { "Downloading" }, Some(&id));
            m.progress_detail = detail(0, *total);
            v.push(m);
            v
        }
        TransferEvent::Bytes {
            digest,
            current,
            total,
        } => {
            let mut m = JsonMessage::status(
                if push { "Pushing" } else { "Downloading" },
                Some(&short(digest)),
            );
            m.progress_detail = detail(*current, *total);
            m.progress = Some(bar(*current, *total));
            vec![m]
        }
        TransferEvent::Done { digest, skipped } => {
            let id = short(digest);
            let text = match (push, skipped) {
                (true, true) => "Layer already exists",
                (true, false) => "Pushed",
                (false, true) => "Already exists",
                (false, false) => "Pull complete",
            };
            let mut v = Vec::new();
            if !push && !skipped {
                v.push(JsonMessage::status("Download complete", Some(&id)));
            }
            v.push(JsonMessage::status(text, Some(&id)));
            v
        }
    }
}

/// Runs `job` in a task and streams its progress; answers with an error status when it
/// fails before reporting anything.
async fn run_transfer<T: Send + 'static>(
    header: Vec<JsonMessage>,
    push: bool,
    job: impl FnOnce(
        mpsc::UnboundedSender<TransferEvent>,
    ) -> tokio::task::JoinHandle<Result<T, EngineError>>,
    finish: impl FnOnce(T) -> Vec<JsonMessage> + Send + 'static,
) -> ApiResult {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut handle = job(tx);
    let first = tokio::select! {
        ev = rx.recv() => ev.map(Ok),
        res = &mut handle => Some(Err(res)),
    };
    let first = match first {
        Some(Ok(ev)) => Some(ev),
        // The channel closed: the job is finishing; wait for its result.
        None => return finished(header, push, &mut rx, (&mut handle).await, finish),
        Some(Err(res)) => return finished(header, push, &mut rx, res, finish),
    };
    let (out_tx, out_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let mut seen = HashSet::new();
        for m in header {
            let _ = out_tx.send(line(m)).await;
        }
        if let Some(ev) = first {
            for m in transfer_line(&ev, push, &mut seen) {
                let _ = out_tx.send(line(m)).await;
            }
        }
        while let Some(ev) = rx.recv().await {
            for m in transfer_line(&ev, push, &mut seen) {
                // A client that went away stops the messages, not the transfer.
                let _ = out_tx.send(line(m)).await;
            }
        }
        let msgs = match handle.await {
            Ok(Ok(v)) => finish(v),
            Ok(Err(e)) => vec![JsonMessage::error(e.to_string())],
            Err(e) => vec![JsonMessage::error(format!("transfer task failed: {e}"))],
        };
        for m in msgs {
            let _ = out_tx.send(line(m)).await;
        }
    });
    let stream =
        futures_util::stream::unfold(
            out_rx,
            |mut rx| async move { rx.recv().await.map(|x| (x, rx)) },
        );
    Ok(streamed("application/json", stream))
}

/// The answer when the job ended before streaming started: its error status (404, 400,
/// 401) or the whole stream at once.
fn finished<T>(
    header: Vec<JsonMessage>,
    push: bool,
    rx: &mut mpsc::UnboundedReceiver<TransferEvent>,
    res: Result<Result<T, EngineError>, tokio::task::JoinError>,
    finish: impl FnOnce(T) -> Vec<JsonMessage>,
) -> ApiResult {
    let res = res.map_err(|e| EngineError::Task(e.to_string()));
    if let Ok(Err(e)) = &res
        && matches!(
            e.kind(),
            ErrorKind::NotFound | ErrorKind::InvalidParameter | ErrorKind::Unauthorized
        )
    {
        let status = crate::error::status_of(e.kind());
        return Err(ApiError::new(status, e.to_string()));
    }
    let mut lines: Vec<Result<Bytes, std::io::Error>> = header.into_iter().map(line).collect();
    let mut seen = HashSet::new();
    while let Ok(ev) = rx.try_recv() {
        lines.extend(transfer_line(&ev, push, &mut seen).into_iter().map(line));
    }
    match res {
        Ok(Ok(v)) => lines.extend(finish(v).into_iter().map(line)),
        Ok(Err(e)) | Err(e) => lines.push(line(JsonMessage::error(e.to_string()))),
    }
    Ok(streamed(
        "application/json",
        futures_util::stream::iter(lines),
    ))
}

/// `POST /images/create?fromImage=&tag=&platform=`.
pub async fn pull(ctx: &Ctx, req: &Req) -> ApiResult {
    let from = req.query.get("fromImage").unwrap_or_default().to_owned();
    let tag = req.query.get("tag").map(str::to_owned);
    let platform = req.query.get("platform").map(str::to_owned);
    let auth = auth_of(&req.headers)?;
    let named = berth_types::reference::Reference::parse_named(&from)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let header = vec![JsonMessage::status(
        format!("Pulling from {}", named.path()),
        Some(
            tag.as_deref()
                .filter(|t| !t.is_empty())
                .or(named.tag())
                .unwrap_or("latest"),
        ),
    )];
    let engine = ctx.engine.clone();
    run_transfer(
        header,
        false,
        move |tx| {
            tokio::spawn(async move {
                engine
                    .pull_image(&from, tag.as_deref(), platform.as_deref(), &auth, tx)
                    .await
            })
        },
        |outcomes| {
            let mut v = Vec::new();
            for o in outcomes {
                v.push(JsonMessage::status(format!("Digest: {}", o.digest), None));
                let what = if o.up_to_date {
                    "Image is up to date for"
                } else {
                    "Downloaded newer image for"
                };
                v.push(JsonMessage::status(
                    format!("Status: {what} {}", o.reference.familiar()),
                    None,
                ));
            }
            v
        },
    )
    .await
}

/// `POST /images/{name}/push?tag=`.
pub async fn push(ctx: &Ctx, name: &str, req: &Req) -> ApiResult {
    let tag = req.query.get("tag").map(str::to_owned);
    let auth = auth_of(&req.headers)?;
    let named = berth_types::reference::Reference::parse_named(name)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let header = vec![JsonMessage::status(
        format!(
            "The push refers to repository [{}]",
            named.repository().name()
        ),
        None,
    )];
    let engine = ctx.engine.clone();
    let name = name.to_owned();
    run_transfer(
        header,
        true,
        move |tx| {
            tokio::spawn(async move { engine.push_image(&name, tag.as_deref(), &auth, tx).await })
        },
        |outcomes| {
            let mut v = Vec::new();
            for o in outcomes {
                let t = o.reference.tag().unwrap_or("latest").to_owned();
                v.push(JsonMessage::status(
                    format!("{t}: digest: {} size: {}", o.digest, o.size),
                    None,
                ));
                v.push(JsonMessage {
                    aux: Some(serde_json::json!({"Tag": t, "Digest": o.digest, "Size": o.size})),
                    ..JsonMessage::default()
                });
            }
            v
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_bars_look_like_docker() {
        assert_eq!(human(999), "999B");
        assert_eq!(human(4_261_000), "4.261MB");
        assert!(bar(50, 100).starts_with("[=========================>"));
        assert_eq!(bar(0, 0), "");
    }
}
