//! `fasp upload [node] [options] SOURCE... REMOTE_FOLDER` and
//! `fasp download [node] [options] SOURCE... LOCAL_FOLDER`: ask the node API for a transfer
//! spec (upload_setup / download_setup), then run it like `fasp transfer`.
//!
//! The destination is a folder, as users mean it: created when missing (`create_dir`, which
//! IBM's own samples set for this), and each source, file or folder, lands inside it under its
//! own name. `--rename` asks for the other meaning explicitly: one source, and the destination
//! is its new name. The node's answer gives the connection (host, ports, user, token,
//! fallback); keys that act on this machine never come from it. Its token goes to ascp through
//! the environment, never the command line.

use std::process::ExitCode;

use fasp_token::{TransferRequest, prepare_download, prepare_upload};

use crate::node::NodeArgs;
use crate::options::Destination;
use crate::transfer::Early;

/// Arguments of `fasp upload` and `fasp download`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    run: crate::transfer::RunArgs,
    /// The destination is the new name of the one SOURCE, not a folder to put it in.
    #[arg(long)]
    rename: bool,
    /// SOURCE... DESTINATION: one or more sources, then the destination folder (upload: on
    /// the node; download: here).
    #[arg(required = true, num_args = 2.., value_name = "PATH")]
    paths: Vec<String>,
}

pub(crate) fn run(args: Args, upload: bool) -> ExitCode {
    let name = if upload { "upload" } else { "download" };
    let mut warnings = Vec::new();
    let fail = |exit: u8, message: String, warnings: &[String]| {
        // Warnings said so far go first (a transfer that runs shows them in its output).
        for warning in warnings {
            eprintln!("fasp {name}: warning: {warning}");
        }
        args.run.fail_early(name, Early { exit, message })
    };
    let Some((destination, sources)) = args.paths.split_last() else {
        return fail(2, "give at least one source and a destination".into(), &[]);
    };
    if args.rename && sources.len() != 1 {
        return fail(
            2,
            format!(
                "--rename takes exactly one source ({} given): the destination is its new name",
                sources.len()
            ),
            &[],
        );
    }
    let client = match args.node.client() {
        Ok((client, said)) => {
            warnings.extend(said);
            client
        }
        Err((exit, message)) => return fail(exit, message, &warnings),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, format!("cannot start the async runtime: {e}"), &warnings),
    };
    let answer = runtime.block_on(async {
        if upload {
            client
                .upload_setup_one_detailed(&TransferRequest::upload_to([destination.clone()]))
                .await
        } else {
            client
                .download_setup_one_detailed(&TransferRequest::download_from(
                    sources.iter().cloned(),
                ))
                .await
        }
    });
    drop(runtime);
    let answer = match answer {
        Ok(answer) => {
            warnings.extend(crate::node::dropped_warning(&answer.dropped_keys));
            answer.spec
        }
        Err(e) => {
            return fail(
                1,
                format!("node setup failed: {}", crate::escape(&e.to_string())),
                &warnings,
            );
        }
    };
    let spec = if upload {
        prepare_upload(answer, sources.iter().cloned())
    } else {
        prepare_download(answer, destination.clone())
    };
    let spec = match spec {
        Ok(spec) => spec,
        Err(e) => {
            return fail(
                1,
                format!(
                    "the node's transfer spec cannot be used: {}",
                    crate::escape(&e.to_string())
                ),
                &warnings,
            );
        }
    };
    let destination = if args.rename {
        Destination::Rename
    } else {
        Destination::Folder
    };
    args.run.run(name, &spec, destination, true, warnings)
}
