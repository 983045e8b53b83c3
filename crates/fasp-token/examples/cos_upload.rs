//! Upload files to an IBM Cloud Object Storage bucket through its Aspera transfer service.
//!
//! ```text
//! cos_upload [--print-only] [--ascp PATH] FILE...
//! ```
//!
//! The four calls of the COS flow are made by [`CosClient`]: an IAM token for the API key,
//! the bucket's `?faspConnectionInfo`, a delegated refresh token for ATS, then `upload_setup`
//! on the ATS node API. The answer is completed with the local files ([`prepare_upload`]) and
//! handed to `fasp-manager`, which runs ascp and reports progress. `--print-only` stops after
//! rendering and prints the ascp command line instead (the token goes in the environment, and
//! is not printed).
//!
//! Configuration, from the environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `IBMCLOUD_API_KEY` | the API key (required) |
//! | `COS_ENDPOINT` | the bucket's endpoint, e.g. `https://s3.us-south.cloud-object-storage.appdomain.cloud` (required) |
//! | `COS_BUCKET` | the bucket (required) |
//! | `COS_DEST` | the folder in the bucket (default `/`) |
//! | `COS_SERVICE_INSTANCE_ID` | sent as `ibm-service-instance-id`, when set |
//! | `COS_IAM_URL`, `COS_ATS_ENDPOINT` | other IAM or ATS URLs (local stand-ins, for tests) |
//! | `FASP_ASCP` | the ascp binary, unless `--ascp` is given |
//!
//! This needs the network, an IBM Cloud account and a real ascp (with a licence that allows
//! transfers): it is an example to read and adapt, not something CI runs.

use std::path::PathBuf;
use std::process::ExitCode;

use fasp_manager::{Manager, TransferOptions};
use fasp_spec::RenderOptions;
use fasp_token::{CosClient, CosConfig, TransferRequest, prepare_upload};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cos_upload: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut print_only = false;
    let mut ascp: Option<PathBuf> = None;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--print-only" => print_only = true,
            "--ascp" => ascp = Some(args.next().ok_or("--ascp needs a path")?.into()),
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        return Err("usage: cos_upload [--print-only] [--ascp PATH] FILE...".into());
    }
    let required = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));

    let mut config = CosConfig::new(
        required("IBMCLOUD_API_KEY")?,
        required("COS_ENDPOINT")?,
        required("COS_BUCKET")?,
    );
    if let Ok(id) = std::env::var("COS_SERVICE_INSTANCE_ID") {
        config = config.with_service_instance_id(id);
    }
    if let Ok(url) = std::env::var("COS_IAM_URL") {
        config = config.with_iam_url(url);
    }
    if let Ok(url) = std::env::var("COS_ATS_ENDPOINT") {
        config = config.with_ats_endpoint(url);
    }
    let dest = std::env::var("COS_DEST").unwrap_or_else(|_| "/".into());

    // IAM token, faspConnectionInfo, delegated token, upload_setup: one call here. One
    // request gives one result, which may be a refusal by the node.
    let cos = CosClient::new(config)?;
    let answer = cos
        .upload_setup(&[TransferRequest::upload_to([dest.as_str()])])
        .await?
        .into_iter()
        .next()
        .ok_or("the node answered no transfer spec")??;
    println!(
        "transfer spec from the node: {}@{} (SSH port {:?}, HTTP fallback {:?})",
        answer.remote_user.as_deref().unwrap_or("?"),
        answer.remote_host.as_deref().unwrap_or("?"),
        answer.ssh_port,
        answer.http_fallback,
    );

    // The node's spec names the destination only: add the local sources.
    let spec = prepare_upload(answer, files)?;

    if print_only {
        let command = spec.render(&RenderOptions::new())?;
        println!("{}", command.program.display());
        for arg in &command.args {
            println!("  {}", arg.to_string_lossy());
        }
        for name in command.env.keys() {
            println!("  env {name}=<redacted>");
        }
        command.cleanup()?;
        return Ok(());
    }

    let manager = match ascp {
        Some(path) => Manager::with_ascp(path),
        None => Manager::new(),
    };
    let transfer = manager.start(&spec, TransferOptions::default())?;
    let mut progress = transfer.progress();
    let ticker = tokio::spawn(async move {
        while progress.changed().await.is_ok() {
            let p = progress.borrow_and_update().clone();
            println!(
                "{:?}: {} bytes, {} files done, {:.1} Mbit/s",
                p.state,
                p.bytes_done,
                p.files_done,
                p.throughput_bps * 8.0 / 1e6
            );
        }
    });
    let summary = transfer.wait().await;
    ticker.abort();
    let summary = summary?;
    println!(
        "uploaded {} bytes, {} files in {:.1?}",
        summary.bytes, summary.files_done, summary.elapsed
    );
    Ok(())
}
