//! Small helpers shared by the tasks.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the folder holding the root `Cargo.toml`).
pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

/// The cargo that runs us, so that a rustup override or `CARGO` is honoured.
pub(crate) fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(project_root());
    cmd
}

/// Run a command, echoing it first; a non-zero exit is an error naming the command.
pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("$ {}", display(cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run `{}`: {e}", display(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed with {status}", display(cmd)))
    }
}

/// Whether a program answers `--version` (or the given probe arguments).
pub(crate) fn has_program(program: &str, probe: &[&str]) -> bool {
    Command::new(program)
        .args(probe)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A command as a shell line, for messages; the cargo that runs us shows as `cargo`.
pub(crate) fn display(cmd: &Command) -> String {
    let program = cmd.get_program();
    let mut s = if std::env::var_os("CARGO").is_some_and(|c| c == program) {
        "cargo".to_string()
    } else {
        program.to_string_lossy().into_owned()
    };
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Whether this process runs as root (the only case where the tasks install system packages).
pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs Debian packages non-interactively (`apt-get update`, then `apt-get install -y
/// --no-install-recommends`, keeping existing configuration files). `what` names what they are
/// for in the error when apt-get is missing.
pub(crate) fn apt_install(packages: &[&str], what: &str) -> Result<(), String> {
    if !has_program("apt-get", &["--version"]) {
        return Err(format!(
            "{what} missing and apt-get is not available: install {} by hand",
            packages.join(" ")
        ));
    }
    run(Command::new("apt-get")
        .arg("update")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null()))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends"])
        .args(["-o", "Dpkg::Options::=--force-confold"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null()))
}
