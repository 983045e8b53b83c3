//! cargo-semver-checks over the published library crates: `cargo xtask semver-checks` (CI,
//! report only) and a step of the release preflight (strict).
//!
//! The baseline is a git revision (`--baseline-rev`): the last `v*` release tag, since no
//! fasp-rs crate is on crates.io yet; before the first release there is no baseline and the
//! check is skipped unless a fallback revision is named.

use std::path::Path;
use std::process::Command;

use clap::Args;
use semver::Version;

use crate::release::workspace::Workspace;
use crate::util::{cargo, display, has_program};

/// `cargo xtask semver-checks [--baseline REV | --fallback-baseline REV] [--report-only]`.
#[derive(Args, Debug)]
pub(crate) struct SemverArgs {
    /// Compare with this git revision instead of the last `v*` tag
    #[arg(long, value_name = "REV")]
    baseline: Option<String>,
    /// Before the first release (no `v*` tag), compare with this revision instead of skipping
    #[arg(long, value_name = "REV", conflicts_with = "baseline")]
    fallback_baseline: Option<String>,
    /// Print what the checks find; fail only when they cannot run
    #[arg(long)]
    report_only: bool,
}

/// The crate that provides `cargo semver-checks`.
pub(crate) const PLUGIN: &str = "cargo-semver-checks";

/// Whether `cargo semver-checks` runs here.
pub(crate) fn installed() -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    has_program(&cargo, &["semver-checks", "--version"])
}

/// `cargo install cargo-semver-checks --locked` (minutes of compiling, once per machine).
pub(crate) fn install() -> Result<(), String> {
    eprintln!(
        "xtask: {PLUGIN} is missing; installing it with cargo install (several minutes, once)"
    );
    crate::util::run(cargo().args(["install", PLUGIN, "--locked"]))?;
    if installed() {
        Ok(())
    } else {
        Err(format!(
            "{PLUGIN} was installed but `cargo semver-checks` does not run (is cargo's bin \
             folder on PATH?)"
        ))
    }
}

/// What one run compares.
pub(crate) struct Check<'a> {
    pub(crate) root: &'a Path,
    /// The crates to check (libraries only: cargo-semver-checks reads rustdoc JSON).
    pub(crate) packages: Vec<String>,
    /// A git revision of the same repository.
    pub(crate) baseline: String,
    /// `major`, `minor` or `patch` as cargo-semver-checks means them; `None` lets it derive
    /// the release type from the versions in the manifests.
    pub(crate) release_type: Option<&'static str>,
    /// Findings are printed but do not fail; only a run that cannot complete does.
    pub(crate) report_only: bool,
}

impl Check<'_> {
    pub(crate) fn command(&self) -> Command {
        let mut cmd = cargo();
        cmd.current_dir(self.root)
            .args(["semver-checks", "check-release", "--baseline-rev"])
            .arg(&self.baseline);
        if let Some(t) = self.release_type {
            cmd.args(["--release-type", t]);
        }
        for p in &self.packages {
            cmd.args(["-p", p]);
        }
        cmd
    }

    pub(crate) fn run(&self) -> Result<(), String> {
        if self.packages.is_empty() {
            println!("   semver-checks: no published library crate to check");
            return Ok(());
        }
        let mut cmd = self.command();
        let line = display(&cmd);
        eprintln!("$ {line}");
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run `{line}`: {e}"))?;
        let verdict = verdict(status.code(), self.report_only)
            .map_err(|e| format!("`{line}` {e} ({status})"))?;
        println!("   semver-checks: {verdict}");
        Ok(())
    }
}

/// What an exit code of cargo-semver-checks means: 0 no finding, 100 findings (lints that
/// fail), anything else (101, a signal) a run that could not complete.
fn verdict(code: Option<i32>, report_only: bool) -> Result<&'static str, String> {
    match code {
        Some(0) => Ok("no change needs a bigger version bump"),
        Some(100) if report_only => Ok(
            "the changes above need a bigger version bump than the manifests say; reported \
             only (the version is chosen at release time, where the preflight checks it \
             strictly)",
        ),
        Some(100) => Err(
            "found changes that need a bigger version bump (see above): choose a larger \
             version, or undo the change"
                .into(),
        ),
        _ => Err("could not complete; see its output above".into()),
    }
}

/// The release type of `old -> new` in cargo's terms, which cargo-semver-checks uses: in
/// `0.y.z` a change of `y` is major and a change of `z` minor; in `0.0.z` every change is major.
pub(crate) fn release_type(old: &Version, new: &Version) -> &'static str {
    let leftmost = |v: &Version| match (v.major, v.minor) {
        (0, 0) => (0, 0, v.patch),
        (0, m) => (0, m, 0),
        (m, _) => (m, 0, 0),
    };
    if leftmost(old) != leftmost(new) || !new.pre.is_empty() {
        "major"
    } else if (new.major, new.minor) != (old.major, old.minor)
        || (new.major == 0 && new.patch != old.patch)
    {
        "minor"
    } else {
        "patch"
    }
}

/// The last `v*` tag reachable from HEAD, if any.
pub(crate) fn last_release_tag(root: &Path) -> Option<String> {
    let out = Command::new("git")
        .current_dir(root)
        .args(["describe", "--tags", "--abbrev=0", "--match", "v[0-9]*"])
        .output()
        .ok()?;
    let tag = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !tag.is_empty()).then_some(tag)
}

/// Whether the package `name`, whose manifest is at `manifest` (absolute), existed at `rev`:
/// cargo-semver-checks fails on a crate that the baseline does not have, and a crate new
/// since the baseline cannot break anyone.
fn existed_at(root: &Path, rev: &str, manifest: &Path, name: &str) -> bool {
    let Ok(rel) = manifest.strip_prefix(root) else {
        return false;
    };
    let out = Command::new("git")
        .current_dir(root)
        .arg("show")
        .arg(format!("{rev}:{}", rel.to_string_lossy()))
        .output();
    let Some(out) = out.ok().filter(|o| o.status.success()) else {
        return false;
    };
    String::from_utf8_lossy(&out.stdout)
        .parse::<toml_edit::DocumentMut>()
        .is_ok_and(|doc| {
            doc.get("package")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
                == Some(name)
        })
}

/// The published library crates to compare with `rev`, by name; the others are listed with
/// the reason they are left out.
pub(crate) fn crates_to_check(
    root: &Path,
    ws: &Workspace,
    rev: &str,
) -> (Vec<String>, Vec<(String, &'static str)>) {
    let mut check = Vec::new();
    let mut left_out = Vec::new();
    for m in ws.published() {
        if !m.has_lib {
            left_out.push((m.name.clone(), "no library"));
        } else if !existed_at(root, rev, &m.manifest_path, &m.name) {
            left_out.push((m.name.clone(), "new since the baseline"));
        } else {
            check.push(m.name.clone());
        }
    }
    (check, left_out)
}

/// Whether `rev` names a commit of the repository at `root`.
fn is_commit(root: &Path, rev: &str) -> bool {
    Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("{rev}^{{commit}}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `cargo xtask semver-checks`.
pub(crate) fn run(args: &SemverArgs) -> Result<(), String> {
    let root = crate::release::root();
    let baseline = match (
        &args.baseline,
        last_release_tag(&root),
        &args.fallback_baseline,
    ) {
        (Some(rev), _, _) => rev.clone(),
        (None, Some(tag), _) => {
            println!("semver-checks: baseline: the last release tag {tag}");
            tag
        }
        (None, None, Some(rev)) => {
            println!(
                "semver-checks: no `v*` release tag yet; baseline: {rev} (--fallback-baseline)"
            );
            rev.clone()
        }
        (None, None, None) => {
            println!(
                "semver-checks: skipped: there is no baseline (no `v*` release tag yet; pass \
                 --baseline REV or --fallback-baseline REV to compare with a revision)"
            );
            return Ok(());
        }
    };
    if !is_commit(&root, &baseline) {
        let msg = format!(
            "the baseline `{baseline}` is not a commit of {}",
            root.display()
        );
        if args.report_only && args.baseline.is_none() {
            // A shallow clone may lack the fallback revision: nothing to compare with.
            println!("semver-checks: skipped: {msg}");
            return Ok(());
        }
        return Err(msg);
    }
    let ws = Workspace::load(&root)?;
    let (packages, left_out) = crates_to_check(&root, &ws, &baseline);
    for (name, why) in left_out {
        println!("semver-checks: {name} not checked: {why}");
    }
    if !installed() {
        install()?;
    }
    Check {
        root: &root,
        packages,
        baseline,
        release_type: None,
        report_only: args.report_only,
    }
    .run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_types_follow_cargo() {
        let t = |a: &str, b: &str| {
            release_type(&Version::parse(a).unwrap(), &Version::parse(b).unwrap())
        };
        assert_eq!(t("0.1.0", "0.2.0"), "major");
        assert_eq!(t("0.1.0", "0.1.1"), "minor");
        assert_eq!(t("0.0.1", "0.0.2"), "major");
        assert_eq!(t("0.9.3", "1.0.0"), "major");
        assert_eq!(t("1.2.3", "2.0.0"), "major");
        assert_eq!(t("1.2.3", "1.3.0"), "minor");
        assert_eq!(t("1.2.3", "1.2.4"), "patch");
        assert_eq!(t("1.2.3", "1.3.0-rc.1"), "major");
    }

    #[test]
    fn exit_codes() {
        assert!(verdict(Some(0), false).is_ok());
        assert!(verdict(Some(0), true).is_ok());
        assert!(verdict(Some(100), true).unwrap().contains("reported only"));
        assert!(
            verdict(Some(100), false)
                .unwrap_err()
                .contains("bigger version bump")
        );
        assert!(
            verdict(Some(101), true)
                .unwrap_err()
                .contains("could not complete")
        );
        assert!(verdict(None, true).is_err());
    }

    #[test]
    fn the_command_names_baseline_type_and_crates() {
        let check = Check {
            root: Path::new("/r"),
            packages: vec!["a".into(), "b".into()],
            baseline: "v0.1.0".into(),
            release_type: Some("minor"),
            report_only: false,
        };
        let line = display(&check.command());
        assert!(
            line.ends_with(
                "semver-checks check-release --baseline-rev v0.1.0 --release-type minor -p a -p b"
            ),
            "{line}"
        );
    }
}
