//! `fasp`: decode FASPMGR streams, render transfer specs into ascp command lines, ask a node
//! API for transfer specs and run transfers. The command-line contract is documented in
//! `docs/cli.md`; this library is how the `fasp` binary is built, and how the unpublished
//! `fasp-lab` binary (the offline demo and node API stand-in) adds its subcommands to the same
//! command line. Its Rust API is not a stable interface: the command line is.

pub mod completions;
pub mod decode;
#[cfg(feature = "jobs")]
pub mod jobs;
pub mod logging;
pub mod manpage;
pub mod node;
pub mod options;
pub mod render;
#[cfg(feature = "jobs")]
pub mod serve;
pub mod transfer;
pub mod updown;

mod terminal;

pub use terminal::escape;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use logging::{GlobalArgs, LogGuard, init_logging};
pub use transfer::{event_json, runtime};

pub(crate) use logging::quiet;

/// The `fasp` command line.
#[derive(Parser)]
#[command(name = "fasp", version, about = "Drive IBM Aspera ascp transfers")]
pub struct Cli {
    /// `-v`, `-q`, `--log-dir`: accepted before or after the subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of `fasp`.
#[derive(Subcommand)]
pub enum Command {
    /// Decode a raw FASPMGR byte stream into one JSON object per frame.
    Decode(decode::Args),
    /// Print the ascp invocation (program, argv, env, file lists) for a transfer spec.
    Render(render::Args),
    /// Run a transfer spec: progress bar, or JSON events and control lines with --json.
    Transfer(transfer::Args),
    /// Ask a node API for a transfer spec (upload_setup, download_setup) and print it.
    Node(node::Args),
    /// Upload: node API upload_setup, then the transfer (SOURCE... REMOTE_FOLDER).
    Upload(updown::Args),
    /// Download: node API download_setup, then the transfer (SOURCE... LOCAL_FOLDER).
    Download(updown::Args),
    /// Run the job daemon: the gRPC API (docs/serve.md) and a worker, over a job store.
    #[cfg(feature = "jobs")]
    Serve(serve::ServeArgs),
    /// Run a job worker without the API (more machines on one PostgreSQL job store).
    #[cfg(feature = "jobs")]
    Worker(serve::WorkerArgs),
    /// The client of `fasp serve`: add, list, show, watch, pause, resume, cancel, rate jobs.
    #[cfg(feature = "jobs")]
    Jobs(jobs::Args),
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::Args),
    /// Write the man pages (fasp.1 and one per subcommand) into a folder.
    #[command(hide = true)]
    Manpage(manpage::Args),
}

/// Runs one subcommand to its end; the exit status follows docs/cli.md.
pub fn run(command: Command) -> ExitCode {
    match command {
        Command::Decode(args) => decode::run(args),
        Command::Render(args) => render::run(args),
        Command::Transfer(args) => transfer::run(args),
        Command::Node(args) => node::run(args),
        Command::Upload(args) => updown::run(args, true),
        Command::Download(args) => updown::run(args, false),
        #[cfg(feature = "jobs")]
        Command::Serve(args) => serve::run_serve(args),
        #[cfg(feature = "jobs")]
        Command::Worker(args) => serve::run_worker(args),
        #[cfg(feature = "jobs")]
        Command::Jobs(args) => jobs::run(args),
        Command::Completions(args) => completions::run(args, Cli::command()),
        Command::Manpage(args) => manpage::run(args, Cli::command()),
    }
}

/// The `fasp` binary: parse the command line, set up logging (see [`init_logging`]) and run
/// the subcommand.
pub fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let _log = match init_logging(&cli.global) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("fasp: {e}");
            return ExitCode::from(2);
        }
    };
    // The subcommand's name only: its arguments may hold a password.
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        command = matches.subcommand_name().unwrap_or_default(),
        "fasp started"
    );
    run(cli.command)
}
