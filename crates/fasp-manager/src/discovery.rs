//! Finding the `ascp` binary.

use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable naming the ascp binary (also used by this project's tests).
pub const ASCP_ENV: &str = "FASP_ASCP";

/// The usual install folders, relative to the home folder (`~`) or absolute.
const USUAL: &[&str] = &[
    "~/.aspera/connect/bin/ascp",
    "~/.aspera/sdk/ascp",
    "~/.aspera/cli/sdk/ascp",
    "/opt/aspera/bin/ascp",
    "/opt/aspera/sdk/ascp",
    "/usr/local/aspera/bin/ascp",
];

/// No usable ascp was found; lists every place looked at, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AscpNotFound {
    /// Each candidate and why it was not taken.
    pub looked: Vec<(String, &'static str)>,
}

impl fmt::Display for AscpNotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no usable ascp found; looked at:")?;
        for (place, why) in &self.looked {
            write!(f, "\n  {place}: {why}")?;
        }
        Ok(())
    }
}

impl std::error::Error for AscpNotFound {}

/// Find ascp: the explicit path if given (and nothing else), then the `FASP_ASCP` environment
/// variable, then each folder of `PATH`, then the usual install folders.
pub fn find_ascp(explicit: Option<&Path>) -> Result<PathBuf, AscpNotFound> {
    let mut looked = Vec::new();
    if let Some(p) = explicit {
        return check(p)
            .map(|()| p.to_path_buf())
            .map_err(|why| AscpNotFound {
                looked: vec![(format!("explicit path {}", p.display()), why)],
            });
    }
    match std::env::var_os(ASCP_ENV) {
        Some(v) if !v.is_empty() => {
            let p = PathBuf::from(v);
            match check(&p) {
                Ok(()) => return Ok(p),
                Err(why) => looked.push((format!("${ASCP_ENV}={}", p.display()), why)),
            }
        }
        _ => looked.push((format!("${ASCP_ENV}"), "not set")),
    }
    match std::env::var_os("PATH") {
        Some(path) => {
            let mut any = false;
            for dir in std::env::split_paths(&path) {
                let p = dir.join("ascp");
                if check(&p).is_ok() {
                    return Ok(p);
                }
                any = true;
            }
            looked.push((
                "each folder of $PATH".into(),
                if any { "no executable ascp" } else { "empty" },
            ));
        }
        None => looked.push(("$PATH".into(), "not set")),
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for place in USUAL {
        let p = match (place.strip_prefix("~/"), &home) {
            (Some(rest), Some(h)) => h.join(rest),
            (Some(_), None) => {
                looked.push((place.to_string(), "HOME not set"));
                continue;
            }
            (None, _) => PathBuf::from(place),
        };
        match check(&p) {
            Ok(()) => return Ok(p),
            Err(why) => looked.push((p.display().to_string(), why)),
        }
    }
    Err(AscpNotFound { looked })
}

fn check(p: &Path) -> Result<(), &'static str> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Err(_) => Err("does not exist"),
        Ok(m) if !m.is_file() => Err("not a file"),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Err("not executable"),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_is_checked_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ascp");
        let err = find_ascp(Some(&missing)).unwrap_err();
        assert_eq!(err.looked.len(), 1);
        assert!(err.to_string().contains("does not exist"), "{err}");
        std::fs::write(&missing, "#!/bin/sh\n").unwrap();
        assert!(
            find_ascp(Some(&missing))
                .unwrap_err()
                .to_string()
                .contains("not executable")
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&missing, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(find_ascp(Some(&missing)).unwrap(), missing);
    }
}
