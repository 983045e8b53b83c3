//! `cargo xtask ascp`: install the real ascp (placeholder, being written).

pub(crate) fn run(_args: &[String]) -> Result<(), String> {
    Err("not yet written".into())
}

/// Install ascp if needed and return the path of the binary.
pub(crate) fn ensure_installed(_force: bool) -> Result<std::path::PathBuf, String> {
    Err("not yet written".into())
}

/// Make sure an OpenSSH server binary is there for the real-ascp tests.
pub(crate) fn ensure_sshd() -> Result<(), String> {
    Err("not yet written".into())
}
