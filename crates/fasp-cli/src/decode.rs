//! `fasp decode` (placeholder).
use std::process::ExitCode;
/// Arguments of `fasp decode`.
#[derive(clap::Args)]
pub(crate) struct Args {}
pub(crate) fn run(_args: Args) -> ExitCode {
    ExitCode::from(2)
}
