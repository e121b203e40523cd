//! berth: a Docker-compatible CLI, a client of berthd's Engine API and nothing else.
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod connect;
mod format;
mod terminal;

use std::process::ExitCode;

use berth_api::client::ClientError;
use clap::Parser as _;

use crate::cli::{BuilderCommand, Cli, Command, ContainerCommand, ImageCommand, SystemCommand};

/// An error whose message was already printed; only the exit code is left.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit status {}", self.0)
    }
}

impl std::error::Error for Exit {}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let Some(text) = commands::lifecycle::group_help(&args) {
        print!("{text}");
        return ExitCode::SUCCESS;
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 125 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    // one thread: a CLI call is a few requests in a row; worker threads cost more to
    // start and to hand work between than they save (stdin is read on a thread of its own)
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(Exit(code)) = e.downcast_ref::<Exit>() {
                return ExitCode::from(*code);
            }
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return ExitCode::SUCCESS;
            }
            match e.downcast_ref::<ClientError>() {
                Some(ce @ ClientError::Daemon { .. }) => eprintln!("{ce}"),
                _ => eprintln!("{e:#}"),
            }
            ExitCode::from(1)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let tls = connect::TlsFlags {
        verify: cli.tlsverify,
        ca: cli.tlscacert.clone(),
        cert: cli.tlscert.clone(),
        key: cli.tlskey.clone(),
    };
    let target = connect::resolve(cli.host.as_deref(), &tls, |k| std::env::var_os(k))?;
    use commands::{containers, events, images, login, system, transfer};
    // Commands that need no daemon.
    match &cli.command {
        Command::Logout(a) => return login::logout(a),
        Command::Import(a)
            if a.source.starts_with("http://") || a.source.starts_with("https://") =>
        {
            anyhow::bail!(
                "importing from a URL ({}) is not supported: download the tarball and import the file (or pipe it to `berth import -`)",
                a.source
            );
        }
        Command::Compose(a) => return commands::compose::compose(&target, a).await,
        _ => {}
    }
    let client = connect::connect(&target).await?;
    let c = &client;
    match cli.command {
        Command::Version(a) => system::version(c, &a).await,
        Command::Info(a) | Command::System(SystemCommand::Info(a)) => system::info(c, &a).await,
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::list(c, &a).await,
        Command::Inspect(a) => {
            containers::inspect(c, &a.names, a.format.as_deref(), a.kind.as_deref(), a.size).await
        }
        Command::Attach(a) | Command::Container(ContainerCommand::Attach(a)) => {
            commands::attach::attach(c, &a).await
        }
        Command::Exec(a) | Command::Container(ContainerCommand::Exec(a)) => {
            commands::exec::exec(c, &a).await
        }
        Command::Run(a) | Command::Container(ContainerCommand::Run(a)) => {
            containers::run(c, &a).await
        }
        Command::Create(a) | Command::Container(ContainerCommand::Create(a)) => {
            containers::create(c, &a).await
        }
        Command::Start(a) | Command::Container(ContainerCommand::Start(a)) => {
            containers::start(c, &a).await
        }
        Command::Ps(a) | Command::Container(ContainerCommand::Ls(a)) => containers::ps(c, &a).await,
        Command::Logs(a) | Command::Container(ContainerCommand::Logs(a)) => {
            containers::logs(c, &a).await
        }
        Command::Stop(a) | Command::Container(ContainerCommand::Stop(a)) => {
            containers::stop(c, &a).await
        }
        Command::Kill(a) | Command::Container(ContainerCommand::Kill(a)) => {
            containers::kill(c, &a).await
        }
        Command::Rm(a) | Command::Container(ContainerCommand::Rm(a)) => containers::rm(c, &a).await,
        Command::Wait(a) | Command::Container(ContainerCommand::Wait(a)) => {
            containers::wait(c, &a).await
        }
        Command::Container(ContainerCommand::Inspect(a)) => {
            containers::inspect(c, &a.names, a.format.as_deref(), Some("container"), a.size).await
        }
        Command::Volume(v) => commands::volumes::run(c, &v).await,
        Command::Network(n) => commands::networks::run(c, &n).await,
        Command::Port(a) => commands::run_net::port(c, &a).await,
        Command::Cp(a) | Command::Container(ContainerCommand::Cp(a)) => {
            commands::cp::cp(c, &a).await
        }
        Command::Image(ImageCommand::Inspect(a)) => {
            images::inspect(c, &a.names, a.format.as_deref(), Some("image")).await
        }
        Command::History(a) | Command::Image(ImageCommand::History(a)) => {
            images::history(c, &a).await
        }
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => images::tag(c, &a).await,
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => images::remove(c, &a).await,
        Command::Image(ImageCommand::Prune(a)) => images::prune(c, &a).await,
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => transfer::pull(c, &a).await,
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => transfer::push(c, &a).await,
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => transfer::save(c, &a).await,
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => transfer::load(c, &a).await,
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => {
            transfer::import(c, &a).await
        }
        Command::Build(a)
        | Command::Image(ImageCommand::Build(a))
        | Command::Builder(BuilderCommand::Build(a)) => commands::build::build(c, &a).await,
        Command::Builder(BuilderCommand::Prune(a)) => commands::build::prune(c, &a).await,
        Command::Compose(_) => unreachable!("compose runs before connecting"),
        Command::Commit(a) | Command::Container(ContainerCommand::Commit(a)) => {
            commands::commit::commit(c, &a).await
        }
        Command::Diff(a) | Command::Container(ContainerCommand::Diff(a)) => {
            commands::commit::diff(c, &a).await
        }
        Command::Export(a) | Command::Container(ContainerCommand::Export(a)) => {
            commands::commit::export(c, &a).await
        }
        Command::Login(a) => login::login(c, &a).await,
        Command::Logout(a) => login::logout(&a),
        Command::Search(a) => login::search(c, &a).await,
        Command::Lifecycle(x) | Command::Container(ContainerCommand::Lifecycle(x)) => {
            commands::lifecycle::run(c, x).await
        }
        Command::Container(ContainerCommand::Extra(x)) => {
            commands::lifecycle::run_container(c, x).await
        }
        Command::System(SystemCommand::Extra(x)) => commands::lifecycle::run_system(c, x).await,
        Command::Events(a) | Command::System(SystemCommand::Events(a)) => {
            events::events(c, &a).await
        }
    }
}
