//! berthd: the Berth daemon. Serves the Docker Engine API on unix sockets.
#![forbid(unsafe_code)]

mod args;
mod listen;
mod net_args;

use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use tokio::sync::watch;

use crate::args::{Args, Host, Settings};

fn listener_addr(l: &listen::TlsListener) -> String {
    axum::serve::Listener::local_addr(l)
        .map(|a| a.to_string())
        .unwrap_or_default()
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let settings = match Settings::resolve(args, |k| std::env::var_os(k)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berthd: {e:#}");
            return std::process::ExitCode::from(1);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if settings.debug { "debug" } else { "info" })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berthd: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match rt.block_on(run(settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("berthd: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    // handlers first: a SIGTERM that arrives once the socket answers must shut down
    // cleanly, not kill the daemon with the default action
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut config = berth_engine::EngineConfig::new(&settings.data_root, &settings.exec_root);
    config = config.with_config_file(&settings.config_file)?;
    config.network = settings.net.clone();
    let engine = berth_engine::Engine::open(config).with_context(|| {
        format!(
            "cannot open the state under {}",
            settings.data_root.display()
        )
    })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut sockets = Vec::new();
    let mut tasks = Vec::new();
    // Bind every socket (unix ones under a temporary name) first, then write the pid
    // file, then publish and serve: a client that connects finds the pid file there.
    enum Bound {
        Unix(std::path::PathBuf, listen::Hidden),
        Tls(listen::TlsListener),
    }
    let mut bound = Vec::new();
    for host in &settings.hosts {
        match host {
            Host::Unix(path) => {
                let listener = listen::bind_unix(path)
                    .with_context(|| format!("cannot listen on unix://{}", path.display()))?;
                sockets.push(path.clone());
                bound.push(Bound::Unix(path.clone(), listener));
            }
            Host::Tcp(addr) => {
                let tls = settings.tls.as_ref().context("tcp hosts need TLS")?;
                bound.push(Bound::Tls(listen::bind_tls(addr, tls).await?));
            }
        }
    }
    let pid_file = settings.exec_root.join("berthd.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id()))
        .with_context(|| format!("cannot write {}", pid_file.display()))?;
    for b in bound {
        let router = berth_api::router(engine.clone(), stop_rx.clone());
        let mut rx = stop_rx.clone();
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        match b {
            Bound::Unix(path, hidden) => {
                let listener = hidden.publish()?;
                tracing::info!(socket = %path.display(), "API listen on unix://{}", path.display());
                tasks.push(tokio::spawn(berth_api::serve_unix(listener, router, stop)));
            }
            Bound::Tls(listener) => {
                let addr = listener_addr(&listener);
                tracing::info!(addr = %addr, verify_clients = settings.tls.as_ref().is_some_and(|t| t.client_ca.is_some()), "API listen on tcp://{addr} (TLS)");
                tasks.push(tokio::spawn(async move {
                    axum::serve(listener, router)
                        .with_graceful_shutdown(stop)
                        .await
                }));
            }
        }
    }
    tracing::info!(data_root = %settings.data_root.display(), exec_root = %settings.exec_root.display(), "daemon ready");

    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }
    let _ = stop_tx.send(true);
    let drain = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after 10s; closing them");
    }
    for s in sockets {
        let _ = std::fs::remove_file(&s);
    }
    let _ = std::fs::remove_file(&pid_file);
    tracing::info!("daemon stopped");
    Ok(())
}
