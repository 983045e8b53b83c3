//! The version bump, as format-preserving edits of the manifests (`toml_edit`): only version
//! values change, every comment, space and key order stays.
//!
//! - root manifest: `version` in `[workspace.package]`, and in `[workspace.dependencies]` the
//!   `version` of entries for workspace members that have a `path`;
//! - member manifests: a literal `version` in `[package]` (not `version.workspace = true`), and
//!   in every dependency table (`[dependencies]`, `[dev-dependencies]`,
//!   `[build-dependencies]`, and their `[target.'cfg'.*]` forms) the `version` of entries for
//!   members that have a `path`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use semver::{Version, VersionReq};
use toml_edit::{DocumentMut, Item, TableLike, Value};

/// A manifest and what it becomes.
pub(crate) struct Edit {
    pub(crate) path: PathBuf,
    pub(crate) before: String,
    pub(crate) after: String,
}

/// What the bump would change, in the root manifest first; manifests that stay the same are
/// left out. A requirement that does not accept the new version and cannot be bumped (`0.1`,
/// `>=0.1, <0.2`) is an error naming the file and the entry.
pub(crate) fn plan(
    root: &Path,
    member_manifests: &[PathBuf],
    members: &BTreeSet<String>,
    old: &Version,
    new: &Version,
) -> Result<Vec<Edit>, String> {
    let mut edits = Vec::new();
    let root_manifest = root.join("Cargo.toml");
    for (path, is_root) in
        std::iter::once((&root_manifest, true)).chain(member_manifests.iter().map(|p| (p, false)))
    {
        let before = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let after = bump_manifest(&before, is_root, members, old, new)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if after != before {
            edits.push(Edit {
                path: path.clone(),
                before,
                after,
            });
        }
    }
    Ok(edits)
}

/// One manifest's text after the bump.
pub(crate) fn bump_manifest(
    text: &str,
    is_root: bool,
    members: &BTreeSet<String>,
    old: &Version,
    new: &Version,
) -> Result<String, String> {
    let mut doc: DocumentMut = text.parse().map_err(|e| format!("not valid TOML: {e}"))?;
    let mut problems = Vec::new();

    let (package, deps_parent): (&[&str], &[&str]) = if is_root {
        (&["workspace", "package"], &["workspace"])
    } else {
        (&["package"], &[])
    };
    if let Some(v) = walk(doc.as_item_mut(), package)
        .and_then(|t| t.get_mut("version"))
        .and_then(Item::as_value_mut)
        && v.as_str() == Some(old.to_string().as_str())
    {
        set_str(v, &new.to_string());
    }

    if is_root {
        if let Some(deps) = walk(doc.as_item_mut(), deps_parent)
            .and_then(|t| t.get_mut("dependencies"))
            .and_then(Item::as_table_like_mut)
        {
            bump_deps(
                deps,
                "workspace.dependencies",
                members,
                old,
                new,
                &mut problems,
            );
        }
    } else {
        for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
            if let Some(deps) = doc.get_mut(kind).and_then(Item::as_table_like_mut) {
                bump_deps(deps, kind, members, old, new, &mut problems);
            }
        }
        if let Some(targets) = doc.get_mut("target").and_then(Item::as_table_like_mut) {
            for (cfg, target) in targets.iter_mut() {
                let Some(target) = target.as_table_like_mut() else {
                    continue;
                };
                for kind in ["dependencies", "dev-dependencies", "build-dependencies"] {
                    if let Some(deps) = target.get_mut(kind).and_then(Item::as_table_like_mut) {
                        let table = format!("target.{}.{kind}", cfg.get());
                        bump_deps(deps, &table, members, old, new, &mut problems);
                    }
                }
            }
        }
    }

    if problems.is_empty() {
        Ok(doc.to_string())
    } else {
        Err(problems.join("; "))
    }
}

/// The table at a dotted path (the document itself for an empty path).
fn walk<'a>(item: &'a mut Item, path: &[&str]) -> Option<&'a mut dyn TableLike> {
    let mut here = item;
    for key in path {
        here = here.as_table_like_mut()?.get_mut(key)?;
    }
    here.as_table_like_mut()
}

/// Bump the `version` of the entries for workspace members that have a `path`.
fn bump_deps(
    deps: &mut dyn TableLike,
    table: &str,
    members: &BTreeSet<String>,
    old: &Version,
    new: &Version,
    problems: &mut Vec<String>,
) {
    for (key, entry) in deps.iter_mut() {
        // `name = "1.0"` names a registry version: never a path dependency.
        let Some(entry) = entry.as_table_like_mut() else {
            continue;
        };
        let package = entry
            .get("package")
            .and_then(Item::as_str)
            .unwrap_or(key.get())
            .to_string();
        if !members.contains(&package) || !entry.contains_key("path") {
            continue;
        }
        let Some(value) = entry.get_mut("version").and_then(Item::as_value_mut) else {
            continue;
        };
        let Some(req) = value.as_str() else {
            problems.push(format!(
                "[{table}] {}: `version` is not a string",
                key.get()
            ));
            continue;
        };
        match bump_requirement(req, old, new) {
            Ok(Some(bumped)) => set_str(value, &bumped),
            Ok(None) => {}
            Err(e) => problems.push(format!("[{table}] {}: {e}", key.get())),
        }
    }
}

/// A requirement naming exactly `old` (`0.1.0`, `^0.1.0`, `=0.1.0`, `~0.1.0`) becomes the
/// same requirement on `new`; one that already accepts `new` stays; any other is an error.
pub(crate) fn bump_requirement(
    req: &str,
    old: &Version,
    new: &Version,
) -> Result<Option<String>, String> {
    let text = req.trim();
    let split = text
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(text.len());
    let (op, rest) = text.split_at(split);
    if matches!(op.trim(), "" | "^" | "=" | "~") && Version::parse(rest).is_ok_and(|v| v == *old) {
        return Ok(Some(format!("{op}{new}")));
    }
    let parsed = VersionReq::parse(text)
        .map_err(|e| format!("`{text}` is not a version requirement: {e}"))?;
    if parsed.matches(new) {
        Ok(None)
    } else {
        Err(format!(
            "the requirement `{text}` does not accept {new}; write it as `{old}` so that the \
             release bumps it"
        ))
    }
}

/// Replace a string value, keeping the spaces and comments around it.
fn set_str(value: &mut Value, text: &str) {
    let decor = value.decor().clone();
    *value = Value::from(text);
    *value.decor_mut() = decor;
}

/// A unified-diff-like preview: the bump edits values inside lines, so the lines pair up.
pub(crate) fn line_diff(path: &str, before: &str, after: &str) -> String {
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    let (a, b): (Vec<&str>, Vec<&str>) = (before.lines().collect(), after.lines().collect());
    if a.len() != b.len() {
        out.push_str(&format!(
            "(the line count changes from {} to {}: the whole new file follows)\n{after}",
            a.len(),
            b.len()
        ));
        return out;
    }
    for (n, (x, y)) in a.iter().zip(&b).enumerate() {
        if x != y {
            out.push_str(&format!("@@ -{0} +{0} @@\n-{x}\n+{y}\n", n + 1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    /// The lines that differ, as (before, after).
    fn changed<'a>(a: &'a str, b: &'a str) -> Vec<(&'a str, &'a str)> {
        assert_eq!(a.lines().count(), b.lines().count());
        a.lines().zip(b.lines()).filter(|(x, y)| x != y).collect()
    }

    const ROOT: &str = r#"[workspace]
members = ["crates/*"]

[workspace.package]
version = "0.1.0"   # shared by every crate
rust-version = "1.85"

[workspace.dependencies]
# Internal crates
a = { path = "crates/a", version = "0.1.0", default-features = false }
b = { path = "crates/b", version = "=0.1.0" }
renamed = { path = "crates/c", package = "c", version = "^0.1.0" }
ext = { version = "0.1.0" }
serde = "0.1.0"
d = { path = "crates/d" }

[workspace.dependencies.e]
path = "crates/e"
version = "0.1.0"

[profile.release]
version = "0.1.0"
"#;

    #[test]
    fn root_manifest() {
        let out = bump_manifest(
            ROOT,
            true,
            &set(&["a", "b", "c", "d", "e"]),
            &v("0.1.0"),
            &v("0.2.0"),
        )
        .unwrap();
        assert_eq!(
            changed(ROOT, &out),
            [
                (
                    "version = \"0.1.0\"   # shared by every crate",
                    "version = \"0.2.0\"   # shared by every crate"
                ),
                (
                    "a = { path = \"crates/a\", version = \"0.1.0\", default-features = false }",
                    "a = { path = \"crates/a\", version = \"0.2.0\", default-features = false }"
                ),
                (
                    "b = { path = \"crates/b\", version = \"=0.1.0\" }",
                    "b = { path = \"crates/b\", version = \"=0.2.0\" }"
                ),
                (
                    "renamed = { path = \"crates/c\", package = \"c\", version = \"^0.1.0\" }",
                    "renamed = { path = \"crates/c\", package = \"c\", version = \"^0.2.0\" }"
                ),
                ("version = \"0.1.0\"", "version = \"0.2.0\""),
            ]
        );
        // The last change is the table form of `e`, not the profile.
        assert!(out.ends_with("[profile.release]\nversion = \"0.1.0\"\n"));
        let diff = line_diff("Cargo.toml", ROOT, &out);
        assert!(diff.starts_with("--- a/Cargo.toml\n+++ b/Cargo.toml\n@@ -5 +5 @@\n"));
    }

    #[test]
    fn member_manifest() {
        let m = "[package]\nname = \"c\"\nversion.workspace = true\n\n[dependencies]\n\
                 a.workspace = true\nb = { path = \"../b\", version = \"0.1.0\" }\n\
                 x = { version = \"0.1.0\" }\n\n[dev-dependencies]\nt = { path = \"../t\" }\n\n\
                 [target.'cfg(unix)'.build-dependencies]\nb = { path = \"../b\", version = \"~0.1.0\" }\n";
        let out = bump_manifest(
            m,
            false,
            &set(&["a", "b", "c", "t"]),
            &v("0.1.0"),
            &v("0.2.0"),
        )
        .unwrap();
        assert_eq!(
            changed(m, &out),
            [
                (
                    "b = { path = \"../b\", version = \"0.1.0\" }",
                    "b = { path = \"../b\", version = \"0.2.0\" }"
                ),
                (
                    "b = { path = \"../b\", version = \"~0.1.0\" }",
                    "b = { path = \"../b\", version = \"~0.2.0\" }"
                ),
            ]
        );
        // A literal package version is bumped; another version is left alone.
        let p = "[package]\nversion = \"0.1.0\"\n";
        let out = bump_manifest(p, false, &set(&[]), &v("0.1.0"), &v("0.2.0")).unwrap();
        assert_eq!(out, "[package]\nversion = \"0.2.0\"\n");
        let out = bump_manifest(p, false, &set(&[]), &v("0.0.9"), &v("0.2.0")).unwrap();
        assert_eq!(out, p);
    }

    #[test]
    fn requirements() {
        let (old, new) = (v("0.1.0"), v("0.2.0"));
        assert_eq!(
            bump_requirement("0.1.0", &old, &new).unwrap().as_deref(),
            Some("0.2.0")
        );
        assert_eq!(
            bump_requirement("= 0.1.0", &old, &new).unwrap().as_deref(),
            Some("= 0.2.0")
        );
        // Already accepts the new version: left alone.
        assert_eq!(bump_requirement(">=0.1", &old, &new).unwrap(), None);
        assert_eq!(bump_requirement("0.1", &old, &v("0.1.1")).unwrap(), None);
        let err = bump_requirement("0.1", &old, &new).unwrap_err();
        assert!(err.contains("`0.1` does not accept 0.2.0"), "{err}");
        assert!(bump_requirement("zero", &old, &new).is_err());
        let err = bump_manifest(
            "[dependencies]\na = { path = \"../a\", version = \"0.1\" }\n",
            false,
            &set(&["a"]),
            &old,
            &new,
        )
        .unwrap_err();
        assert!(
            err.starts_with("[dependencies] a: the requirement `0.1`"),
            "{err}"
        );
        assert!(bump_manifest("[package\n", false, &set(&[]), &old, &new).is_err());
    }
}
