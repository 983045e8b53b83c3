//! ascp-sim in tests: finding the binary, a work folder with a local side and a "remote"
//! root, files with recognisable contents, and the series of a field over the STATS frames of
//! a run.
//!
//! The test crates of fasp-sim, fasp-manager and fasp-cli (and the manager's load bench) use
//! these rather than each keeping its own copy.
//!
//! ```no_run
//! use fasp_testkit::sim::{self, Work};
//!
//! let Some(ascp_sim) = sim::sim_path() else { return };
//! let w = Work::new();
//! let source = w.local_file("a.bin", 100_000);
//! let mut cmd = std::process::Command::new(&ascp_sim);
//! cmd.env(sim::ROOT_ENV, w.root())
//!     .args(["--mode=send", "--host=h", &w.arg(&source), "/"]);
//! ```

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use fasp_mgmt_proto::Frame;

use crate::ci_required;

/// The environment variable that names the ascp-sim to use, overriding the search.
pub const SIM_ENV: &str = "FASP_SIM";

/// The file name of the emulator's binary.
pub const SIM_BIN: &str = "ascp-sim";

/// ascp-sim's environment variable for the folder that plays the remote host.
pub const ROOT_ENV: &str = "ASCP_SIM_ROOT";

/// ascp-sim's environment variable for the STATS period, in milliseconds.
pub const STATS_INTERVAL_ENV: &str = "ASCP_SIM_STATS_INTERVAL_MS";

/// ascp-sim, without skipping or failing: the file named by `FASP_SIM` when that is set, else
/// `ascp-sim` in the profile folder of the running binary (`target/<profile>/`, the parent of
/// the `deps/` folder where cargo puts test and bench binaries: where `cargo build -p
/// fasp-sim` and `cargo test --workspace` put it, whatever `CARGO_TARGET_DIR` says).
///
/// `Err` says what was looked for, for a message.
pub fn locate_sim() -> Result<PathBuf, String> {
    if let Some(value) = std::env::var_os(SIM_ENV).filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{SIM_ENV}={} is not a file", path.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("no current executable: {e}"))?;
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} has no grandparent folder", exe.display()))?;
    let candidate = profile.join(SIM_BIN);
    if candidate.is_file() {
        Ok(candidate)
    } else {
        Err(format!("{} does not exist", candidate.display()))
    }
}

/// ascp-sim for a test (see [`locate_sim`]), or a skip: outside CI, when it is missing, this
/// prints `skipping: ascp-sim not built (cargo build -p fasp-sim)` to stderr and returns
/// `None`; with `CI=true` (or `1`) it panics instead, since CI runs `cargo test --workspace`,
/// which builds it.
pub fn sim_path() -> Option<PathBuf> {
    match locate_sim() {
        Ok(path) => Some(path),
        Err(why) => {
            assert!(
                !ci_required(),
                "CI requires ascp-sim, but {why}: `cargo test --workspace` builds it"
            );
            eprintln!("skipping: ascp-sim not built (cargo build -p fasp-sim): {why}");
            None
        }
    }
}

/// Evaluate to ascp-sim's path, or `return` from the enclosing test after printing a skip
/// notice (panics in CI instead; see [`sim::sim_path`](crate::sim::sim_path)).
#[macro_export]
macro_rules! require_sim {
    () => {
        match $crate::sim::sim_path() {
            ::std::option::Option::Some(path) => path,
            ::std::option::Option::None => return,
        }
    };
}

/// A temporary folder holding `local/` (this machine's side) and `remote/` (the folder
/// ascp-sim plays the remote host in, its [`ROOT_ENV`]). Removed when dropped.
#[derive(Debug)]
pub struct Work {
    /// The temporary folder itself.
    pub dir: tempfile::TempDir,
}

impl Default for Work {
    fn default() -> Self {
        Self::new()
    }
}

impl Work {
    /// A fresh folder (`fasp-test.XXXXXX` in the system's temporary folder) with empty
    /// `local/` and `remote/`. Panics when it cannot be made: this is for tests.
    pub fn new() -> Work {
        let dir = tempfile::Builder::new()
            .prefix("fasp-test.")
            .tempdir()
            .expect("cannot create a temporary folder");
        for side in ["local", "remote"] {
            std::fs::create_dir(dir.path().join(side)).expect("cannot create a work folder");
        }
        Work { dir }
    }

    /// The work folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rel` under `local/`.
    pub fn local(&self, rel: &str) -> PathBuf {
        self.dir.path().join("local").join(rel)
    }

    /// `rel` under `remote/`.
    pub fn remote(&self, rel: &str) -> PathBuf {
        self.dir.path().join("remote").join(rel)
    }

    /// The `remote/` folder as text: the value of [`ROOT_ENV`].
    pub fn root(&self) -> String {
        self.arg(&self.dir.path().join("remote"))
    }

    /// The work folder as text: it is on the command line of every ascp-sim the test starts,
    /// so it finds them (for example with [`assert_no_leftover`](crate::assert_no_leftover)).
    pub fn needle(&self) -> String {
        self.arg(self.dir.path())
    }

    /// A path as a command-line argument (invalid UTF-8 replaced).
    pub fn arg(&self, path: &Path) -> String {
        path.to_string_lossy().into_owned()
    }

    /// Write `len` bytes of [`pattern`] (seeded by the path's length, so two files of one
    /// test differ) to `path`, creating its parents, and return them.
    pub fn file(&self, path: &Path, len: usize) -> Vec<u8> {
        let data = pattern(len, path.as_os_str().len() as u8);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("cannot create a parent folder");
        }
        std::fs::write(path, &data).expect("cannot write a test file");
        data
    }

    /// [`file`](Self::file) at `local/<rel>`, returning its path.
    pub fn local_file(&self, rel: &str, len: usize) -> PathBuf {
        let path = self.local(rel);
        self.file(&path, len);
        path
    }

    /// `n` files of three bytes in `local/<folder>`, named `f00000.txt` and up (they sort
    /// before `zz*`).
    pub fn tiny_files(&self, folder: &str, n: usize) {
        let dir = self.local(folder);
        std::fs::create_dir_all(&dir).expect("cannot create a test folder");
        for i in 0..n {
            std::fs::write(dir.join(format!("f{i:05}.txt")), b"abc")
                .expect("cannot write a test file");
        }
    }

    /// An executable shell script `name` in the work folder (beside `local` and `remote`).
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        write_executable(&path, body);
        path
    }
}

/// `len` bytes that depend on their position (and on `seed`), so that a byte moved or lost in
/// a copy shows, and that do not compress.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

/// Write `body` to `path` with mode 0755. Panics on failure.
pub fn write_executable(path: &Path, body: &str) {
    std::fs::write(path, body).expect("cannot write a script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .expect("cannot make a script executable");
}

/// The field `key` of `frame` as a number; panics (showing the frame) when it is missing or
/// not a `u64`.
pub fn num(frame: &Frame, key: &str) -> u64 {
    let value = frame
        .get(key)
        .unwrap_or_else(|| panic!("no {key} in {frame:?}"));
    value
        .parse()
        .unwrap_or_else(|e| panic!("{key}: {value:?} is not a number ({e}) in {frame:?}"))
}

/// The series of the numeric field `key` over the frames whose type is one of `types`, in
/// order, each value with its tag (an arrival time, an index, or `()`).
///
/// Panics, as [`num`], on a frame of those types without that field: a series with holes
/// would hide them.
pub fn series<'a, T>(
    frames: impl IntoIterator<Item = (T, &'a Frame)>,
    types: &[&str],
    key: &str,
) -> Vec<(T, u64)> {
    frames
        .into_iter()
        .filter(|(_, f)| f.type_name().is_some_and(|t| types.contains(&t)))
        .map(|(tag, f)| (tag, num(f, key)))
        .collect()
}

/// `TransferBytes` of every STATS frame, in order, with its tag: the progress series of a run.
pub fn stats_bytes<'a, T>(frames: impl IntoIterator<Item = (T, &'a Frame)>) -> Vec<(T, u64)> {
    series(frames, &["STATS"], "TransferBytes")
}
