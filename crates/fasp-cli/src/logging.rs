//! Logging and quiet mode: the global flags `-v`, `-q` and `--log-dir`, and `RUST_LOG`.
//!
//! The libraries (`fasp-manager` above all) emit `tracing` events; [`init_logging`] installs
//! the subscriber that writes them, one line each, to stderr or to a new file in the log
//! folder. The level is `info` with `-v`, `debug` with `-vv` and `trace` with `-vvv`. Without
//! `-v`, nothing is logged on stderr (fasp's own messages already say what failed, once) and
//! `warn` (`error` with `-q`) in a `--log-dir` file. A non-empty `RUST_LOG` replaces the
//! level (`RUST_LOG=fasp_manager=debug`, ...). No secret reaches a log line: the libraries log
//! the names of ascp's environment variables and never their values, and frames with their
//! secret fields redacted; this module logs the subcommand's name, never the command line
//! (which may hold `--password` or `--bearer`).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::ArgAction;
use tracing_subscriber::EnvFilter;

/// The variable that overrides the level chosen by `-v`/`-q`.
pub const LOG_ENV: &str = "RUST_LOG";

static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether `-q` was given: human output (progress bars, summaries, notices) is left out and
/// only errors are printed. Machine output (`--json` lines, the outcome) is not affected.
/// Set by [`init_logging`]; `false` until then.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// The flags every subcommand takes (`fasp -v transfer ...` and `fasp transfer -v ...` alike):
/// flatten them into a `clap::Parser` and give them to [`init_logging`].
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalArgs {
    /// Log lines: -v info, -vv debug, -vvv trace (RUST_LOG, when set, decides instead;
    /// without either: none on stderr, warnings in a --log-dir file).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors: no progress bar, no human lines (and only errors in a --log-dir file).
    #[arg(short = 'q', long = "quiet", global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Write the log lines to a new file in DIR (fasp-PID-TIMESTAMP.log, mode 0600; DIR is
    /// created with mode 0700 when missing) instead of stderr, like ascp's -L.
    #[arg(long = "log-dir", value_name = "DIR", global = true)]
    pub log_dir: Option<PathBuf>,
}

impl GlobalArgs {
    /// The level the flags ask for, as an `EnvFilter` directive: `-v` info, `-vv` debug,
    /// `-vvv` trace; otherwise nothing on stderr, and warnings (errors with `-q`) in a
    /// `--log-dir` file.
    pub fn level(&self) -> &'static str {
        let to_file = self.log_dir.is_some();
        match (self.quiet, self.verbose) {
            (true, _) if to_file => "error",
            (false, 0) if to_file => "warn",
            (true, _) | (false, 0) => "off",
            (false, 1) => "info",
            (false, 2) => "debug",
            (false, _) => "trace",
        }
    }
}

/// What [`init_logging`] set up; keep it until the program ends.
#[derive(Debug)]
#[must_use = "the log file is described by the guard; keep it until the program ends"]
pub struct LogGuard {
    file: Option<PathBuf>,
}

impl LogGuard {
    /// The log file, with `--log-dir`.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

/// Record `-q` (see [`quiet`]) and install the process's `tracing` subscriber: the level from
/// `RUST_LOG` when it is set and not empty, else from `-v`/`-q`; lines to stderr, or to a new
/// file in `--log-dir`. Errors (a bad `RUST_LOG`, a log folder or file that cannot be made, a
/// subscriber already installed) say what and where.
pub fn init_logging(args: &GlobalArgs) -> Result<LogGuard, String> {
    QUIET.store(args.quiet, Ordering::Relaxed);
    let filter = match std::env::var(LOG_ENV) {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::builder()
            .parse(&directives)
            .map_err(|e| format!("invalid {LOG_ENV} {directives:?}: {e}"))?,
        _ => EnvFilter::new(args.level()),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true);
    let (installed, file) = match &args.log_dir {
        None => (builder.with_writer(std::io::stderr).try_init(), None),
        Some(dir) => {
            let (path, handle) = open_log_file(dir)?;
            (
                builder.with_writer(Mutex::new(handle)).try_init(),
                Some(path),
            )
        }
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))?;
    Ok(LogGuard { file })
}

/// Create `dir` (0700) if it is missing, and a new log file in it (0600), never an existing
/// one: `fasp-<pid>-<UTC time>.log`, with `-2`, `-3`... when that name is taken.
fn open_log_file(dir: &Path) -> Result<(PathBuf, File), String> {
    match DirBuilder::new().recursive(true).mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) => {
            return Err(format!(
                "cannot create the log folder {}: {e}",
                dir.display()
            ));
        }
    }
    let stem = format!(
        "fasp-{}-{}",
        std::process::id(),
        utc_stamp(SystemTime::now())
    );
    for n in 1..100u32 {
        let name = if n == 1 {
            format!("{stem}.log")
        } else {
            format!("{stem}-{n}.log")
        };
        let path = dir.join(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(format!(
                    "cannot create the log file {}: {e}",
                    path.display()
                ));
            }
        }
    }
    Err(format!(
        "cannot create a log file in {}: every name for {stem} is taken",
        dir.display()
    ))
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
fn utc_stamp(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01, counted in 400-year eras of 146,097
/// days that start on a 1 March, so that the leap day ends an era's year.
fn civil_date(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // days from 0000-03-01 to 1970-01-01
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn levels_follow_the_flags() {
        let level = |verbose, quiet, dir: bool| {
            GlobalArgs {
                verbose,
                quiet,
                log_dir: dir.then(|| PathBuf::from("logs")),
            }
            .level()
        };
        for dir in [false, true] {
            assert_eq!(level(1, false, dir), "info");
            assert_eq!(level(2, false, dir), "debug");
            assert_eq!(level(3, false, dir), "trace");
            assert_eq!(level(9, false, dir), "trace");
        }
        assert_eq!(level(0, false, false), "off");
        assert_eq!(level(0, true, false), "off");
        assert_eq!(level(0, false, true), "warn");
        assert_eq!(level(0, true, true), "error");
    }

    #[test]
    fn stamps_are_utc_calendar_times() {
        let at = |secs| utc_stamp(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "19700101T000000Z");
        // 2000-02-29 12:34:56 (a leap day of a century year divisible by 400).
        assert_eq!(at(951_827_696), "20000229T123456Z");
        // 2026-11-27 09:30:00.
        assert_eq!(at(1_795_771_800), "20261127T093000Z");
        // 2100-03-01 00:00:00 (2100 is no leap year).
        assert_eq!(at(4_107_542_400), "21000301T000000Z");
    }

    #[test]
    fn log_files_are_private_and_new() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("logs/nested");
        let (a, _) = open_log_file(&dir).unwrap();
        let (b, _) = open_log_file(&dir).unwrap();
        assert_ne!(a, b, "a second file in the same second gets another name");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&a), 0o600);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(&format!("fasp-{}-", std::process::id())) && name.ends_with(".log"),
            "{name}"
        );
    }

    #[test]
    fn an_unusable_log_folder_is_named_in_the_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = open_log_file(&file.join("logs")).unwrap_err();
        assert!(
            err.contains("cannot create the log folder") && err.contains("plain-file"),
            "{err}"
        );
    }
}
