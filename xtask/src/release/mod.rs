//! `cargo xtask release [VERSION] [--execute] [--preflight] [--skip-preflight]`.
//!
//! Dry run by default: prints which crates are published and in which order (from
//! `cargo metadata`, through `cargo_metadata`), what would stop the release, the preflight,
//! the version bump as a diff (`toml_edit`, format-preserving), the new `CHANGELOG.md`
//! section, and the `cargo package`, `cargo publish --workspace` and `git tag` commands; it
//! changes nothing. `--execute` does all of it. See `RELEASING.md`.
//!
//! The dry run needs no network and builds nothing: it reads the manifests, `git log` and
//! `git describe`, and runs `cargo metadata --no-deps --offline`. `XTASK_ROOT` overrides the
//! repository it works on (the tests point it at a temporary clone).

pub(crate) mod bump;
pub(crate) mod changelog;
pub(crate) mod workspace;

use std::path::{Path, PathBuf};
use std::process::Command;

use clap::Args;
use semver::Version;
use toml_edit::DocumentMut;

use crate::semver_checks::{self, Check};
use crate::util::{display, has_program};
use workspace::Workspace;

/// `cargo xtask release [VERSION] [--execute] [--preflight] [--skip-preflight]`.
#[derive(Args, Debug)]
pub(crate) struct ReleaseArgs {
    /// The new version (MAJOR.MINOR.PATCH); the next patch version when left out
    #[arg(value_name = "VERSION")]
    version: Option<Version>,
    /// Release for real: preflight, bump, commit, publish to crates.io, tag
    #[arg(long)]
    execute: bool,
    /// Run the preflight checks in a dry run too
    #[arg(long, conflicts_with = "skip_preflight")]
    preflight: bool,
    /// Skip the preflight checks (the clean-tree check stays)
    #[arg(long)]
    skip_preflight: bool,
    /// In a dry run, also package the published crates without building them
    /// (`cargo package --no-verify --offline --locked`): manifests, versions of the
    /// dependencies, file lists as crates.io would get them; needs the crates in cargo's cache
    #[arg(long, conflicts_with = "execute")]
    package_check: bool,
    /// The default; accepted for symmetry with --execute
    #[arg(long, hide = true, conflicts_with = "execute")]
    dry_run: bool,
}

/// The repository worked on: `XTASK_ROOT`, or the one xtask was built from.
pub(crate) fn root() -> PathBuf {
    std::env::var_os("XTASK_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(crate::util::project_root)
}

fn cargo_in(root: &Path) -> Command {
    let mut cmd = crate::util::cargo();
    cmd.current_dir(root);
    cmd
}

fn git_in(root: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(root);
    cmd
}

/// Run and capture stdout; a failure is an error carrying stderr.
fn capture(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run `{}`: {e}", display(cmd)))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed with {}: {}",
            display(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `version` in `[workspace.package]` of the root manifest.
fn workspace_version(root: &Path) -> Result<Version, String> {
    let path = root.join("Cargo.toml");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let doc: DocumentMut = text
        .parse()
        .map_err(|e| format!("{}: not valid TOML: {e}", path.display()))?;
    let v = doc
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("{}: no `version` in [workspace.package]", path.display()))?;
    Version::parse(v).map_err(|e| format!("{}: version `{v}`: {e}", path.display()))
}

/// Everything the release would do, computed without changing anything.
struct Plan {
    root: PathBuf,
    old: Version,
    new: Version,
    prev_tag: Option<String>,
    ws: Workspace,
    order: Vec<String>,
    blockers: Vec<String>,
    edits: Vec<bump::Edit>,
    changelog: String,
}

impl Plan {
    fn make(root: PathBuf, version: Option<Version>) -> Result<Plan, String> {
        let ws = Workspace::load(&root)?;
        let old = workspace_version(&root)?;
        let new = version.unwrap_or_else(|| Version::new(old.major, old.minor, old.patch + 1));
        if new <= old {
            return Err(format!(
                "the new version {new} must be greater than the workspace's {old}"
            ));
        }
        let prev_tag = semver_checks::last_release_tag(&root);
        let order = ws.publish_order().unwrap_or_default();
        let blockers = ws.blockers(&old);
        let manifests: Vec<PathBuf> = ws.members.iter().map(|m| m.manifest_path.clone()).collect();
        let edits = bump::plan(&root, &manifests, &ws.names(), &old, &new)?;
        if !edits.iter().any(|e| e.path == root.join("Cargo.toml")) {
            return Err(format!(
                "the bump changes nothing in the root Cargo.toml (no `version = \"{old}\"` in \
                 [workspace.package]?)"
            ));
        }
        let mut log = git_in(&root);
        log.args(["log", "--format=%s"]);
        if let Some(tag) = &prev_tag {
            log.arg(format!("{tag}..HEAD"));
        }
        let subjects: Vec<String> = capture(&mut log)?.lines().map(str::to_string).collect();
        let changelog = changelog::section(
            &new.to_string(),
            &changelog::today(),
            &subjects,
            &ws.names(),
        );
        Ok(Plan {
            root,
            old,
            new,
            prev_tag,
            ws,
            order,
            blockers,
            edits,
            changelog,
        })
    }

    fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    /// `cargo package -p ...` over the published crates in publish order. It verifies each
    /// package by building it alone, its workspace dependencies taken from the packages made
    /// just before (cargo's local overlay): this needs no crates.io copy of them.
    fn package_command(&self) -> Command {
        let mut cmd = cargo_in(&self.root);
        cmd.args(["package", "--locked"]);
        for name in &self.order {
            cmd.args(["-p", name]);
        }
        cmd
    }

    /// `--package-check`: the packages without their verification build, offline, from the
    /// tree as it is.
    fn package_check_command(&self) -> Command {
        let mut cmd = cargo_in(&self.root);
        cmd.args([
            "package",
            "--no-verify",
            "--offline",
            "--locked",
            "--allow-dirty",
        ]);
        for name in &self.order {
            cmd.args(["-p", name]);
        }
        cmd
    }

    /// `cargo publish --workspace`: the published crates in dependency order, each after
    /// crates.io has indexed the previous ones (cargo waits for that itself).
    fn publish_command(&self, verified: bool) -> Command {
        let mut cmd = cargo_in(&self.root);
        cmd.args(["publish", "--workspace", "--locked"]);
        if verified {
            cmd.arg("--no-verify");
        }
        cmd
    }

    /// The cargo-semver-checks step, when there is a release to compare with.
    fn semver_check(&self) -> Option<Check<'_>> {
        let baseline = self.prev_tag.clone()?;
        let (packages, _) = semver_checks::crates_to_check(&self.root, &self.ws, &baseline);
        Some(Check {
            root: &self.root,
            packages,
            baseline,
            release_type: Some(semver_checks::release_type(&self.old, &self.new)),
            report_only: false,
        })
    }

    fn print_crates(&self) {
        println!("\n== crates (from cargo metadata)");
        println!("   published, in publish order (dependencies first):");
        for (i, name) in self.order.iter().enumerate() {
            println!("   {}. {name}", i + 1);
        }
        let unpublished: Vec<&str> = self.ws.unpublished().map(|m| m.name.as_str()).collect();
        println!(
            "   not published (publish = false): {}",
            if unpublished.is_empty() {
                "none".to_string()
            } else {
                unpublished.join(", ")
            }
        );
        if !self.blockers.is_empty() {
            println!("\n== BLOCKERS: --preflight and --execute stop here until these are fixed");
            for b in &self.blockers {
                println!("   - {b}");
            }
        }
    }

    fn print_bump(&self) {
        println!("\n== version bump {} -> {}", self.old, self.new);
        for e in &self.edits {
            print!(
                "{}",
                bump::line_diff(&self.rel(&e.path), &e.before, &e.after)
            );
        }
    }

    fn print_changelog(&self) {
        println!("\n== CHANGELOG.md: new section");
        for line in self.changelog.lines() {
            println!("   {line}");
        }
    }
}

/// One preflight step: a cargo command, possibly from a cargo plugin that may be missing.
struct Step {
    cmd: Command,
    /// `(cargo subcommand, crate providing it)` when the step needs a cargo plugin.
    plugin: Option<(&'static str, &'static str)>,
    note: Option<&'static str>,
    /// Findings of cargo-semver-checks need its own exit-code reading.
    semver: bool,
}

impl Step {
    fn cargo(root: &Path, args: &[&str]) -> Step {
        let mut cmd = cargo_in(root);
        cmd.args(args);
        Step {
            cmd,
            plugin: None,
            note: None,
            semver: false,
        }
    }

    fn describe(&self) -> String {
        let mut s = display(&self.cmd);
        if let Some((sub, krate)) = self.plugin
            && !plugin_installed(sub)
        {
            s.push_str(&format!(
                "\n        [{krate} is not installed: --execute installs it with `cargo install \
                 {krate} --locked`; a dry run skips it]"
            ));
        }
        if let Some(n) = self.note {
            s.push_str(&format!("\n        [{n}]"));
        }
        s
    }
}

fn plugin_installed(sub: &str) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    has_program(&cargo, &[sub, "--version"])
}

fn preflight_steps(plan: &Plan) -> Vec<Step> {
    let root = plan.root.as_path();
    let mut steps = vec![
        // fmt, clippy -D warnings, every test with the real ascp.
        Step::cargo(root, &["xtask", "test"]),
        Step::cargo(root, &["xtask", "fuzz", "--smoke"]),
    ];
    if let Some(check) = plan.semver_check() {
        steps.push(Step {
            cmd: check.command(),
            plugin: Some(("semver-checks", semver_checks::PLUGIN)),
            note: None,
            semver: true,
        });
    }
    let mut deny = Step::cargo(root, &["deny", "check", "licenses", "advisories"]);
    deny.plugin = Some(("deny", "cargo-deny"));
    deny.note = Some("advisories fetch the RustSec database: needs network access");
    steps.push(deny);
    let mut package = Step {
        cmd: plan.package_command(),
        plugin: None,
        note: Some(
            "builds every published crate from its package, in publish order; the workspace \
             crates come from the packages made before it, not from crates.io",
        ),
        semver: false,
    };
    if plan.order.is_empty() {
        package.note = Some("nothing to package: no publishable crate");
    }
    steps.push(package);
    steps
}

fn print_semver_baseline(plan: &Plan) {
    match &plan.prev_tag {
        Some(tag) => {
            println!(
                "   cargo-semver-checks: baseline {tag}, release type {} ({} -> {})",
                semver_checks::release_type(&plan.old, &plan.new),
                plan.old,
                plan.new
            );
            for (name, why) in semver_checks::crates_to_check(&plan.root, &plan.ws, tag).1 {
                println!("      {name} not checked: {why}");
            }
        }
        None => println!(
            "   cargo-semver-checks: skipped: no baseline (there is no `v*` release tag yet, \
             and no fasp-rs crate on crates.io)"
        ),
    }
}

fn run_preflight(plan: &Plan, execute: bool) -> Result<(), String> {
    print_semver_baseline(plan);
    for mut step in preflight_steps(plan) {
        if let Some((sub, krate)) = step.plugin
            && !plugin_installed(sub)
        {
            if !execute {
                println!("   skipped (dry run): {}", step.describe());
                continue;
            }
            crate::util::run(cargo_in(&plan.root).args(["install", krate, "--locked"]))?;
        }
        if step.semver {
            plan.semver_check()
                .expect("a semver step has a baseline")
                .run()?;
            continue;
        }
        if step.plugin.is_some_and(|(sub, _)| sub == "deny")
            && !plan.root.join("deny.toml").exists()
        {
            println!(
                "   note: no deny.toml at the root: cargo-deny's defaults allow no licence, so \
                 the licence check fails until one is added"
            );
        }
        crate::util::run(&mut step.cmd)?;
    }
    Ok(())
}

fn dirty_message() -> String {
    "the working tree is not clean (see `git status`): commit or remove the changes first, a \
     release is made from a committed tree only"
        .into()
}

pub(crate) fn run(args: &ReleaseArgs) -> Result<(), String> {
    let plan = Plan::make(root(), args.version.clone())?;
    let mode = if args.execute {
        "EXECUTE"
    } else {
        "dry run: nothing is changed; pass --execute to release"
    };
    println!("== cargo xtask release {} ({mode})", plan.new);
    println!(
        "   current version {}, previous release tag: {}",
        plan.old,
        plan.prev_tag.as_deref().unwrap_or("none")
    );

    plan.print_crates();
    let blocked = !plan.blockers.is_empty();
    if blocked && (args.execute || args.preflight) {
        return Err(format!(
            "{} blocker(s) stop the release:\n  - {}",
            plan.blockers.len(),
            plan.blockers.join("\n  - ")
        ));
    }

    println!("\n== preflight");
    let clean = capture(git_in(&plan.root).args(["status", "--porcelain"]))?
        .trim()
        .is_empty();
    if args.skip_preflight {
        println!("   skipped (--skip-preflight)");
        if args.execute && !clean {
            return Err(dirty_message());
        }
    } else if args.execute || args.preflight {
        if !clean {
            return Err(dirty_message());
        }
        println!("   working tree: clean");
        run_preflight(&plan, args.execute)?;
    } else {
        println!(
            "   working tree: {}",
            if clean {
                "clean"
            } else {
                "NOT clean (--execute would refuse)"
            }
        );
        for step in preflight_steps(&plan) {
            println!("   would run: {}", step.describe());
        }
        print_semver_baseline(&plan);
        println!("   (pass --preflight to run these in a dry run)");
    }

    plan.print_bump();
    plan.print_changelog();

    let verified = args.execute && !args.skip_preflight;
    let mut publish = plan.publish_command(verified);
    let tag = format!("v{}", plan.new);
    if !args.execute {
        println!("\n== package (in the preflight)");
        println!("   would run: {}", display(&plan.package_command()));
        if args.package_check {
            if blocked {
                println!("   package check skipped: the blockers above make it fail");
            } else if !plan.order.is_empty() {
                crate::util::run(&mut plan.package_check_command())?;
                println!("   package check passed (not verified by a build)");
            }
        }
        println!("\n== publish");
        println!("   would run: {}", display(&publish));
        println!(
            "      (publishes {} in that order; --no-verify when the preflight's `cargo package` \
             has verified them)",
            plan.order.join(", ")
        );
        println!("\n== tag");
        println!(
            "   would run: git commit -m \"release {tag}\" -- <the manifests above> CHANGELOG.md Cargo.lock"
        );
        println!("   would run: git tag {tag}");
        if blocked {
            println!(
                "\ndry run complete: nothing was changed; {} blocker(s) above would stop \
                 --execute",
                plan.blockers.len()
            );
        } else {
            println!("\ndry run complete: nothing was changed");
        }
        return Ok(());
    }

    // Execute.
    let mut paths: Vec<String> = Vec::new();
    for e in &plan.edits {
        std::fs::write(&e.path, &e.after)
            .map_err(|err| format!("writing {}: {err}", e.path.display()))?;
        paths.push(plan.rel(&e.path));
    }
    let changelog_path = plan.root.join("CHANGELOG.md");
    let old_log = match std::fs::read_to_string(&changelog_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("reading {}: {e}", changelog_path.display())),
    };
    std::fs::write(
        &changelog_path,
        changelog::insert(&old_log, &plan.changelog),
    )
    .map_err(|e| format!("writing {}: {e}", changelog_path.display()))?;
    paths.push("CHANGELOG.md".into());
    crate::util::run(cargo_in(&plan.root).args(["update", "--workspace"]))?;
    paths.push("Cargo.lock".into());
    crate::util::run(git_in(&plan.root).args(["add", "--"]).args(&paths))?;
    crate::util::run(
        git_in(&plan.root)
            .args(["commit", "-m", &format!("release {tag}"), "--"])
            .args(&paths),
    )?;
    crate::util::run(&mut publish).map_err(|e| {
        format!(
            "{e}\nthe release commit is made; crates already published stay published. Fix \
             the cause, then publish the rest with `cargo publish --workspace --exclude \
             <each crate already on crates.io>` and tag with `git tag {tag}` (RELEASING.md)"
        )
    })?;
    crate::util::run(git_in(&plan.root).args(["tag", &tag]))?;
    println!("\nreleased {tag}; push with: git push && git push origin {tag}");
    Ok(())
}
