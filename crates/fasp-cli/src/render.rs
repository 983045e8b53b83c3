//! `fasp render` (placeholder: being written).

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `fasp render`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// The transfer spec (JSON file).
    #[arg(long)]
    spec: PathBuf,
    /// Folder for the file lists the command needs.
    #[arg(long)]
    workdir: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let _ = (args.spec, args.workdir);
    eprintln!("fasp render: not yet written");
    ExitCode::from(2)
}
