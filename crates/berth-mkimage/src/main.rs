//! `berth-mkimage`: rootfs directory or tarball → OCI image layout or docker-archive.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use berth_mkimage::{Image, ImageOptions};
use clap::{Args, Parser, Subcommand};

/// Make a container image from local files.
///
/// Deterministic: with SOURCE_DATE_EPOCH set, the same input gives the same bytes
/// (file mtimes are clamped to it and it is the image's creation time).
#[derive(Debug, Parser)]
#[command(
    name = "berth-mkimage",
    version,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    recipe: Option<Recipe>,
    #[command(flatten)]
    image: ImageArgs,
    #[command(flatten)]
    out: OutArgs,
}

#[derive(Debug, Subcommand)]
enum Recipe {
    /// Docker Hub's busybox, made from Debian's busybox-static: applet links, root and
    /// nobody in /etc/passwd, /tmp 1777, Cmd ["sh"].
    Busybox {
        /// Image name.
        #[arg(long, default_value = "busybox:latest")]
        tag: String,
        #[command(flatten)]
        out: OutArgs,
    },
    /// A Debian minbase image made with mmdebstrap (installed with apt-get when missing;
    /// needs a reachable Debian mirror).
    Debian {
        /// Image name.
        #[arg(long, default_value = "debian:bookworm-minbase")]
        tag: String,
        /// Debian suite.
        #[arg(long, default_value = "bookworm")]
        suite: String,
        /// Extra packages to include (comma separated).
        #[arg(long, default_value = "")]
        include: String,
        #[command(flatten)]
        out: OutArgs,
    },
}

#[derive(Debug, Args)]
struct ImageArgs {
    /// Rootfs directory or tarball (.tar, .tar.gz); repeat for several layers, bottom first.
    #[arg(long, value_name = "DIR|TAR")]
    rootfs: Vec<PathBuf>,
    /// Image name, `repository[:tag]`.
    #[arg(long, default_value = "image:latest")]
    tag: String,
    /// Cmd: a JSON array (`["sh","-c","x"]`) or one argument per --cmd.
    #[arg(long, allow_hyphen_values = true)]
    cmd: Vec<String>,
    /// Entrypoint: a JSON array or one argument per --entrypoint.
    #[arg(long, allow_hyphen_values = true)]
    entrypoint: Vec<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long)]
    env: Vec<String>,
    /// Working directory.
    #[arg(long)]
    workdir: Option<String>,
    /// User (name or uid[:gid]).
    #[arg(long)]
    user: Option<String>,
    /// Label key=value (repeatable).
    #[arg(long)]
    label: Vec<String>,
    /// Exposed port PORT[/tcp|udp|sctp] (repeatable).
    #[arg(long)]
    expose: Vec<String>,
    /// Stop signal.
    #[arg(long)]
    stop_signal: Option<String>,
}

#[derive(Debug, Args, Clone)]
struct OutArgs {
    /// Write (or add to) an OCI image layout directory.
    #[arg(long, value_name = "DIR")]
    oci_layout: Option<PathBuf>,
    /// Write a docker-archive (`docker save` format).
    #[arg(long, value_name = "FILE")]
    docker_archive: Option<PathBuf>,
    /// Gzip the docker-archive.
    #[arg(long)]
    gzip: bool,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("berth-mkimage: {e:#}");
        std::process::exit(1);
    }
}

fn source_date_epoch() -> Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.is_empty() => {
            Ok(Some(s.trim().parse().with_context(|| {
                format!("SOURCE_DATE_EPOCH={s:?} is not an integer")
            })?))
        }
        _ => Ok(None),
    }
}

fn list(args: &[String]) -> Result<Option<Vec<String>>> {
    match args {
        [] => Ok(None),
        [one] if one.trim_start().starts_with('[') => {
            Ok(Some(serde_json::from_str(one).with_context(|| {
                format!("{one:?} is not a JSON array of strings")
            })?))
        }
        many => Ok(Some(many.to_vec())),
    }
}

fn run(cli: Cli) -> Result<()> {
    let epoch = source_date_epoch()?;
    match cli.recipe {
        Some(Recipe::Busybox { tag, out }) => {
            check_out(&out)?;
            let scratch = tempfile::Builder::new()
                .prefix("berth-mkimage-")
                .tempdir()?;
            let image = berth_mkimage::busybox_image(scratch.path(), &tag, epoch)?;
            write(&image, &out)
        }
        Some(Recipe::Debian {
            tag,
            suite,
            include,
            out,
        }) => {
            check_out(&out)?;
            let scratch = tempfile::Builder::new()
                .prefix("berth-mkimage-")
                .tempdir()?;
            let tarball = scratch.path().join("rootfs.tar");
            debian_rootfs(&suite, &include, &tarball)?;
            let opts = ImageOptions {
                cmd: Some(vec!["bash".into()]),
                source_date_epoch: epoch,
                ..Default::default()
            };
            let image = Image::from_rootfs(&tarball, &tag, &opts)?;
            write(&image, &out)
        }
        None => {
            check_out(&cli.out)?;
            let a = cli.image;
            if a.rootfs.is_empty() {
                bail!("--rootfs DIR|TAR is required (or use a recipe: berth-mkimage busybox ...)");
            }
            let mut labels = BTreeMap::new();
            for l in &a.label {
                let (k, v) = l
                    .split_once('=')
                    .with_context(|| format!("label {l:?} is not key=value"))?;
                labels.insert(k.to_string(), v.to_string());
            }
            let opts = ImageOptions {
                cmd: list(&a.cmd)?,
                entrypoint: list(&a.entrypoint)?,
                env: a.env,
                workdir: a.workdir,
                user: a.user,
                labels,
                exposed_ports: a.expose,
                stop_signal: a.stop_signal,
                source_date_epoch: epoch,
                created_by: None,
            };
            let image = Image::from_rootfs_layers(&a.rootfs, &a.tag, &opts)?;
            write(&image, &cli.out)
        }
    }
}

fn check_out(out: &OutArgs) -> Result<()> {
    if out.oci_layout.is_none() && out.docker_archive.is_none() {
        bail!("nothing to write: give --oci-layout DIR and/or --docker-archive FILE");
    }
    if out.gzip && out.docker_archive.is_none() {
        bail!("--gzip applies to --docker-archive only");
    }
    Ok(())
}

fn write(image: &Image, out: &OutArgs) -> Result<()> {
    if let Some(dir) = &out.oci_layout {
        image.write_oci_layout(dir)?;
        println!(
            "{} {} oci:{}:{}",
            image.manifest_digest,
            image.reference,
            dir.display(),
            image.reference.tag
        );
    }
    if let Some(file) = &out.docker_archive {
        image.write_docker_archive(file, out.gzip)?;
        println!(
            "{} {} docker-archive:{}",
            image.config_digest,
            image.reference,
            file.display()
        );
    }
    Ok(())
}

/// `mmdebstrap --variant=minbase SUITE OUT.tar`, installing mmdebstrap first if missing.
fn debian_rootfs(suite: &str, include: &str, out: &std::path::Path) -> Result<()> {
    use std::process::Command;
    let have = Command::new("mmdebstrap")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        let st = Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "mmdebstrap",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .context("failed to run apt-get install mmdebstrap")?;
        if !st.success() {
            bail!("apt-get install mmdebstrap failed with {st}");
        }
    }
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(["--variant=minbase", "--mode=root", "--format=tar"]);
    if !include.is_empty() {
        cmd.arg(format!("--include={include}"));
    }
    cmd.arg(suite).arg(out);
    let st = cmd.status().context("failed to run mmdebstrap")?;
    if !st.success() {
        bail!("mmdebstrap {suite} exited with {st}");
    }
    Ok(())
}
