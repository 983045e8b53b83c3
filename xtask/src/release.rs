//! `cargo xtask release [VERSION] [--execute] [--preflight] [--skip-preflight]`.
//!
//! Dry run by default: prints the preflight it would run, the version bump as a diff, the new
//! `CHANGELOG.md` section, the publish order computed from `cargo metadata`, and the package,
//! publish and tag commands, and changes nothing. `--execute` does all of it. See `RELEASING.md`.
//!
//! The dry run needs no network: it only reads the tree, `git log`/`git describe` and
//! `cargo metadata --no-deps`. `XTASK_ROOT` overrides the repository it works on (the tests
//! point it at a temporary clone).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::util::{display, has_program};

/// What the user asked for.
struct Options {
    version: Option<String>,
    execute: bool,
    preflight: bool,
    skip_preflight: bool,
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        version: None,
        execute: false,
        preflight: false,
        skip_preflight: false,
    };
    for a in args {
        match a.as_str() {
            "--execute" => o.execute = true,
            "--preflight" => o.preflight = true,
            "--skip-preflight" => o.skip_preflight = true,
            "--dry-run" => {}
            f if f.starts_with('-') => return Err(format!("unknown option `{f}`")),
            v if o.version.is_none() => o.version = Some(v.to_string()),
            v => return Err(format!("unexpected argument `{v}`")),
        }
    }
    if o.preflight && o.skip_preflight {
        return Err("--preflight and --skip-preflight contradict each other".into());
    }
    Ok(o)
}

fn root() -> PathBuf {
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

fn run_in(cmd: &mut Command) -> Result<(), String> {
    crate::util::run(cmd)
}

pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let opts = parse_args(args)?;
    let root = root();
    let mode = if opts.execute {
        "EXECUTE"
    } else {
        "dry run: nothing is changed; pass --execute to release"
    };

    let metadata = capture(cargo_in(&root).args([
        "metadata",
        "--format-version",
        "1",
        "--no-deps",
        "--offline",
    ]))?;
    let ws = Workspace::from_metadata(&metadata)?;
    let old = ws.version.clone();
    let new = match &opts.version {
        Some(v) => v.clone(),
        None => next_patch(&old)?,
    };
    check_version(&new)?;
    if new == old {
        return Err(format!(
            "the workspace is already at {old}; name a new version"
        ));
    }
    let prev_tag = last_tag(&root);

    println!("== cargo xtask release {new} ({mode})");
    println!(
        "   current version {old}, previous release tag: {}",
        prev_tag.as_deref().unwrap_or("none")
    );

    // Preflight.
    println!("\n== preflight");
    let clean = git_status(&root)?.trim().is_empty();
    if opts.skip_preflight {
        println!("   skipped (--skip-preflight)");
        if opts.execute && !clean {
            return Err(dirty_message());
        }
    } else if opts.execute || opts.preflight {
        preflight(&root, prev_tag.as_deref(), opts.execute, clean)?;
    } else {
        println!(
            "   working tree: {}",
            if clean {
                "clean"
            } else {
                "NOT clean (--execute would refuse)"
            }
        );
        for step in preflight_steps(prev_tag.as_deref()) {
            println!("   would run: {}", step.describe());
        }
        println!("   (pass --preflight to run these in a dry run)");
    }

    // Version bump.
    println!("\n== version bump {old} -> {new}");
    let members: BTreeSet<String> = ws.packages.iter().map(|p| p.name.clone()).collect();
    let mut edits = Vec::new();
    let root_manifest = root.join("Cargo.toml");
    let text = read(&root_manifest)?;
    let bumped = bump_manifest(&text, &members, &old, &new, true);
    edits.push((root_manifest, text, bumped));
    for p in &ws.packages {
        let text = read(&p.manifest_path)?;
        let bumped = bump_manifest(&text, &members, &old, &new, false);
        edits.push((p.manifest_path.clone(), text, bumped));
    }
    edits.retain(|(_, a, b)| a != b);
    for (path, a, b) in &edits {
        print!("{}", line_diff(&rel(&root, path), a, b));
    }
    if !edits.iter().any(|(p, _, _)| p == &root.join("Cargo.toml")) {
        return Err(format!(
            "no `version = \"{old}\"` found in [workspace.package] of Cargo.toml"
        ));
    }

    // Changelog.
    println!("\n== CHANGELOG.md: new section");
    let subjects = commit_subjects(&root, prev_tag.as_deref())?;
    let section = changelog_section(&new, &today(), &subjects, &members);
    for line in section.lines() {
        println!("   {line}");
    }

    // Publish order.
    println!("\n== publish order (from cargo metadata)");
    let order = publish_order(&ws.packages).map_err(|e| {
        println!("   cannot compute the order: {e}");
        format!(
            "{e}\n(a published crate may depend on an unpublished one only under \
             [dev-dependencies], without a version)"
        )
    })?;
    for (i, name) in order.iter().enumerate() {
        println!("   {}. {name}", i + 1);
    }
    let skipped: Vec<&str> = ws
        .packages
        .iter()
        .filter(|p| !p.publishable)
        .map(|p| p.name.as_str())
        .collect();
    println!("   not published (publish = false): {}", skipped.join(", "));

    let mut package = cargo_in(&root);
    package.args(["package", "--allow-dirty", "--no-verify"]);
    for name in &order {
        package.args(["-p", name]);
    }

    if !opts.execute {
        println!("\n== package");
        println!("   would run: {}", display(&package));
        println!("\n== publish");
        for name in &order {
            println!(
                "   would run: cargo publish -p {name}   (skipped when {name}@{new} is already \
                 on crates.io; retried while the index lags)"
            );
        }
        println!("\n== tag");
        println!("   would run: git commit -m \"release v{new}\" <the files above, Cargo.lock>");
        println!("   would run: git tag v{new}");
        println!("\ndry run complete: nothing was changed");
        return Ok(());
    }

    // Execute.
    let mut paths: Vec<String> = Vec::new();
    for (path, _, b) in &edits {
        std::fs::write(path, b).map_err(|e| format!("writing {}: {e}", path.display()))?;
        paths.push(rel(&root, path));
    }
    let changelog = root.join("CHANGELOG.md");
    let old_log = std::fs::read_to_string(&changelog).unwrap_or_default();
    std::fs::write(&changelog, insert_section(&old_log, &section))
        .map_err(|e| format!("writing CHANGELOG.md: {e}"))?;
    paths.push("CHANGELOG.md".into());
    run_in(cargo_in(&root).args(["update", "--workspace"]))?;
    paths.push("Cargo.lock".into());
    run_in(git_in(&root).args(["add", "--"]).args(&paths))?;
    run_in(
        git_in(&root)
            .args(["commit", "-m", &format!("release v{new}"), "--"])
            .args(&paths),
    )?;
    run_in(&mut package)?;
    for name in &order {
        if already_published(&root, name, &new)? {
            println!("   {name}@{new} is already on crates.io: skipped");
            continue;
        }
        publish_with_retry(&root, name)?;
    }
    run_in(git_in(&root).args(["tag", &format!("v{new}")]))?;
    println!("\nreleased v{new}; push with: git push && git push origin v{new}");
    Ok(())
}

fn dirty_message() -> String {
    "the working tree is not clean (see `git status`): commit or remove the changes first, \
     a release is made from a committed tree only"
        .into()
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn git_status(root: &Path) -> Result<String, String> {
    capture(git_in(root).args(["status", "--porcelain"]))
}

fn last_tag(root: &Path) -> Option<String> {
    capture(git_in(root).args(["describe", "--tags", "--abbrev=0", "--match", "v[0-9]*"]))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn commit_subjects(root: &Path, prev_tag: Option<&str>) -> Result<Vec<String>, String> {
    let mut cmd = git_in(root);
    cmd.args(["log", "--format=%s"]);
    if let Some(t) = prev_tag {
        cmd.arg(format!("{t}..HEAD"));
    }
    Ok(capture(&mut cmd)?.lines().map(str::to_string).collect())
}

// ---------------------------------------------------------------- preflight

/// One preflight step: a cargo command, possibly from a cargo plugin that may be missing.
struct Step {
    args: Vec<String>,
    /// `(plugin binary probe, crate to install)` when the step needs a cargo plugin.
    plugin: Option<(&'static str, &'static str)>,
    note: Option<String>,
}

impl Step {
    fn new(args: &[&str]) -> Step {
        Step {
            args: args.iter().map(|s| s.to_string()).collect(),
            plugin: None,
            note: None,
        }
    }

    fn describe(&self) -> String {
        let mut s = format!("cargo {}", self.args.join(" "));
        if let Some((sub, krate)) = self.plugin
            && !plugin_installed(sub)
        {
            s.push_str(&format!(
                "   [{krate} is not installed: --execute installs it with \
                 `cargo install {krate} --locked`; a dry run skips it]"
            ));
        }
        if let Some(n) = &self.note {
            s.push_str(&format!("   [{n}]"));
        }
        s
    }
}

fn plugin_installed(sub: &str) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    has_program(&cargo, &[sub, "--version"])
}

fn preflight_steps(prev_tag: Option<&str>) -> Vec<Step> {
    let mut steps = vec![
        Step::new(&["fmt", "--all", "--", "--check"]),
        Step::new(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        Step::new(&["xtask", "test"]),
        Step::new(&["xtask", "fuzz", "--smoke"]),
    ];
    match prev_tag {
        Some(tag) => {
            let mut s = Step::new(&["semver-checks", "--workspace", "--baseline-rev", tag]);
            s.plugin = Some(("semver-checks", "cargo-semver-checks"));
            steps.push(s);
        }
        None => {
            let mut s = Step::new(&["semver-checks"]);
            s.note = Some("skipped: no previous release tag to compare against".into());
            steps.push(s);
        }
    }
    let mut deny = Step::new(&["deny", "check", "licenses", "advisories"]);
    deny.plugin = Some(("deny", "cargo-deny"));
    deny.note = Some("advisories fetch the RustSec database: needs network access".into());
    steps.push(deny);
    steps
}

fn preflight(
    root: &Path,
    prev_tag: Option<&str>,
    execute: bool,
    clean: bool,
) -> Result<(), String> {
    if !clean {
        return Err(dirty_message());
    }
    println!("   working tree: clean");
    for step in preflight_steps(prev_tag) {
        if step.args[0] == "semver-checks" && prev_tag.is_none() {
            println!("   {}", step.describe());
            continue;
        }
        if let Some((sub, krate)) = step.plugin
            && !plugin_installed(sub)
        {
            if !execute {
                println!("   skipped (dry run): {}", step.describe());
                continue;
            }
            run_in(cargo_in(root).args(["install", krate, "--locked"]))?;
        }
        let mut cmd = cargo_in(root);
        cmd.args(&step.args);
        if step.args[0] == "deny" && !root.join("deny.toml").exists() {
            println!(
                "   note: no deny.toml at the root: cargo-deny's defaults allow no licence, \
                 so the licence check will fail until one is added"
            );
        }
        run_in(&mut cmd).map_err(|e| {
            if step.args[0] == "deny" {
                format!("{e}\n(advisories need network access to the RustSec advisory database; if it is unreachable the check cannot pass here)")
            } else {
                e
            }
        })?;
    }
    Ok(())
}

// ---------------------------------------------------------------- crates.io

fn already_published(root: &Path, name: &str, version: &str) -> Result<bool, String> {
    let out = cargo_in(root)
        .args([
            "info",
            &format!("{name}@{version}"),
            "--registry",
            "crates-io",
        ])
        .output()
        .map_err(|e| format!("cannot run cargo info: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        return Ok(text.contains(&format!("version: {version}")));
    }
    if text.contains("could not find") || text.contains("no matching package") {
        return Ok(false);
    }
    Err(format!(
        "cannot tell whether {name}@{version} is on crates.io (is the network reachable?): {}",
        text.trim()
    ))
}

fn publish_with_retry(root: &Path, name: &str) -> Result<(), String> {
    const ATTEMPTS: u32 = 5;
    for attempt in 1..=ATTEMPTS {
        let mut cmd = cargo_in(root);
        cmd.args(["publish", "-p", name]);
        eprintln!("$ {} (attempt {attempt}/{ATTEMPTS})", display(&cmd));
        let out = cmd
            .output()
            .map_err(|e| format!("cannot run `{}`: {e}", display(&cmd)))?;
        let err = String::from_utf8_lossy(&out.stderr);
        eprint!("{err}");
        if out.status.success() {
            return Ok(());
        }
        if err.contains("already exists") || err.contains("already uploaded") {
            println!("   {name} is already on crates.io: skipped");
            return Ok(());
        }
        let lagging = err.contains("failed to select a version")
            || err.contains("no matching package")
            || err.contains("failed to get");
        if !lagging || attempt == ATTEMPTS {
            return Err(format!("`cargo publish -p {name}` failed"));
        }
        let wait = Duration::from_secs(15 << (attempt - 1));
        eprintln!("the index may lag behind the last upload: retrying in {wait:?}");
        std::thread::sleep(wait);
    }
    unreachable!()
}

// ---------------------------------------------------------------- versions

fn parse_version(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
    let t = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(t)
}

fn check_version(v: &str) -> Result<(), String> {
    parse_version(v)
        .map(|_| ())
        .ok_or_else(|| format!("`{v}` is not a version (MAJOR.MINOR.PATCH)"))
}

fn next_patch(v: &str) -> Result<String, String> {
    let (a, b, c) = parse_version(v).ok_or_else(|| format!("bad current version `{v}`"))?;
    Ok(format!("{a}.{b}.{}", c + 1))
}

/// Rewrite `version = "<old>"` on the lines that matter, nothing else:
/// - root manifest: the `version` key of `[workspace.package]`, and in
///   `[workspace.dependencies]` the entries for workspace `members` that have a `path`;
/// - member manifests: a literal `version` in `[package]`, and in every `*dependencies` table
///   the entries for `members` that have a `path`.
pub(crate) fn bump_manifest(
    text: &str,
    members: &BTreeSet<String>,
    old: &str,
    new: &str,
    is_root: bool,
) -> String {
    let mut table = String::new();
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            table = t.trim_matches(['[', ']']).trim().to_string();
            out.push_str(line);
            continue;
        }
        let key = t
            .split('=')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"')
            .to_string();
        let package_table = if is_root {
            table == "workspace.package"
        } else {
            table == "package"
        };
        let deps_table = if is_root {
            table == "workspace.dependencies"
        } else {
            table.ends_with("dependencies")
        };
        let wanted = (package_table && key == "version")
            || (deps_table && members.contains(&key) && t.contains('{') && t.contains("path"));
        let replaced = if wanted {
            replace_version_value(line, old, new)
        } else {
            None
        };
        out.push_str(replaced.as_deref().unwrap_or(line));
    }
    out
}

/// In one line, replace the value of the first `version = "..."` key when it is `old`
/// (optionally prefixed with `^` or `=`), keeping the prefix.
fn replace_version_value(line: &str, old: &str, new: &str) -> Option<String> {
    let mut search = 0;
    while let Some(i) = line[search..].find("version") {
        let start = search + i;
        search = start + "version".len();
        let before_ok =
            start == 0 || matches!(line.as_bytes()[start - 1], b' ' | b'\t' | b'{' | b',');
        let rest = line[search..].trim_start();
        if !before_ok || !rest.starts_with('=') {
            continue;
        }
        let rest2 = rest[1..].trim_start();
        if !rest2.starts_with('"') {
            return None;
        }
        let q = line.len() - rest2.len(); // index of the opening quote
        let close = line[q + 1..].find('"')? + q + 1;
        let value = &line[q + 1..close];
        let (prefix, bare) = match value.strip_prefix(['^', '=']) {
            Some(b) => (&value[..1], b),
            None => ("", value),
        };
        if bare != old {
            return None;
        }
        return Some(format!("{}{prefix}{new}{}", &line[..q + 1], &line[close..]));
    }
    None
}

/// A unified-diff-like preview of a line-for-line edit.
fn line_diff(path: &str, a: &str, b: &str) -> String {
    let mut s = format!("--- a/{path}\n+++ b/{path}\n");
    for (n, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            s.push_str(&format!("@@ -{0} +{0} @@\n-{x}\n+{y}\n", n + 1));
        }
    }
    s
}

// ---------------------------------------------------------------- changelog

/// A changelog section from commit subjects, grouped by the crate named before a `:`
/// (`fasp-manager: ...`); subjects naming no workspace crate go under "Other".
pub(crate) fn changelog_section(
    version: &str,
    date: &str,
    subjects: &[String],
    members: &BTreeSet<String>,
) -> String {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut other = Vec::new();
    for s in subjects.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match s.split_once(':') {
            Some((head, tail)) if members.contains(head.trim()) => groups
                .entry(head.trim().to_string())
                .or_default()
                .push(tail.trim().to_string()),
            _ => other.push(s.to_string()),
        }
    }
    let mut out = format!("## [{version}] - {date}\n");
    if groups.is_empty() && other.is_empty() {
        out.push_str("\nNo changes.\n");
    }
    for (name, items) in groups.iter().chain(
        (!other.is_empty())
            .then(|| ("Other".to_string(), other))
            .as_ref()
            .map(|(k, v)| (k, v)),
    ) {
        out.push_str(&format!("\n### {name}\n\n"));
        for i in items {
            out.push_str(&format!("- {i}\n"));
        }
    }
    out
}

/// Put the new section after the `## Unreleased` section (before the first released version),
/// or after the title when there is no such section.
pub(crate) fn insert_section(changelog: &str, section: &str) -> String {
    if changelog.trim().is_empty() {
        return format!("# Changelog\n\n{section}");
    }
    let lines: Vec<&str> = changelog.split_inclusive('\n').collect();
    let pos = lines
        .iter()
        .position(|l| l.starts_with("## ") && !l.to_ascii_lowercase().contains("unreleased"))
        .unwrap_or(lines.len());
    let mut out: String = lines[..pos].concat();
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(section);
    if pos < lines.len() {
        out.push('\n');
    }
    out.push_str(&lines[pos..].concat());
    out
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil_date((secs / 86_400) as i64)
}

/// Days since 1970-01-01 to a date (Howard Hinnant's algorithm).
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

// ---------------------------------------------------------------- workspace

pub(crate) struct Package {
    pub(crate) name: String,
    pub(crate) manifest_path: PathBuf,
    pub(crate) publishable: bool,
    /// Workspace members this one needs at build time (normal and build dependencies).
    pub(crate) deps: Vec<String>,
}

pub(crate) struct Workspace {
    pub(crate) version: String,
    pub(crate) packages: Vec<Package>,
}

impl Workspace {
    pub(crate) fn from_metadata(text: &str) -> Result<Workspace, String> {
        let json = Json::parse(text)?;
        let members: BTreeSet<String> = json
            .get("workspace_members")
            .and_then(Json::as_array)
            .ok_or("cargo metadata: no workspace_members")?
            .iter()
            .filter_map(Json::as_str)
            .map(str::to_string)
            .collect();
        let mut raw = Vec::new();
        for p in json
            .get("packages")
            .and_then(Json::as_array)
            .ok_or("cargo metadata: no packages")?
        {
            let field = |k: &str| p.get(k).and_then(Json::as_str).unwrap_or("").to_string();
            if !members.contains(&field("id")) {
                continue;
            }
            let publishable = match p.get("publish") {
                Some(Json::Array(regs)) => !regs.is_empty(),
                _ => true,
            };
            let deps: Vec<(String, bool)> = p
                .get("dependencies")
                .and_then(Json::as_array)
                .unwrap_or(&[])
                .iter()
                .filter(|d| d.get("path").is_some())
                .map(|d| {
                    let name = d.get("name").and_then(Json::as_str).unwrap_or("");
                    let dev = d.get("kind").and_then(Json::as_str) == Some("dev");
                    (name.to_string(), dev)
                })
                .collect();
            raw.push((
                field("name"),
                field("version"),
                PathBuf::from(field("manifest_path")),
                publishable,
                deps,
            ));
        }
        let names: BTreeSet<String> = raw.iter().map(|r| r.0.clone()).collect();
        let mut version = None;
        let mut packages = Vec::new();
        for (name, v, manifest_path, publishable, deps) in raw {
            if publishable {
                match &version {
                    None => version = Some(v),
                    Some(w) if *w != v => {
                        return Err(format!(
                            "publishable crates disagree on the version ({w} vs {name} {v})"
                        ));
                    }
                    _ => {}
                }
            }
            let mut deps: Vec<String> = deps
                .into_iter()
                .filter(|(d, dev)| !dev && names.contains(d))
                .map(|(d, _)| d)
                .collect();
            deps.sort();
            deps.dedup();
            packages.push(Package {
                name,
                manifest_path,
                publishable,
                deps,
            });
        }
        packages.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Workspace {
            version: version.ok_or("no publishable crate in the workspace")?,
            packages,
        })
    }
}

/// Publishable crates, dependencies first; ties broken by name.
pub(crate) fn publish_order(packages: &[Package]) -> Result<Vec<String>, String> {
    let publishable: BTreeMap<&str, &Package> = packages
        .iter()
        .filter(|p| p.publishable)
        .map(|p| (p.name.as_str(), p))
        .collect();
    let mut pending: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, p) in &publishable {
        let mut needs = BTreeSet::new();
        for d in &p.deps {
            if !publishable.contains_key(d.as_str()) {
                return Err(format!(
                    "{name} depends on {d}, which is not published (publish = false)"
                ));
            }
            needs.insert(d.as_str());
        }
        pending.insert(name, needs);
    }
    let mut order = Vec::new();
    while !pending.is_empty() {
        let next = pending
            .iter()
            .find(|(_, needs)| needs.is_empty())
            .map(|(n, _)| *n)
            .ok_or_else(|| {
                format!(
                    "dependency cycle among {}",
                    pending.keys().copied().collect::<Vec<_>>().join(", ")
                )
            })?;
        pending.remove(next);
        for needs in pending.values_mut() {
            needs.remove(next);
        }
        order.push(next.to_string());
    }
    Ok(order)
}

// ---------------------------------------------------------------- a tiny JSON reader

/// Just enough JSON for `cargo metadata`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    pub(crate) fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("json: trailing characters at byte {}", p.i));
        }
        Ok(v)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(a) => Some(a),
            _ => None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("json: {what} at byte {}", self.i))
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, lit: &str) -> bool {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            None => self.err("unexpected end"),
            Some(b'{') => {
                self.i += 1;
                let mut kv = Vec::new();
                self.ws();
                if self.eat("}") {
                    return Ok(Json::Object(kv));
                }
                loop {
                    self.ws();
                    let k = self.string()?;
                    self.ws();
                    if !self.eat(":") {
                        return self.err("expected `:`");
                    }
                    kv.push((k, self.value()?));
                    self.ws();
                    if self.eat("}") {
                        return Ok(Json::Object(kv));
                    }
                    if !self.eat(",") {
                        return self.err("expected `,` or `}`");
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut a = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Ok(Json::Array(a));
                }
                loop {
                    a.push(self.value()?);
                    self.ws();
                    if self.eat("]") {
                        return Ok(Json::Array(a));
                    }
                    if !self.eat(",") {
                        return self.err("expected `,` or `]`");
                    }
                }
            }
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(_) if self.eat("null") => Ok(Json::Null),
            Some(_) if self.eat("true") => Ok(Json::Bool(true)),
            Some(_) if self.eat("false") => Ok(Json::Bool(false)),
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'
                    )
                {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or("");
                match text.parse() {
                    Ok(n) if !text.is_empty() => Ok(Json::Number(n)),
                    _ => {
                        self.i = start;
                        self.err("unexpected character")
                    }
                }
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let h = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match h {
            Some(v) => {
                self.i += 4;
                Ok(v)
            }
            None => self.err("bad \\u escape"),
        }
    }

    fn string(&mut self) -> Result<String, String> {
        if !self.eat("\"") {
            return self.err("expected a string");
        }
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return self.err("unterminated string");
            };
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return self.err("unterminated escape");
                    };
                    self.i += 1;
                    let ch = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xD800..0xDC00).contains(&cp) && self.eat("\\u") {
                                let lo = self.hex4()?;
                                cp = 0x10000
                                    + ((cp - 0xD800) << 10)
                                    + (lo.wrapping_sub(0xDC00) & 0x3FF);
                            }
                            char::from_u32(cp).unwrap_or('\u{FFFD}')
                        }
                        _ => return self.err("bad escape"),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).or_else(|_| self.err("invalid UTF-8 in string"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn json_reader() {
        let j = Json::parse(
            r#" {"a": [1, -2.5e3, true, false, null], "b": "x\"\\\n\u00e9\ud83d\ude00", "c": {}, "d": []} "#,
        )
        .unwrap();
        assert_eq!(
            j.get("a").unwrap().as_array().unwrap(),
            &[
                Json::Number(1.0),
                Json::Number(-2500.0),
                Json::Bool(true),
                Json::Bool(false),
                Json::Null
            ]
        );
        assert_eq!(j.get("b").unwrap().as_str(), Some("x\"\\\n\u{e9}\u{1F600}"));
        assert_eq!(j.get("c"), Some(&Json::Object(vec![])));
        assert_eq!(j.get("d").unwrap().as_array(), Some(&[][..]));
        assert!(Json::parse("[1,]").is_err());
        assert!(Json::parse("{\"a\" 1}").is_err());
        assert!(Json::parse("\"open").is_err());
        assert!(Json::parse("[] x").is_err());
    }

    const ROOT: &str = r#"[workspace]
members = ["crates/*"]

[workspace.package]
version = "0.1.0"
rust-version = "1.85"

[workspace.dependencies]
# Internal crates
a = { path = "crates/a", version = "0.1.0", default-features = false }
b = { path = "crates/b", version = "=0.1.0" }
ext = { version = "0.1.0" }
serde = "0.1.0"

[profile.release]
version = "0.1.0"
"#;

    #[test]
    fn bump_root_manifest() {
        let out = bump_manifest(ROOT, &set(&["a", "b"]), "0.1.0", "0.2.0", true);
        let changed: Vec<(&str, &str)> = ROOT
            .lines()
            .zip(out.lines())
            .filter(|(x, y)| x != y)
            .collect();
        assert_eq!(
            changed,
            vec![
                ("version = \"0.1.0\"", "version = \"0.2.0\""),
                (
                    "a = { path = \"crates/a\", version = \"0.1.0\", default-features = false }",
                    "a = { path = \"crates/a\", version = \"0.2.0\", default-features = false }"
                ),
                (
                    "b = { path = \"crates/b\", version = \"=0.1.0\" }",
                    "b = { path = \"crates/b\", version = \"=0.2.0\" }"
                ),
            ]
        );
        assert_eq!(out.len(), ROOT.len());
        let diff = line_diff("Cargo.toml", ROOT, &out);
        assert!(diff.contains("@@ -5 +5 @@\n-version = \"0.1.0\"\n+version = \"0.2.0\"\n"));
    }

    #[test]
    fn bump_member_manifest() {
        let m = "[package]\nname = \"c\"\nversion.workspace = true\n\n[dependencies]\n\
                 a.workspace = true\nb = { path = \"../b\", version = \"0.1.0\" }\n\
                 x = { version = \"0.1.0\" }\n\n[dev-dependencies]\nt = { path = \"../t\" }\n";
        let out = bump_manifest(m, &set(&["a", "b", "c", "t"]), "0.1.0", "0.2.0", false);
        assert_eq!(
            out,
            m.replace(
                "b = { path = \"../b\", version = \"0.1.0\" }",
                "b = { path = \"../b\", version = \"0.2.0\" }"
            )
        );
        // A literal package version is bumped too; another version is left alone.
        let p = "[package]\nversion = \"0.1.0\"\n";
        assert_eq!(
            bump_manifest(p, &set(&[]), "0.1.0", "0.2.0", false),
            "[package]\nversion = \"0.2.0\"\n"
        );
        assert_eq!(bump_manifest(p, &set(&[]), "0.0.9", "0.2.0", false), p);
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("0.2.0"), Some((0, 2, 0)));
        assert_eq!(parse_version("1.2.3-rc.1"), Some((1, 2, 3)));
        assert!(check_version("0.2").is_err());
        assert!(check_version("v0.2.0").is_err());
        assert_eq!(next_patch("0.1.9").unwrap(), "0.1.10");
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(20_513), "2026-03-01");
    }

    /// A trimmed `cargo metadata --no-deps` answer.
    const METADATA: &str = r#"{"packages":[
      {"name":"fasp-cli","version":"0.1.0","id":"cli","publish":null,"manifest_path":"/r/crates/fasp-cli/Cargo.toml",
       "dependencies":[
         {"name":"fasp-manager","kind":null,"path":"/r/crates/fasp-manager","req":"^0.1.0"},
         {"name":"fasp-token","kind":null,"path":"/r/crates/fasp-token","req":"^0.1.0"},
         {"name":"fasp-testkit","kind":"dev","path":"/r/crates/fasp-testkit","req":"*"},
         {"name":"clap","kind":null,"source":"registry","req":"^4"}]},
      {"name":"fasp-manager","version":"0.1.0","id":"manager","publish":null,"manifest_path":"/r/crates/fasp-manager/Cargo.toml",
       "dependencies":[
         {"name":"fasp-spec","kind":null,"path":"/r/crates/fasp-spec","req":"^0.1.0"},
         {"name":"fasp-mgmt-proto","kind":null,"path":"/r/crates/fasp-mgmt-proto","req":"^0.1.0"}]},
      {"name":"fasp-token","version":"0.1.0","id":"token","publish":null,"manifest_path":"/r/crates/fasp-token/Cargo.toml",
       "dependencies":[{"name":"fasp-spec","kind":null,"path":"/r/crates/fasp-spec","req":"^0.1.0"}]},
      {"name":"fasp-spec","version":"0.1.0","id":"spec","publish":null,"manifest_path":"/r/crates/fasp-spec/Cargo.toml",
       "dependencies":[{"name":"fasp-mgmt-proto","kind":"dev","path":"/r/crates/fasp-mgmt-proto","req":"^0.1.0"}]},
      {"name":"fasp-mgmt-proto","version":"0.1.0","id":"proto","publish":null,"manifest_path":"/r/crates/fasp-mgmt-proto/Cargo.toml",
       "dependencies":[]},
      {"name":"fasp-testkit","version":"0.1.0","id":"testkit","publish":[],"manifest_path":"/r/crates/fasp-testkit/Cargo.toml",
       "dependencies":[]},
      {"name":"xtask","version":"0.0.0","id":"xtask","publish":[],"manifest_path":"/r/xtask/Cargo.toml","dependencies":[]}
    ],
    "workspace_members":["cli","manager","token","spec","proto","testkit","xtask"],
    "version":1}"#;

    #[test]
    fn order_from_metadata() {
        let ws = Workspace::from_metadata(METADATA).unwrap();
        assert_eq!(ws.version, "0.1.0");
        assert_eq!(
            publish_order(&ws.packages).unwrap(),
            [
                "fasp-mgmt-proto",
                "fasp-spec",
                "fasp-manager",
                "fasp-token",
                "fasp-cli"
            ]
        );
        let unpublished: Vec<&str> = ws
            .packages
            .iter()
            .filter(|p| !p.publishable)
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(unpublished, ["fasp-testkit", "xtask"]);
    }

    #[test]
    fn order_errors() {
        let pkg = |name: &str, publishable, deps: &[&str]| Package {
            name: name.into(),
            manifest_path: PathBuf::new(),
            publishable,
            deps: deps.iter().map(|d| d.to_string()).collect(),
        };
        let cyc = [pkg("a", true, &["b"]), pkg("b", true, &["a"])];
        assert!(publish_order(&cyc).unwrap_err().contains("cycle"));
        let hidden = [pkg("a", true, &["b"]), pkg("b", false, &[])];
        assert!(
            publish_order(&hidden)
                .unwrap_err()
                .contains("not published")
        );
    }

    #[test]
    fn changelog_grouping() {
        let subjects: Vec<String> = [
            "fasp-manager: retry on crash",
            "README: crate map",
            "fasp-spec: render tags",
            "fasp-manager: watchdog",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let s = changelog_section(
            "0.2.0",
            "2026-01-02",
            &subjects,
            &set(&["fasp-manager", "fasp-spec"]),
        );
        assert_eq!(
            s,
            "## [0.2.0] - 2026-01-02\n\n### fasp-manager\n\n- retry on crash\n- watchdog\n\n\
             ### fasp-spec\n\n- render tags\n\n### Other\n\n- README: crate map\n"
        );
        assert!(changelog_section("0.2.0", "d", &[], &set(&[])).contains("No changes."));
    }

    #[test]
    fn changelog_insertion() {
        let log = "# Changelog\n\n## Unreleased\n\nstuff\n\n## [0.1.0] - 2026-01-01\n\nold\n";
        let out = insert_section(log, "## [0.2.0] - d\n\nnew\n");
        assert_eq!(
            out,
            "# Changelog\n\n## Unreleased\n\nstuff\n\n## [0.2.0] - d\n\nnew\n\n## [0.1.0] - 2026-01-01\n\nold\n"
        );
        let out = insert_section(
            "# Changelog\n\n## Unreleased\n\nstuff\n",
            "## [0.2.0] - d\n",
        );
        assert_eq!(
            out,
            "# Changelog\n\n## Unreleased\n\nstuff\n\n## [0.2.0] - d\n"
        );
        assert_eq!(
            insert_section("", "## [0.2.0] - d\n"),
            "# Changelog\n\n## [0.2.0] - d\n"
        );
    }
}
