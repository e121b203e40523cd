//! `login`, `logout`, `search`, and the credentials file the CLI keeps (docker's
//! config.json format): `$BERTH_CLI_CONFIG/config.json`, else `~/.berth/config.json`;
//! `~/.docker/config.json` is read as a fallback.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use berth_api::client::{Client, full, read_json};
use berth_registry::Credentials;
use hyper::Method;
use serde_json::{Value, json};

use crate::cli::{LoginArgs, LogoutArgs, SearchArgs};
use crate::commands::{filters_json, out};
use crate::format::Format;

/// The default registry's name in messages and `serveraddress`.
pub const DOCKER_HUB: &str = "https://index.docker.io/v1/";

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
}

/// The credentials file berth writes.
pub fn config_path() -> PathBuf {
    match std::env::var_os("BERTH_CLI_CONFIG").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("config.json"),
        None => home().join(".berth/config.json"),
    }
}

fn credentials() -> anyhow::Result<Credentials> {
    Ok(Credentials::load(
        &config_path(),
        &[home().join(".docker/config.json")],
    )?)
}

/// `X-Registry-Auth` for `domain`: base64url JSON of the stored credentials, or `{}`.
pub fn registry_auth_header(domain: &str) -> anyhow::Result<String> {
    let creds = credentials()?;
    let v = match creds.get(domain) {
        Some(e) => json!({"username": e.username, "password": e.password, "serveraddress": domain}),
        None => json!({}),
    };
    Ok(base64::engine::general_purpose::URL_SAFE.encode(serde_json::to_vec(&v)?))
}

fn server_of(s: Option<&str>) -> String {
    match s {
        None | Some("docker.io") | Some("index.docker.io") => DOCKER_HUB.to_owned(),
        Some(x) => x
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned(),
    }
}

fn prompt(label: &str) -> anyhow::Result<String> {
    eprint!("{label}");
    std::io::stderr().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn prompt_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let old = rustix::termios::tcgetattr(&stdin).ok();
    if let Some(t) = &old {
        let mut quiet = t.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet);
    }
    let res = prompt("Password: ");
    if let Some(t) = &old {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, t);
        eprintln!();
    }
    res
}

/// `berth login`.
pub async fn login(c: &Client, a: &LoginArgs) -> anyhow::Result<()> {
    let server = server_of(a.server.as_deref());
    if a.password.is_some() && a.password_stdin {
        bail!("--password and --password-stdin are mutually exclusive");
    }
    let interactive = std::io::stdin().is_terminal();
    let username = match &a.username {
        Some(u) => u.clone(),
        None if interactive => prompt("Username: ")?,
        None => bail!("username is required (-u) when stdin is not a terminal"),
    };
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::stdin().lock().read_line(&mut s)?;
        s.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        match &a.password {
            Some(p) => {
                eprintln!(
                    "WARNING! Using --password via the CLI is insecure. Use --password-stdin."
                );
                p.clone()
            }
            None if interactive => prompt_password()?,
            None => {
                bail!("password is required (-p or --password-stdin) when stdin is not a terminal")
            }
        }
    };
    if username.is_empty() {
        bail!("username is empty");
    }
    let body = json!({"username": username, "password": password, "serveraddress": server});
    let resp = c
        .send(
            Method::POST,
            "/auth",
            &[],
            full(serde_json::to_vec(&body)?),
            &[("Content-Type", "application/json".to_owned())],
        )
        .await?;
    let v: Value = read_json(resp, "login").await?;
    let mut creds = credentials()?;
    let host = if server == DOCKER_HUB {
        "docker.io".to_owned()
    } else {
        server.clone()
    };
    creds.set(&host, &username, &password);
    creds
        .save()
        .with_context(|| format!("cannot save credentials to {}", config_path().display()))?;
    out(&format!(
        "{}\n",
        v.get("Status")
            .and_then(Value::as_str)
            .unwrap_or("Login Succeeded")
    ))
}

/// `berth logout`.
pub fn logout(a: &LogoutArgs) -> anyhow::Result<()> {
    let server = server_of(a.server.as_deref());
    let host = if server == DOCKER_HUB {
        "docker.io".to_owned()
    } else {
        server.clone()
    };
    let mut creds = credentials()?;
    if !creds.remove(&host) {
        return out(&format!("Not logged in to {server}\n"));
    }
    creds
        .save()
        .with_context(|| format!("cannot save credentials to {}", config_path().display()))?;
    out(&format!("Removing login credentials for {server}\n"))
}

const SEARCH_TABLE: &str = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}";

/// `berth search`.
pub async fn search(c: &Client, a: &SearchArgs) -> anyhow::Result<()> {
    let mut q = vec![("term", a.term.clone()), ("limit", a.limit.to_string())];
    if let Some(f) = filters_json(&a.filter)? {
        q.push(("filters", f));
    }
    let results: Vec<Value> = c
        .get_json("/images/search", &q)
        .await
        .map_err(|e| anyhow!(e))?;
    let rows: Vec<Value> = results
        .iter()
        .map(|r| {
            let mut desc = r
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .replace('\n', " ");
            if !a.no_trunc && desc.chars().count() > 45 {
                desc = desc.chars().take(44).collect::<String>() + "…";
            }
            let official = r
                .get("is_official")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            json!({
                "Name": r.get("name").and_then(Value::as_str).unwrap_or_default(),
                "Description": desc,
                "StarCount": r.get("star_count").and_then(Value::as_u64).unwrap_or(0).to_string(),
                "IsOfficial": if official { "[OK]" } else { "" },
                "IsAutomated": "",
            })
        })
        .collect();
    let header = json!({"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED"});
    let f = Format::parse(a.format.as_deref().unwrap_or(SEARCH_TABLE), SEARCH_TABLE)?;
    out(&f.render(&header, &rows)?)
}
