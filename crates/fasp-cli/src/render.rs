//! `fasp render --spec FILE [--workdir DIR]`: print the ascp invocation of a transfer spec as
//! one JSON object, `{"program": .., "args": [..], "env": {"NAME": "<redacted>"}, "files":
//! [{"path": .., "kind": .., "lines": [..]}]}`. Management options (`-M`) are not included.
//!
//! The spec file holds a bare transfer spec, `{"transfer_spec": {...}}`, or a node answer
//! `{"transfer_specs": [...]}` (the first element is used). File lists are written into
//! `--workdir` (created if missing) or, without it, into a new folder under the system's
//! temporary folder; either way they are kept, and their paths are in the output. Unknown keys
//! are reported on stderr and not rendered.
//!
//! Exit status: 0 on success; 2 for an unreadable file, bad JSON (line and column given), a
//! node error, or an invalid spec (the message names the key and the value; secret values
//! are redacted).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fasp_spec::{AscpCommand, REDACTED, RenderOptions, TransferSpec};
use serde_json::{Value, json};

/// Arguments of `fasp render`.
#[derive(clap::Args)]
pub struct Args {
    /// The transfer spec (JSON file: a bare spec or a node answer).
    #[arg(long)]
    spec: PathBuf,
    /// Folder for the file lists the command needs (created if missing). Default: a new
    /// folder under the system's temporary folder, named in the output.
    #[arg(long)]
    workdir: Option<PathBuf>,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let name = args.spec.display();
    let text = match std::fs::read_to_string(&args.spec) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("fasp render: cannot read {name}: {e}");
            return ExitCode::from(2);
        }
    };
    let spec = match TransferSpec::from_document(&text) {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("fasp render: {name}: {e}");
            return ExitCode::from(2);
        }
    };
    let unknown = spec.unknown_keys();
    if !unknown.is_empty() {
        eprintln!(
            "fasp render: {name}: warning: keys kept but not rendered: {}",
            unknown.join(", ")
        );
    }
    // Validate before creating any folder, so an invalid spec leaves nothing behind.
    if let Err(e) = spec.validate() {
        eprintln!("fasp render: {name}: {e}");
        return ExitCode::from(2);
    }

    let mut options = RenderOptions::new();
    let mut created = None;
    match args.workdir {
        Some(dir) => {
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!("fasp render: cannot create {}: {e}", dir.display());
                return ExitCode::from(2);
            }
            options = options.with_workdir(dir);
        }
        None if spec.needs_workdir() => match fresh_temp_dir() {
            Ok(dir) => {
                created = Some(dir.clone());
                options = options.with_workdir(dir);
            }
            Err(e) => {
                eprintln!("fasp render: cannot create a folder for the file lists: {e}");
                return ExitCode::from(2);
            }
        },
        None => {}
    }

    let command = match spec.render(&options) {
        Ok(command) => command,
        Err(e) => {
            if let Some(dir) = created {
                let _ = std::fs::remove_dir_all(dir);
            }
            eprintln!("fasp render: {name}: {e}");
            return ExitCode::from(2);
        }
    };
    let text = match serde_json::to_string_pretty(&command_json(&command)) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("fasp render: {e}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fasp render: {e}");
            ExitCode::from(2)
        }
    }
}

/// The output object. Environment values are always redacted; file lists hold only paths.
fn command_json(command: &AscpCommand) -> Value {
    let env: serde_json::Map<String, Value> = command
        .env
        .keys()
        .map(|name| (name.clone(), Value::from(REDACTED)))
        .collect();
    json!({
        "program": command.program.to_string_lossy(),
        "args": command.args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
        "env": env,
        "files": command.files.iter().map(|f| json!({
            "path": f.path.to_string_lossy(),
            "kind": f.kind.as_str(),
            "lines": f.lines,
        })).collect::<Vec<_>>(),
    })
}

/// Creates a new, private folder under the system's temporary folder.
fn fresh_temp_dir() -> io::Result<PathBuf> {
    let base = std::env::temp_dir();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    for attempt in 0..100u32 {
        let dir = base.join(format!(
            "fasp-render-{}-{stamp}-{attempt}",
            std::process::id()
        ));
        match create_private_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free folder name",
    ))
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}
