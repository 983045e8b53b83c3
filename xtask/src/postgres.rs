//! PostgreSQL for the fasp-jobs tests: the server binaries (`initdb`, `pg_ctl`, `postgres`)
//! of Debian's `postgresql` package. The tests make their own throwaway cluster on a Unix
//! socket in a temporary folder (crates/fasp-jobs/tests/support/pg.rs); no cluster or service
//! is set up here.

use std::path::{Path, PathBuf};

/// The variable the fasp-jobs tests read the binaries' folder from.
pub(crate) const PG_BIN_ENV: &str = "FASP_PG_BIN";

/// The folder of the PostgreSQL server binaries: `FASP_PG_BIN` if set, else the newest
/// `/usr/lib/postgresql/<version>/bin`, else `initdb` and `pg_ctl` on `PATH`. When none is
/// there and this runs as root on a system with apt-get, Debian's `postgresql` package is
/// installed first (with `create_main_cluster = false`, so that no cluster or service is set
/// up for it). Export the result as `FASP_PG_BIN` for the test run.
pub(crate) fn ensure_postgres() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        return if has_server(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "{PG_BIN_ENV}={} holds no initdb and pg_ctl",
                dir.display()
            ))
        };
    }
    if let Some(dir) = find() {
        return Ok(dir);
    }
    if !crate::util::is_root() {
        return Err(
            "the fasp-jobs tests need PostgreSQL's server binaries (initdb, pg_ctl): \
             install Debian's postgresql package (`sudo apt-get install postgresql`), set \
             FASP_PG_BIN to their folder, or run this as root"
                .into(),
        );
    }
    // No default cluster: the tests make their own. dpkg keeps this file (--force-confold).
    let conf = Path::new("/etc/postgresql-common/createcluster.conf");
    if !conf.exists() {
        std::fs::create_dir_all("/etc/postgresql-common")
            .and_then(|()| std::fs::write(conf, "create_main_cluster = false\n"))
            .map_err(|e| format!("cannot write {}: {e}", conf.display()))?;
    }
    crate::util::apt_install(&["postgresql"], "PostgreSQL's server binaries")?;
    find().ok_or_else(|| {
        "the postgresql package was installed, but no /usr/lib/postgresql/<version>/bin holds \
         initdb and pg_ctl"
            .into()
    })
}

/// The newest `/usr/lib/postgresql/<version>/bin`, else a `PATH` folder with the binaries.
fn find() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            has_server(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|d| has_server(d))
}

fn has_server(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("pg_ctl").is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_the_binaries_is_not_a_server() {
        let dir = std::env::temp_dir().join(format!("xtask-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!has_server(&dir));
        std::fs::write(dir.join("initdb"), b"").unwrap();
        std::fs::write(dir.join("pg_ctl"), b"").unwrap();
        assert!(has_server(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
