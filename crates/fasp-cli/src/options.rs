//! Transfer options on the command line (`--target-rate`, `--policy`, `--ts`, ...), merged
//! over a spec, and the warnings about keys nothing will use.
//!
//! Everything is merged as spec JSON, so the words are the spec's own: `--policy fair` is
//! `"rate_policy": "fair"`, `--ts '{"target_rate_kbps": 5000}'` is that key. The order is: the
//! spec (a file, or the node's answer), then `--ts` (in the order given), then the flags.

use std::path::Path;

use fasp_spec::{FileChecksum, OverwritePolicy, RatePolicy, ResumePolicy, TransferSpec};
use serde_json::{Map, Value};

/// Transfer knobs shared by `fasp transfer`, `fasp upload` and `fasp download`.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct SpecArgs {
    /// Target rate: a number of Mbit/s, or with a unit: 500k, 100m, 1.5g (bits per second,
    /// as ascp's -l). Sets target_rate_kbps.
    #[arg(long, value_name = "RATE", value_parser = parse_rate_kbps)]
    target_rate: Option<u64>,
    /// Minimum rate, same units as --target-rate. Sets min_rate_kbps.
    #[arg(long, value_name = "RATE", value_parser = parse_rate_kbps)]
    min_rate: Option<u64>,
    /// Bandwidth policy: fixed, high, fair or low. Sets rate_policy.
    #[arg(long, value_name = "POLICY", value_parser = parse_word::<RatePolicy>)]
    policy: Option<RatePolicy>,
    /// When an existing file is replaced: never, always, diff, older, diff+older.
    #[arg(long, value_name = "WHEN", value_parser = parse_word::<OverwritePolicy>)]
    overwrite: Option<OverwritePolicy>,
    /// What a partial file must match to be resumed: none, attrs, sparse_csum, full_csum.
    #[arg(long, value_name = "CHECK", value_parser = parse_word::<ResumePolicy>)]
    resume: Option<ResumePolicy>,
    /// Split the transfer over N ascp sessions (the manager runs them and sums their
    /// progress). Sets multi_session.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=128))]
    multi_session: Option<u32>,
    /// Checksum reported for each file: none, md5, sha1, sha256, sha384, sha512.
    #[arg(long, value_name = "ALGORITHM", value_parser = parse_word::<FileChecksum>)]
    checksum: Option<FileChecksum>,
    /// Do not count the job before starting (the total is then known only at the end, and
    /// the progress shows no ETA until then). Pre-calculation is on by default.
    #[arg(long)]
    no_precalc: bool,
    /// Transfer spec keys merged over the spec, as JSON ('{"target_rate_kbps": 5000}') or
    /// @FILE. Repeatable; later ones win; flags win over --ts.
    #[arg(long = "ts", value_name = "JSON|@FILE")]
    ts: Vec<String>,
    /// Refuse keys that nothing renders or honours (unknown or misspelt keys) instead of
    /// warning about them.
    #[arg(long)]
    strict: bool,
}

/// Whether a command treats its destination as a folder to create (upload and download).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    /// `fasp transfer`: the spec says.
    AsSpecified,
    /// `fasp upload` / `fasp download`: a folder, created when missing (`create_dir`).
    Folder,
    /// `--rename`: the destination is the new name of the one source.
    Rename,
}

/// Keys fasp-spec knows that neither ascp (through rendering) nor fasp honours: a user who
/// sets them expects something that will not happen.
const NOT_HONOURED: &[&str] = &["retry_duration", "use_ascp4"];

/// A spec with the options applied, and the warnings to show.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) spec: TransferSpec,
    pub(crate) warnings: Vec<String>,
}

impl SpecArgs {
    /// Merges `--ts` and the flags over `spec`, sets what `destination` implies, and lists
    /// the keys nothing will use (an error with `--strict`).
    pub(crate) fn apply(
        &self,
        spec: &TransferSpec,
        destination: Destination,
    ) -> Result<Applied, String> {
        let mut value = spec.to_json_value();
        let Value::Object(map) = &mut value else {
            return Err("the spec is not a JSON object".into());
        };
        for ts in &self.ts {
            let overlay = read_ts(ts)?;
            merge(map, overlay);
        }
        let mut set = |key: &str, v: Value| {
            map.insert(key.to_owned(), v);
        };
        if let Some(r) = self.target_rate {
            set("target_rate_kbps", r.into());
        }
        if let Some(r) = self.min_rate {
            set("min_rate_kbps", r.into());
        }
        if let Some(p) = self.policy {
            set("rate_policy", p.as_str().into());
        }
        if let Some(o) = self.overwrite {
            set("overwrite", o.as_str().into());
        }
        if let Some(r) = self.resume {
            set("resume_policy", r.as_str().into());
        }
        if let Some(n) = self.multi_session {
            set("multi_session", n.into());
        }
        if let Some(c) = self.checksum {
            set("file_checksum", c.as_str().into());
        }
        if self.no_precalc {
            set("precalculate_job_size", false.into());
        } else if !map.contains_key("precalculate_job_size") {
            // The total is known before the progress shows an ETA, as aspera-cli does.
            map.insert("precalculate_job_size".into(), true.into());
        }
        match destination {
            Destination::AsSpecified => {}
            Destination::Folder => {
                map.entry("create_dir").or_insert(true.into());
            }
            Destination::Rename => {
                map.insert("create_dir".into(), false.into());
            }
        }
        let spec = TransferSpec::from_json_value(value).map_err(|e| {
            if self.ts.is_empty() {
                e.to_string()
            } else {
                // The bad value may come from the spec or from --ts: say both were merged.
                format!("{e} (in the spec merged with --ts)")
            }
        })?;
        let mut unused: Vec<String> = spec.unknown_keys();
        let known = spec.to_json_value();
        unused.extend(
            NOT_HONOURED
                .iter()
                .filter(|k| known.get(**k).is_some_and(|v| !v.is_null()))
                .map(|k| (*k).to_owned()),
        );
        let mut warnings = Vec::new();
        if !unused.is_empty() {
            let list = unused.join(", ");
            if self.strict {
                return Err(format!(
                    "keys that nothing renders or honours: {list} (misspelt? the keys are listed \
                     in docs/transfer-spec.md; without --strict they are only warned about)"
                ));
            }
            warnings.push(format!(
                "keys that nothing renders or honours, ignored: {list} (misspelt? --strict \
                 refuses them)"
            ));
        }
        Ok(Applied { spec, warnings })
    }
}

/// `--ts JSON` or `--ts @FILE`: a JSON object.
fn read_ts(arg: &str) -> Result<Map<String, Value>, String> {
    let (text, origin) = match arg.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(Path::new(path))
                .map_err(|e| format!("--ts @{path}: cannot read {path}: {e}"))?,
            format!("--ts @{path}"),
        ),
        None => (arg.to_owned(), "--ts".to_owned()),
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!(
            "{origin}: expected a JSON object of transfer spec keys, not {}",
            json_kind(&other)
        )),
        Err(e) => Err(format!(
            "{origin}: not JSON: {e} (line {}, column {})",
            e.line(),
            e.column()
        )),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Deep merge: objects are merged key by key, anything else replaces; `null` removes a key.
fn merge(base: &mut Map<String, Value>, overlay: Map<String, Value>) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (_, Value::Null) => {
                base.shift_remove(&key);
            }
            (Some(Value::Object(inner)), Value::Object(more)) => merge(inner, more),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// A rate: plain numbers are Mbit/s; `k`, `m`, `g` suffixes (any case, optional `bps` or
/// `bit/s` after them) are kilo, mega, giga bits per second. Returns kbit/s.
pub(crate) fn parse_rate_kbps(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("bit/s")
        .or_else(|| t.strip_suffix("bps"))
        .unwrap_or(&t);
    let (number, factor) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1.0),
        Some('m') => (&t[..t.len() - 1], 1_000.0),
        Some('g') => (&t[..t.len() - 1], 1_000_000.0),
        _ => (t, 1_000.0),
    };
    let n: f64 = number.trim().parse().map_err(|_| {
        format!("{text:?} is not a rate (examples: 100 or 100m for 100 Mbit/s, 500k, 1.5g)")
    })?;
    let kbps = n * factor;
    if !(kbps.is_finite() && (0.0..=100_000_000.0).contains(&kbps)) {
        return Err(format!("{text:?}: give a rate from 0 to 100g"));
    }
    Ok(kbps.round() as u64)
}

/// One of a spec enum's words (the same words as in spec JSON).
fn parse_word<T>(text: &str) -> Result<T, String>
where
    T: for<'de> serde::Deserialize<'de>,
{
    serde_json::from_value::<T>(Value::String(text.to_owned())).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TransferSpec {
        TransferSpec::from_json(
            r#"{"remote_host":"h","direction":"send","paths":[{"source":"a"}],
                "destination_root":"/d","token":"ATM3_secret","target_rate_kbps":1000}"#,
        )
        .unwrap()
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate_kbps("100"), Ok(100_000));
        assert_eq!(parse_rate_kbps("100m"), Ok(100_000));
        assert_eq!(parse_rate_kbps("100M"), Ok(100_000));
        assert_eq!(parse_rate_kbps("500k"), Ok(500));
        assert_eq!(parse_rate_kbps("1.5g"), Ok(1_500_000));
        assert_eq!(parse_rate_kbps("10mbps"), Ok(10_000));
        assert_eq!(parse_rate_kbps("0"), Ok(0));
        assert!(parse_rate_kbps("fast").is_err());
        assert!(parse_rate_kbps("-5").is_err());
        assert!(parse_rate_kbps("1e300").is_err());
        assert!(parse_rate_kbps("").is_err());
    }

    #[test]
    fn flags_win_over_ts_which_wins_over_the_spec() {
        let args = SpecArgs {
            ts: vec![r#"{"target_rate_kbps": 5000, "min_rate_kbps": 10}"#.into()],
            min_rate: Some(20),
            policy: Some(RatePolicy::Fair),
            ..SpecArgs::default()
        };
        let out = args.apply(&spec(), Destination::AsSpecified).unwrap();
        assert_eq!(out.spec.target_rate_kbps, Some(5000));
        assert_eq!(out.spec.min_rate_kbps, Some(20));
        assert_eq!(out.spec.rate_policy, Some(RatePolicy::Fair));
        assert_eq!(out.spec.precalculate_job_size, Some(true));
        // The secret survives the round trip.
        assert_eq!(out.spec.token.as_ref().unwrap().expose(), "ATM3_secret");
        assert!(out.warnings.is_empty());
    }

    #[test]
    fn destinations() {
        let folder = SpecArgs::default()
            .apply(&spec(), Destination::Folder)
            .unwrap();
        assert_eq!(folder.spec.create_dir, Some(true));
        let rename = SpecArgs::default()
            .apply(&spec(), Destination::Rename)
            .unwrap();
        assert_eq!(rename.spec.create_dir, Some(false));
        let asis = SpecArgs::default()
            .apply(&spec(), Destination::AsSpecified)
            .unwrap();
        assert_eq!(asis.spec.create_dir, None);
        let no_precalc = SpecArgs {
            no_precalc: true,
            ..SpecArgs::default()
        };
        let out = no_precalc.apply(&spec(), Destination::Folder).unwrap();
        assert_eq!(out.spec.precalculate_job_size, Some(false));
    }

    #[test]
    fn unknown_keys_warn_or_refuse() {
        let typo = SpecArgs {
            ts: vec![r#"{"target_rate": 5000, "retry_duration": 60}"#.into()],
            ..SpecArgs::default()
        };
        let out = typo.apply(&spec(), Destination::AsSpecified).unwrap();
        assert_eq!(out.warnings.len(), 1);
        assert!(
            out.warnings[0].contains("target_rate"),
            "{:?}",
            out.warnings
        );
        assert!(
            out.warnings[0].contains("retry_duration"),
            "{:?}",
            out.warnings
        );
        let strict = SpecArgs {
            strict: true,
            ..typo
        };
        let e = strict.apply(&spec(), Destination::AsSpecified).unwrap_err();
        assert!(e.contains("target_rate"), "{e}");
    }

    #[test]
    fn ts_errors_name_their_origin() {
        let bad = SpecArgs {
            ts: vec!["[1]".into()],
            ..SpecArgs::default()
        };
        let e = bad.apply(&spec(), Destination::AsSpecified).unwrap_err();
        assert!(e.contains("--ts") && e.contains("array"), "{e}");
        let missing = SpecArgs {
            ts: vec!["@/nonexistent/ts.json".into()],
            ..SpecArgs::default()
        };
        let e = missing
            .apply(&spec(), Destination::AsSpecified)
            .unwrap_err();
        assert!(e.contains("/nonexistent/ts.json"), "{e}");
        let typed = SpecArgs {
            ts: vec![r#"{"target_rate_kbps": "fast"}"#.into()],
            ..SpecArgs::default()
        };
        let e = typed.apply(&spec(), Destination::AsSpecified).unwrap_err();
        assert!(e.contains("target_rate_kbps"), "{e}");
        let null_removes = SpecArgs {
            ts: vec![r#"{"target_rate_kbps": null}"#.into()],
            ..SpecArgs::default()
        };
        let out = null_removes
            .apply(&spec(), Destination::AsSpecified)
            .unwrap();
        assert_eq!(out.spec.target_rate_kbps, None);
    }
}
