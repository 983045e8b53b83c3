//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary folder, the server on a
//! Unix socket in that folder (no TCP port), stopped and removed when dropped.
//!
//! The server refuses to run as root: when the tests run as root, the folder is given to
//! `nobody` and every server command runs through `runuser -u nobody`.
//!
//! Where the binaries come from: `FASP_PG_BIN` (a folder holding `initdb` and `pg_ctl`), else
//! the newest `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql` package), else
//! `initdb` on `PATH`. Missing: a skip with a notice, or a failure with `CI=true` (`cargo xtask
//! test` installs Debian's package first).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The folder holding `initdb` and `pg_ctl`, if any.
pub(crate) fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("FASP_PG_BIN").filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").is_file().then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file())
    })
}

/// A running cluster.
pub(crate) struct PgCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    run_as: Option<&'static str>,
    next_db: u32,
}

impl PgCluster {
    /// Start a cluster, or `None` (with a notice) when PostgreSQL is not installed outside
    /// CI. With `CI=true` a missing PostgreSQL, or one that does not start, fails the test.
    pub(crate) fn start() -> Option<PgCluster> {
        let Some(bin) = bin_dir() else {
            assert!(
                !fasp_testkit::ci_required(),
                "CI requires PostgreSQL for the fasp-jobs tests, but no initdb was found \
                 (FASP_PG_BIN, /usr/lib/postgresql/*/bin, PATH): `cargo xtask test` installs \
                 Debian's postgresql package"
            );
            eprintln!(
                "skipping the PostgreSQL tests: PostgreSQL is not installed \
                 (apt-get install postgresql, or set FASP_PG_BIN)"
            );
            return None;
        };
        let run_as = nix::unistd::geteuid().is_root().then_some("nobody");
        // As root, in /tmp whatever TMPDIR says: the server's user must be able to reach the
        // folder (and a Unix socket's path must stay short).
        let mut builder = tempfile::Builder::new();
        builder.prefix("fasp-jobs-pg.");
        let dir = match run_as {
            Some(_) => builder.tempdir_in("/tmp"),
            None => builder.tempdir(),
        }
        .expect("cannot create the cluster's folder");
        if let Some(user) = run_as {
            let u = nix::unistd::User::from_name(user)
                .ok()
                .flatten()
                .unwrap_or_else(|| panic!("no user {user} to run PostgreSQL as"));
            nix::unistd::chown(dir.path(), Some(u.uid), Some(u.gid))
                .expect("cannot give the cluster's folder to the server's user");
        }
        let cluster = PgCluster {
            dir,
            bin,
            run_as,
            next_db: 0,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        let opts = format!(
            "-k {} -c listen_addresses='' -F -c fsync=off -c max_connections=200",
            cluster.socket_dir().display()
        );
        let log = cluster.dir.path().join("server.log");
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-l",
                &log.to_string_lossy(),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
            None => Command::new(path),
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "{program} {args:?} failed ({}):\n{}\n{}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// The URL of database `db` of this cluster.
    pub(crate) fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@localhost/{db}?host={}",
            self.socket_dir().display()
        )
    }

    /// A new empty database; its URL.
    pub(crate) async fn fresh_db(&mut self) -> String {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        self.next_db += 1;
        let name = format!("jobs{}", self.next_db);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut conn = loop {
            match sqlx::AnyConnection::connect(&self.url("postgres")).await {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("waiting for PostgreSQL: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot connect to the test cluster: {e}"),
            }
        };
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("cannot create a test database");
        let _ = conn.close().await;
        self.url(&name)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}
