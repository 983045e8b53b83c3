//! One ascp run: connect, INIT, SESSION, move the files with paced bytes, report, end.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use fasp_mgmt_proto::{DoneOperation, QueryAnswer, codes};

use crate::checksum::{Hasher, file_id, hash_prefix};
use crate::fault::Fault;
use crate::frames::{self, Ident, Out, Stage, clean_path, with_prefix};
use crate::mgmt::{self, Ctl, Link, Lost, RateState};
use crate::options::{Mode, Options, Overwrite};
use crate::plan::{ArgPlan, Job, Planner, ScanCounts, Sides, Target, io_code, strerror};
use crate::{SimEnv, rate::Bucket};

/// Why a session stops early.
enum Halt {
    /// The management socket cannot be written.
    Lost,
    /// The manager sent CANCEL.
    Cancelled,
    /// A session-level error with this code and description.
    Error(u64, String),
}

impl From<Lost> for Halt {
    fn from(_: Lost) -> Halt {
        Halt::Lost
    }
}

/// How one file ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileEnd {
    Done,
    Skipped,
    Failed,
    /// Stopped by the manager (STOP) or by the end of a persistent session.
    Stopped,
}

/// Per-argument counts for ARGSTOP.
#[derive(Default, Clone, Copy)]
struct ArgCounts {
    attempted: u64,
    passed: u64,
    skipped: u64,
    failed: u64,
}

/// Whole-session counts for DONE and ERROR.
#[derive(Default, Clone, Copy)]
struct Totals {
    bytes: u64,
    arg_attempted: u64,
    arg_completed: u64,
    dir_attempted: u64,
    dir_failed: u64,
    dir_passed: u64,
    attempted: u64,
    failed: u64,
    passed: u64,
    skipped: u64,
    files_moved: u64,
}

/// Run a parsed transfer command to its end; returns the exit status.
pub(crate) fn run(o: Options, env: SimEnv) -> i32 {
    if let Some(code) = env.faults.find(|f| match f {
        Fault::ExitBeforeConnect(c) => Some(*c),
        _ => None,
    }) {
        eprintln!("ascp-sim: injected fault: exit before connecting");
        return code;
    }
    if let Some(dir) = &o.log_dir {
        if !Path::new(dir).is_dir() {
            eprintln!("Error opening log directory {dir}");
            eprintln!(
                "error initializing transfer log '{dir}/aspera-scp-transfer.log' (No such file or directory)."
            );
            eprintln!("ascp: FASP initialization failed (Bad protocol).");
            return 1;
        }
    }
    if o.keepalive && o.mgmt_port.is_none() {
        eprint!(
            "ascp: management -M connection required for --keepalive session \nStartup failed, exit\n"
        );
        return 1;
    }
    if let Some(d) = env.faults.find(|f| match f {
        Fault::ConnectDelay(d) => Some(*d),
        _ => None,
    }) {
        thread::sleep(d);
    }
    let (link, reader) = match o.mgmt_port {
        Some(port) => match Link::connect(port, env.timestamps) {
            Ok((link, reader)) => (link, Some(reader)),
            Err(_) => {
                eprint!(
                    "ascp: required management connection to port localhost:{port} failed.\n\nascp: failed to connect to management socket, exiting.\n"
                );
                return 1;
            }
        },
        None => (Link::absent(), None),
    };
    if env
        .faults
        .find(|f| (*f == Fault::HangBeforeInit).then_some(()))
        .is_some()
    {
        // Connected, silent, deaf: only a signal ends this.
        loop {
            thread::sleep(Duration::from_secs(3600));
        }
    }
    let rate = RateState {
        target_kbps: o.target_rate(),
        min_kbps: o.min_rate(),
        adaptive: o.policy.adaptive_word(),
        priority: o.policy.priority(),
    };
    let mut sim = Sim {
        link: Arc::new(link),
        ctl: Arc::new(Ctl::new(rate)),
        acker: Arc::new(Mutex::new(mgmt::Ident::default())),
        id: Ident::default(),
        sid: String::new(),
        t0: Instant::now(),
        totals: Totals::default(),
        counts: ScanCounts::default(),
        log: None,
        stall_until: None,
        fired: Vec::new(),
        o,
        env,
    };
    sim.main(reader)
}

struct Sim {
    o: Options,
    env: SimEnv,
    link: Arc<Link>,
    ctl: Arc<Ctl>,
    acker: Arc<Mutex<mgmt::Ident>>,
    id: Ident,
    /// The session that moves the files (the second one under the second-session fault).
    sid: String,
    t0: Instant,
    totals: Totals,
    counts: ScanCounts,
    log: Option<File>,
    stall_until: Option<Instant>,
    /// Indexes of byte-triggered faults already fired.
    fired: Vec<usize>,
}

/// A new session id, uuid-shaped (version 4 layout).
fn session_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        let seed = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            ^ u128::from(std::process::id()) << 64;
        b = seed.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn local_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or_else(|| "root".into(), |u| u.name)
}

/// What a C-string environment variable would hold: cut at a CR (as ascp does with the
/// cookie).
fn cut_at_cr(v: &str) -> String {
    v.split('\r').next().unwrap_or("").to_owned()
}

/// ascp's own description of a session error code.
fn describe(code: u64) -> String {
    match code {
        12 => "Error establishing SSH connection (check SSH port and firewall)".into(),
        13 => "Timeout establishing SSH connection (check SSH port and firewall)".into(),
        14 => "Error establishing UDP connection (check UDP port and firewall)".into(),
        15 => "Timeout establishing UDP connection (check UDP port and firewall)".into(),
        16 => "Connection lost".into(),
        17 => "Network failure (receiver can't send feedback)".into(),
        18 => "Network failure (receiver can't receive UDP data)".into(),
        27 => "One or more files failed".into(),
        28 => "Cancelled by user".into(),
        40 => "Data transfer stalled, timed out".into(),
        47 => "Error establishing HTTP connection (check HTTP port and firewall)".into(),
        c => {
            let m = codes::meaning(c).unwrap_or("FASP error");
            let mut s = m.to_owned();
            if let Some(first) = s.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            s
        }
    }
}

impl Sim {
    fn main(&mut self, reader: Option<std::net::TcpStream>) -> i32 {
        let o = &self.o;
        self.sid = session_id();
        self.id = Ident {
            session_id: self.sid.clone(),
            cookie: self
                .env
                .cookie
                .as_deref()
                .map(cut_at_cr)
                .filter(|c| !c.is_empty()),
            token: None,
            sources: None,
            destination: None,
            client_user: local_user(),
            remote_address: remote_address(o.host.as_deref().unwrap_or("")),
            port: None,
        };
        *self.acker.lock().unwrap_or_else(|e| e.into_inner()) = mgmt::Ident {
            session_id: self.sid.clone(),
            user_str: o.user_str.clone(),
        };
        if let Some(dir) = &o.log_dir {
            self.log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(Path::new(dir).join("aspera-scp-transfer.log"))
                .ok();
        }
        self.log_line(&format!("ascp-sim session {} starting", self.sid));

        let init = frames::init(&self.o, &self.id);
        if self.link.send(&init).is_err() {
            return self.lost();
        }

        // Checks ascp makes once connected, before SSH: SESSION (initial) then ERROR.
        let (sources, lists) = match self.startup_checks() {
            Ok(v) => v,
            Err((code, description, stderr)) => {
                eprint!("{stderr}");
                return self.early_failure(Stage::Initial { connected: false }, code, &description);
            }
        };
        self.id.sources = if self.o.keepalive {
            None
        } else {
            Some(sources.iter().map(|(s, _)| s.clone()).collect())
        };
        self.id.destination = self.destination_arg(lists);

        // Session initiation: SSH and negotiation. The socket is not read meanwhile.
        if let Some(d) = self.env.faults.find(|f| match f {
            Fault::InitDelay(d) => Some(*d),
            _ => None,
        }) {
            thread::sleep(d);
        }
        for key in &self.o.key_files {
            if !Path::new(key).is_file() {
                let description = format!("Private key file not found at path {key}");
                eprintln!("ascp: {description}, exiting.");
                return self.early_failure(Stage::Initial { connected: false }, 4, &description);
            }
        }
        let root = match &self.env.root {
            Some(r) if r.is_dir() => r.clone(),
            _ => {
                eprintln!(
                    "ascp-sim: {} is not set to an existing folder: no remote host to reach",
                    crate::ENV_ROOT
                );
                eprintln!("ascp: Failed to open TCP connection for SSH, exiting.");
                return self.early_failure(
                    Stage::Initial { connected: false },
                    44,
                    "Failed to open TCP connection for SSH",
                );
            }
        };
        if !self.authenticated() {
            eprintln!("ascp: failed to authenticate, exiting.");
            return self.early_failure(
                Stage::Initial { connected: true },
                19,
                "failed to authenticate",
            );
        }

        let host_user = self.id.client_user.clone();
        let session = frames::session(&self.o, &self.id, Stage::Negotiated, &host_user);
        if self.link.send(&session).is_err() {
            return self.lost();
        }
        self.t0 = Instant::now();
        if let Some(stream) = reader {
            mgmt::spawn_reader(
                stream,
                Arc::clone(&self.ctl),
                Arc::clone(&self.link),
                Arc::clone(&self.acker),
            );
        }
        let sides = Sides {
            root,
            mode: self.o.mode,
        };
        let first_sid = self.sid.clone();
        let second = self.env.faults.find(|f| match f {
            Fault::SecondSession(c) => Some(*c),
            _ => None,
        });
        let result = self.negotiated(&sides, &sources, lists, second);
        let code = self.finish(result);
        if let Some(c) = second {
            let frame = frames::early_error(&self.o, &first_sid, c, &describe(c));
            if self.link.send(&frame).is_err() {
                return self.lost();
            }
        }
        code
    }

    /// From SESSION to the end of the transfer.
    fn negotiated(
        &mut self,
        sides: &Sides,
        sources: &[(String, Option<String>)],
        lists: bool,
        second: Option<u64>,
    ) -> Result<(), Halt> {
        if let Some(what) = self.env.faults.find(|f| match f {
            Fault::Query(q) => Some(q.clone()),
            _ => None,
        }) {
            self.query(&what)?;
        }
        if second.is_some() {
            // As HTTP fallback does: a second session on the same connection.
            self.sid = session_id();
            let mut id = self.id.clone();
            id.session_id = self.sid.clone();
            id.token = self.env.token.clone().or_else(|| self.o.token.clone());
            id.port = Some(self.o.fallback_port.unwrap_or(8080));
            self.link.send(&frames::init(&self.o, &id))?;
            let host_user = id.client_user.clone();
            self.link.send(&frames::session(
                &self.o,
                &id,
                Stage::Negotiated,
                &host_user,
            ))?;
            *self.acker.lock().unwrap_or_else(|e| e.into_inner()) = mgmt::Ident {
                session_id: self.sid.clone(),
                user_str: self.o.user_str.clone(),
            };
        }
        self.fire_faults(0)?;
        if self.o.keepalive {
            return self.keepalive(sides);
        }
        self.transfer_all(sides, sources, lists)
    }

    /// The checks a real ascp makes after INIT and before SSH. `Err((code, description,
    /// stderr))` ends the session. Returns the source arguments (shown form, and the pair
    /// destination for pair lists) and whether a list was used.
    #[allow(clippy::type_complexity)]
    fn startup_checks(
        &self,
    ) -> Result<(Vec<(String, Option<String>)>, bool), (u64, String, String)> {
        let o = &self.o;
        let startup = |code: u64, d: &str| {
            (
                code,
                d.to_owned(),
                format!("ascp: {d} \nStartup failed, exit\n"),
            )
        };
        for (name, value) in [
            ("ASPERA_SCP_TOKEN", &self.env.token),
            ("ASPERA_SCP_COOKIE", &self.env.cookie),
        ] {
            if value.as_deref().is_some_and(|v| v.contains('\n')) {
                return Err(startup(
                    8,
                    &format!("environment variable {name} must not contain newlines"),
                ));
            }
        }
        if o.host.as_deref().is_none_or(str::is_empty) {
            return Err(startup(8, "no remote host specified"));
        }
        if o.file_crypt.is_some() && self.env.file_pass.is_none() {
            let d =
                "File encryption needs a passphrase in environment variable ASPERA_SCP_FILEPASS";
            return Err((48, d.into(), format!("ascp: {d}, exiting.\n")));
        }
        let lists = o.file_list.is_some() || o.file_pair_list.is_some();
        if o.keepalive {
            if o.positionals.len() > 1 || lists {
                return Err(startup(23, "sources not allowed in keepalive mode"));
            }
            return Ok((Vec::new(), false));
        }
        let prefix = o.source_prefix.as_deref();
        if let Some(list) = o.file_list.as_ref().or(o.file_pair_list.as_ref()) {
            let text = match fs::read_to_string(list) {
                Ok(t) => t,
                Err(e) => {
                    let d = "failed to open input file list";
                    return Err((
                        8,
                        d.into(),
                        format!(
                            "{list}: failed to read file-list from file ({})\nascp: {d} \nStartup failed, exit\n",
                            strerror(&e)
                        ),
                    ));
                }
            };
            let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
            let pairs = o.file_pair_list.is_some();
            if pairs && lines.len() % 2 == 1 {
                let d = "Error reading file list from file/stdin";
                return Err((8, d.into(), format!("ascp: {d}, exiting.\n")));
            }
            if o.positionals.is_empty() {
                return Err(startup(41, "destination required"));
            }
            let sources = if pairs {
                lines
                    .chunks(2)
                    .map(|p| (with_prefix(prefix, p[0]), Some(p[1].to_owned())))
                    .collect()
            } else {
                lines
                    .iter()
                    .map(|l| (with_prefix(prefix, l), None))
                    .collect()
            };
            return Ok((sources, true));
        }
        match o.positionals.len() {
            0 => Err(startup(8, "no file arguments")),
            1 => {
                let d = "Source file list not specified";
                Err((8, d.into(), format!("ascp: {d}, exiting.\n")))
            }
            n => Ok((
                o.positionals[..n - 1]
                    .iter()
                    .map(|s| (with_prefix(prefix, s), None))
                    .collect(),
                false,
            )),
        }
    }

    /// The positional destination, as SESSION shows it.
    fn destination_arg(&self, _lists: bool) -> Option<String> {
        let o = &self.o;
        if o.keepalive || o.file_list.is_some() || o.file_pair_list.is_some() {
            return o.positionals.last().map(|d| clean_path(d));
        }
        match o.positionals.len() {
            0 => None,
            n => Some(clean_path(&o.positionals[n - 1])),
        }
    }

    fn authenticated(&self) -> bool {
        let e = &self.env;
        let user = self
            .o
            .user
            .clone()
            .unwrap_or_else(|| self.id.client_user.clone());
        let token = e.token.clone().or_else(|| self.o.token.clone());
        e.expect_user.as_ref().is_none_or(|u| *u == user)
            && e.expect_token
                .as_ref()
                .is_none_or(|t| Some(t) == token.as_ref())
            && e.expect_password
                .as_ref()
                .is_none_or(|p| Some(p) == e.password.as_ref())
    }

    /// SESSION (as a failing ascp writes it), ERROR, and the exit status 1.
    fn early_failure(&mut self, stage: Stage, code: u64, description: &str) -> i32 {
        let host_user = self.id.client_user.clone();
        let session = frames::session(&self.o, &self.id, stage, &host_user);
        let error = frames::early_error(&self.o, &self.sid, code, description);
        if self.link.send(&session).is_err() || self.link.send(&error).is_err() {
            return self.lost();
        }
        if !self.o.quiet && !matches!(code, 8 | 23 | 41 | 48) {
            print!("\r\nSession Stop  (Error: {description})\n");
        }
        self.log_line(&format!("session failed: code {code}: {description}"));
        1
    }

    fn lost(&mut self) -> i32 {
        let port = self.o.mgmt_port.unwrap_or(0);
        eprintln!("Cannot write to management socket localhost:{port}, Broken pipe");
        eprintln!("ascp: Cannot write to management socket, exiting.");
        self.log_line("management socket lost");
        1
    }

    fn log_line(&mut self, line: &str) {
        if let Some(f) = &mut self.log {
            let _ = writeln!(f, "{line}");
        }
    }

    fn query(&mut self, what: &str) -> Result<(), Halt> {
        let mut f = Out::new("QUERY");
        f.text("Query", what).text("SessionId", &self.sid);
        if let Some(u) = &self.o.user_str {
            f.text("UserStr", u);
        }
        self.link.send(&f.finish())?;
        let answer = loop {
            let st = self.ctl.lock();
            if st.cancelled {
                return Err(Halt::Cancelled);
            }
            if let Some(a) = st.query_answer {
                break a;
            }
            if st.eof || !self.link.present() {
                break QueryAnswer::Denied;
            }
            drop(
                self.ctl
                    .wait_until(st, Instant::now() + Duration::from_millis(200)),
            );
        };
        match answer {
            QueryAnswer::Allowed => Ok(()),
            _ if what == "LICENSE" => Err(Halt::Error(38, describe(38))),
            _ => Err(Halt::Error(34, describe(34))),
        }
    }

    /// Fire the byte-triggered faults whose threshold `bytes` has reached.
    fn fire_faults(&mut self, bytes: u64) -> Result<(), Halt> {
        let faults = self.env.faults.0.clone();
        for (i, f) in faults.iter().enumerate() {
            if self.fired.contains(&i) {
                continue;
            }
            let at = match f {
                Fault::CrashAfterBytes(n) if bytes >= *n => {
                    eprintln!("ascp-sim: injected fault: crash after {bytes} bytes");
                    // No core file for an injected crash.
                    let _ = nix::sys::resource::setrlimit(
                        nix::sys::resource::Resource::RLIMIT_CORE,
                        0,
                        0,
                    );
                    std::process::abort();
                }
                Fault::CloseMgmtAfterBytes(n)
                | Fault::MalformedFrame(n)
                | Fault::Stall(_, n)
                | Fault::SessionError(_, n)
                | Fault::Freeze(_, n) => *n,
                _ => continue,
            };
            if bytes < at {
                continue;
            }
            self.fired.push(i);
            match f {
                Fault::CloseMgmtAfterBytes(_) => self.link.close(),
                Fault::MalformedFrame(_) => {
                    let raw = format!(
                        "FASPMGR 2\nType: STATS\nSessionId: {}\nthis line has no separator\n\n",
                        self.sid
                    );
                    self.link.send_raw(raw.as_bytes())?;
                }
                Fault::Stall(d, _) => self.stall_until = Some(Instant::now() + *d),
                Fault::SessionError(code, _) => {
                    return Err(Halt::Error(*code, describe(*code)));
                }
                // Deaf and mute: the reader thread still reads controls, this one acts on
                // them afterwards.
                Fault::Freeze(d, _) => thread::sleep(*d),
                _ => {}
            }
        }
        Ok(())
    }

    /// The smallest pending byte threshold above `bytes`.
    fn next_threshold(&self, bytes: u64) -> Option<u64> {
        self.env
            .faults
            .0
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.fired.contains(i))
            .filter_map(|(_, f)| match f {
                Fault::CrashAfterBytes(n)
                | Fault::CloseMgmtAfterBytes(n)
                | Fault::MalformedFrame(n)
                | Fault::Stall(_, n)
                | Fault::SessionError(_, n)
                | Fault::Freeze(_, n) => Some(*n),
                _ => None,
            })
            .filter(|n| *n > bytes)
            .min()
    }

    // ----- the transfer -----

    fn transfer_all(
        &mut self,
        sides: &Sides,
        sources: &[(String, Option<String>)],
        lists: bool,
    ) -> Result<(), Halt> {
        let o = self.o.clone();
        let dest_shown = self.id.destination.clone().unwrap_or_else(|| ".".into());
        let dest_fs = sides
            .destination(&dest_shown)
            .map_err(|_| Halt::Error(41, "Path outside docroot".into()))?;
        let pairs = o.file_pair_list.is_some();
        let into = !pairs
            && o.src_base.is_none()
            && (dest_fs.is_dir() || o.create_dir || lists || sources.len() > 1);
        let needs_dir = (into || o.src_base.is_some()) && !dest_fs.is_dir();
        if needs_dir {
            if o.create_dir || lists || o.src_base.is_some() {
                self.totals.dir_attempted += 1;
                if fs::create_dir_all(&dest_fs).is_ok() {
                    self.totals.dir_passed += 1;
                } else {
                    self.totals.dir_failed += 1;
                }
            } else {
                return Err(Halt::Error(6, "Target must be a directory".into()));
            }
        }
        let mut planner = Planner {
            o: &o,
            sides,
            counts: ScanCounts::default(),
            seq: 0,
        };
        let plans: Vec<ArgPlan> = sources
            .iter()
            .enumerate()
            .map(|(i, (shown, pair))| {
                let target = match (pair, &o.src_base) {
                    (Some(p), _) => Target::Exactly(if p.starts_with('/') {
                        clean_path(p)
                    } else {
                        clean_path(&format!("{dest_shown}/{p}"))
                    }),
                    (None, Some(base)) => Target::Based {
                        folder: dest_shown.clone(),
                        base: base.clone(),
                    },
                    (None, None) if into => Target::Into(dest_shown.clone()),
                    (None, None) => Target::Exactly(dest_shown.clone()),
                };
                planner.plan(i as u64, shown, &target)
            })
            .collect();
        self.counts = planner.counts;
        if plans.len() == 1 {
            if let Some((code, description)) = &plans[0].fatal {
                // One source that cannot be read: the session fails with that error (the
                // real missing-source capture: ERROR 43, no FILEERROR).
                self.totals.arg_attempted = 1;
                return Err(Halt::Error(*code, description.clone()));
            }
        }
        if o.precalc {
            self.precalc(&plans)?;
        }
        for plan in &plans {
            self.run_arg(plan, pairs)?;
        }
        Ok(())
    }

    fn precalc(&mut self, plans: &[ArgPlan]) -> Result<(), Halt> {
        let files: u64 = plans.iter().map(|p| p.jobs.len() as u64).sum();
        let dirs: u64 = plans.iter().map(|p| p.dirs.len() as u64).sum();
        let bytes: u64 = plans
            .iter()
            .flat_map(|p| &p.jobs)
            .map(|j| match j.range {
                Some((lo, hi)) => hi.min(j.size).saturating_sub(lo),
                None => j.size,
            })
            .sum();
        let failed: u64 = plans
            .iter()
            .map(|p| p.failures.len() as u64 + u64::from(p.fatal.is_some()))
            .sum();
        let rate = self.ctl.lock().rate;
        let mut f = Out::new("NOTIFICATION");
        f.num("Rate", rate.target_kbps)
            .num("MinRate", rate.min_kbps)
            .text("SessionId", &self.sid)
            .text("Adaptive", rate.adaptive);
        if let Some(u) = &self.o.user_str {
            f.text("UserStr", u);
        }
        f.num("PreTransferFiles", files);
        if dirs > 0 {
            f.num("PreTransferDirs", dirs);
        }
        if self.counts.path_irregular > 0 {
            f.num("PreTransferSpecial", self.counts.path_irregular);
        }
        if failed > 0 {
            f.num("PreTransferFailed", failed);
        }
        f.num("PreTransferBytes", bytes);
        self.link.send(&f.finish())?;
        Ok(())
    }

    /// Move the files of one argument, then ARGSTOP.
    fn run_arg(&mut self, plan: &ArgPlan, pairs: bool) -> Result<(), Halt> {
        self.totals.arg_attempted += 1;
        let mut c = ArgCounts::default();
        if let Some((code, description)) = &plan.fatal {
            c.attempted += 1;
            c.failed += 1;
            self.totals.attempted += 1;
            self.totals.failed += 1;
            self.file_error_shown(&plan.shown, plan.index, *code, description)?;
        } else {
            self.totals.arg_completed += 1;
        }
        for f in &plan.failures {
            c.attempted += 1;
            c.failed += 1;
            self.totals.attempted += 1;
            self.totals.failed += 1;
            self.file_error_shown(&f.shown, plan.index, f.code, &f.description)?;
        }
        for (dir, _) in &plan.dirs {
            if dir.is_dir() {
                continue;
            }
            self.totals.dir_attempted += 1;
            if fs::create_dir_all(dir).is_ok() {
                self.totals.dir_passed += 1;
            } else {
                self.totals.dir_failed += 1;
            }
        }
        for job in &plan.jobs {
            // Pair lists imply -d, and --src-base recreates the structure below the base.
            if pairs || self.o.src_base.is_some() || self.o.create_dir {
                if let Some(parent) = job.dst.parent().filter(|p| !p.exists()) {
                    self.totals.dir_attempted += 1;
                    if fs::create_dir_all(parent).is_ok() {
                        self.totals.dir_passed += 1;
                    } else {
                        self.totals.dir_failed += 1;
                    }
                }
            }
            c.attempted += 1;
            match self.transfer(job)? {
                FileEnd::Done => c.passed += 1,
                FileEnd::Skipped => {
                    c.passed += 1;
                    c.skipped += 1;
                }
                FileEnd::Failed => c.failed += 1,
                FileEnd::Stopped => {}
            }
        }
        if self.o.remove_after && (self.o.remove_empty_dirs || self.o.remove_empty_source_dir) {
            if let Ok(src) = self_source_dir(&plan.shown, &self.o) {
                remove_empty_dirs(&src, self.o.remove_empty_source_dir);
            }
        }
        let mut f = Out::new("ARGSTOP");
        f.path("File", &plan.shown).text("SessionId", &self.sid);
        if let Some(u) = &self.o.user_str {
            f.text("UserStr", u);
        }
        f.num("FaspFileArgIndex", plan.index)
            .text(
                "ArgTransfersStatus",
                if c.failed == 0 { "Complete" } else { "Failed" },
            )
            .num("ArgTransfersAttempted", c.attempted);
        if c.failed > 0 {
            f.num("ArgTransfersFailed", c.failed);
        }
        f.num("ArgTransfersPassed", c.passed);
        if c.skipped > 0 {
            f.num("ArgTransfersSkipped", c.skipped);
        }
        self.link.send(&f.finish())?;
        Ok(())
    }

    /// The per-file frame fields, in ascp's field order.
    fn file_frame(
        &self,
        kind: &str,
        job: &Job,
        written: u64,
        start: u64,
        code: Option<(u64, &str)>,
    ) -> Out {
        let mut f = Out::new(kind);
        f.path("File", &job.dst_shown)
            .num("Size", job.size)
            .num("Written", written)
            .num("Bytescont", written)
            .num("Loss", 0);
        if let Some((code, description)) = code {
            f.num("Code", code).text("Description", description);
        }
        f.num("Elapsedusec", self.t0.elapsed().as_micros() as u64)
            .text("SessionId", &self.sid);
        if let Some(u) = &self.o.user_str {
            f.text("UserStr", u);
        }
        f.num("StartByte", start);
        if let Some((_, hi)) = job.range {
            f.num("EndByte", hi.min(job.size));
        }
        f.num("TransferBytes", self.totals.bytes)
            .num("FileBytes", self.totals.bytes)
            .num("Delay", 0)
            .num("FaspFileArgIndex", job.arg)
            .text(
                "FaspFileID",
                &file_id(job.arg, &job.src_shown, &job.dst_shown),
            );
        f
    }

    fn file_error(&mut self, job: &Job, code: u64, description: &str) -> Result<FileEnd, Halt> {
        self.totals.failed += 1;
        let f = self.file_frame("FILEERROR", job, 0, 0, Some((code, description)));
        self.link.send(&f.finish())?;
        self.log_line(&format!(
            "FILEERROR {}: {code} {description}",
            job.dst_shown
        ));
        Ok(FileEnd::Failed)
    }

    /// FILEERROR for something that never became a job (an unreadable argument).
    fn file_error_shown(
        &mut self,
        shown: &str,
        arg: u64,
        code: u64,
        description: &str,
    ) -> Result<(), Halt> {
        let job = Job {
            arg,
            src: PathBuf::from(shown),
            src_shown: shown.to_owned(),
            dst: PathBuf::new(),
            dst_shown: shown.to_owned(),
            size: 0,
            mtime: SystemTime::UNIX_EPOCH,
            range: None,
            link: None,
        };
        let f = self.file_frame("FILEERROR", &job, 0, 0, Some((code, description)));
        self.link.send(&f.finish())?;
        Ok(())
    }

    /// Whether an existing destination already holds what the source holds, by the resume
    /// criterion (`diff`).
    fn same_content(&self, job: &Job, dst: &fs::Metadata) -> bool {
        if dst.len() != job.size {
            return false;
        }
        match self.o.resume {
            2 | 3 => files_equal(&job.src, &job.dst),
            _ => {
                let a = dst
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok());
                let b = job.mtime.duration_since(SystemTime::UNIX_EPOCH).ok();
                a.map(|d| d.as_secs()) == b.map(|d| d.as_secs())
            }
        }
    }

    fn transfer(&mut self, job: &Job) -> Result<FileEnd, Halt> {
        self.totals.attempted += 1;
        let name = job
            .src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let denied = self
            .env
            .faults
            .0
            .iter()
            .any(|f| matches!(f, Fault::DenyFile(n) if *n == name));
        if denied {
            return self.file_error(job, 5, "Source: Permission denied");
        }
        if let Some(target) = &job.link {
            return self.copy_link(job, target);
        }
        let mut src = match File::open(&job.src) {
            Ok(f) => f,
            Err(e) => {
                let (code, d) = io_code(&e, 4, 35);
                return self.file_error(job, code, &format!("Source: {d}"));
            }
        };
        // The overwrite policy.
        if let Ok(meta) = fs::metadata(&job.dst) {
            if meta.is_dir() {
                return self.file_error(job, 7, "Destination: Is a directory");
            }
            let older = meta.modified().is_ok_and(|t| t < job.mtime);
            let skip = match self.o.overwrite {
                Overwrite::Never => true,
                Overwrite::Always => false,
                Overwrite::Diff => self.same_content(job, &meta),
                Overwrite::Older => !older,
                Overwrite::DiffOlder => self.same_content(job, &meta) || !older,
            };
            if skip {
                return self.skip(job);
            }
        }
        let write_path = match &self.o.partial_suffix {
            Some(s) => {
                let mut p = job.dst.clone().into_os_string();
                p.push(s);
                PathBuf::from(p)
            }
            None => job.dst.clone(),
        };
        let (mut start, end) = match job.range {
            Some((lo, hi)) => (lo.min(job.size), hi.min(job.size)),
            None => (0, job.size),
        };
        if job.range.is_none() && self.o.resume > 0 {
            if let Ok(m) = fs::metadata(&write_path) {
                let have = m.len();
                if m.is_file()
                    && have > 0
                    && have < job.size
                    && (self.o.resume == 1 || prefix_equal(&job.src, &write_path, have))
                {
                    start = have;
                }
            }
        }
        let mut dst = match OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&write_path)
        {
            Ok(f) => f,
            Err(e) => {
                let (code, d) = io_code(&e, 4, 36);
                return self.file_error(job, code, &format!("Destination: {d}"));
            }
        };
        let prepared = (|| -> std::io::Result<()> {
            if job.range.is_none() {
                dst.set_len(start)?;
            }
            src.seek(SeekFrom::Start(start))?;
            dst.seek(SeekFrom::Start(start))?;
            Ok(())
        })();
        if let Err(e) = prepared {
            let (code, d) = io_code(&e, 4, 36);
            return self.file_error(job, code, &format!("Destination: {d}"));
        }
        let mut hasher = self.o.checksum.map(Hasher::new);
        if job.range.is_some() || start > 0 {
            // Hashed from the file at the end.
            hasher = None;
        }
        self.stats(job, start, start)?;
        let outcome = self.copy(job, &mut src, &mut dst, start, end, hasher.as_mut())?;
        let pos = match outcome {
            Copy::Complete(pos) => pos,
            Copy::Stopped(pos) => {
                let f = self.file_frame("STOP", job, pos, start, None);
                self.link.send(&f.finish())?;
                return Ok(FileEnd::Stopped);
            }
            Copy::Failed(code, d) => return self.file_error(job, code, &d),
        };
        drop(dst);
        if write_path != job.dst {
            if let Err(e) = fs::rename(&write_path, &job.dst) {
                return self.file_error(
                    job,
                    64,
                    &format!("Cannot rename partial file: {}", strerror(&e)),
                );
            }
        }
        if self.o.preserve_times || self.o.preserve_mtime {
            if let Ok(f) = OpenOptions::new().write(true).open(&job.dst) {
                let _ = f.set_modified(job.mtime);
            }
        }
        let checksum = match (self.o.checksum, hasher) {
            (Some(_), Some(h)) => Some(h.hex()),
            (Some(kind), None) => {
                let mut h = Hasher::new(kind);
                let len = fs::metadata(&job.dst).map_or(0, |m| m.len());
                hash_prefix(&job.dst, len, &mut h).ok().map(|()| h.hex())
            }
            _ => None,
        };
        let mut f = self.file_frame("STOP", job, pos, start, None);
        if let (Some(kind), Some(sum)) = (self.o.checksum, &checksum) {
            f.text("FileChecksum", sum)
                .text("FileChecksumType", kind.word());
        }
        self.link.send(&f.finish())?;
        self.totals.passed += 1;
        self.totals.files_moved += 1;
        self.log_line(&format!("STOP {} ({} bytes)", job.dst_shown, pos));
        if self.o.remove_after {
            let _ = fs::remove_file(&job.src);
        } else if let Some(archive) = &self.o.move_after {
            let to = Path::new(archive).join(job.src.file_name().unwrap_or_default());
            let _ = fs::create_dir_all(archive);
            let _ = fs::rename(&job.src, to);
        }
        Ok(FileEnd::Done)
    }

    fn copy_link(&mut self, job: &Job, target: &Path) -> Result<FileEnd, Halt> {
        if fs::symlink_metadata(&job.dst).is_ok() {
            if self.o.symlinks == crate::options::Symlinks::CopyForce {
                let _ = fs::remove_file(&job.dst);
            } else {
                return self.skip(job);
            }
        }
        if let Err(e) = std::os::unix::fs::symlink(target, &job.dst) {
            let (code, d) = io_code(&e, 4, 36);
            return self.file_error(job, code, &format!("Destination: {d}"));
        }
        self.stats(job, 0, 0)?;
        let f = self.file_frame("STOP", job, 0, 0, None);
        self.link.send(&f.finish())?;
        self.totals.passed += 1;
        Ok(FileEnd::Done)
    }

    fn skip(&mut self, job: &Job) -> Result<FileEnd, Halt> {
        self.totals.passed += 1;
        self.totals.skipped += 1;
        let f = self.file_frame("SKIP", job, 0, 0, None);
        self.link.send(&f.finish())?;
        self.log_line(&format!("SKIP {}", job.dst_shown));
        Ok(FileEnd::Skipped)
    }

    fn stats(&mut self, job: &Job, written: u64, start: u64) -> Result<(), Halt> {
        let f = self.file_frame("STATS", job, written, start, None);
        self.link.send(&f.finish())?;
        Ok(())
    }

    /// The paced copy of `start..end`, with STATS at the interval and the manager's
    /// controls and the injected faults honoured between chunks.
    fn copy(
        &mut self,
        job: &Job,
        src: &mut File,
        dst: &mut File,
        start: u64,
        end: u64,
        mut hasher: Option<&mut Hasher>,
    ) -> Result<Copy, Halt> {
        let interval = self.env.stats_interval;
        let mut next_stats = Instant::now() + interval;
        let mut pos = start;
        let mut bucket = Bucket::new(Instant::now());
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let now = Instant::now();
            let rate = {
                let mut st = self.ctl.lock();
                if st.cancelled {
                    return Err(Halt::Cancelled);
                }
                if let Some(i) = st
                    .stops
                    .iter()
                    .position(|s| *s == job.dst_shown || *s == job.src_shown)
                {
                    st.stops.remove(i);
                    return Ok(Copy::Stopped(pos));
                }
                if self.o.keepalive && st.done == Some(DoneOperation::Shutdown) {
                    return Ok(Copy::Stopped(pos));
                }
                st.rate.effective_kbps()
            };
            if now >= next_stats {
                self.stats(job, pos, start)?;
                next_stats = (next_stats + interval).max(now + interval / 2);
            }
            if pos >= end {
                return Ok(Copy::Complete(pos));
            }
            let stalled = self.stall_until.is_some_and(|t| now < t);
            if rate == 0 || stalled {
                bucket.idle(now);
                let wake = match self.stall_until {
                    Some(t) if stalled => t.min(next_stats),
                    _ => next_stats,
                };
                let st = self.ctl.lock();
                drop(self.ctl.wait_until(st, wake));
                continue;
            }
            let mut chunk = Bucket::chunk_for(rate).min(end - pos);
            if let Some(t) = self.next_threshold(self.totals.bytes) {
                chunk = chunk.min(t - self.totals.bytes).max(1);
            }
            if let Some(wait) = bucket.wait_for(chunk, rate, now) {
                let until = (now + wait).min(next_stats);
                let st = self.ctl.lock();
                drop(self.ctl.wait_until(st, until));
                continue;
            }
            let n = chunk as usize;
            if buf.len() < n {
                buf.resize(n, 0);
            }
            let got = match read_up_to(src, &mut buf[..n]) {
                Ok(0) => return Ok(Copy::Complete(pos)),
                Ok(g) => g,
                Err(e) => {
                    let (code, d) = io_code(&e, 4, 35);
                    return Ok(Copy::Failed(code, format!("Source: {d}")));
                }
            };
            if let Err(e) = dst.write_all(&buf[..got]) {
                let (code, d) = io_code(&e, 4, 36);
                return Ok(Copy::Failed(code, format!("Destination: {d}")));
            }
            if let Some(h) = hasher.as_deref_mut() {
                h.update(&buf[..got]);
            }
            bucket.take(got as u64);
            pos += got as u64;
            self.totals.bytes += got as u64;
            self.fire_faults(self.totals.bytes)?;
        }
    }

    // ----- persistent sessions -----

    fn keepalive(&mut self, sides: &Sides) -> Result<(), Halt> {
        let dest_root = self.id.destination.clone().unwrap_or_else(|| ".".into());
        let mut index = 0u64;
        loop {
            let start = {
                let mut st = self.ctl.lock();
                loop {
                    if st.cancelled {
                        return Err(Halt::Cancelled);
                    }
                    if st.done == Some(DoneOperation::Shutdown) {
                        return Ok(());
                    }
                    // A STOP for a file still queued drops it.
                    let stops = std::mem::take(&mut st.stops);
                    st.starts
                        .retain(|s| !stops.iter().any(|x| *x == s.source || *x == s.destination));
                    if let Some(s) = st.starts.pop_front() {
                        break s;
                    }
                    if st.done == Some(DoneOperation::Linger) || st.eof {
                        return Ok(());
                    }
                    st = self
                        .ctl
                        .wait_until(st, Instant::now() + Duration::from_millis(500));
                }
            };
            let destination = if start.destination.starts_with('/') {
                clean_path(&start.destination)
            } else {
                clean_path(&format!("{dest_root}/{}", start.destination))
            };
            let into = sides.destination(&destination).is_ok_and(|p| p.is_dir());
            let target = if into {
                Target::Into(destination)
            } else {
                Target::Exactly(destination)
            };
            let o = self.o.clone();
            let mut planner = Planner {
                o: &o,
                sides,
                counts: self.counts,
                seq: 0,
            };
            let mut plan = planner.plan(index, &clean_path(&start.source), &target);
            self.counts = planner.counts;
            if let Some(r) = start.range {
                for j in &mut plan.jobs {
                    j.range = Some((r.start, r.end));
                }
            }
            for j in &plan.jobs {
                if let Some(parent) = j.dst.parent() {
                    let _ = fs::create_dir_all(parent);
                }
            }
            index += 1;
            self.run_arg(&plan, false)?;
        }
    }

    // ----- the end -----

    fn totals_frame(&self, kind: &str, error: Option<(u64, &str)>) -> Out {
        let t = &self.totals;
        let c = &self.counts;
        let mut f = Out::new(kind);
        f.num("Loss", 0);
        if let Some((code, description)) = error {
            f.num("Code", code).text("Description", description);
        }
        f.num("Elapsedusec", self.t0.elapsed().as_micros() as u64)
            .text("SessionId", &self.sid);
        if let Some(u) = &self.o.user_str {
            f.text("UserStr", u);
        }
        f.num("TransferBytes", t.bytes)
            .num("FileBytes", t.bytes)
            .num("Delay", 0)
            .num("ArgScansAttempted", t.arg_attempted)
            .num("ArgScansCompleted", t.arg_completed)
            .num("PathScansAttempted", c.path_attempted)
            .num("PathScansFailed", c.path_failed)
            .num("PathScansIrregular", c.path_irregular)
            .num("PathScansExcluded", c.path_excluded)
            .num("DirScansCompleted", c.dir_scans)
            .num("FileScansCompleted", c.file_scans)
            .num("DirCreatesAttempted", t.dir_attempted)
            .num("DirCreatesFailed", t.dir_failed)
            .num("DirCreatesPassed", t.dir_passed)
            .num("TransfersAttempted", t.attempted)
            .num("TransfersFailed", t.failed)
            .num("TransfersPassed", t.passed)
            .num("TransfersSkipped", t.skipped);
        f
    }

    /// Write DONE or ERROR for the session and return the exit status.
    fn finish(&mut self, result: Result<(), Halt>) -> i32 {
        let error = match result {
            Err(Halt::Lost) => return self.lost(),
            Err(Halt::Cancelled) => Some((28, describe(28))),
            Err(Halt::Error(code, d)) => Some((code, d)),
            Ok(()) if self.totals.failed > 0 => Some((27, describe(27))),
            Ok(()) => None,
        };
        let frame = match &error {
            // Nothing was tried yet: the short ERROR of a session that failed at its start
            // (the real missing-source capture).
            Some((code, d)) if self.totals.attempted == 0 && self.totals.bytes == 0 => {
                frames::early_error(&self.o, &self.sid, *code, d)
            }
            Some((code, d)) => self.totals_frame("ERROR", Some((*code, d))).finish(),
            None => self.totals_frame("DONE", None).finish(),
        };
        if self.link.send(&frame).is_err() {
            return self.lost();
        }
        let secs = self.t0.elapsed().as_secs();
        match error {
            Some((code, d)) => {
                self.log_line(&format!("session failed: code {code}: {d}"));
                if !self.o.quiet {
                    if code == 27 {
                        self.summary("Partial Completion", secs);
                    } else {
                        print!("\r\nSession Stop  (Error: {d})\n");
                    }
                }
                1
            }
            None => {
                self.log_line("session done");
                if !self.o.quiet {
                    self.summary("Completed", secs);
                }
                0
            }
        }
    }

    /// ascp's closing summary on stdout.
    fn summary(&self, what: &str, secs: u64) {
        let t = &self.totals;
        let kbits = t.bytes * 8 / 1000 / secs.max(1);
        let plural =
            |n: u64, one: &'static str, many: &'static str| if n == 1 { one } else { many };
        let mut s = format!(
            "{what}: {}K bytes transferred in {secs} seconds\n ({kbits}K bits/sec), in {} file{}",
            t.bytes / 1024,
            t.files_moved,
            plural(t.files_moved, "", "s")
        );
        if self.counts.dir_scans > 0 {
            let d = self.counts.dir_scans;
            s.push_str(&format!(", {d} director{}", plural(d, "y", "ies")));
        }
        if t.failed > 0 {
            s.push_str(&format!(
                "; {} file{} failed",
                t.failed,
                plural(t.failed, "", "s")
            ));
        }
        if t.skipped > 0 {
            s.push_str(&format!(
                "; {} file{} skipped or empty",
                t.skipped,
                plural(t.skipped, "", "s")
            ));
        }
        println!("{s}.");
    }
}

/// The result of the paced copy.
enum Copy {
    Complete(u64),
    Stopped(u64),
    Failed(u64, String),
}

fn read_up_to(src: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Whether the first `len` bytes of two files are equal (the checksum criteria of `-k 2/3`).
fn prefix_equal(a: &Path, b: &Path, len: u64) -> bool {
    let (Ok(fa), Ok(fb)) = (File::open(a), File::open(b)) else {
        return false;
    };
    let (mut fa, mut fb) = (fa.take(len), fb.take(len));
    let mut ba = vec![0u8; 256 * 1024];
    let mut bb = vec![0u8; 256 * 1024];
    loop {
        let (Ok(na), Ok(nb)) = (
            read_up_to_r(&mut fa, &mut ba),
            read_up_to_r(&mut fb, &mut bb),
        ) else {
            return false;
        };
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }
}

fn read_up_to_r(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

fn files_equal(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (fs::metadata(a), fs::metadata(b)) else {
        return false;
    };
    ma.len() == mb.len() && prefix_equal(a, b, ma.len())
}

/// `RemoteAddress`: the host as an address (no DNS lookup: `localhost` is 127.0.0.1, any
/// other name is shown as given).
fn remote_address(host: &str) -> String {
    if host.eq_ignore_ascii_case("localhost") {
        "127.0.0.1".into()
    } else {
        host.to_owned()
    }
}

fn self_source_dir(shown: &str, o: &Options) -> Result<PathBuf, ()> {
    if o.mode == Mode::Send {
        let p = PathBuf::from(shown);
        if p.is_dir() {
            return Ok(p);
        }
    }
    Err(())
}

/// Remove emptied folders below `dir` (and `dir` itself when `this_too`).
fn remove_empty_dirs(dir: &Path, this_too: bool) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_empty_dirs(&e.path(), true);
            }
        }
    }
    if this_too {
        let _ = fs::remove_dir(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::session_id;

    #[test]
    fn session_ids_are_random_version_4_uuids() {
        let a = session_id();
        let groups: Vec<&str> = a.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{a}"
        );
        assert!(
            a.bytes()
                .all(|c| c == b'-' || matches!(c, b'0'..=b'9' | b'a'..=b'f')),
            "{a}"
        );
        assert!(groups[2].starts_with('4'), "version 4: {a}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8'..=b'9' | b'a'..=b'b'),
            "variant: {a}"
        );
        assert_ne!(a, session_id());
    }
}
