//! `fasp`: decode FASPMGR streams, render transfer specs into ascp command lines, and run
//! transfers. The command-line contract is documented in `docs/cli.md`.

mod decode;
mod demo;
mod node;
mod render;
mod transfer;
mod updown;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "fasp", version, about = "Drive IBM Aspera ascp transfers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Decode a raw FASPMGR byte stream into one JSON object per frame.
    Decode(decode::Args),
    /// Print the ascp invocation (program, argv, env, file lists) for a transfer spec.
    Render(render::Args),
    /// Run a transfer spec: progress bar, or JSON events and control lines with --json.
    Transfer(transfer::Args),
    /// Ask a node API for a transfer spec (upload_setup, download_setup) and print it.
    Node(node::Args),
    /// Upload: node API upload_setup, then the transfer (SOURCE... DESTINATION).
    Upload(updown::Args),
    /// Download: node API download_setup, then the transfer (SOURCE... DESTINATION).
    Download(updown::Args),
    /// The whole stack offline: node API stand-in + ascp-sim (an ascp emulator), upload with
    /// progress, rate change, pause/resume, download back, verify every byte.
    Demo(demo::Args),
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
    match cli.command {
        Command::Decode(args) => decode::run(args),
        Command::Render(args) => render::run(args),
        Command::Transfer(args) => transfer::run(args),
        Command::Node(args) => node::run(args),
        Command::Upload(args) => updown::run(args, true),
        Command::Download(args) => updown::run(args, false),
        Command::Demo(args) => demo::run(args),
    }
}
