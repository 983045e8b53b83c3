//! How the types of the `serde` feature serialize what serde has no word for: durations in
//! milliseconds, exit statuses as code and signal, protocol errors and controls as short maps.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use fasp_mgmt_proto::{Control, DecodeError, FieldError};
use serde::Serializer;
use serde::ser::SerializeMap;

pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub(crate) fn opt_str<S: Serializer>(v: &Option<Arc<str>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(v),
        None => s.serialize_none(),
    }
}

pub(crate) fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn opt_millis<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => millis(d, s),
        None => s.serialize_none(),
    }
}

pub(crate) fn exit_status<S: Serializer>(st: &ExitStatus, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry("code", &st.code())?;
    m.serialize_entry("signal", &st.signal())?;
    m.end()
}

pub(crate) fn field_error<S: Serializer>(e: &FieldError, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(1))?;
    m.serialize_entry("error", &e.to_string())?;
    m.end()
}

pub(crate) fn decode_error<S: Serializer>(e: &DecodeError, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(2))?;
    m.serialize_entry("offset", &e.offset)?;
    m.serialize_entry("error", &e.kind.to_string())?;
    m.end()
}

/// `{"control": "RATE", ...}` with the fields of a rate change; never a secret (controls
/// carry none).
pub(crate) fn control<S: Serializer>(c: &Control, s: S) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(None)?;
    m.serialize_entry("control", c.type_name())?;
    match c {
        Control::Rate(r) => {
            m.serialize_entry("rate_kbps", &r.rate_kbps)?;
            m.serialize_entry("min_rate_kbps", &r.min_rate_kbps)?;
            m.serialize_entry("policy", &r.policy.map(|p| p.as_str()))?;
        }
        Control::Start(f) => {
            m.serialize_entry("source", &f.source)?;
            m.serialize_entry("destination", &f.destination)?;
        }
        Control::Stop(f) => m.serialize_entry("source", &f.source)?,
        _ => {}
    }
    m.end()
}

#[cfg(test)]
mod tests {
    use crate::event::{Event, EventKind, FileInfo};
    use crate::progress::TransferState;
    use fasp_mgmt_proto::{Control, RateChange};
    use std::os::unix::process::ExitStatusExt;

    fn json(kind: EventKind) -> String {
        let ev = Event {
            part: 0,
            attempt: 1,
            session_id: Some("s1".into()),
            kind,
            frame: None,
            coalesced: 0,
        };
        serde_json::to_string(&ev).expect("serializes")
    }

    #[test]
    fn events_serialize_with_a_type_tag_and_typed_values() {
        assert_eq!(
            json(EventKind::Exited {
                status: std::process::ExitStatus::from_raw(3 << 8)
            }),
            r#"{"part":0,"attempt":1,"session_id":"s1","type":"exited","status":{"code":3,"signal":null}}"#
        );
        assert_eq!(
            json(EventKind::ControlSent(Control::Rate(RateChange::rates(
                5, 1
            )))),
            r#"{"part":0,"attempt":1,"session_id":"s1","type":"control_sent","control":"RATE","rate_kbps":5,"min_rate_kbps":1,"policy":null}"#
        );
        assert_eq!(
            json(EventKind::Finished {
                state: TransferState::Cancelled,
                code: Some(28)
            }),
            r#"{"part":0,"attempt":1,"session_id":"s1","type":"finished","state":"cancelled","code":28}"#
        );
        let file = json(EventKind::FileDone(FileInfo {
            file: "/a".into(),
            written: 7,
            ..FileInfo::default()
        }));
        assert!(file.contains(r#""type":"file_done","file":"/a""#), "{file}");
    }
}
