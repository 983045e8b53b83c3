//! `fasp`: decode FASPMGR streams, render transfer specs into ascp command lines, and run
//! transfers. The command-line contract is documented in `docs/cli.md`.

mod decode;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode(args) => decode::run(args),
        Command::Render(args) => render::run(args),
        Command::Transfer(args) => transfer::run(args),
        Command::Node(args) => node::run(args),
        Command::Upload(args) => updown::run(args, true),
        Command::Download(args) => updown::run(args, false),
    }
}
