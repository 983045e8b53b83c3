//! Control messages a manager sends to ascp.

use bytes::BytesMut;

use crate::error::{EncodeError, FieldError, FieldErrorKind};
use crate::frame::{Frame, HEADER, digits, field_len, path_field_len};
use crate::message::{Adaptive, parse_u64};

/// A message from the manager to ascp.
///
/// ```
/// use bytes::BytesMut;
/// use fasp_mgmt_proto::{Adaptive, Control, RateChange};
///
/// let rate = Control::Rate(RateChange { rate_kbps: Some(50_000), policy: Some(Adaptive::Fixed), ..Default::default() });
/// let mut out = BytesMut::new();
/// rate.encode(&mut out)?;
/// assert_eq!(&out[..], b"FASPMGR 2\nType: RATE\nRate: 50000\nAdaptive: Fixed\n\n");
/// assert_eq!(out.len(), rate.encoded_len());
/// # Ok::<(), fasp_mgmt_proto::EncodeError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Control {
    /// `RATE`: change target rate, minimum rate, policy and/or priority. Rate and minimum rate
    /// 0 pause the transfer.
    Rate(RateChange),
    /// `CANCEL`: end the session (ascp ends it with `ERROR` code 28 when it acts on it).
    Cancel,
    /// `DONE`: end a persistent session.
    Done(DoneOperation),
    /// `START`: add a file to a persistent session.
    Start(StartFile),
    /// `STOP`: stop one file of a persistent session.
    Stop(StopFile),
    /// `QUERYRSP`: the answer to a `QUERY`.
    QueryResponse(QueryAnswer),
}

/// The fields of a `RATE` message; at least one must be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateChange {
    /// `Rate`: target rate, Kbps.
    pub rate_kbps: Option<u64>,
    /// `MinRate`: minimum rate, Kbps.
    pub min_rate_kbps: Option<u64>,
    /// `Adaptive`: the policy word, `Fixed`, `Adaptive` or `Trickle` (a `RATE` read with
    /// another word is refused; an [`Adaptive::Other`] word is sent as written).
    pub policy: Option<Adaptive<'static>>,
    /// `Priority`
    pub priority: Option<Priority>,
}

impl RateChange {
    /// Change the target and minimum rates.
    pub fn rates(target_kbps: u64, min_kbps: u64) -> RateChange {
        RateChange {
            rate_kbps: Some(target_kbps),
            min_rate_kbps: Some(min_kbps),
            ..RateChange::default()
        }
    }

    /// Pause: target and minimum rate 0.
    pub fn pause() -> RateChange {
        RateChange::rates(0, 0)
    }

    fn is_empty(&self) -> bool {
        self.rate_kbps.is_none()
            && self.min_rate_kbps.is_none()
            && self.policy.is_none()
            && self.priority.is_none()
    }
}

/// The policy word of a `RATE` message, known to ascp: [`Adaptive::Fixed`],
/// [`Adaptive::Adaptive`] or [`Adaptive::Trickle`] (the same type that reads what ascp
/// reports; a word it does not know is refused when a `RATE` is read). The policies users name
/// (`fixed`, `high`, `fair`, `low`) are fasp-spec's `RatePolicy`; fasp-manager maps them here
/// ("high" and "fair" are `Adaptive` with priority 1 and 2, "low" is `Trickle`).
fn known_policy(word: &str) -> Option<Adaptive<'static>> {
    match Adaptive::parse(word) {
        Adaptive::Fixed => Some(Adaptive::Fixed),
        Adaptive::Adaptive => Some(Adaptive::Adaptive),
        Adaptive::Trickle => Some(Adaptive::Trickle),
        _ => None,
    }
}

/// Transfer priority (`Priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Priority {
    /// `1`
    High,
    /// `2`
    Regular,
}

impl Priority {
    fn as_str(self) -> &'static str {
        match self {
            Priority::High => "1",
            Priority::Regular => "2",
        }
    }
}

/// How a persistent session ends (`Operation` of a manager's `DONE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DoneOperation {
    /// `Shutdown`: end now.
    Shutdown,
    /// `Linger`: finish the queued files, then end.
    Linger,
}

impl DoneOperation {
    fn as_str(self) -> &'static str {
        match self {
            DoneOperation::Shutdown => "Shutdown",
            DoneOperation::Linger => "Linger",
        }
    }
}

/// A byte range of a file, `FileBytes: <start>:<end>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// End of the range (must not be before `start`).
    pub end: u64,
}

/// `START`: add a file to a persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFile {
    /// `Source`: the path to send (or fetch).
    pub source: String,
    /// `Destination`: where it goes.
    pub destination: String,
    /// `FileBytes`: an optional range.
    pub range: Option<ByteRange>,
}

impl StartFile {
    /// Add `source` as `destination`, whole.
    pub fn new(source: impl Into<String>, destination: impl Into<String>) -> StartFile {
        StartFile {
            source: source.into(),
            destination: destination.into(),
            range: None,
        }
    }

    /// Only transfer `range`.
    pub fn with_range(mut self, range: ByteRange) -> StartFile {
        self.range = Some(range);
        self
    }
}

/// `STOP`: stop one file of a persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopFile {
    /// `Source`: the path as a prior `STATS` reported it.
    pub source: String,
}

impl StopFile {
    /// Stop `source`.
    pub fn new(source: impl Into<String>) -> StopFile {
        StopFile {
            source: source.into(),
        }
    }
}

/// The answer to a `QUERY` (`QueryResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QueryAnswer {
    /// `Allowed`
    Allowed,
    /// `Denied`
    Denied,
}

impl QueryAnswer {
    fn as_str(self) -> &'static str {
        match self {
            QueryAnswer::Allowed => "Allowed",
            QueryAnswer::Denied => "Denied",
        }
    }
}

impl Control {
    /// The `Type` word.
    pub fn type_name(&self) -> &'static str {
        match self {
            Control::Rate(_) => "RATE",
            Control::Cancel => "CANCEL",
            Control::Done(_) => "DONE",
            Control::Start(_) => "START",
            Control::Stop(_) => "STOP",
            Control::QueryResponse(_) => "QUERYRSP",
        }
    }

    /// Check that the message can be written: a `RATE` with at least one field, a range
    /// that does not end before it starts, paths without NUL bytes.
    pub fn validate(&self) -> Result<(), EncodeError> {
        match self {
            Control::Rate(r) if r.is_empty() => Err(EncodeError::InvalidControl {
                reason: "RATE needs at least one of Rate, MinRate, Adaptive, Priority",
            }),
            Control::Start(s) => {
                if let Some(r) = s.range {
                    if r.end < r.start {
                        return Err(EncodeError::InvalidControl {
                            reason: "FileBytes range ends before it starts",
                        });
                    }
                }
                no_nul("Source", &s.source)?;
                no_nul("Destination", &s.destination)
            }
            Control::Stop(s) => no_nul("Source", &s.source),
            _ => Ok(()),
        }
    }

    /// Build the frame for this message (paths ESC-escaped).
    pub fn to_frame(&self) -> Result<Frame, EncodeError> {
        self.validate()?;
        let mut b = Frame::builder(self.type_name())?;
        match self {
            Control::Rate(r) => {
                if let Some(v) = r.rate_kbps {
                    b = b.number("Rate", v)?;
                }
                if let Some(v) = r.min_rate_kbps {
                    b = b.number("MinRate", v)?;
                }
                if let Some(p) = r.policy {
                    b = b.field("Adaptive", p.as_str())?;
                }
                if let Some(p) = r.priority {
                    b = b.field("Priority", p.as_str())?;
                }
            }
            Control::Cancel => {}
            Control::Done(op) => b = b.field("Operation", op.as_str())?,
            Control::Start(s) => {
                b = b
                    .path("Source", &s.source)?
                    .path("Destination", &s.destination)?;
                if let Some(r) = s.range {
                    b = b.field("FileBytes", &format!("{}:{}", r.start, r.end))?;
                }
            }
            Control::Stop(s) => b = b.path("Source", &s.source)?,
            Control::QueryResponse(a) => b = b.field("QueryResponse", a.as_str())?,
        }
        Ok(b.finish())
    }

    /// Append the message's wire bytes to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) -> Result<(), EncodeError> {
        let frame = self.to_frame()?;
        dst.extend_from_slice(frame.as_bytes());
        Ok(())
    }

    /// The number of bytes [`Control::encode`] writes, computed without writing.
    pub fn encoded_len(&self) -> usize {
        let mut n = HEADER.len() + 1 + field_len("Type", self.type_name().len()) + 1;
        match self {
            Control::Rate(r) => {
                n += r.rate_kbps.map_or(0, |v| field_len("Rate", digits(v)));
                n += r
                    .min_rate_kbps
                    .map_or(0, |v| field_len("MinRate", digits(v)));
                n += r
                    .policy
                    .map_or(0, |p| field_len("Adaptive", p.as_str().len()));
                n += r
                    .priority
                    .map_or(0, |p| field_len("Priority", p.as_str().len()));
            }
            Control::Cancel => {}
            Control::Done(op) => n += field_len("Operation", op.as_str().len()),
            Control::Start(s) => {
                n += path_field_len("Source", &s.source)
                    + path_field_len("Destination", &s.destination);
                n += s.range.map_or(0, |r| {
                    field_len("FileBytes", digits(r.start) + 1 + digits(r.end))
                });
            }
            Control::Stop(s) => n += path_field_len("Source", &s.source),
            Control::QueryResponse(a) => n += field_len("QueryResponse", a.as_str().len()),
        }
        n
    }

    /// Read a control message (what an ascp, or an emulator of it, receives).
    pub fn from_frame(frame: &Frame) -> Result<Control, FieldError> {
        let t = frame.type_name().unwrap_or("");
        let bad = |key: &str, expected: &'static str, found: &str| {
            FieldError::invalid(t, key, expected, found)
        };
        let need = |key: &str| frame.get(key).ok_or_else(|| FieldError::missing(t, key));
        match t {
            "RATE" => {
                let mut r = RateChange::default();
                for f in frame.fields() {
                    match f.key {
                        "Rate" => {
                            r.rate_kbps = Some(
                                parse_u64(f.value)
                                    .ok_or_else(|| bad(f.key, "an unsigned integer", f.value))?,
                            )
                        }
                        "MinRate" => {
                            r.min_rate_kbps = Some(
                                parse_u64(f.value)
                                    .ok_or_else(|| bad(f.key, "an unsigned integer", f.value))?,
                            )
                        }
                        "Adaptive" => {
                            r.policy =
                                Some(known_policy(f.value).ok_or_else(|| {
                                    bad(f.key, "Fixed, Adaptive or Trickle", f.value)
                                })?)
                        }
                        "Priority" => {
                            r.priority = Some(match f.value {
                                "1" => Priority::High,
                                "2" => Priority::Regular,
                                v => return Err(bad(f.key, "1 or 2", v)),
                            })
                        }
                        _ => {}
                    }
                }
                if r.is_empty() {
                    return Err(FieldError::missing(t, "Rate"));
                }
                Ok(Control::Rate(r))
            }
            "CANCEL" => Ok(Control::Cancel),
            "DONE" => match need("Operation")? {
                "Shutdown" => Ok(Control::Done(DoneOperation::Shutdown)),
                "Linger" => Ok(Control::Done(DoneOperation::Linger)),
                v => Err(bad("Operation", "Shutdown or Linger", v)),
            },
            "START" => {
                let source = crate::escape::unescape_path(need("Source")?).into_owned();
                let destination = crate::escape::unescape_path(need("Destination")?).into_owned();
                let range =
                    match frame.get("FileBytes") {
                        None => None,
                        Some(v) => Some(parse_range(v).ok_or_else(|| {
                            bad("FileBytes", "<start>:<end> with start <= end", v)
                        })?),
                    };
                Ok(Control::Start(StartFile {
                    source,
                    destination,
                    range,
                }))
            }
            "STOP" => Ok(Control::Stop(StopFile {
                source: crate::escape::unescape_path(need("Source")?).into_owned(),
            })),
            "QUERYRSP" => match need("QueryResponse")? {
                "Allowed" => Ok(Control::QueryResponse(QueryAnswer::Allowed)),
                "Denied" => Ok(Control::QueryResponse(QueryAnswer::Denied)),
                v => Err(bad("QueryResponse", "Allowed or Denied", v)),
            },
            _ => Err(FieldError {
                message: t.into(),
                key: "Type".into(),
                kind: FieldErrorKind::WrongType {
                    expected: "RATE, CANCEL, DONE, START, STOP or QUERYRSP",
                },
            }),
        }
    }
}

fn parse_range(v: &str) -> Option<ByteRange> {
    let (a, b) = v.split_once(':')?;
    let r = ByteRange {
        start: parse_u64(a)?,
        end: parse_u64(b)?,
    };
    (r.start <= r.end).then_some(r)
}

fn no_nul(key: &str, v: &str) -> Result<(), EncodeError> {
    if v.as_bytes().contains(&0) {
        Err(EncodeError::NulInValue { key: key.into() })
    } else {
        Ok(())
    }
}
