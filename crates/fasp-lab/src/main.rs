//! `fasp-lab`: the `fasp` command plus an offline lab, for trying fasp-rs without a server or
//! a real ascp. Not published: it embeds test doubles (the node API stand-in and `ascp-sim`,
//! the project's ascp emulator) that the published `fasp` binary leaves out.
//!
//! - `fasp-lab demo`: the whole stack offline (upload with progress, rate change, pause and
//!   resume, download back, every byte verified).
//! - `fasp-lab node-standin --port N`: the node API stand-in as a server, with documented
//!   credentials, so `fasp node`, `fasp upload` and `fasp download` can be tried offline.
//! - every `fasp` subcommand, unchanged.
//!
//! Started under the name `ascp-sim` (the demo links it so), this binary is the emulator.

mod demo;
mod standin;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fasp-lab",
    version,
    about = "fasp plus an offline lab: the demo and a node API stand-in (not published)"
)]
struct Cli {
    #[command(flatten)]
    global: fasp_cli::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

// Parsed once per run: the size of the biggest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// The whole stack offline: node API stand-in + ascp-sim (an ascp emulator), upload with
    /// progress, rate change, pause/resume, download back, verify every byte.
    Demo(demo::Args),
    /// Serve the node API stand-in on a port (documented credentials; Ctrl-C stops it).
    NodeStandin(standin::Args),
    #[command(flatten)]
    Fasp(fasp_cli::Command),
}

fn main() -> ExitCode {
    // Started as `ascp-sim` (the demo links this binary under that name): be the emulator.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == demo::SIM_NAME)
    {
        let args = std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        return ExitCode::from(u8::try_from(fasp_sim::main_with_args(args)).unwrap_or(1));
    }
    let cli = Cli::parse();
    let _log = match fasp_cli::init_logging(&cli.global) {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("fasp-lab: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::NodeStandin(args) => standin::run(args),
        // Completions and man pages of this command, not of `fasp`.
        Command::Fasp(fasp_cli::Command::Completions(args)) => {
            fasp_cli::completions::run(args, Cli::command())
        }
        Command::Fasp(fasp_cli::Command::Manpage(args)) => {
            fasp_cli::manpage::run(args, Cli::command())
        }
        Command::Fasp(command) => fasp_cli::run(command),
    }
}
