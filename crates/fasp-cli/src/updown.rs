//! `fasp upload --url URL [auth] [--ascp PATH] [--json] SOURCE... DESTINATION` and
//! `fasp download --url URL [auth] [--ascp PATH] [--json] SOURCE... DESTINATION`: ask the node
//! API for a transfer spec (upload_setup / download_setup), then run it like `fasp transfer`.
//!
//! Upload: the sources are local, the destination is a folder on the node. Download: the
//! sources are on the node, the destination is a local folder. The node's answer (host, ports,
//! user, token, fallback) is the only source of connection parameters; its token goes to ascp
//! through the environment, never the command line.

use std::process::ExitCode;

use fasp_token::{TransferRequest, prepare_download, prepare_upload};

use crate::node::NodeArgs;

/// Arguments of `fasp upload` and `fasp download`.
#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    node: NodeArgs,
    #[command(flatten)]
    run: crate::transfer::RunArgs,
    /// SOURCE... DESTINATION: one or more sources, then the destination folder.
    #[arg(required = true, num_args = 2.., value_name = "PATH")]
    paths: Vec<String>,
}

pub(crate) fn run(args: Args, upload: bool) -> ExitCode {
    let name = if upload { "upload" } else { "download" };
    let fail = |code: u8, message: &dyn std::fmt::Display| {
        eprintln!("fasp {name}: {message}");
        ExitCode::from(code)
    };
    let Some((destination, sources)) = args.paths.split_last() else {
        return fail(2, &"give at least one source and a destination");
    };
    let client = match args.node.client() {
        Ok(client) => client,
        Err((code, message)) => return fail(code, &message),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    let answer = runtime.block_on(async {
        if upload {
            client
                .upload_setup_one(&TransferRequest::upload_to([destination.clone()]))
                .await
        } else {
            client
                .download_setup_one(&TransferRequest::download_from(sources.iter().cloned()))
                .await
        }
    });
    drop(runtime);
    let answer = match answer {
        Ok(spec) => spec,
        Err(e) => return fail(1, &format!("node setup failed: {e}")),
    };
    let spec = if upload {
        prepare_upload(answer, sources.iter().cloned())
    } else {
        prepare_download(answer, destination.clone())
    };
    let spec = match spec {
        Ok(spec) => spec,
        Err(e) => return fail(1, &format!("the node's transfer spec cannot be used: {e}")),
    };
    args.run.run(&spec)
}
