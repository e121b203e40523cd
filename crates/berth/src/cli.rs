//! What was typed (parse first): clap structs mirroring the docker CLI's commands and
//! flags. Resolution against the environment and the daemon happens in `connect` and
//! the command modules.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `berth`: a Docker-compatible container engine client.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "A Docker-compatible container engine",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Daemon socket to connect to (unix:///path) [env: BERTH_HOST]
    #[arg(short = 'H', long = "host", value_name = "ADDR")]
    pub host: Option<String>,
    /// Use TLS and verify the daemon (tcp:// hosts) [env: BERTH_TLS_VERIFY]
    #[arg(long = "tlsverify")]
    pub tlsverify: bool,
    /// Trust certs signed only by this CA [default: $BERTH_CERT_PATH/ca.pem]
    #[arg(long = "tlscacert", value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file [default: $BERTH_CERT_PATH/cert.pem]
    #[arg(long = "tlscert", value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file [default: $BERTH_CERT_PATH/key.pem]
    #[arg(long = "tlskey", value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
#[command(defer = true)] // args are built only for the subcommand in use (start-up time)
pub enum Command {
    /// Show the berth version information
    Version(FormatOpt),
    /// Display system-wide information
    Info(FormatOpt),
    /// List images
    Images(ImagesArgs),
    /// Return low-level information on objects
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Log in to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Search registries for images
    Search(SearchArgs),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(crate::commands::attach::AttachArgs),
    /// Execute a command in a running container
    Exec(crate::commands::exec::ExecArgs),
    /// Create and run a new container from an image
    Run(crate::commands::containers::RunArgs),
    /// Create a new container
    Create(crate::commands::containers::CreateCmdArgs),
    /// Start one or more stopped containers
    Start(crate::commands::containers::StartArgs),
    /// List containers
    Ps(crate::commands::containers::PsArgs),
    /// Fetch the logs of a container
    Logs(crate::commands::containers::LogsArgs),
    /// Stop one or more running containers
    Stop(crate::commands::containers::StopArgs),
    /// Kill one or more running containers
    Kill(crate::commands::containers::KillArgs),
    /// Remove one or more containers
    Rm(crate::commands::containers::RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(crate::commands::containers::WaitArgs),
    /// restart, pause, unpause, rename, top, stats, update
    #[command(flatten)]
    Lifecycle(crate::commands::lifecycle::LifecycleCommand),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage volumes
    #[command(subcommand)]
    Volume(crate::commands::volumes::VolumeCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(crate::commands::networks::NetworkCommand),
    /// List port mappings or a specific mapping for the container
    Port(crate::commands::run_net::PortArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(crate::commands::cp::CpArgs),
    /// Manage berth
    #[command(subcommand)]
    System(SystemCommand),
    /// Build an image from a Dockerfile
    Build(crate::commands::build::BuildArgs),
    /// Create a new image from a container's changes
    Commit(crate::commands::commit::CommitArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(crate::commands::commit::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(crate::commands::commit::ExportArgs),
    /// Manage builds
    #[command(subcommand)]
    Builder(BuilderCommand),
    /// Define and run multi-container applications (runs a compose provider against berthd)
    Compose(crate::commands::compose::ComposeArgs),
}

/// `berth image …`.
#[derive(Debug, Subcommand)]
#[command(defer = true)] // args are built only for the subcommand in use (start-up time)
pub enum ImageCommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Display detailed information on one or more images
    Inspect(ImageInspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Save one or more images to a tar archive
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Build an image from a Dockerfile
    Build(crate::commands::build::BuildArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
}

/// `berth container …`.
#[derive(Debug, Subcommand)]
#[command(defer = true)] // args are built only for the subcommand in use (start-up time)
pub enum ContainerCommand {
    /// Attach local standard input, output, and error streams to a running container
    Attach(crate::commands::attach::AttachArgs),
    /// Execute a command in a running container
    Exec(crate::commands::exec::ExecArgs),
    /// Create and run a new container from an image
    Run(crate::commands::containers::RunArgs),
    /// Create a new container
    Create(crate::commands::containers::CreateCmdArgs),
    /// Start one or more stopped containers
    Start(crate::commands::containers::StartArgs),
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(crate::commands::containers::PsArgs),
    /// Fetch the logs of a container
    Logs(crate::commands::containers::LogsArgs),
    /// Stop one or more running containers
    Stop(crate::commands::containers::StopArgs),
    /// Kill one or more running containers
    Kill(crate::commands::containers::KillArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(crate::commands::containers::RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(crate::commands::containers::WaitArgs),
    /// Display detailed information on one or more containers
    Inspect(crate::commands::containers::ContainerInspectArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(crate::commands::cp::CpArgs),
    /// Create a new image from a container's changes
    Commit(crate::commands::commit::CommitArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(crate::commands::commit::DiffArgs),
    /// Export a container's filesystem as a tar archive
    Export(crate::commands::commit::ExportArgs),
    /// restart, pause, unpause, rename, top, stats, update
    #[command(flatten)]
    Lifecycle(crate::commands::lifecycle::LifecycleCommand),
    /// prune
    #[command(flatten)]
    Extra(crate::commands::lifecycle::ContainerExtra),
}

/// `berth builder …`.
#[derive(Debug, Subcommand)]
#[command(defer = true)] // args are built only for the subcommand in use (start-up time)
#[allow(clippy::large_enum_variant)] // parsed once per process
pub enum BuilderCommand {
    /// Remove build cache
    Prune(crate::commands::build::BuilderPruneArgs),
    /// Build an image from a Dockerfile
    Build(crate::commands::build::BuildArgs),
}

/// `berth system …`.
#[derive(Debug, Subcommand)]
#[command(defer = true)] // args are built only for the subcommand in use (start-up time)
pub enum SystemCommand {
    /// df, prune
    #[command(flatten)]
    Extra(crate::commands::lifecycle::SystemExtra),
    /// Display system-wide information
    Info(FormatOpt),
    /// Get real time events from the server
    Events(EventsArgs),
}

// `--format`.
#[derive(Debug, Args)]
pub struct FormatOpt {
    /// Format output using a Go template
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
}

// `images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Only show image IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Show digests
    #[arg(long = "digests")]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a Go template ("table", "json" or a template)
    #[arg(long = "format")]
    pub format: Option<String>,
    /// Repository (and optional tag) to list
    pub repository: Option<String>,
}

// `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
    /// Only inspect objects of this type (image)
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long = "size")]
    pub size: bool,
    /// Objects to inspect
    #[arg(required = true)]
    pub names: Vec<String>,
}

// `image inspect`.
#[derive(Debug, Args)]
pub struct ImageInspectArgs {
    /// Format output using a Go template
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
    /// Images to inspect
    #[arg(required = true)]
    pub names: Vec<String>,
}

// `history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Print sizes and dates in human readable format
    #[arg(long = "human", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "true", value_parser = clap::builder::BoolishValueParser::new())]
    pub human: bool,
    /// Format output using a Go template
    #[arg(long = "format")]
    pub format: Option<String>,
    /// The image
    pub image: String,
}

// `tag`.
#[derive(Debug, Args)]
pub struct TagArgs {
    /// SOURCE_IMAGE[:TAG]
    pub source: String,
    /// TARGET_IMAGE[:TAG]
    pub target: String,
}

// `rmi`.
#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    /// Images to remove
    #[arg(required = true)]
    pub images: Vec<String>,
}

// `image prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Provide filter values
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

// `pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Skip image verification (Docker's default; accepted for its scripts)
    #[arg(long = "disable-content-trust", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", hide = true)]
    pub disable_content_trust: Option<bool>,
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// NAME[:TAG|@DIGEST]
    pub name: String,
}

// `push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Skip image verification (Docker's default; accepted for its scripts)
    #[arg(long = "disable-content-trust", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL", hide = true)]
    pub disable_content_trust: Option<bool>,
    /// Push all tags of the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// NAME[:TAG]
    pub name: String,
}

// `save`.
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long = "output")]
    pub output: Option<PathBuf>,
    /// Images to save
    #[arg(required = true)]
    pub images: Vec<String>,
}

// `load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long = "input")]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
}

// `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long = "message")]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long = "platform")]
    pub platform: Option<String>,
    /// file|URL|-
    pub source: String,
    /// REPOSITORY[:TAG]
    pub repository: Option<String>,
}

// `login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long = "username")]
    pub username: Option<String>,
    /// Password
    #[arg(short = 'p', long = "password")]
    pub password: Option<String>,
    /// Take the password from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// The registry (default Docker Hub)
    pub server: Option<String>,
}

// `logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (default Docker Hub)
    pub server: Option<String>,
}

// `search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Max number of search results
    #[arg(long = "limit", default_value_t = 25)]
    pub limit: usize,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Pretty-print search using a Go template
    #[arg(long = "format")]
    pub format: Option<String>,
    /// The term
    pub term: String,
}

// `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Show all events created since timestamp
    #[arg(long = "since")]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long = "until")]
    pub until: Option<String>,
    /// Format the output using the given Go template
    #[arg(long = "format")]
    pub format: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn docker_shaped_commands_parse() {
        let c = parse(&[
            "-H",
            "unix:///s",
            "images",
            "-aq",
            "--filter",
            "dangling=true",
            "--filter",
            "label=a",
        ]);
        assert_eq!(c.host.as_deref(), Some("unix:///s"));
        let Command::Images(a) = c.command else {
            panic!("images expected")
        };
        assert!(a.all && a.quiet);
        assert_eq!(a.filter, ["dangling=true", "label=a"]);
        let Command::Image(ImageCommand::Ls(_)) = parse(&["image", "list"]).command else {
            panic!("image list")
        };
        let Command::Image(ImageCommand::Rm(r)) = parse(&["image", "rm", "-f", "a", "b"]).command
        else {
            panic!("image rm")
        };
        assert!(r.force);
        assert_eq!(r.images, ["a", "b"]);
        let Command::Import(i) = parse(&[
            "import",
            "-c",
            "CMD [\"/x\"]",
            "--change",
            "ENV A=1",
            "-m",
            "m",
            "-",
            "r:1",
        ])
        .command
        else {
            panic!("import")
        };
        assert_eq!(i.change.len(), 2);
        assert_eq!(
            (i.source.as_str(), i.repository.as_deref()),
            ("-", Some("r:1"))
        );
        let Command::History(h) = parse(&["history", "--human=false", "busybox"]).command else {
            panic!("history")
        };
        assert!(!h.human);
        assert!(Cli::try_parse_from(["berth", "rmi"]).is_err());
    }
}
