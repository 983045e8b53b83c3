//! Injected faults: `ASCP_SIM_FAULT=<fault>[,<fault>...]`, each `name` or `name:argument`.

use std::fmt;
use std::time::Duration;

/// The environment variable that lists the faults to inject.
pub const ENV_FAULT: &str = "ASCP_SIM_FAULT";

/// One injected fault. See the table in the crate documentation.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// `exit-before-connect[:CODE]`: exit with `CODE` (default 1) before connecting to the
    /// management port, after printing a line on stderr.
    ExitBeforeConnect(i32),
    /// `hang-before-init`: connect, then neither write INIT nor read, until killed.
    HangBeforeInit,
    /// `connect-delay:SECS`: wait `SECS` (fractions allowed) before connecting to the
    /// management port, as a slow-starting ascp would; the run then goes on normally.
    ConnectDelay(Duration),
    /// `init-delay:SECS`: after INIT, spend `SECS` (fractions allowed) in "session
    /// initiation" without reading the management socket, as the real ascp does while SSH
    /// connects.
    InitDelay(Duration),
    /// `crash-after-bytes:N`: abort (SIGABRT, no frame) once `N` bytes of file data are
    /// written in the session.
    CrashAfterBytes(u64),
    /// `close-mgmt-after-bytes:N`: close the management socket once `N` bytes are written;
    /// the next frame cannot be written, so the session stops like ascp does
    /// (`Cannot write to management socket`), exit status 1.
    CloseMgmtAfterBytes(u64),
    /// `malformed-frame[:N]`: write one malformed frame once `N` bytes are written (default
    /// 0: right after SESSION), then go on normally.
    MalformedFrame(u64),
    /// `stall:SECS[@N]`: make no progress for `SECS` once `N` bytes are written (default 0),
    /// STATS still flowing and controls still read.
    Stall(Duration, u64),
    /// `second-session[:CODE]`: open a second session on the same connection, as HTTP
    /// fallback does: INIT and SESSION of a new SessionId; the files move in the second
    /// session; the first one then ends with ERROR `CODE` (default 15).
    SecondSession(u64),
    /// `query[:WHAT]`: after SESSION, send `QUERY` with `Query: WHAT` (default
    /// `AUTHORIZATION`) and wait for the manager's QUERYRSP; `Denied` ends the session.
    Query(String),
    /// `deny-file:NAME`: every file whose name is `NAME` fails with FILEERROR code 5
    /// (permission denied), even for root.
    DenyFile(String),
    /// `session-error:CODE[@N]`: end the session with ERROR `CODE` once `N` bytes are
    /// written (default 0), as a lost connection (16) or a stall timeout (40) would.
    SessionError(u64, u64),
    /// `freeze:SECS[@N]`: once `N` bytes are written (default 0), write nothing at all (no
    /// STATS) and act on nothing for `SECS`, as a hung ascp; controls read meanwhile take
    /// effect afterwards, signals end it at once.
    Freeze(Duration, u64),
}

/// `X@N` arguments: `(X, N)`.
fn split_at_sign(a: Option<&str>) -> (Option<&str>, Option<&str>) {
    match a {
        Some(a) => match a.split_once('@') {
            Some((x, n)) => (Some(x), Some(n)),
            None => (Some(a), None),
        },
        None => (None, None),
    }
}

/// A value of `ASCP_SIM_FAULT` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultError(pub String);

impl fmt::Display for FaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad {ENV_FAULT} entry {:?}", self.0)
    }
}

impl std::error::Error for FaultError {}

/// The faults to inject in one run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults(pub Vec<Fault>);

impl Faults {
    /// Parse a comma-separated list (empty: none).
    ///
    /// ```
    /// use fasp_sim::{Fault, Faults};
    /// use std::time::Duration;
    ///
    /// let f = Faults::parse("crash-after-bytes:1048576, stall:2@10").unwrap();
    /// assert_eq!(f.0, [Fault::CrashAfterBytes(1048576), Fault::Stall(Duration::from_secs(2), 10)]);
    /// assert!(Faults::parse("explode").is_err());
    /// ```
    pub fn parse(spec: &str) -> Result<Faults, FaultError> {
        let mut out = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || FaultError(item.to_owned());
            let (name, arg) = match item.split_once(':') {
                Some((n, a)) => (n, Some(a)),
                None => (item, None),
            };
            let num = |a: Option<&str>, default: Option<u64>| -> Result<u64, FaultError> {
                match a {
                    Some(a) => a.parse().map_err(|_| bad()),
                    None => default.ok_or_else(bad),
                }
            };
            let secs = |a: &str| -> Result<Duration, FaultError> {
                a.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(bad)
            };
            // "X@N" arguments.
            out.push(match name {
                "exit-before-connect" => {
                    Fault::ExitBeforeConnect(num(arg, Some(1))?.try_into().map_err(|_| bad())?)
                }
                "hang-before-init" if arg.is_none() => Fault::HangBeforeInit,
                "connect-delay" => Fault::ConnectDelay(secs(arg.ok_or_else(bad)?)?),
                "init-delay" => Fault::InitDelay(secs(arg.ok_or_else(bad)?)?),
                "crash-after-bytes" => Fault::CrashAfterBytes(num(arg, None)?),
                "close-mgmt-after-bytes" => Fault::CloseMgmtAfterBytes(num(arg, None)?),
                "malformed-frame" => Fault::MalformedFrame(num(arg, Some(0))?),
                "stall" => {
                    let (s, n) = split_at_sign(arg);
                    Fault::Stall(secs(s.ok_or_else(bad)?)?, num(n, Some(0))?)
                }
                "second-session" => Fault::SecondSession(num(arg, Some(15))?),
                "query" => Fault::Query(arg.unwrap_or("AUTHORIZATION").to_owned()),
                "deny-file" => {
                    Fault::DenyFile(arg.filter(|a| !a.is_empty()).ok_or_else(bad)?.into())
                }
                "session-error" => {
                    let (c, n) = split_at_sign(arg);
                    Fault::SessionError(num(c, None)?, num(n, Some(0))?)
                }
                "freeze" => {
                    let (s, n) = split_at_sign(arg);
                    Fault::Freeze(secs(s.ok_or_else(bad)?)?, num(n, Some(0))?)
                }
                _ => return Err(bad()),
            });
        }
        Ok(Faults(out))
    }

    /// The first fault matching `pick`.
    pub fn find<T>(&self, pick: impl FnMut(&Fault) -> Option<T>) -> Option<T> {
        self.0.iter().find_map(pick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fault_parses() {
        let f = Faults::parse(
            "exit-before-connect,exit-before-connect:3,hang-before-init,init-delay:0.5,\
             crash-after-bytes:10,close-mgmt-after-bytes:20,malformed-frame,malformed-frame:5,\
             stall:1.5,stall:2@100,second-session,second-session:47,query,query:LICENSE,\
             deny-file:x.bin,session-error:16@1000,session-error:40,connect-delay:1.5,\
             freeze:2,freeze:0.5@300",
        )
        .unwrap();
        assert_eq!(
            f.0,
            [
                Fault::ExitBeforeConnect(1),
                Fault::ExitBeforeConnect(3),
                Fault::HangBeforeInit,
                Fault::InitDelay(Duration::from_millis(500)),
                Fault::CrashAfterBytes(10),
                Fault::CloseMgmtAfterBytes(20),
                Fault::MalformedFrame(0),
                Fault::MalformedFrame(5),
                Fault::Stall(Duration::from_millis(1500), 0),
                Fault::Stall(Duration::from_secs(2), 100),
                Fault::SecondSession(15),
                Fault::SecondSession(47),
                Fault::Query("AUTHORIZATION".into()),
                Fault::Query("LICENSE".into()),
                Fault::DenyFile("x.bin".into()),
                Fault::SessionError(16, 1000),
                Fault::SessionError(40, 0),
                Fault::ConnectDelay(Duration::from_millis(1500)),
                Fault::Freeze(Duration::from_secs(2), 0),
                Fault::Freeze(Duration::from_millis(500), 300),
            ]
        );
        for bad in [
            "nope",
            "crash-after-bytes",
            "crash-after-bytes:x",
            "init-delay",
            "stall:-1",
            "deny-file:",
            "hang-before-init:1",
            "connect-delay",
            "freeze",
            "freeze:x@1",
        ] {
            assert!(Faults::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
    }
}
