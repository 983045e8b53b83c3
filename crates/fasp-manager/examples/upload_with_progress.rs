//! Upload files with ascp and print the progress as it goes.
//!
//! ```text
//! upload_with_progress [--ascp PATH] [FILE...]
//! ```
//!
//! The ascp binary is `--ascp PATH`, else `$FASP_ASCP`, else `ascp` on `PATH` or in the usual
//! install folders ([`fasp_manager::find_ascp`]). With no `FILE`, a 64 MB sample file is made
//! in a temporary folder and uploaded.
//!
//! The server comes from the environment: `FASP_HOST` (default `127.0.0.1`), `FASP_USER`
//! (default `xfer`), `FASP_SSH_PORT` (default 33001), `FASP_TOKEN` (optional, passed to ascp
//! in `ASPERA_SCP_TOKEN`, never on the command line), `FASP_DEST` (default `/inbox`),
//! `FASP_RATE_KBPS` (default 100000).
//!
//! It needs a transfer engine: a real ascp and a transfer server, or, offline, the project's
//! emulator `ascp-sim` with `ASCP_SIM_ROOT` naming a folder that plays the remote host:
//!
//! ```text
//! cargo build -p fasp-sim
//! mkdir -p /tmp/remote
//! ASCP_SIM_ROOT=/tmp/remote cargo run -p fasp-manager --example upload_with_progress -- \
//!     --ascp target/debug/ascp-sim
//! ```
//!
//! ascp gets a minimal environment; this example passes `ASCP_SIM_*` on, so `ASCP_SIM_ROOT`
//! reaches ascp-sim.

use std::path::PathBuf;
use std::time::Duration;

use fasp_manager::{Event, EventKind, Manager, TransferOptions, TransferState};
use fasp_spec::TransferSpec;
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (ascp, mut files) = parse_args()?;
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());

    // No file given: make a sample one (removed at the end with its folder).
    let sample_dir = tempfile::tempdir()?;
    if files.is_empty() {
        let path = sample_dir.path().join("sample.bin");
        let data: Vec<u8> = (0..64u32 << 20).map(|i| (i ^ (i >> 9)) as u8).collect();
        std::fs::write(&path, data)?;
        files.push(path);
    }

    let mut builder = TransferSpec::builder()
        .upload()
        .host(env("FASP_HOST", "127.0.0.1"))
        .user(env("FASP_USER", "xfer"))
        .ssh_port(env("FASP_SSH_PORT", "33001").parse()?)
        .target_rate_kbps(env("FASP_RATE_KBPS", "100000").parse()?)
        .create_dir(true)
        .destination_root(env("FASP_DEST", "/inbox"));
    if let Ok(token) = std::env::var("FASP_TOKEN") {
        builder = builder.token(token);
    }
    for file in &files {
        builder = builder.source(file.to_string_lossy());
    }
    let spec = builder.build()?;

    let manager = match ascp {
        Some(path) => Manager::with_ascp(path),
        None => Manager::new(),
    };
    let mut transfer = manager.start(
        &spec,
        TransferOptions::default().with_inherited_env("ASCP_SIM_*"),
    )?;

    // Events: print the milestones (every event also carries its raw frame, if any).
    let mut events = transfer.events();
    let printer = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            milestone(&event);
        }
    });

    // Progress: a `watch` channel; print a line whenever the snapshot changes, at most every
    // 250 ms.
    let mut progress = transfer.progress();
    let ticker = tokio::spawn(async move {
        while progress.changed().await.is_ok() {
            let p = progress.borrow_and_update().clone();
            let total = p.bytes_expected.map_or("?".into(), |b| b.to_string());
            let eta = p.eta.map_or("-".into(), |d| format!("{}s", d.as_secs()));
            println!(
                "{:?}: {} / {} bytes, {} files done, {:.1} Mbit/s, ETA {eta}, file {}",
                p.state,
                p.bytes_done,
                total,
                p.files_done,
                p.throughput_bps * 8.0 / 1e6,
                p.current_file.as_deref().unwrap_or("-"),
            );
            if matches!(
                p.state,
                TransferState::Done | TransferState::Failed | TransferState::Cancelled
            ) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });

    let outcome = transfer.wait().await;
    let _ = printer.await;
    ticker.abort();
    match outcome {
        Ok(summary) => {
            println!(
                "done: {} bytes, {} files, {} skipped, {} attempt(s), {:.1?}",
                summary.bytes,
                summary.files_done,
                summary.files_skipped,
                summary.attempts,
                summary.elapsed
            );
            Ok(())
        }
        Err(e) => {
            // The FASP code, its meaning, whether a retry could help, ascp's stderr tail.
            eprintln!("transfer failed: {e}");
            std::process::exit(1);
        }
    }
}

fn milestone(event: &Event) {
    match &event.kind {
        EventKind::Spawned { pid } => println!("ascp started, pid {pid}"),
        EventKind::SessionStarted(s) => println!(
            "session {} with {}@{}, target {:?} Kbps",
            event.session_id.as_deref().unwrap_or("?"),
            s.user.as_deref().unwrap_or("?"),
            s.host.as_deref().unwrap_or("?"),
            s.rates.target_kbps,
        ),
        EventKind::FileDone(f) => println!("file done: {} ({} bytes)", f.file, f.written),
        EventKind::FileFailed {
            file, description, ..
        } => println!("file failed: {}: {description}", file.file),
        EventKind::SessionFailed {
            code, description, ..
        } => println!("session failed: code {code}: {description}"),
        EventKind::Retrying {
            next_attempt,
            after,
            reason,
        } => println!("retrying (attempt {next_attempt}) in {after:?}: {reason}"),
        _ => {}
    }
}

/// `[--ascp PATH] [FILE...]`.
fn parse_args() -> Result<(Option<PathBuf>, Vec<PathBuf>), String> {
    let mut ascp = None;
    let mut files = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--ascp" {
            ascp = Some(PathBuf::from(args.next().ok_or("--ascp needs a path")?));
        } else if arg == "-h" || arg == "--help" {
            return Err("usage: upload_with_progress [--ascp PATH] [FILE...]".into());
        } else {
            files.push(PathBuf::from(arg));
        }
    }
    Ok((ascp, files))
}
