//! The new `CHANGELOG.md` section: the commit subjects since the last release tag, grouped by
//! the crate named before the `:` of each subject (`fasp-manager: ...`, the project's commit
//! style); subjects naming no crate go under "Other". RELEASING.md says why this is not
//! git-cliff.

use std::collections::{BTreeMap, BTreeSet};

/// The section for `version`, dated `date` (YYYY-MM-DD).
pub(crate) fn section(
    version: &str,
    date: &str,
    subjects: &[String],
    crates: &BTreeSet<String>,
) -> String {
    let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut other = Vec::new();
    for subject in subjects.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match subject.split_once(':') {
            Some((head, tail)) if crates.contains(head.trim()) => {
                groups.entry(head.trim()).or_default().push(tail.trim());
            }
            _ => other.push(subject),
        }
    }
    let mut out = format!("## [{version}] - {date}\n");
    if groups.is_empty() && other.is_empty() {
        out.push_str("\nNo changes.\n");
    }
    let other = (!other.is_empty()).then_some(("Other", other));
    for (title, items) in groups.into_iter().chain(other) {
        out.push_str(&format!("\n### {title}\n\n"));
        for item in items {
            out.push_str(&format!("- {item}\n"));
        }
    }
    out
}

/// The changelog with `section` put after the `## Unreleased` section (before the first
/// released version), or at the end when there is no released version yet.
pub(crate) fn insert(changelog: &str, section: &str) -> String {
    if changelog.trim().is_empty() {
        return format!("# Changelog\n\n{section}");
    }
    let lines: Vec<&str> = changelog.split_inclusive('\n').collect();
    let first_release = lines
        .iter()
        .position(|l| l.starts_with("## ") && !l.to_ascii_lowercase().contains("unreleased"))
        .unwrap_or(lines.len());
    let mut out = lines[..first_release].concat();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    if !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(section);
    if first_release < lines.len() {
        out.push('\n');
    }
    out.push_str(&lines[first_release..].concat());
    out
}

/// Today's date in UTC, as YYYY-MM-DD.
pub(crate) fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn grouping() {
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
        let s = section(
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
        assert!(section("0.2.0", "d", &[], &set(&[])).contains("No changes."));
    }

    #[test]
    fn insertion() {
        let log = "# Changelog\n\n## Unreleased\n\nstuff\n\n## [0.1.0] - 2026-01-01\n\nold\n";
        assert_eq!(
            insert(log, "## [0.2.0] - d\n\nnew\n"),
            "# Changelog\n\n## Unreleased\n\nstuff\n\n## [0.2.0] - d\n\nnew\n\n\
             ## [0.1.0] - 2026-01-01\n\nold\n"
        );
        assert_eq!(
            insert("# Changelog\n\n## Unreleased\n\nstuff", "## [0.2.0] - d\n"),
            "# Changelog\n\n## Unreleased\n\nstuff\n\n## [0.2.0] - d\n"
        );
        assert_eq!(
            insert("", "## [0.2.0] - d\n"),
            "# Changelog\n\n## [0.2.0] - d\n"
        );
    }

    #[test]
    fn date_shape() {
        let d = today();
        assert_eq!(d.len(), 10, "{d}");
        assert!(d.starts_with("20") && d.as_bytes()[4] == b'-' && d.as_bytes()[7] == b'-');
        let parsed: jiff::civil::Date = d.parse().unwrap();
        assert_eq!(parsed.to_string(), d);
    }
}
