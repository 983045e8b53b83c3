//! Turning a node's setup answer into a spec ascp can run: the node knows its own side of the
//! transfer, the client adds the local side.

use fasp_spec::{Direction, SpecError, TransferPath, TransferSpec};

/// Makes the answer of `upload_setup` ready to render: the local `sources` become the paths,
/// and the node's destination folder becomes `destination_root`.
///
/// A node answers an upload request with the destinations it was asked for
/// (`paths: [{"destination": "/incoming"}]`, `destination_root: "/"`), which `validate()`
/// refuses (no sources). This function:
/// - joins the node's `destination_root` and the paths' common destination into the new
///   `destination_root` (`/` and `/incoming` give `/incoming`; a relative destination is taken
///   below the root);
/// - replaces the paths by one path per source, without destinations, so every source lands in
///   that folder. If the node's paths have *different* destinations and there are exactly as
///   many sources, each source is paired with the destination at the same position instead
///   (`{source, destination}`, rendered as a file-pair list, relative to the root);
/// - drops the node's `source_root` (a node cannot know the local side) and sets `direction`
///   to `send` when absent;
/// - validates the result.
///
/// Errors: no sources; a `direction` other than `send`; different destinations for a different
/// number of sources; and whatever [`TransferSpec::validate`] finds.
///
/// ```
/// use fasp_spec::TransferSpec;
///
/// let answer = TransferSpec::from_json(r#"{
///     "remote_host": "ats.example.com", "remote_user": "xfer", "ssh_port": 33001,
///     "token": "ATM3_x", "direction": "send",
///     "destination_root": "/", "paths": [{"destination": "/incoming"}]
/// }"#)?;
/// let spec = fasp_token::prepare_upload(answer, ["report.pdf", "data.csv"])?;
/// assert_eq!(spec.destination_root.as_deref(), Some("/incoming"));
/// assert_eq!(spec.paths[1].source.as_deref(), Some("data.csv"));
/// assert_eq!(spec.paths[1].destination, None);
/// # Ok::<(), fasp_spec::SpecError>(())
/// ```
pub fn prepare_upload<I, S>(mut answer: TransferSpec, sources: I) -> Result<TransferSpec, SpecError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let sources: Vec<String> = sources.into_iter().map(Into::into).collect();
    check_direction(&answer, Direction::Send)?;
    if sources.is_empty() {
        return Err(SpecError::Missing {
            key: "paths".into(),
            reason: "an upload needs at least one local source",
        });
    }
    let destinations: Vec<&str> = answer
        .paths
        .iter()
        .filter_map(|p| p.destination.as_deref())
        .collect();
    let root = answer.destination_root.take().unwrap_or_default();
    let distinct = {
        let mut d = destinations.clone();
        d.sort_unstable();
        d.dedup();
        d
    };
    let paths = match distinct.as_slice() {
        [] => {
            answer.destination_root = Some(if root.is_empty() { "/".into() } else { root });
            sources.into_iter().map(TransferPath::new).collect()
        }
        [folder] => {
            answer.destination_root = Some(join_remote(&root, folder));
            sources.into_iter().map(TransferPath::new).collect()
        }
        _ if destinations.len() == sources.len() => {
            let pairs = sources
                .into_iter()
                .zip(&destinations)
                .map(|(source, destination)| TransferPath::pair(source, *destination))
                .collect();
            answer.destination_root = Some(if root.is_empty() { "/".into() } else { root });
            pairs
        }
        _ => {
            return Err(SpecError::Conflict {
                key: "paths".into(),
                value: format!("{} sources", sources.len()),
                other_key: "paths[].destination".into(),
                reason: format!(
                    "the node gave {} different destinations: give one source per destination, \
                     or ask for a single destination folder",
                    distinct.len()
                ),
            });
        }
    };
    answer.paths = paths;
    answer.source_root = None;
    answer.direction = Some(Direction::Send);
    answer.validate()?;
    Ok(answer)
}

/// Makes the answer of `download_setup` ready to render: the node's paths keep their (remote)
/// sources, and `destination` (a local folder) becomes `destination_root`.
///
/// The paths' own `destination` members are dropped (every file lands in `destination`),
/// `source_root` is kept (it is a prefix on the node), `direction` is set to `receive` when
/// absent, and the result is validated.
///
/// Errors: the answer has no path with a source, a `direction` other than `receive`, or what
/// [`TransferSpec::validate`] finds.
///
/// ```
/// use fasp_spec::TransferSpec;
///
/// let answer = TransferSpec::from_json(r#"{
///     "remote_host": "ats.example.com", "remote_user": "xfer", "ssh_port": 33001,
///     "token": "ATM3_x", "direction": "receive",
///     "paths": [{"source": "/outgoing/a.bin"}]
/// }"#)?;
/// let spec = fasp_token::prepare_download(answer, "/home/me/downloads")?;
/// assert_eq!(spec.destination_root.as_deref(), Some("/home/me/downloads"));
/// assert_eq!(spec.paths[0].source.as_deref(), Some("/outgoing/a.bin"));
/// # Ok::<(), fasp_spec::SpecError>(())
/// ```
pub fn prepare_download(
    mut answer: TransferSpec,
    destination: impl Into<String>,
) -> Result<TransferSpec, SpecError> {
    check_direction(&answer, Direction::Receive)?;
    if !answer.paths.iter().any(|p| p.source.is_some()) {
        return Err(SpecError::Missing {
            key: "paths".into(),
            reason: "the node's answer names no source to download",
        });
    }
    for path in &mut answer.paths {
        path.destination = None;
    }
    answer.destination_root = Some(destination.into());
    answer.direction = Some(Direction::Receive);
    answer.validate()?;
    Ok(answer)
}

fn check_direction(answer: &TransferSpec, expected: Direction) -> Result<(), SpecError> {
    match answer.direction {
        Some(direction) if direction != expected => Err(SpecError::Conflict {
            key: "direction".into(),
            value: direction.as_str().to_owned(),
            other_key: "the setup call".into(),
            reason: format!(
                "the node's spec goes the other way ({} expected)",
                expected.as_str()
            ),
        }),
        _ => Ok(()),
    }
}

/// `root` joined with `path` on the node's side: an absolute `path` stands alone.
fn join_remote(root: &str, path: &str) -> String {
    if path.starts_with('/') || root.is_empty() {
        path.to_owned()
    } else {
        format!("{}/{}", root.trim_end_matches('/'), path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn answer(value: serde_json::Value) -> TransferSpec {
        let mut base = json!({
            "remote_host": "h", "remote_user": "xfer", "ssh_port": 33001, "token": "ATM3_t"
        });
        base.as_object_mut()
            .unwrap()
            .extend(value.as_object().unwrap().clone());
        TransferSpec::from_json_value(base).unwrap()
    }

    #[test]
    fn upload_into_the_destination_folder() {
        let spec = prepare_upload(
            answer(
                json!({"direction": "send", "destination_root": "/", "source_root": "",
                          "paths": [{"destination": "/in"}]}),
            ),
            ["a", "b"],
        )
        .unwrap();
        assert_eq!(spec.destination_root.as_deref(), Some("/in"));
        assert_eq!(spec.source_root, None);
        assert_eq!(
            spec.paths,
            vec![TransferPath::new("a"), TransferPath::new("b")]
        );
    }

    #[test]
    fn upload_relative_destination_and_no_destination() {
        let spec = prepare_upload(
            answer(json!({"destination_root": "/docroot/", "paths": [{"destination": "in"}]})),
            ["a"],
        )
        .unwrap();
        assert_eq!(spec.destination_root.as_deref(), Some("/docroot/in"));
        assert_eq!(spec.direction, Some(Direction::Send));
        let spec = prepare_upload(answer(json!({})), ["a"]).unwrap();
        assert_eq!(spec.destination_root.as_deref(), Some("/"));
    }

    #[test]
    fn upload_pairs_and_conflicts() {
        let node = answer(json!({"destination_root": "/r",
            "paths": [{"destination": "x/a"}, {"destination": "y/b"}]}));
        let spec = prepare_upload(node.clone(), ["1", "2"]).unwrap();
        assert_eq!(
            spec.paths,
            vec![
                TransferPath::pair("1", "x/a"),
                TransferPath::pair("2", "y/b")
            ]
        );
        assert_eq!(spec.destination_root.as_deref(), Some("/r"));
        let err = prepare_upload(node, ["1"]).unwrap_err();
        assert_eq!(err.key(), Some("paths"));
        let err = prepare_upload(answer(json!({})), Vec::<String>::new()).unwrap_err();
        assert_eq!(err.key(), Some("paths"));
        let err = prepare_upload(answer(json!({"direction": "receive"})), ["a"]).unwrap_err();
        assert_eq!(err.key(), Some("direction"));
    }

    #[test]
    fn download_keeps_remote_sources() {
        let spec = prepare_download(
            answer(json!({"direction": "receive", "source_root": "/pre",
                          "paths": [{"source": "a", "destination": "a"}, {"source": "b"}]})),
            "/local",
        )
        .unwrap();
        assert_eq!(spec.destination_root.as_deref(), Some("/local"));
        assert_eq!(spec.source_root.as_deref(), Some("/pre"));
        assert_eq!(
            spec.paths,
            vec![TransferPath::new("a"), TransferPath::new("b")]
        );
        let err =
            prepare_download(answer(json!({"paths": [{"destination": "x"}]})), "/l").unwrap_err();
        assert_eq!(err.key(), Some("paths"));
        let err = prepare_download(
            answer(json!({"direction": "send", "paths": [{"source": "x"}]})),
            "/l",
        )
        .unwrap_err();
        assert_eq!(err.key(), Some("direction"));
    }

    #[test]
    fn invalid_answers_are_caught() {
        let err = prepare_upload(
            answer(json!({"min_rate_kbps": 10, "target_rate_kbps": 5})),
            ["a"],
        )
        .unwrap_err();
        assert_eq!(err.key(), Some("min_rate_kbps"));
    }
}
