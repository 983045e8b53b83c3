//! From source arguments to file jobs: where each file is read and where it is written, on
//! which side of the emulated connection.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::frames::clean_path;
use crate::options::{Mode, Options, Symlinks};

/// The two ends: the local machine and the "remote host", a folder (`ASCP_SIM_ROOT`).
#[derive(Debug, Clone)]
pub(crate) struct Sides {
    pub(crate) root: PathBuf,
    pub(crate) mode: Mode,
}

/// A path that would leave the remote root (`..` above it): ascp's "path outside docroot".
#[derive(Debug)]
pub(crate) struct OutsideRoot;

impl Sides {
    /// The remote path `p` (as the peer names it) inside the root.
    pub(crate) fn remote(&self, p: &str) -> Result<PathBuf, OutsideRoot> {
        let clean = clean_path(p.trim_start_matches('/'));
        if clean == ".." || clean.starts_with("../") {
            return Err(OutsideRoot);
        }
        if clean == "." {
            return Ok(self.root.clone());
        }
        Ok(self.root.join(clean))
    }

    /// Where a source named `p` is read.
    pub(crate) fn source(&self, p: &str) -> Result<PathBuf, OutsideRoot> {
        match self.mode {
            Mode::Send => Ok(PathBuf::from(p)),
            Mode::Recv => self.remote(p),
        }
    }

    /// Where a destination named `p` is written.
    pub(crate) fn destination(&self, p: &str) -> Result<PathBuf, OutsideRoot> {
        match self.mode {
            Mode::Send => self.remote(p),
            Mode::Recv => Ok(PathBuf::from(p)),
        }
    }
}

/// One file (or link) to move.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) arg: u64,
    pub(crate) src: PathBuf,
    /// The source as named by the user (a STOP from the manager may use it).
    pub(crate) src_shown: String,
    pub(crate) dst: PathBuf,
    /// The destination as the client names it: the `File` of STATS/STOP.
    pub(crate) dst_shown: String,
    pub(crate) size: u64,
    pub(crate) mtime: SystemTime,
    pub(crate) range: Option<(u64, u64)>,
    /// `Some(target)`: recreate a symbolic link instead of copying bytes.
    pub(crate) link: Option<PathBuf>,
}

/// A file that could not even be looked at.
#[derive(Debug, Clone)]
pub(crate) struct ScanFailure {
    pub(crate) shown: String,
    pub(crate) code: u64,
    pub(crate) description: String,
}

/// What one source argument (command line entry, list line, pair or START) amounts to.
#[derive(Debug, Clone, Default)]
pub(crate) struct ArgPlan {
    pub(crate) index: u64,
    pub(crate) shown: String,
    pub(crate) jobs: Vec<Job>,
    pub(crate) failures: Vec<ScanFailure>,
    /// Destination folders to create, in order.
    pub(crate) dirs: Vec<(PathBuf, String)>,
    /// The argument itself could not be read (stat failed): `(code, description)`.
    pub(crate) fatal: Option<(u64, String)>,
}

/// Scan counts for DONE / ERROR.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ScanCounts {
    pub(crate) path_attempted: u64,
    pub(crate) path_failed: u64,
    pub(crate) path_irregular: u64,
    pub(crate) path_excluded: u64,
    pub(crate) dir_scans: u64,
    pub(crate) file_scans: u64,
}

/// Where the files of one argument go.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// Into this folder, under the source's own name.
    Into(String),
    /// Exactly this path (a file, or a folder that takes the source folder's place).
    Exactly(String),
    /// Below this folder, at the source's path relative to `--src-base`.
    Based { folder: String, base: String },
}

/// Map an I/O error to a FASP code and description (ascp reports errno texts).
pub(crate) fn io_code(e: &io::Error, missing: u64, other: u64) -> (u64, String) {
    let text = strerror(e);
    match e.kind() {
        io::ErrorKind::NotFound => (missing, text),
        io::ErrorKind::PermissionDenied => (5, text),
        _ => (other, text),
    }
}

/// The C library's wording of an error, without Rust's ` (os error N)`.
pub(crate) fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn join_shown(a: &str, b: &str) -> String {
    if b.is_empty() {
        return clean_path(a);
    }
    clean_path(&format!("{}/{}", a.trim_end_matches('/'), b))
}

fn base_name(p: &str) -> String {
    let c = clean_path(p);
    c.rsplit('/').next().unwrap_or(&c).to_owned()
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A `*`/`?` glob match.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Builds [`ArgPlan`]s.
pub(crate) struct Planner<'a> {
    pub(crate) o: &'a Options,
    pub(crate) sides: &'a Sides,
    pub(crate) counts: ScanCounts,
    /// Regular files seen so far, for `-C i:N`: part `i` takes every N-th file, starting at
    /// the (i-1)-th (in the same walk order in every part). Modelled: ascp's own split also
    /// cuts large files into ranges.
    pub(crate) seq: u64,
}

impl Planner<'_> {
    fn excluded(&self, name: &str, rel: &str, meta: &fs::Metadata) -> bool {
        if self
            .o
            .excludes
            .iter()
            .any(|p| glob(p, name) || glob(p, rel))
        {
            return true;
        }
        let m = meta.modified().map(secs).unwrap_or(0);
        self.o.exclude_newer_than.is_some_and(|t| m > t)
            || self.o.exclude_older_than.is_some_and(|t| m < t)
    }

    fn metadata(&self, p: &Path) -> io::Result<fs::Metadata> {
        if self.o.symlinks == Symlinks::Follow {
            fs::metadata(p)
        } else {
            fs::symlink_metadata(p)
        }
    }

    /// Plan one argument: `shown` is the source as the user gave it (prefix glued).
    pub(crate) fn plan(&mut self, index: u64, shown: &str, target: &Target) -> ArgPlan {
        let mut plan = ArgPlan {
            index,
            shown: shown.to_owned(),
            ..ArgPlan::default()
        };
        let src = match self.sides.source(shown) {
            Ok(p) => p,
            Err(OutsideRoot) => {
                plan.fatal = Some((41, "Path outside docroot".into()));
                self.counts.path_attempted += 1;
                self.counts.path_failed += 1;
                return plan;
            }
        };
        self.counts.path_attempted += 1;
        let meta = match self.metadata(&src) {
            Ok(m) => m,
            Err(e) => {
                self.counts.path_failed += 1;
                plan.fatal = Some(io_code(&e, 43, 43));
                return plan;
            }
        };
        let name = base_name(shown);
        // Where the argument itself lands.
        let top = match target {
            Target::Into(folder) => join_shown(folder, &name),
            Target::Exactly(p) => p.clone(),
            Target::Based { folder, base } => {
                let base = clean_path(base);
                let s = clean_path(shown);
                match s.strip_prefix(&base) {
                    Some(rest) if rest.is_empty() || rest.starts_with('/') => {
                        join_shown(folder, rest.trim_start_matches('/'))
                    }
                    _ => {
                        self.counts.path_failed += 1;
                        plan.fatal =
                            Some((8, format!("Source {s} is not under --src-base {base}")));
                        return plan;
                    }
                }
            }
        };
        if meta.is_dir() {
            self.counts.dir_scans += 1;
            self.walk(&mut plan, &src, shown, &top, "");
        } else {
            self.add(&mut plan, &src, shown, &top, &meta, &name, &name);
        }
        plan
    }

    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        plan: &mut ArgPlan,
        src: &Path,
        src_shown: &str,
        dst_shown: &str,
        meta: &fs::Metadata,
        name: &str,
        rel: &str,
    ) {
        if self.excluded(name, rel, meta) {
            self.counts.path_excluded += 1;
            return;
        }
        let ft = meta.file_type();
        let link = if ft.is_symlink() {
            match self.o.symlinks {
                Symlinks::Skip => {
                    self.counts.path_excluded += 1;
                    return;
                }
                _ => fs::read_link(src).ok(),
            }
        } else {
            None
        };
        if link.is_none() && !ft.is_file() {
            self.counts.path_irregular += 1;
            if !self.o.skip_special {
                plan.failures.push(ScanFailure {
                    shown: src_shown.to_owned(),
                    code: 21,
                    description: "Source: not a regular file".into(),
                });
            }
            return;
        }
        if let Some((part, parts)) = self.o.cluster {
            let mine =
                parts <= 1 || self.seq % u64::from(parts) == u64::from(part.saturating_sub(1));
            self.seq += 1;
            if !mine {
                return;
            }
        }
        self.counts.file_scans += 1;
        let dst = match self.sides.destination(dst_shown) {
            Ok(d) => d,
            Err(OutsideRoot) => {
                plan.failures.push(ScanFailure {
                    shown: dst_shown.to_owned(),
                    code: 41,
                    description: "Path outside docroot".into(),
                });
                return;
            }
        };
        plan.jobs.push(Job {
            arg: plan.index,
            src: src.to_owned(),
            src_shown: src_shown.to_owned(),
            dst,
            dst_shown: dst_shown.to_owned(),
            size: if link.is_some() { 0 } else { meta.len() },
            mtime: meta.modified().unwrap_or(UNIX_EPOCH),
            range: self.o.range,
            link,
        });
    }

    fn walk(&mut self, plan: &mut ArgPlan, dir: &Path, dir_shown: &str, dst: &str, rel: &str) {
        match self.sides.destination(dst) {
            Ok(d) => plan.dirs.push((d, dst.to_owned())),
            Err(OutsideRoot) => {
                plan.failures.push(ScanFailure {
                    shown: dst.to_owned(),
                    code: 41,
                    description: "Path outside docroot".into(),
                });
                return;
            }
        }
        let mut entries: Vec<(String, PathBuf)> = match fs::read_dir(dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect(),
            Err(e) => {
                self.counts.path_failed += 1;
                let (code, description) = io_code(&e, 43, 35);
                plan.failures.push(ScanFailure {
                    shown: dir_shown.to_owned(),
                    code,
                    description,
                });
                return;
            }
        };
        entries.sort();
        for (name, path) in entries {
            self.counts.path_attempted += 1;
            let shown = join_shown(dir_shown, &name);
            let to = join_shown(dst, &name);
            let rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            match self.metadata(&path) {
                Ok(m) if m.is_dir() => {
                    if self.o.excludes.iter().any(|p| glob(p, &name)) {
                        self.counts.path_excluded += 1;
                        continue;
                    }
                    self.counts.dir_scans += 1;
                    self.walk(plan, &path, &shown, &to, &rel);
                }
                Ok(m) => self.add(plan, &path, &shown, &to, &m, &name, &rel),
                Err(e) => {
                    self.counts.path_failed += 1;
                    let (code, description) = io_code(&e, 43, 43);
                    plan.failures.push(ScanFailure {
                        shown,
                        code,
                        description,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*.tmp", "a.tmp"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("*.tmp", "a.txt"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "aXXbYYc"));
    }

    #[test]
    fn remote_paths_stay_in_the_root() {
        let s = Sides {
            root: PathBuf::from("/r"),
            mode: Mode::Send,
        };
        assert_eq!(s.remote("/in/a").unwrap(), PathBuf::from("/r/in/a"));
        assert_eq!(s.remote("in").unwrap(), PathBuf::from("/r/in"));
        assert_eq!(s.remote("/").unwrap(), PathBuf::from("/r"));
        assert!(s.remote("../x").is_err());
        assert!(s.remote("/a/../../x").is_err());
        assert_eq!(s.source("rel").unwrap(), PathBuf::from("rel"));
    }
}
