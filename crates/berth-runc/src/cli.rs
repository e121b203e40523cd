//! What was typed: clap structs only (parse first, resolve in main.rs).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "berth-runc", version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.1.0"), about = "A runc-compatible OCI runtime over berth-runtime")]
pub struct Cli {
    /// Directory for container state
    #[arg(long, global = true, default_value = "/run/berth-runc")]
    pub root: PathBuf,
    /// Log file (errors are also printed to stderr)
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: String,
    /// Verbose logging
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd for cgroups (not available: refused)
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Rootless mode: "auto", "true" or "false" (only false/auto are supported)
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// CRIU binary (checkpointing is not supported)
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Args, Clone)]
pub struct CreateArgs {
    /// Container id
    pub id: String,
    /// Path to the bundle (default: current directory)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the init's pid here
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Pass this many extra fds (3..3+N) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Use MS_MOVE + chroot instead of pivot_root
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Keep the caller's session keyring (default: a new `_ses.<id>` keyring)
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Notify socket (accepted for compatibility, unused)
    #[arg(long = "notify-socket", hide = true)]
    pub notify_socket: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Create a container (the init waits for `start`)
    Create(CreateArgs),
    /// Start a created container
    Start { id: String },
    /// Create and start a container; exits with the container's exit code
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Do not wait for the container
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits
        #[arg(long)]
        keep: bool,
    },
    /// Run a new process in a running container
    Exec {
        id: String,
        /// Command and arguments (unless --process is given)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
        /// process.json with the OCI process to run
        #[arg(short, long)]
        process: Option<PathBuf>,
        /// Allocate a pty
        #[arg(short, long)]
        tty: bool,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        /// Do not wait for the process
        #[arg(short, long)]
        detach: bool,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        /// Working directory inside the container
        #[arg(long)]
        cwd: Option<String>,
        /// KEY=VALUE (repeatable)
        #[arg(short, long)]
        env: Vec<String>,
        /// uid[:gid]
        #[arg(short, long)]
        user: Option<String>,
        /// Extra group ids (repeatable)
        #[arg(short = 'g', long = "additional-gids")]
        additional_gids: Vec<u32>,
        /// Add a capability (repeatable)
        #[arg(short, long)]
        cap: Vec<String>,
        #[arg(long = "no-new-privs")]
        no_new_privs: bool,
        #[arg(long = "preserve-fds", default_value_t = 0)]
        preserve_fds: u32,
        #[arg(long = "process-label", hide = true)]
        process_label: Option<String>,
        #[arg(long, hide = true)]
        apparmor: Option<String>,
    },
    /// Print a container's state as JSON
    State { id: String },
    /// Send a signal (name or number, default SIGTERM) to a container
    Kill {
        id: String,
        signal: Option<String>,
        /// Signal every process in the container
        #[arg(short, long)]
        all: bool,
    },
    /// Delete a container
    Delete {
        id: String,
        /// Kill it first if it is running
        #[arg(short, long)]
        force: bool,
    },
    /// List containers
    List {
        /// table or json
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Only ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Processes of a container
    Ps {
        id: String,
        /// table or json (json = list of pids)
        #[arg(short, long, default_value = "table")]
        format: String,
    },
    /// Freeze every process of a container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Change a container's resource limits
    Update {
        id: String,
        /// JSON file with linux.resources ("-" = stdin)
        #[arg(short, long)]
        resources: Option<PathBuf>,
        #[arg(long)]
        memory: Option<String>,
        #[arg(long = "memory-reservation")]
        memory_reservation: Option<String>,
        #[arg(long = "memory-swap")]
        memory_swap: Option<String>,
        #[arg(long = "pids-limit")]
        pids_limit: Option<i64>,
        #[arg(long = "cpu-shares")]
        cpu_shares: Option<u64>,
        #[arg(long = "cpu-quota")]
        cpu_quota: Option<i64>,
        #[arg(long = "cpu-period")]
        cpu_period: Option<u64>,
        #[arg(long = "cpuset-cpus")]
        cpuset_cpus: Option<String>,
        #[arg(long = "cpuset-mems")]
        cpuset_mems: Option<String>,
        #[arg(long = "blkio-weight")]
        blkio_weight: Option<u16>,
    },
    /// Write a default config.json
    Spec {
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
    },
    /// Print the runtime's features as JSON
    Features,
}
