//! The workspace as `cargo metadata` describes it: its members, which of them are published,
//! the order they must be published in, and what would stop a release.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cargo_metadata::{DependencyKind, Metadata, MetadataCommand, TargetKind};
use semver::{Version, VersionReq};

/// One workspace member.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) version: Version,
    pub(crate) manifest_path: PathBuf,
    /// Not `publish = false` (nor an empty registry list).
    pub(crate) published: bool,
    /// Has a library target (cargo-semver-checks looks at libraries only).
    pub(crate) has_lib: bool,
    /// The other members it needs when built from its package: normal and build
    /// dependencies, with the version requirement as written (`*` when there is none).
    /// Dev-dependencies do not count: cargo drops the ones without a version when packaging.
    pub(crate) deps: Vec<(String, VersionReq)>,
}

/// The members, sorted by name.
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    pub(crate) members: Vec<Member>,
}

impl Workspace {
    /// `cargo metadata --no-deps --offline` in `root`: reads the manifests only, no network.
    pub(crate) fn load(root: &Path) -> Result<Workspace, String> {
        let metadata = MetadataCommand::new()
            .manifest_path(root.join("Cargo.toml"))
            .current_dir(root)
            .no_deps()
            .other_options(vec!["--offline".to_string()])
            .exec()
            .map_err(|e| format!("cargo metadata in {}: {e}", root.display()))?;
        Ok(Workspace::from_metadata(&metadata))
    }

    pub(crate) fn from_metadata(metadata: &Metadata) -> Workspace {
        let packages = metadata.workspace_packages();
        let names: BTreeSet<&str> = packages.iter().map(|p| p.name.as_str()).collect();
        let mut members: Vec<Member> = packages
            .iter()
            .map(|p| {
                let mut deps: Vec<(String, VersionReq)> = p
                    .dependencies
                    .iter()
                    .filter(|d| d.kind != DependencyKind::Development)
                    .filter(|d| d.path.is_some() && names.contains(d.name.as_str()))
                    .map(|d| (d.name.clone(), d.req.clone()))
                    .collect();
                deps.sort_by(|a, b| a.0.cmp(&b.0));
                deps.dedup_by(|a, b| a.0 == b.0);
                Member {
                    name: p.name.to_string(),
                    version: p.version.clone(),
                    manifest_path: p.manifest_path.clone().into_std_path_buf(),
                    published: p
                        .publish
                        .as_ref()
                        .is_none_or(|registries| !registries.is_empty()),
                    has_lib: p.targets.iter().any(|t| {
                        t.kind
                            .iter()
                            .any(|k| matches!(k, TargetKind::Lib | TargetKind::RLib))
                    }),
                    deps,
                }
            })
            .collect();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        Workspace { members }
    }

    pub(crate) fn names(&self) -> BTreeSet<String> {
        self.members.iter().map(|m| m.name.clone()).collect()
    }

    pub(crate) fn published(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| m.published)
    }

    pub(crate) fn unpublished(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().filter(|m| !m.published)
    }

    /// The published members, each after the published members it depends on, ties broken
    /// by name. Dependencies on unpublished members are left out here ([`Self::blockers`]
    /// reports them); a cycle is an error.
    pub(crate) fn publish_order(&self) -> Result<Vec<String>, String> {
        let published: BTreeSet<&str> = self.published().map(|m| m.name.as_str()).collect();
        let mut waiting: BTreeMap<&str, BTreeSet<&str>> = self
            .published()
            .map(|m| {
                let needs = m
                    .deps
                    .iter()
                    .map(|(d, _)| d.as_str())
                    .filter(|d| published.contains(d))
                    .collect();
                (m.name.as_str(), needs)
            })
            .collect();
        let mut order = Vec::with_capacity(waiting.len());
        while let Some(next) = waiting
            .iter()
            .find(|(_, needs)| needs.is_empty())
            .map(|(name, _)| *name)
        {
            waiting.remove(next);
            for needs in waiting.values_mut() {
                needs.remove(next);
            }
            order.push(next.to_string());
        }
        if waiting.is_empty() {
            Ok(order)
        } else {
            Err(format!(
                "dependency cycle among the published crates {}",
                waiting.keys().copied().collect::<Vec<_>>().join(", ")
            ))
        }
    }

    /// What would make `cargo package`/`cargo publish` fail for the published crates, one
    /// sentence each; empty when nothing does.
    pub(crate) fn blockers(&self, version: &Version) -> Vec<String> {
        let by_name: BTreeMap<&str, &Member> =
            self.members.iter().map(|m| (m.name.as_str(), m)).collect();
        let mut out = Vec::new();
        if self.published().next().is_none() {
            out.push("no workspace member is published".to_string());
        }
        for m in self.published() {
            if m.version != *version {
                out.push(format!(
                    "{} is at version {} but the workspace is at {version}: every published \
                     crate shares the workspace version (`version.workspace = true`)",
                    m.name, m.version
                ));
            }
            for (dep, req) in &m.deps {
                let Some(target) = by_name.get(dep.as_str()) else {
                    continue;
                };
                if !target.published {
                    out.push(format!(
                        "{} depends on {dep}, which is not published (publish = false): \
                         crates.io would not have it; make the dependency optional behind a \
                         feature that is off when publishing, move that code to an unpublished \
                         crate, or publish {dep}",
                        m.name
                    ));
                } else if *req == VersionReq::STAR {
                    out.push(format!(
                        "{} depends on {dep} by path only: a published dependency needs a \
                         version requirement too (`version = \"{version}\"`)",
                        m.name
                    ));
                }
            }
        }
        if let Err(e) = self.publish_order() {
            out.push(e);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, published: bool, deps: &[(&str, &str)]) -> Member {
        Member {
            name: name.into(),
            version: Version::new(0, 1, 0),
            manifest_path: PathBuf::new(),
            published,
            has_lib: true,
            deps: deps
                .iter()
                .map(|(d, r)| (d.to_string(), VersionReq::parse(r).unwrap()))
                .collect(),
        }
    }

    #[test]
    fn order_puts_dependencies_first_and_breaks_ties_by_name() {
        let ws = Workspace {
            members: vec![
                member("cli", true, &[("manager", "0.1.0"), ("token", "0.1.0")]),
                member("manager", true, &[("proto", "0.1.0"), ("spec", "0.1.0")]),
                member("proto", true, &[]),
                member("spec", true, &[]),
                member("testkit", false, &[]),
                member("token", true, &[("spec", "0.1.0")]),
            ],
        };
        assert_eq!(
            ws.publish_order().unwrap(),
            ["proto", "spec", "manager", "token", "cli"]
        );
        assert!(ws.blockers(&Version::new(0, 1, 0)).is_empty());
        let blockers = ws.blockers(&Version::new(0, 2, 0));
        assert_eq!(blockers.len(), 5, "{blockers:?}");
        assert!(blockers[0].contains("cli is at version 0.1.0 but the workspace is at 0.2.0"));
    }

    #[test]
    fn blockers_name_the_crates() {
        let v = Version::new(0, 1, 0);
        let ws = Workspace {
            members: vec![
                member("cli", true, &[("sim", "0.1.0"), ("spec", "*")]),
                member("sim", false, &[]),
                member("spec", true, &[]),
            ],
        };
        assert_eq!(ws.publish_order().unwrap(), ["spec", "cli"]);
        let blockers = ws.blockers(&v);
        assert_eq!(blockers.len(), 2, "{blockers:?}");
        assert!(blockers[0].starts_with("cli depends on sim, which is not published"));
        assert!(blockers[1].starts_with("cli depends on spec by path only"));

        let cycle = Workspace {
            members: vec![
                member("a", true, &[("b", "0.1.0")]),
                member("b", true, &[("a", "0.1.0")]),
                member("c", true, &[]),
            ],
        };
        let err = cycle.publish_order().unwrap_err();
        assert!(err.contains("cycle") && err.contains("a, b"), "{err}");
        assert!(cycle.blockers(&v).iter().any(|b| b.contains("cycle")));
    }
}
