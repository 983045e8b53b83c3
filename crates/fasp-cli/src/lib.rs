//! `fasp`: decode FASPMGR streams, render transfer specs into ascp command lines, ask a node
//! API for transfer specs and run transfers. The command-line contract is documented in
//! `docs/cli.md`; this library is how the `fasp` binary is built, and how the unpublished
//! `fasp-lab` binary (the offline demo and node API stand-in) adds its subcommands to the same
//! command line. Its Rust API is not a stable interface: the command line is.

pub mod decode;
pub mod node;
pub mod render;
pub mod transfer;
pub mod updown;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use transfer::{event_json, runtime};

/// The `fasp` command line.
#[derive(Parser)]
#[command(name = "fasp", version, about = "Drive IBM Aspera ascp transfers")]
pub struct Cli {
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
    }
}

/// The `fasp` binary: parse the command line and run it.
pub fn main() -> ExitCode {
    run(Cli::parse().command)
}
