//! `version`, `info`.

use berth_api::client::{Client, version_lt};
use berth_api::units::bytes_size;
use serde_json::{Value, json};

use crate::cli::FormatOpt;
use crate::commands::out;
use crate::format::Format;

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `berth version`.
pub async fn version(c: &Client, a: &FormatOpt) -> anyhow::Result<()> {
    if c.api_version().is_none() {
        c.ping().await?;
    }
    let server: Value = c.get_json("/version", &[]).await?;
    let negotiated = c.api_version().unwrap_or_else(|| "1.24".into());
    let ours = berth_api::client::CLIENT_MAX_VERSION;
    let client = json!({
        "Version": env!("CARGO_PKG_VERSION"),
        "ApiVersion": negotiated,
        "DefaultAPIVersion": ours,
        "Os": "linux",
        "Arch": arch(),
        "Context": "default",
    });
    if let Some(f) = &a.format {
        let data = json!({"Client": client, "Server": server});
        return out(&Format::parse(f, f)?.render(&Value::Null, std::slice::from_ref(&data))?);
    }
    let api_line = if version_lt(&negotiated, ours) {
        format!("{negotiated} (downgraded from {ours})")
    } else {
        negotiated.clone()
    };
    let s = |k: &str| {
        server
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let text = format!(
        "Client:\n Version:           {}\n API version:       {api_line}\n OS/Arch:           linux/{}\n\nServer: {}\n Engine:\n  Version:          {}\n  API version:      {} (minimum version {})\n  Git commit:       {}\n  OS/Arch:          {}/{}\n  Kernel version:   {}\n",
        env!("CARGO_PKG_VERSION"),
        arch(),
        server
            .pointer("/Platform/Name")
            .and_then(Value::as_str)
            .unwrap_or("Berth Engine"),
        s("Version"),
        s("ApiVersion"),
        s("MinAPIVersion"),
        s("GitCommit"),
        s("Os"),
        s("Arch"),
        s("KernelVersion"),
    );
    out(&text)
}

/// `berth info` / `berth system info`.
pub async fn info(c: &Client, a: &FormatOpt) -> anyhow::Result<()> {
    let info: Value = c.get_json("/info", &[]).await?;
    if let Some(f) = &a.format {
        let rendered = Format::parse(f, f)?.render(&Value::Null, std::slice::from_ref(&info))?;
        return out(&rendered);
    }
    let s = |k: &str| match info.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    };
    let mut t = String::new();
    t.push_str("Client:\n Version:    ");
    t.push_str(env!("CARGO_PKG_VERSION"));
    t.push_str("\n Context:    default\n\nServer:\n");
    t.push_str(&format!(
        " Containers: {}\n  Running: {}\n  Paused: {}\n  Stopped: {}\n",
        s("Containers"),
        s("ContainersRunning"),
        s("ContainersPaused"),
        s("ContainersStopped")
    ));
    t.push_str(&format!(
        " Images: {}\n Server Version: {}\n Storage Driver: {}\n",
        s("Images"),
        s("ServerVersion"),
        s("Driver")
    ));
    if let Some(ds) = info.get("DriverStatus").and_then(Value::as_array) {
        for pair in ds {
            if let (Some(k), Some(v)) = (
                pair.get(0).and_then(Value::as_str),
                pair.get(1).and_then(Value::as_str),
            ) {
                t.push_str(&format!("  {k}: {v}\n"));
            }
        }
    }
    t.push_str(&format!(
        " Logging Driver: {}\n Cgroup Driver: {}\n Cgroup Version: {}\n",
        s("LoggingDriver"),
        s("CgroupDriver"),
        s("CgroupVersion")
    ));
    t.push_str(&format!(
        " Swarm: {}\n",
        info.pointer("/Swarm/LocalNodeState")
            .and_then(Value::as_str)
            .unwrap_or("inactive")
    ));
    t.push_str(&format!(" Default Runtime: {}\n", s("DefaultRuntime")));
    t.push_str(&format!(
        " Kernel Version: {}\n Operating System: {}\n OSType: {}\n Architecture: {}\n CPUs: {}\n",
        s("KernelVersion"),
        s("OperatingSystem"),
        s("OSType"),
        s("Architecture"),
        s("NCPU")
    ));
    let mem = info.get("MemTotal").and_then(Value::as_u64).unwrap_or(0);
    t.push_str(&format!(
        " Total Memory: {}\n Name: {}\n ID: {}\n Docker Root Dir: {}\n",
        bytes_size(mem),
        s("Name"),
        s("ID"),
        s("DockerRootDir")
    ));
    t.push_str(&format!(
        " Debug Mode: {}\n Experimental: {}\n Live Restore Enabled: {}\n",
        s("Debug"),
        s("ExperimentalBuild"),
        s("LiveRestoreEnabled")
    ));
    out(&t)?;
    if let Some(w) = info.get("Warnings").and_then(Value::as_array) {
        for x in w.iter().filter_map(Value::as_str) {
            eprintln!("{x}");
        }
    }
    Ok(())
}
