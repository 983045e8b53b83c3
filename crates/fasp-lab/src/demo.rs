//! `fasp-lab demo [--json] [--size-mb N]`: the whole stack, offline, in under a minute.
//!
//! A node API stand-in runs in this process and `ascp-sim` (the project's ascp emulator, a
//! test double of IBM's ascp that really copies files into a folder playing the remote host)
//! is the transfer engine: this very binary, started under the name `ascp-sim`. The demo
//! creates a sample data set, asks the stand-in for an upload spec, uploads with a live
//! progress bar, raises the target rate mid-way, pauses and resumes, downloads everything back,
//! verifies every byte with SHA-256 (and against the checksums the transfer reported), prints
//! a summary table and removes everything it created.
//!
//! The same commands against a real server and a real ascp:
//! `fasp upload --url https://node.example.com:9092 --user U SOURCE... /dest` (password in
//! `FASP_NODE_PASSWORD`, ascp from `--ascp`, `$FASP_ASCP` or `PATH`).

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use fasp_manager::{EventKind, Manager, Transfer, TransferOptions, TransferState};
use fasp_node_standin::{NODE_PASSWORD, NODE_USER, NodeStandin, StandinConfig};
use fasp_spec::{FileChecksum, TransferSpec};
use fasp_token::{NodeClient, TransferRequest, prepare_download, prepare_upload};
use futures::StreamExt;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The name under which this binary acts as the ascp emulator.
pub(crate) const SIM_NAME: &str = "ascp-sim";

/// Arguments of `fasp-lab demo`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// JSON events and steps on stdout instead of progress bars and tables.
    #[arg(long)]
    json: bool,
    /// Size of the sample data set in MB (several files and one folder).
    #[arg(long, default_value_t = 240, value_parser = clap::value_parser!(u64).range(6..=4096))]
    size_mb: u64,
}

/// Target rates of the demo, Mbit/s: start, then raised mid-way.
const START_MBPS: u64 = 200;
const RAISED_MBPS: u64 = 800;

pub(crate) fn run(args: Args) -> ExitCode {
    let runtime = match fasp_cli::runtime("demo") {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let out = Out { json: args.json };
    let result = runtime.block_on(demo(&out, args.size_mb));
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out.step("failed", &e, json!({"error": e}));
            if !out.json {
                eprintln!("fasp-lab demo: {e}");
            }
            ExitCode::from(1)
        }
    }
}

/// Where the demo speaks: human lines on stderr, or JSON lines on stdout.
struct Out {
    json: bool,
}

impl Out {
    fn step(&self, step: &str, text: &str, detail: serde_json::Value) {
        if self.json {
            let mut v = json!({"type": "demo", "step": step, "message": text});
            if let (Some(obj), Some(extra)) = (v.as_object_mut(), detail.as_object()) {
                obj.extend(extra.clone());
            }
            println!("{v}");
        } else {
            eprintln!("==> {text}");
        }
    }
}

async fn demo(out: &Out, size_mb: u64) -> Result<(), String> {
    let started = Instant::now();
    out.step(
        "intro",
        "fasp-lab demo, offline: node API stand-in (in this process) + ascp-sim, an ascp emulator \
         (a test double of IBM's ascp that really copies files into a local folder playing the \
         remote host)",
        json!({"engine": "ascp-sim (emulator)", "node_api": "in-process stand-in"}),
    );
    let work = tempfile::Builder::new()
        .prefix("fasp-demo-")
        .tempdir()
        .map_err(|e| format!("temporary folder: {e}"))?;
    let local = work.path().join("local");
    let remote = work.path().join("remote");
    let back = work.path().join("downloaded");
    for d in [&local, &remote.join("incoming"), &back] {
        std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
    }
    // This binary, named ascp-sim: the emulator's entry point (see main.rs).
    let sim = work.path().join("bin").join(SIM_NAME);
    std::fs::create_dir_all(sim.parent().unwrap_or(work.path())).map_err(|e| e.to_string())?;
    let me = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    std::os::unix::fs::symlink(&me, &sim).map_err(|e| format!("link {}: {e}", sim.display()))?;

    // 1. Sample data: several files and one folder.
    let files = make_data(&local, size_mb).map_err(|e| format!("sample data: {e}"))?;
    let total: u64 = files.values().map(|(len, _)| *len).sum();
    out.step(
        "data",
        &format!(
            "created {} files, {:.0} MB, in {}",
            files.len(),
            total as f64 / 1e6,
            local.display()
        ),
        json!({"files": files.len(), "bytes": total}),
    );

    // 2. The node API: an upload spec.
    let node = NodeStandin::start(StandinConfig::default())
        .await
        .map_err(|e| format!("node stand-in: {e}"))?;
    let client = NodeClient::builder(node.base_url())
        .basic_auth(NODE_USER, NODE_PASSWORD)
        .build()
        .map_err(|e| e.to_string())?;
    let answer = client
        .upload_setup_one(&TransferRequest::upload_to(["/incoming".to_string()]))
        .await
        .map_err(|e| format!("upload_setup: {e}"))?;
    out.step(
        "node",
        &format!(
            "node API {}: upload_setup gave host {}, user {}, a token (kept secret)",
            node.base_url(),
            answer.remote_host.as_deref().unwrap_or("?"),
            answer.remote_user.as_deref().unwrap_or("?"),
        ),
        json!({"node_api": node.base_url()}),
    );
    let sources = [
        local.join("big-1.bin"),
        local.join("big-2.bin"),
        local.join("big-3.bin"),
        local.join("set"),
    ];
    let mut spec = prepare_upload(answer, sources.iter().map(|p| p.display().to_string()))
        .map_err(|e| e.to_string())?;
    spec.target_rate_kbps = Some(START_MBPS * 1000);
    spec.file_checksum = Some(FileChecksum::Sha256);
    spec.create_dir = Some(true);

    let manager = Manager::with_ascp(&sim);
    let env = |opts: TransferOptions| {
        opts.with_env("ASCP_SIM_ROOT", remote.display().to_string())
            .with_env("ASCP_SIM_STATS_INTERVAL_MS", "100")
    };

    // 3. Upload, steering it on the way.
    out.step(
        "upload",
        &format!("uploading at {START_MBPS} Mbit/s"),
        json!({"target_mbps": START_MBPS}),
    );
    let upload = manager
        .start(&spec, env(TransferOptions::default()))
        .map_err(|e| e.to_string())?;
    let (up_sums, up_summary) = follow(out, upload, total, true).await?;

    // 4. Download everything back.
    let answer = client
        .download_setup_one(&TransferRequest::download_from(["/incoming".to_string()]))
        .await
        .map_err(|e| format!("download_setup: {e}"))?;
    let mut spec: TransferSpec =
        prepare_download(answer, back.display().to_string()).map_err(|e| e.to_string())?;
    spec.target_rate_kbps = Some(RAISED_MBPS * 1000);
    spec.file_checksum = Some(FileChecksum::Sha256);
    spec.create_dir = Some(true);
    out.step(
        "download",
        &format!("downloading back at {RAISED_MBPS} Mbit/s"),
        json!({"target_mbps": RAISED_MBPS}),
    );
    let download = manager
        .start(&spec, env(TransferOptions::default()))
        .map_err(|e| e.to_string())?;
    let (down_sums, down_summary) = follow(out, download, total, false).await?;

    // 5. Verify every byte.
    out.step("verify", "verifying every file with SHA-256", json!({}));
    let mut rows = Vec::new();
    let mut all_ok = true;
    for (rel, (len, sum)) in &files {
        let got = sha256_file(&back.join("incoming").join(rel))
            .map_err(|e| format!("read back {rel}: {e}"))?;
        let name = Path::new(rel)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let reported_up = up_sums.get(&name).is_some_and(|s| s == sum);
        let reported_down = down_sums.get(&name).is_some_and(|s| s == sum);
        let ok = got == *sum && reported_up && reported_down;
        all_ok &= ok;
        rows.push((rel.clone(), *len, sum.clone(), ok));
    }
    let elapsed = started.elapsed();
    if out.json {
        let files: Vec<_> = rows
            .iter()
            .map(|(rel, len, sum, ok)| json!({"file": rel, "bytes": len, "sha256": sum, "verified": ok}))
            .collect();
        println!(
            "{}",
            json!({"type": "summary", "ok": all_ok, "files": files, "bytes": total,
                   "upload_ms": up_summary.as_millis() as u64, "download_ms": down_summary.as_millis() as u64,
                   "elapsed_ms": elapsed.as_millis() as u64})
        );
    } else {
        eprintln!();
        eprintln!("{:<22} {:>12}  {:<16}  verified", "file", "bytes", "sha256");
        for (rel, len, sum, ok) in &rows {
            eprintln!(
                "{:<22} {:>12}  {:<16}  {}",
                rel,
                len,
                &sum[..16],
                if *ok { "yes" } else { "NO" }
            );
        }
        eprintln!(
            "{:<22} {:>12}  upload {:.1} s ({:.0} Mbit/s), download {:.1} s ({:.0} Mbit/s), all in {:.1} s",
            "total",
            total,
            up_summary.as_secs_f64(),
            total as f64 * 8.0 / 1e6 / up_summary.as_secs_f64().max(1e-3),
            down_summary.as_secs_f64(),
            total as f64 * 8.0 / 1e6 / down_summary.as_secs_f64().max(1e-3),
            elapsed.as_secs_f64()
        );
        eprintln!();
        eprintln!(
            "Against a real server and ascp: fasp upload --url https://NODE:9092 --user U SOURCE... /DEST"
        );
        eprintln!(
            "(password in FASP_NODE_PASSWORD; ascp from --ascp, $FASP_ASCP or PATH). Cleaning up."
        );
    }
    drop(manager);
    drop(node);
    work.close().map_err(|e| format!("clean up: {e}"))?;
    if all_ok {
        Ok(())
    } else {
        Err("verification failed: some files differ".into())
    }
}

/// Follow one transfer to its end: progress bar (or JSON events), and for the upload the rate
/// change and the pause. Returns the SHA-256 each file's STOP reported, and the time taken.
async fn follow(
    out: &Out,
    mut transfer: Transfer,
    total: u64,
    steer: bool,
) -> Result<(BTreeMap<String, String>, Duration), String> {
    let started = Instant::now();
    let mut events = transfer.events();
    let json_mode = out.json;
    let collector = tokio::spawn(async move {
        let mut sums = BTreeMap::new();
        while let Some(e) = events.next().await {
            if let EventKind::FileDone(f) = &e.kind {
                if let Some((_, sum)) = &f.checksum {
                    let name = Path::new(&f.file)
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    sums.insert(name, sum.to_ascii_lowercase());
                }
            }
            if json_mode {
                if let Some(line) = fasp_cli::event_json(&e) {
                    println!("{line}");
                }
            }
        }
        sums
    });
    let bar = (!out.json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {bar:32} {decimal_bytes:>9}/{decimal_total_bytes} ETA {eta:>3} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = transfer.progress();
    let mut raised = !steer;
    let mut paused = !steer;
    let mut last_line = Instant::now();
    loop {
        let p = progress.borrow().clone();
        if let Some(bar) = &bar {
            bar.set_position(p.bytes_done);
            let rate = format!(
                "{:.0} Mbit/s{}",
                p.throughput_bps * 8.0 / 1e6,
                p.target_rate_kbps
                    .map(|r| format!(" (target {} Mbit/s)", r / 1000))
                    .unwrap_or_default()
            );
            bar.set_message(format!(
                "{rate} {}",
                p.current_file.as_deref().map(short).unwrap_or_default()
            ));
        } else if !out.json && last_line.elapsed() > Duration::from_secs(1) {
            eprintln!(
                "    {:>5.1}% {:>6.0} Mbit/s  {}",
                100.0 * p.bytes_done as f64 / total.max(1) as f64,
                p.throughput_bps * 8.0 / 1e6,
                p.current_file.as_deref().map(short).unwrap_or_default()
            );
            last_line = Instant::now();
        }
        if matches!(
            p.state,
            TransferState::Done | TransferState::Failed | TransferState::Cancelled
        ) {
            break;
        }
        let done = p.bytes_done as f64 / total.max(1) as f64;
        if !raised && done > 0.25 {
            raised = true;
            let rate_over = async |t: &Transfer, window: Duration| {
                let (b0, t0) = (t.snapshot().bytes_done, Instant::now());
                tokio::time::sleep(window).await;
                (t.snapshot().bytes_done - b0) as f64 / t0.elapsed().as_secs_f64()
            };
            // Before: the average so far; after: a short window once the change is in force.
            let before = p.bytes_done as f64 / started.elapsed().as_secs_f64().max(1e-3);
            if transfer
                .control()
                .set_rate(RAISED_MBPS * 1000, 0)
                .await
                .is_err()
            {
                continue; // already finished: nothing left to steer
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            let after = rate_over(&transfer, Duration::from_millis(300)).await;
            let text = format!(
                "target rate {START_MBPS} -> {RAISED_MBPS} Mbit/s: throughput {:.0} -> {:.0} Mbit/s",
                before * 8.0 / 1e6,
                after * 8.0 / 1e6
            );
            print_above(
                &bar,
                out,
                "rate",
                &text,
                json!({"target_mbps": RAISED_MBPS, "before_bps": before, "after_bps": after}),
            );
        } else if raised && !paused && done > 0.55 {
            paused = true;
            if transfer.control().pause().await.is_err() {
                continue;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let held = transfer.snapshot().bytes_done;
            tokio::time::sleep(Duration::from_millis(1000)).await;
            let moved = transfer.snapshot().bytes_done - held;
            print_above(
                &bar,
                out,
                "pause",
                &format!("paused for a second: {moved} bytes moved meanwhile"),
                json!({"moved_while_paused": moved}),
            );
            let _ = transfer.control().resume().await;
            print_above(
                &bar,
                out,
                "resume",
                "resumed at the previous rate",
                json!({}),
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let result = transfer.wait().await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let sums = collector.await.map_err(|e| e.to_string())?;
    let summary = result.map_err(|e| format!("transfer failed: {e}"))?;
    out.step(
        "transferred",
        &format!(
            "{} files, {} bytes in {:.1} s",
            summary.files_done,
            summary.bytes,
            started.elapsed().as_secs_f64()
        ),
        json!({"files": summary.files_done, "bytes": summary.bytes}),
    );
    Ok((sums, started.elapsed()))
}

fn print_above(
    bar: &Option<indicatif::ProgressBar>,
    out: &Out,
    step: &str,
    text: &str,
    detail: serde_json::Value,
) {
    match bar {
        Some(bar) => bar.println(format!("==> {text}")),
        None => out.step(step, text, detail),
    }
}

fn short(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_owned())
}

/// Several files and one folder, `size_mb` MB in all; returns relative path -> (bytes, sha256).
fn make_data(dir: &Path, size_mb: u64) -> std::io::Result<BTreeMap<String, (u64, String)>> {
    let mb = 1_000_000u64;
    let total = size_mb * mb;
    let plan: Vec<(String, u64)> = vec![
        ("big-1.bin".into(), total * 30 / 100),
        ("big-2.bin".into(), total * 25 / 100),
        ("big-3.bin".into(), total * 20 / 100),
        ("set/part-a.bin".into(), total * 10 / 100),
        ("set/part-b.bin".into(), total * 10 / 100),
        ("set/notes/readme.txt".into(), total - total * 95 / 100),
    ];
    let mut out = BTreeMap::new();
    for (i, (rel, len)) in plan.into_iter().enumerate() {
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let sum = write_pattern(&path, len, i as u64)?;
        out.insert(rel, (len, sum));
    }
    Ok(out)
}

/// Write `len` bytes of a cheap pseudo-random pattern; returns their SHA-256.
fn write_pattern(path: &PathBuf, len: u64, seed: u64) -> std::io::Result<String> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut left = len;
    while left > 0 {
        for chunk in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = left.min(block.len() as u64) as usize;
        f.write_all(&block[..n])?;
        hasher.update(&block[..n]);
        left -= n as u64;
    }
    f.flush()?;
    Ok(hex::encode(hasher.finalize()))
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
