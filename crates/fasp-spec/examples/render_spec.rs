//! Build a transfer spec, render it into an ascp invocation, and print what would be run.
//!
//! ```text
//! cargo run -p fasp-spec --example render_spec
//! ```
//!
//! The spec uploads two files with explicit destinations, so rendering writes a
//! `--file-pair-list` into a work folder (a temporary one here). Secrets (the token, the
//! cookie) never appear in the argument vector: they go to environment variables, printed here
//! by name only. Nothing is spawned and nothing touches the network.

use fasp_spec::{Cipher, OverwritePolicy, RatePolicy, RenderOptions, ResumePolicy, TransferSpec};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Tags keep their key order (JsonMap), at every depth, in every build.
    let mut tags = fasp_spec::JsonMap::new();
    tags.insert("job".into(), r#"{"owner": "me", "id": 42}"#.parse()?);

    let spec = TransferSpec::builder()
        .upload()
        .host("ats.example.com")
        .user("xfer")
        .ssh_port(33001)
        .fasp_port(33001)
        .token("ATM3_do-not-print-me")
        .cookie("session=also-secret")
        .path("/home/me/report.pdf", "reports/2026/report.pdf")
        .path("/home/me/data.csv", "data/data.csv")
        .destination_root("/incoming")
        .rate_policy(RatePolicy::Fair)
        .target_rate_kbps(100_000)
        .min_rate_kbps(1_000)
        .cipher(Cipher::Aes128)
        .resume_policy(ResumePolicy::SparseChecksum)
        .overwrite(OverwritePolicy::Diff)
        .tags(tags)
        .build()?;

    let workdir = tempfile::tempdir()?;
    let options = RenderOptions::new()
        .with_program("ascp")
        .with_workdir(workdir.path());
    let command = spec.render(&options)?;

    println!("program: {}", command.program.display());
    println!("argv:");
    for arg in &command.args {
        println!("  {}", arg.to_string_lossy());
    }
    println!("environment (values redacted):");
    for (name, value) in &command.env {
        // `Secret`'s Display prints `<redacted>`; `expose()` would give the value.
        println!("  {name}={value}");
    }
    for file in &command.files {
        println!("{:?} {}:", file.kind, file.path.display());
        for line in &file.lines {
            println!("  {line}");
        }
    }

    // Nothing secret leaks through Debug either.
    assert!(!format!("{command:?}").contains("do-not-print-me"));
    assert!(
        !command
            .args
            .iter()
            .any(|a| a.to_string_lossy().contains("do-not-print-me"))
    );

    command.cleanup()?;
    Ok(())
}
