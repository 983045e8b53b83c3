//! Upload a folder with a progress line, with fasp-manager and tokio as the only dependencies.
//!
//! ```text
//! FASP_HOST=ats.example.com FASP_USER=xfer FASP_TOKEN=... \
//!     cargo run -p fasp-manager --example upload_folder -- FOLDER /remote/folder
//! ```
//!
//! Offline, with the project's emulator: `cargo build -p fasp-sim`, then
//! `FASP_ASCP=target/debug/ascp-sim ASCP_SIM_ROOT=/tmp/remote` before the same command.

use fasp_manager::{Manager, TransferOptions, TransferSpec};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (folder, dest) = args.next().zip(args.next()).ok_or("usage: FOLDER DEST")?;
    let env = |name, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let spec = TransferSpec::builder()
        .upload()
        .host(env("FASP_HOST", "127.0.0.1"))
        .user(env("FASP_USER", "xfer"))
        .token(env("FASP_TOKEN", ""))
        .source(folder)
        .destination_root(dest)
        .create_dir(true)
        .build()?;
    // ascp gets a minimal environment: pass the emulator's settings on when they are set.
    let options = TransferOptions::default().with_inherited_env("ASCP_SIM_*");
    let manager = Manager::new(); // Its transfers end with it: keep it until the end.
    let transfer = manager.start(&spec, options)?;
    let mut progress = transfer.progress();
    let line = tokio::spawn(async move {
        while progress.changed().await.is_ok() {
            let p = progress.borrow_and_update().clone();
            let total = p.bytes_expected.map_or("?".into(), |b| b.to_string());
            eprint!(
                "\r{} / {total} bytes, {} files done",
                p.bytes_done, p.files_done
            );
        }
    });
    let summary = transfer.wait().await?;
    line.await?;
    eprintln!(
        "\nuploaded {} bytes in {} files",
        summary.bytes, summary.files_done
    );
    Ok(())
}
