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
        eprintln!("$ {}", display(&cmd));
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run `{}`: {e}", display(&cmd)))?;
        // cargo-semver-checks: 0 no finding, 100 lint findings, 101 (or else) could not run.
        match status.code() {
            Some(0) => {
                println!("   semver-checks: no change needs a bigger version bump");
                Ok(())
            }
            Some(100) if self.report_only => {
                println!(
                    "   semver-checks: the changes above need a bigger version bump than the \
                     manifests say; reported only (pick the version at release time: the \
                     release preflight checks it strictly)"
                );
                Ok(())
            }
            Some(100) => Err(format!(
                "`{}` found changes that need a bigger version bump (see above): choose a \
                 larger version, or undo the change",
                display(&cmd)
            )),
            _ => Err(format!(
                "`{}` could not complete ({status}); see its output above",
                display(&cmd)
            )),
        }
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
    let ws = crate::release::workspace::Workspace::load(&root)?;
    let (packages, skipped): (Vec<_>, Vec<_>) = ws.published().partition(|m| m.has_lib);
    for m in skipped {
        println!("semver-checks: {} has no library: not checked", m.name);
    }
    if !installed() {
        install()?;
    }
    Check {
        root: &root,
        packages: packages.iter().map(|m| m.name.clone()).collect(),
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
