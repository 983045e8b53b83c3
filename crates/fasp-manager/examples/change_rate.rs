//! Change the target rate of a running transfer, pause it and resume it, and watch ascp
//! acknowledge each change.
//!
//! ```text
//! change_rate [--ascp PATH] [FILE...]
//! ```
//!
//! The upload starts at 50 Mbit/s; after 2 s the target goes to 200 Mbit/s (a `RATE` frame
//! on the management connection, acknowledged by ascp with a `NOTIFICATION` that arrives here
//! as [`EventKind::RateChanged`]); 1 s later the transfer is paused for 1 s (rates to 0) and
//! resumed (back to the rates ascp last reported). The throughput is printed with each progress update.
//!
//! The ascp binary is `--ascp PATH`, else `$FASP_ASCP`, else `ascp` on `PATH` or in the usual
//! install folders. With no `FILE`, a 64 MB sample file is made in a temporary folder. The
//! server comes from `FASP_HOST` (default `127.0.0.1`), `FASP_USER` (default `xfer`),
//! `FASP_SSH_PORT` (default 33001), `FASP_TOKEN` (optional) and `FASP_DEST` (default `/inbox`).
//!
//! Run it against a real ascp and transfer server (whose rate caps and locks apply: a locked
//! rate is refused, a cap is enforced), or offline against the project's emulator with
//! `ASCP_SIM_ROOT` naming a folder that plays the remote host:
//!
//! ```text
//! cargo build -p fasp-sim
//! mkdir -p /tmp/remote
//! ASCP_SIM_ROOT=/tmp/remote cargo run -p fasp-manager --example change_rate -- \
//!     --ascp target/debug/ascp-sim
//! ```

use std::path::PathBuf;
use std::time::Duration;

use fasp_manager::{EventKind, Manager, TransferOptions};
use fasp_spec::TransferSpec;
use futures::StreamExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (ascp, mut files) = parse_args()?;
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());

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
        .target_rate_kbps(50_000)
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
    let mut transfer = manager.start(&spec, TransferOptions::default())?;

    // What ascp says about rates, and the controls we sent.
    let mut events = transfer.events();
    let printer = tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match &event.kind {
                EventKind::SessionStarted(s) => println!(
                    "session started: target {:?} Kbps, min {:?} Kbps, {:?}; rate locked: {:?}, cap {:?} Kbps",
                    s.rates.target_kbps,
                    s.rates.min_kbps,
                    s.rates.policy,
                    s.rate_lock,
                    s.rate_cap_kbps,
                ),
                EventKind::ControlSent(what) => println!("sent {}", what.type_name()),
                EventKind::RateChanged(r) => println!(
                    "ascp now runs at target {:?} Kbps, min {:?} Kbps",
                    r.target_kbps, r.min_kbps
                ),
                EventKind::SessionDone(_) => println!("session done"),
                EventKind::SessionFailed {
                    code, description, ..
                } => println!("session failed: code {code}: {description}"),
                _ => {}
            }
        }
    });

    // Throughput from the progress snapshots, each time one changes (ascp reports once a
    // second while data moves).
    let mut progress = transfer.progress();
    let ticker = tokio::spawn(async move {
        while progress.changed().await.is_ok() {
            let p = progress.borrow_and_update().clone();
            println!(
                "  {:>5.1}s {:?}: {} bytes, {:.1} Mbit/s, target {:?} Kbps",
                p.elapsed.as_secs_f64(),
                p.state,
                p.bytes_done,
                p.throughput_bps * 8.0 / 1e6,
                p.target_rate_kbps,
            );
        }
    });

    // A controller can be moved to another task; here we steer from this one. Each call fails
    // only when the transfer has already ended, which a small file may well have.
    let steer = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!("-> target rate 200000 Kbps");
        transfer.control().set_rate(200_000, 0).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!("-> pause");
        transfer.control().pause().await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!("-> resume");
        transfer.control().resume().await?;
        Ok::<(), fasp_manager::ControlError>(())
    };
    if let Err(e) = steer.await {
        println!("could not steer: {e}");
    }

    let outcome = transfer.wait().await;
    let _ = printer.await;
    ticker.abort();
    match outcome {
        Ok(summary) => {
            println!("done: {} bytes in {:.1?}", summary.bytes, summary.elapsed);
            Ok(())
        }
        Err(e) => {
            eprintln!("transfer failed: {e}");
            std::process::exit(1);
        }
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
            return Err("usage: change_rate [--ascp PATH] [FILE...]".into());
        } else {
            files.push(PathBuf::from(arg));
        }
    }
    Ok((ascp, files))
}
