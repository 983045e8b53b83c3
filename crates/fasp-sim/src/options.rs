//! The ascp command line: a getopt_long-style parser that accepts what ascp 3.9 accepts and
//! refuses what it refuses, with ascp's own messages.
//!
//! Parsing follows the real binary (observed with the `cos-aspera` ascp 3.9.0):
//! - options stop at the first argument that is not an option, or after `--` (no reordering:
//!   an option after a source is a source);
//! - short options can be grouped (`-dpT`) and take their argument attached or separate
//!   (`-l10`, `-l 10`, `-M5000`, `-M 5000`);
//! - long options take `--name=value` or `--name value` and may be abbreviated to any unique
//!   prefix (`--precalc`); an ambiguous prefix is refused;
//! - values are checked as they are read, in command-line order, so the first bad option is
//!   the one reported.

use std::fmt;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// Run a transfer session.
    Transfer(Box<Options>),
    /// `-h`/`--help`: print the usage text and exit 0.
    Help,
    /// `-A`/`--version`: print the version and exit 0.
    Version,
    /// No argument at all: print the short usage on stdout and exit 112, as ascp does.
    ShortUsage,
}

/// A command line ascp refuses before connecting anywhere: the message goes to stderr
/// (exactly as ascp words it) and the process exits with status 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    /// The text ascp prints (without the final line feed).
    pub message: String,
}

impl UsageError {
    fn new(message: impl Into<String>) -> UsageError {
        UsageError {
            message: message.into(),
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}

/// `--mode`: which way the files go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `send`: local sources to the remote destination (upload).
    #[default]
    Send,
    /// `recv`: remote sources to the local destination (download).
    Recv,
}

/// `--policy`: how the rate is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Policy {
    /// `fixed`: `Adaptive: Fixed`.
    Fixed,
    /// `high`: `Adaptive` with priority 1.
    High,
    /// `fair`: `Adaptive` with priority 2 (the default).
    #[default]
    Fair,
    /// `low`: `Trickle`.
    Low,
}

impl Policy {
    /// The `Adaptive` word of SESSION and NOTIFICATION frames.
    pub fn adaptive_word(self) -> &'static str {
        match self {
            Policy::Fixed => "Fixed",
            Policy::High | Policy::Fair => "Adaptive",
            Policy::Low => "Trickle",
        }
    }

    /// The `Priority` number.
    pub fn priority(self) -> u8 {
        if self == Policy::High { 1 } else { 2 }
    }
}

/// In-transit encryption (`-c`, `-T`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cipher {
    /// `-T` or `-c none`.
    None,
    /// `aes-128`, the default.
    #[default]
    Aes128,
    /// `aes-192`.
    Aes192,
    /// `aes-256`.
    Aes256,
}

impl Cipher {
    /// The `Cipher` value of SESSION.
    pub fn session_word(self) -> &'static str {
        match self {
            Cipher::None => "none",
            Cipher::Aes128 => "aes-128",
            Cipher::Aes192 => "aes-192",
            Cipher::Aes256 => "aes-256",
        }
    }
}

/// `--overwrite`: what to do when the destination file exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overwrite {
    /// `never`: leave it (SKIP).
    Never,
    /// `always`: replace it (or resume it, with `-k`).
    Always,
    /// `diff`: replace it when it differs by the resume criterion (the default).
    #[default]
    Diff,
    /// `older`: replace it when it is older than the source.
    Older,
    /// `diff+older`: both conditions.
    DiffOlder,
}

/// `--symbolic-links`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Symlinks {
    /// `follow` (default): transfer what the link points to.
    #[default]
    Follow,
    /// `copy`: recreate the link.
    Copy,
    /// `copy+force`: recreate the link, replacing what is there.
    CopyForce,
    /// `skip`: ignore links.
    Skip,
}

/// `--file-checksum`: the per-file checksum reported in STOP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumKind {
    /// `md5`
    Md5,
    /// `sha1` (`sha-1`)
    Sha1,
    /// `sha-256` (`sha256`)
    Sha256,
    /// `sha-384` (`sha384`)
    Sha384,
    /// `sha-512` (`sha512`)
    Sha512,
}

impl ChecksumKind {
    /// The `FileChecksumType` word (ascp's help spells them `md5`, `sha1`, `sha-256`...).
    pub fn word(self) -> &'static str {
        match self {
            ChecksumKind::Md5 => "md5",
            ChecksumKind::Sha1 => "sha1",
            ChecksumKind::Sha256 => "sha-256",
            ChecksumKind::Sha384 => "sha-384",
            ChecksumKind::Sha512 => "sha-512",
        }
    }
}

/// `-y`: HTTP fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// `-y 1`: fall back to HTTP when UDP fails.
    Allow,
    /// `-y F`: HTTP at once.
    Force,
}

/// `--file-crypt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCrypt {
    /// `encrypt`
    Encrypt,
    /// `decrypt`
    Decrypt,
}

/// Everything the command line of one transfer says, after ascp's own defaults.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct Options {
    /// `-M PORT`: the management port on localhost.
    pub mgmt_port: Option<u16>,
    /// `-u STR`: echoed as `UserStr`.
    pub user_str: Option<String>,
    /// `--mode`.
    pub mode: Mode,
    /// `--user`.
    pub user: Option<String>,
    /// `--host`.
    pub host: Option<String>,
    /// `-P`: SSH port (default 22).
    pub ssh_port: Option<u16>,
    /// `-O`: UDP port (default 33001).
    pub udp_port: Option<u16>,
    /// `-l`, kbit/s as ascp reads it (suffixes applied); `None` = default 10000.
    pub target_rate_kbps: Option<u64>,
    /// `-m`, kbit/s.
    pub min_rate_kbps: Option<u64>,
    /// `--policy`.
    pub policy: Policy,
    /// `-c` / `-T`.
    pub cipher: Cipher,
    /// `-i`: private key files (repeatable).
    pub key_files: Vec<String>,
    /// `-W`: token on the command line.
    pub token: Option<String>,
    /// `-k`: resume level 0-3.
    pub resume: u8,
    /// `--overwrite`.
    pub overwrite: Overwrite,
    /// `-d`.
    pub create_dir: bool,
    /// `--file-checksum` (`None` for `none` or absent).
    pub checksum: Option<ChecksumKind>,
    /// `--precalculate-job-size`.
    pub precalc: bool,
    /// `--keepalive`.
    pub keepalive: bool,
    /// `-C M:N`.
    pub cluster: Option<(u32, u32)>,
    /// `-Z`.
    pub dgram_size: Option<u32>,
    /// `-g`: read block size, bytes.
    pub read_block: u64,
    /// `-G`: write block size, bytes.
    pub write_block: u64,
    /// `--tags` / `--tags64`, as the JSON text ascp echoes in `Tags`.
    pub tags: Option<String>,
    /// `-y`.
    pub fallback: Option<Fallback>,
    /// `-t`: HTTP fallback port.
    pub fallback_port: Option<u16>,
    /// `--file-list`.
    pub file_list: Option<String>,
    /// `--file-pair-list`.
    pub file_pair_list: Option<String>,
    /// `--src-base`.
    pub src_base: Option<String>,
    /// `--source-prefix`.
    pub source_prefix: Option<String>,
    /// `--remove-after-transfer`.
    pub remove_after: bool,
    /// `--remove-empty-directories`.
    pub remove_empty_dirs: bool,
    /// `--remove-empty-source-directory`.
    pub remove_empty_source_dir: bool,
    /// `--move-after-transfer`.
    pub move_after: Option<String>,
    /// `--symbolic-links`.
    pub symlinks: Symlinks,
    /// `--skip-special-files`.
    pub skip_special: bool,
    /// `-p`: preserve times (and the CreatePolicy bit).
    pub preserve_times: bool,
    /// `--preserve-modification-time`.
    pub preserve_mtime: bool,
    /// `--preserve-access-time`.
    pub preserve_atime: bool,
    /// `--preserve-creation-time`.
    pub preserve_ctime: bool,
    /// `--preserve-source-access-time`.
    pub preserve_source_atime: bool,
    /// `--preserve-file-owner-uid`.
    pub preserve_uid: bool,
    /// `--preserve-file-owner-gid`.
    pub preserve_gid: bool,
    /// `--partial-file-suffix`.
    pub partial_suffix: Option<String>,
    /// `--file-manifest=text`.
    pub manifest_text: bool,
    /// `--file-manifest-path`.
    pub manifest_path: Option<String>,
    /// `--file-manifest-inprogress-suffix`.
    pub manifest_inprogress: Option<String>,
    /// `-E`: exclusion patterns.
    pub excludes: Vec<String>,
    /// `-N`: inclusion patterns.
    pub includes: Vec<String>,
    /// `--exclude-newer-than` (seconds since the epoch).
    pub exclude_newer_than: Option<u64>,
    /// `--exclude-older-than` (seconds since the epoch).
    pub exclude_older_than: Option<u64>,
    /// `-@ LOW:HIGH`: only this byte range of each file.
    pub range: Option<(u64, u64)>,
    /// `--file-crypt`.
    pub file_crypt: Option<FileCrypt>,
    /// `--delete-before-transfer`.
    pub delete_before: bool,
    /// `--save-before-overwrite`.
    pub save_before_overwrite: bool,
    /// `-L`: local log folder.
    pub log_dir: Option<String>,
    /// `-q`: no progress on stdout.
    pub quiet: bool,
    /// Positional arguments: sources, then the destination.
    pub positionals: Vec<String>,
}

impl Options {
    /// The target rate in kbit/s (ascp's default is 10000).
    pub fn target_rate(&self) -> u64 {
        self.target_rate_kbps.unwrap_or(DEFAULT_RATE_KBPS)
    }

    /// The minimum rate in kbit/s, never above the target (ascp clamps it silently).
    pub fn min_rate(&self) -> u64 {
        self.min_rate_kbps.unwrap_or(0).min(self.target_rate())
    }
}

/// ascp's default target rate, kbit/s.
pub const DEFAULT_RATE_KBPS: u64 = 10_000;

/// Largest `--tags` JSON ascp accepts, bytes.
const MAX_TAGS: usize = 4095;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Arity {
    Flag,
    Value,
}

/// Long options ascp 3.9 knows (documented and hidden ones), for exact and prefix matching.
const LONG: &[(&str, Arity)] = &[
    ("help", Arity::Flag),
    ("version", Arity::Flag),
    ("mode", Arity::Value),
    ("user", Arity::Value),
    ("host", Arity::Value),
    ("policy", Arity::Value),
    ("file-list", Arity::Value),
    ("file-pair-list", Arity::Value),
    ("source-prefix", Arity::Value),
    ("symbolic-links", Arity::Value),
    ("remove-after-transfer", Arity::Flag),
    ("move-after-transfer", Arity::Value),
    ("remove-empty-directories", Arity::Flag),
    ("remove-empty-source-directory", Arity::Flag),
    ("save-before-overwrite", Arity::Flag),
    ("skip-special-files", Arity::Flag),
    ("file-manifest", Arity::Value),
    ("file-manifest-path", Arity::Value),
    ("file-manifest-inprogress-suffix", Arity::Value),
    ("precalculate-job-size", Arity::Flag),
    ("overwrite", Arity::Value),
    ("file-crypt", Arity::Value),
    ("file-checksum", Arity::Value),
    ("partial-file-suffix", Arity::Value),
    ("src-base", Arity::Value),
    ("proxy", Arity::Value),
    ("preserve-file-owner-uid", Arity::Flag),
    ("preserve-file-owner-gid", Arity::Flag),
    ("allow-password-prompt", Arity::Flag),
    ("ignore-host-key", Arity::Flag),
    ("check-sshfp", Arity::Value),
    ("apply-local-docroot", Arity::Flag),
    ("preserve-xattrs", Arity::Value),
    ("remote-preserve-xattrs", Arity::Value),
    ("preserve-acls", Arity::Value),
    ("remote-preserve-acls", Arity::Value),
    ("multi-session-threshold", Arity::Value),
    ("delete-before-transfer", Arity::Flag),
    // Not in `ascp -h`, but accepted by ascp 3.9.
    ("tags", Arity::Value),
    ("tags64", Arity::Value),
    ("keepalive", Arity::Flag),
    ("preserve-access-time", Arity::Flag),
    ("preserve-modification-time", Arity::Flag),
    ("preserve-creation-time", Arity::Flag),
    ("preserve-source-access-time", Arity::Flag),
    ("exclude-newer-than", Arity::Value),
    ("exclude-older-than", Arity::Value),
    ("retry-timeout", Arity::Value),
];

/// Short options that take a value (ascp 3.9's option string, hidden letters included).
const SHORT_VALUE: &str = "abcefgijklmnostuwxyzBCEGHIKLMNOPRSUVWXYZ@";
/// Short options without a value.
const SHORT_FLAG: &str = "hAdpqrvDQT6J";

/// Parse ascp's arguments (without the program name).
///
/// ```
/// use fasp_sim::{Command, parse_args};
///
/// let cmd = parse_args(["-M", "4000", "--mode=send", "--host=h", "-l", "1m", "a", "/in"]).unwrap();
/// let Command::Transfer(o) = cmd else { panic!() };
/// assert_eq!((o.mgmt_port, o.target_rate()), (Some(4000), 1000));
/// assert_eq!(o.positionals, ["a", "/in"]);
///
/// let err = parse_args(["--x"]).unwrap_err();
/// assert_eq!(err.message, "unrecognized option `--x'");
/// ```
pub fn parse_args<I, S>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    if args.is_empty() {
        return Ok(Command::ShortUsage);
    }
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (body, None),
            };
            let (full, arity) = find_long(name, arg)?;
            let value = match (arity, inline) {
                (Arity::Flag, Some(_)) => {
                    return Err(UsageError::new(format!(
                        "option `--{name}' doesn't allow an argument"
                    )));
                }
                (Arity::Flag, None) => None,
                (Arity::Value, Some(v)) => Some(v),
                (Arity::Value, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.clone())
                    }
                    None => {
                        return Err(UsageError::new(format!(
                            "option `--{name}' requires an argument"
                        )));
                    }
                },
            };
            if let Some(cmd) = apply_long(&mut o, full, value.unwrap_or_default())? {
                return Ok(cmd);
            }
            continue;
        }
        if arg.len() > 1 && arg.starts_with('-') {
            let letters: Vec<char> = arg[1..].chars().collect();
            let mut k = 0;
            while k < letters.len() {
                let c = letters[k];
                k += 1;
                if SHORT_FLAG.contains(c) {
                    if let Some(cmd) = apply_flag(&mut o, c) {
                        return Ok(cmd);
                    }
                } else if SHORT_VALUE.contains(c) {
                    let value = if k < letters.len() {
                        let v: String = letters[k..].iter().collect();
                        k = letters.len();
                        v
                    } else if let Some(v) = args.get(i) {
                        i += 1;
                        v.clone()
                    } else {
                        return Err(UsageError::new(format!(
                            "option requires an argument -- {c}"
                        )));
                    };
                    apply_short(&mut o, c, &value)?;
                } else {
                    return Err(UsageError::new(format!("invalid option -- {c}")));
                }
            }
            continue;
        }
        // The first non-option ends the options.
        i -= 1;
        break;
    }
    o.positionals = args[i..].to_vec();
    Ok(Command::Transfer(Box::new(o)))
}

fn find_long(name: &str, arg: &str) -> Result<(&'static str, Arity), UsageError> {
    if let Some(&(n, a)) = LONG.iter().find(|(n, _)| *n == name) {
        return Ok((n, a));
    }
    let matches: Vec<&(&str, Arity)> = LONG
        .iter()
        .filter(|(n, _)| !name.is_empty() && n.starts_with(name))
        .collect();
    match matches.as_slice() {
        [(n, a)] => Ok((n, *a)),
        [] => Err(UsageError::new(format!("unrecognized option `{arg}'"))),
        _ => Err(UsageError::new(format!("option `--{name}' is ambiguous"))),
    }
}

fn apply_flag(o: &mut Options, c: char) -> Option<Command> {
    match c {
        'h' => return Some(Command::Help),
        'A' => return Some(Command::Version),
        'd' => o.create_dir = true,
        'p' => o.preserve_times = true,
        'q' => o.quiet = true,
        'T' => o.cipher = Cipher::None,
        'J' => eprintln!("ascp: internal error, unknown option ?"),
        // -r, -v, -D, -Q, -6: accepted, nothing to emulate.
        _ => {}
    }
    None
}

fn apply_short(o: &mut Options, c: char, v: &str) -> Result<(), UsageError> {
    match c {
        'M' => {
            o.mgmt_port = Some(port(v, 1).ok_or_else(|| {
                UsageError::new("ascp: port argument to -M must be in the range 1..65535.")
            })?)
        }
        'u' => o.user_str = Some(v.to_owned()),
        'l' => o.target_rate_kbps = Some(rate(v, 'l')?),
        'm' => o.min_rate_kbps = Some(rate(v, 'm')?),
        'i' => o.key_files.push(v.to_owned()),
        'W' => o.token = Some(v.to_owned()),
        'k' => {
            o.resume = match v {
                "0" => 0,
                "1" => 1,
                "2" => 2,
                "3" => 3,
                _ => {
                    return Err(UsageError::new(
                        "ascp: argument to -k must be 0, 1, 2, or 3",
                    ));
                }
            }
        }
        'Z' => {
            let n = v.parse::<u32>().ok().filter(|n| (296..=65535).contains(n));
            o.dgram_size = Some(n.ok_or_else(|| {
                UsageError::new("ascp: argument to -Z must be in the range 296..65535.")
            })?);
        }
        'g' => o.read_block = block_size(v, 'g')?,
        'G' => o.write_block = block_size(v, 'G')?,
        'L' => o.log_dir = Some(v.to_owned()),
        'O' => {
            o.udp_port = Some(port(v, 0).ok_or_else(|| {
                UsageError::new("ascp: argument to -O must be in the range 0..65535.")
            })?)
        }
        'P' => {
            o.ssh_port = Some(port(v, 1).ok_or_else(|| {
                UsageError::new("ascp: argument to -P must be in the range 1..65535.")
            })?)
        }
        'C' => o.cluster = Some(cluster(v)?),
        'E' => o.excludes.push(v.to_owned()),
        'N' => o.includes.push(v.to_owned()),
        '@' => {
            let r = v.split_once(':').and_then(|(a, b)| {
                let a = if a.is_empty() {
                    Some(0)
                } else {
                    a.parse().ok()
                };
                let b = if b.is_empty() {
                    Some(u64::MAX)
                } else {
                    b.parse().ok()
                };
                a.zip(b).filter(|(a, b)| a <= b)
            });
            o.range = Some(r.ok_or_else(|| {
                UsageError::new("ascp: arguments to \"-@\" must be number:number.")
            })?);
        }
        'c' => {
            o.cipher = match v.to_ascii_lowercase().as_str() {
                "none" => Cipher::None,
                "aes128" | "aes-128" => Cipher::Aes128,
                "aes192" | "aes-192" => Cipher::Aes192,
                "aes256" | "aes-256" => Cipher::Aes256,
                _ => {
                    return Err(UsageError::new(format!(
                        "ascp: Unrecognized transport encryption type: {v}"
                    )));
                }
            }
        }
        'y' => {
            o.fallback = match v {
                "0" => None,
                "1" => Some(Fallback::Allow),
                "F" | "f" => Some(Fallback::Force),
                _ => return Err(UsageError::new("ascp: -y argument must be 0, 1 or F.")),
            }
        }
        't' => {
            o.fallback_port =
                Some(port(v, 1).ok_or_else(|| {
                    UsageError::new("ascp: -t argument must be between 1 and 65535.")
                })?)
        }
        // -w, -K, -R, -S, -e, -f, -X, -x, -Y, -I and the hidden letters: accepted, nothing
        // to emulate on one machine.
        _ => {}
    }
    Ok(())
}

fn apply_long(o: &mut Options, name: &str, v: String) -> Result<Option<Command>, UsageError> {
    match name {
        "help" => return Ok(Some(Command::Help)),
        "version" => return Ok(Some(Command::Version)),
        "mode" => {
            o.mode = match v.as_str() {
                "send" => Mode::Send,
                "recv" => Mode::Recv,
                _ => {
                    return Err(UsageError::new(
                        "ascp: bad argument to --mode; need {send|recv|test-login}",
                    ));
                }
            }
        }
        "user" => o.user = Some(v),
        "host" => o.host = Some(v),
        "policy" => {
            o.policy = match v.to_ascii_lowercase().as_str() {
                "fixed" => Policy::Fixed,
                "high" => Policy::High,
                "fair" => Policy::Fair,
                "low" => Policy::Low,
                _ => {
                    return Err(UsageError::new(format!(
                        "ascp: unknown transfer policy {v}"
                    )));
                }
            }
        }
        "file-list" => o.file_list = Some(v),
        "file-pair-list" => o.file_pair_list = Some(v),
        "source-prefix" => o.source_prefix = Some(v),
        "symbolic-links" => {
            o.symlinks = match v.as_str() {
                "follow" => Symlinks::Follow,
                "copy" => Symlinks::Copy,
                "copy+force" => Symlinks::CopyForce,
                "skip" => Symlinks::Skip,
                _ => {
                    return Err(UsageError::new(
                        "ascp: bad argument to --symbolic-links; need {follow|copy+force|copy|skip}",
                    ));
                }
            }
        }
        "remove-after-transfer" => o.remove_after = true,
        "move-after-transfer" => o.move_after = Some(v),
        "remove-empty-directories" => o.remove_empty_dirs = true,
        "remove-empty-source-directory" => o.remove_empty_source_dir = true,
        "save-before-overwrite" => o.save_before_overwrite = true,
        "skip-special-files" => o.skip_special = true,
        "file-manifest" => {
            o.manifest_text = match v.as_str() {
                "text" => true,
                "none" => false,
                _ => {
                    return Err(UsageError::new(
                        "ascp: bad argument to --file-manifest; need {text|none}",
                    ));
                }
            }
        }
        "file-manifest-path" => o.manifest_path = Some(v),
        "file-manifest-inprogress-suffix" => o.manifest_inprogress = Some(v),
        "precalculate-job-size" => o.precalc = true,
        "overwrite" => {
            o.overwrite = match v.as_str() {
                "never" => Overwrite::Never,
                "always" => Overwrite::Always,
                "diff" => Overwrite::Diff,
                "older" => Overwrite::Older,
                "diff+older" => Overwrite::DiffOlder,
                _ => {
                    return Err(UsageError::new(
                        "ascp: bad argument to --overwrite; need {never|always|older|diff|diff+older}",
                    ));
                }
            }
        }
        "file-crypt" => {
            o.file_crypt = match v.as_str() {
                "encrypt" => Some(FileCrypt::Encrypt),
                "decrypt" => Some(FileCrypt::Decrypt),
                _ => {
                    return Err(UsageError::new(
                        "ascp: bad argument to --file-crypt; need {encrypt|decrypt}",
                    ));
                }
            }
        }
        "file-checksum" => {
            o.checksum = match v.to_ascii_lowercase().as_str() {
                "none" => None,
                "md5" => Some(ChecksumKind::Md5),
                "sha1" | "sha-1" => Some(ChecksumKind::Sha1),
                "sha256" | "sha-256" => Some(ChecksumKind::Sha256),
                "sha384" | "sha-384" => Some(ChecksumKind::Sha384),
                "sha512" | "sha-512" => Some(ChecksumKind::Sha512),
                _ => {
                    return Err(UsageError::new(format!(
                        "ascp: unknown file checksum type {v}"
                    )));
                }
            }
        }
        "partial-file-suffix" => o.partial_suffix = Some(v).filter(|s| !s.is_empty()),
        "src-base" => o.src_base = Some(v),
        "preserve-file-owner-uid" => o.preserve_uid = true,
        "preserve-file-owner-gid" => o.preserve_gid = true,
        "preserve-acls" | "preserve-xattrs" | "remote-preserve-acls" | "remote-preserve-xattrs" => {
            if !matches!(v.as_str(), "native" | "metafile" | "none") {
                return Err(UsageError::new(format!(
                    "ascp: Invalid argument to option --{name}"
                )));
            }
            if name == "preserve-acls" && v == "native" {
                return Err(UsageError::new(
                    "ascp: Option --preserve-acls=native not supported on this platform",
                ));
            }
        }
        "delete-before-transfer" => o.delete_before = true,
        "tags" => o.tags = Some(tags_json(&v)?),
        "tags64" => {
            let bytes = base64_decode(&v)
                .filter(|b| b.len() <= MAX_TAGS)
                .ok_or_else(|| {
                    UsageError::new("ascp: bad argument (tags base64 is malformed or too large)")
                })?;
            let text = String::from_utf8(bytes).map_err(|_| {
                UsageError::new("ascp: bad argument (tags base64 is malformed or too large)")
            })?;
            o.tags = Some(tags_json(&text)?);
        }
        "keepalive" => o.keepalive = true,
        "preserve-access-time" => o.preserve_atime = true,
        "preserve-modification-time" => o.preserve_mtime = true,
        "preserve-creation-time" => o.preserve_ctime = true,
        "preserve-source-access-time" => o.preserve_source_atime = true,
        "exclude-newer-than" | "exclude-older-than" => {
            let n = v.parse::<u64>().map_err(|_| {
                UsageError::new(format!(
                    "ascp: option --{name}=MTIME argument must be a number"
                ))
            })?;
            if name == "exclude-newer-than" {
                o.exclude_newer_than = Some(n);
            } else {
                o.exclude_older_than = Some(n);
            }
        }
        "multi-session-threshold" => {
            rate(&v, 'l')?;
        }
        // proxy, check-sshfp, allow-password-prompt, ignore-host-key, apply-local-docroot,
        // retry-timeout: accepted, nothing to emulate.
        _ => {}
    }
    Ok(None)
}

/// A port number in `min..=65535`.
fn port(v: &str, min: u16) -> Option<u16> {
    v.parse::<u16>().ok().filter(|p| *p >= min)
}

/// `-C M:N` with `1 <= M <= N <= 128`.
fn cluster(v: &str) -> Result<(u32, u32), UsageError> {
    v.split_once(':')
        .and_then(|(m, n)| Some((m.parse::<u32>().ok()?, n.parse::<u32>().ok()?)))
        .filter(|&(m, n)| m >= 1 && m <= n && n <= 128)
        .ok_or_else(|| {
            UsageError::new("ascp: -C needs argument M:N, M <= N (M and N range: 1-128 inclusive).")
        })
}

/// A size with an optional K/M/G suffix (`-g`, `-G`), in bytes.
fn block_size(v: &str, option: char) -> Result<u64, UsageError> {
    let (num, mult) = split_number(v);
    let mult = match mult {
        "" => 1.0,
        "k" | "K" => 1024.0,
        "m" | "M" => 1024.0 * 1024.0,
        "g" | "G" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(UsageError::new(format!(
                "ascp: suffix {other} to option -{option} unknown."
            )));
        }
    };
    Ok((num * mult).max(0.0) as u64)
}

/// A rate as ascp reads `-l`/`-m`: a decimal number (as C's `strtod` reads it) with an
/// optional suffix `k`/`K` (x1), `m`/`M` (x1000) or `g`/`G` (x1000000), in kbit/s, rounded
/// down. `-l 0` means the default rate. `p`/`P` (a percentage, for bandwidth measurement)
/// falls back to the default too.
pub(crate) fn rate(v: &str, option: char) -> Result<u64, UsageError> {
    let (num, suffix) = split_number(v);
    if num < 0.0 {
        return Err(UsageError::new(format!(
            "ascp: -{option} argument must be positive."
        )));
    }
    let mult = match suffix {
        "" | "k" | "K" => 1.0,
        "m" | "M" => 1e3,
        "g" | "G" => 1e6,
        "p" | "P" => return Ok(DEFAULT_RATE_KBPS),
        other => {
            return Err(UsageError::new(format!(
                "ascp: bad numeric suffix {other}."
            )));
        }
    };
    if num == 0.0 {
        return Ok(if option == 'l' { DEFAULT_RATE_KBPS } else { 0 });
    }
    Ok((num * mult).floor() as u64)
}

/// Split the longest prefix that reads as a decimal floating-point number (sign, digits,
/// fraction, exponent) from the rest. No number at all reads as 0 with the whole text left.
fn split_number(v: &str) -> (f64, &str) {
    let b = v.as_bytes();
    let mut end = 0;
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut any = i > digits_start;
    if i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > i + 1 || any {
            any = any || j > i + 1;
            i = j;
        }
    }
    if any {
        end = i;
        if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
            let mut j = i + 1;
            if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                j += 1;
            }
            let exp_start = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > exp_start {
                end = j;
            }
        }
    }
    if end == 0 {
        return (0.0, v);
    }
    (v[..end].parse().unwrap_or(0.0), &v[end..])
}

/// Check `--tags` JSON the way ascp does and return it as given (ascp echoes it unchanged).
fn tags_json(v: &str) -> Result<String, UsageError> {
    if v.len() > MAX_TAGS {
        return Err(UsageError::new(
            "tag argument too large. It is greater than 4Kb",
        ));
    }
    match serde_json::from_str::<serde_json::Value>(v) {
        Ok(serde_json::Value::Object(_)) => Ok(v.to_owned()),
        Ok(serde_json::Value::Array(_)) => Err(UsageError::new(
            "ascp: bad argument (tags must be a json object, not a json array)",
        )),
        _ => Err(UsageError::new(
            "ascp: bad argument (tags must be in json format)",
        )),
    }
}

/// Standard base64 (padding optional, any number of trailing `=`, bits past the last whole
/// byte ignored). `None` when malformed.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::alphabet::STANDARD;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::RequireNone)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(s.trim_end_matches('=')).ok()
}

/// `ascp -h`, shortened to what the emulator honours (every ascp option is accepted).
pub const HELP: &str = "\
Usage: ascp [OPTION] SRC... DEST
          SRC to DEST, or multiple SRC to DEST dir
          SRC, DEST format: [[user@]host:]PATH
This is ascp-sim, an emulator of IBM Aspera ascp for tests: the remote host is the folder
named by ASCP_SIM_ROOT. It accepts every option of ascp 3.9; see the fasp-sim crate docs.
  -h,--help                       Display usage
  -A,--version                    Display version.
  -T                              Disable encryption
  -d                              Create target directory, implied for file/file-pair lists
  -p                              Preserve file timestamp
  -q                              Disable progress display
  -l MAX-RATE                     Max transfer rate
  -m MIN-RATE                     Min transfer rate
  -u USER-STRING                  User-specific string
  -i PRIVATE-KEY-FILE             Private-key file name (id_rsa)
  -k RESUME-LEVEL                 Resume criterion: 0,3,2,1
  -Z DATAGRAM-SIZE                Manually set MTU
  -L LOCAL-LOG-DIR                Local logging directory path
  -O FASP-PORT                    UDP port used for FASP transport
  -P SSH-PORT                     TCP port used for SSH authentication
  -C M-ID:N-COUNT                 Multi-session transfer, move only Mth of N parts
  -E PATTERN                      Exclusion pattern. Repeat for more.
  -@ RANGE-LOW:RANGE-HIGH         Transfer only a range of bytes within file
  -c CIPHER                       File data cipher:  aes128, aes192 or aes256
  -M PORT                         Management port on localhost
  --mode=MODE                     MODE: send, recv
  --user=USERNAME
  --host=HOSTNAME
  --policy=TRANSFER_POLICY        TRANSFER_POLICY: fixed,high,fair,low
  --file-list=FILENAME            File with list of sources
  --file-pair-list=FILENAME       File with list of src/dest pairs
  --source-prefix=PREFIX          Prepend to each SRC path
  --symbolic-links=METHOD         METHOD: follow,copy,copy+force,skip
  --remove-after-transfer         Remove SRC files after transfer success
  --remove-empty-directories      Remove empty SRC subdirectories
  --precalculate-job-size
  --overwrite=METHOD              METHOD: never,always,older,diff,diff+older
  --file-checksum=HASH            HASH: sha-512,sha-384,sha-256,sha1,md5,none
  --partial-file-suffix=SUFFIX
  --src-base=NAME                 Preserve directory structure of SRC arguments below NAME
  --keepalive                     Persistent session (files added with START frames)
  --tags=JSON, --tags64=BASE64    Tags echoed to the manager
";

/// The short usage ascp prints (on stdout) when started without arguments.
pub const SHORT_USAGE: &str = "\
Usage: ascp [OPTION] SRC... DEST
          SRC to DEST, or multiple SRC to DEST dir
          SRC, DEST format: [[user@]host:]PATH
Display full usage: -h,--help
";

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> Options {
        match parse_args(args).unwrap() {
            Command::Transfer(o) => *o,
            other => panic!("{other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        parse_args(args).unwrap_err().message
    }

    #[test]
    fn messages_match_the_real_ascp() {
        assert_eq!(err(&["--x"]), "unrecognized option `--x'");
        assert_eq!(err(&["--x=1"]), "unrecognized option `--x=1'");
        assert_eq!(
            err(&["--keep=1"]),
            "option `--keep' doesn't allow an argument"
        );
        assert_eq!(err(&["-9"]), "invalid option -- 9");
        assert_eq!(err(&["-l"]), "option requires an argument -- l");
        assert_eq!(err(&["--mode"]), "option `--mode' requires an argument");
        assert_eq!(
            err(&["--keepalive=x"]),
            "option `--keepalive' doesn't allow an argument"
        );
        assert_eq!(err(&["--p", "a"]), "option `--p' is ambiguous");
        assert_eq!(err(&["-l", "abc"]), "ascp: bad numeric suffix abc.");
        assert_eq!(err(&["-l", "1t"]), "ascp: bad numeric suffix t.");
        assert_eq!(err(&["-Tl", "-M"]), "ascp: bad numeric suffix -M.");
        assert_eq!(err(&["-l", "-5"]), "ascp: -l argument must be positive.");
        assert_eq!(
            err(&["--policy=turbo"]),
            "ascp: unknown transfer policy turbo"
        );
        assert_eq!(
            err(&["-M", "0"]),
            "ascp: port argument to -M must be in the range 1..65535."
        );
        assert_eq!(
            err(&["-k", "4"]),
            "ascp: argument to -k must be 0, 1, 2, or 3"
        );
        assert_eq!(
            err(&["-C", "3:2"]),
            "ascp: -C needs argument M:N, M <= N (M and N range: 1-128 inclusive)."
        );
        assert_eq!(
            err(&["--tags=[1]"]),
            "ascp: bad argument (tags must be a json object, not a json array)"
        );
        assert_eq!(
            err(&["--tags64=@@@"]),
            "ascp: bad argument (tags base64 is malformed or too large)"
        );
        // The first bad option in command-line order wins.
        assert_eq!(err(&["-l", "x", "-A"]), "ascp: bad numeric suffix x.");
    }

    #[test]
    fn rates_read_like_ascp() {
        for (v, want) in [
            ("1m", 1000),
            ("1M", 1000),
            ("1g", 1_000_000),
            ("5k", 5),
            ("1K", 1),
            ("1.5m", 1500),
            ("1.5", 1),
            ("1.5k", 1),
            ("0.5", 0),
            ("1e3", 1000),
            ("0", DEFAULT_RATE_KBPS),
            ("1p", DEFAULT_RATE_KBPS),
            ("200000", 200_000),
        ] {
            assert_eq!(rate(v, 'l').unwrap(), want, "{v}");
        }
        let o = opts(&["-l", "10", "-m", "20", "a", "b"]);
        assert_eq!((o.target_rate(), o.min_rate()), (10, 10));
    }

    #[test]
    fn grouping_attached_values_prefixes_and_the_end_of_options() {
        let o = opts(&[
            "-M5000",
            "-dpq",
            "-l10",
            "--precalc",
            "--mod",
            "recv",
            "-u",
            "x",
            "--",
            "-a",
            "b",
        ]);
        assert_eq!(o.mgmt_port, Some(5000));
        assert!(o.create_dir && o.preserve_times && o.quiet && o.precalc);
        assert_eq!(o.target_rate(), 10);
        assert_eq!(o.mode, Mode::Recv);
        assert_eq!(o.positionals, ["-a", "b"]);
        // No reordering: options after a source are sources.
        let o = opts(&["a", "--host=h", "b"]);
        assert_eq!(o.host, None);
        assert_eq!(o.positionals, ["a", "--host=h", "b"]);
        assert_eq!(parse_args(["-A", "-l", "x"]).unwrap(), Command::Version);
        assert_eq!(parse_args::<_, &str>([]).unwrap(), Command::ShortUsage);
    }

    #[test]
    fn tags_and_base64() {
        let o = opts(&["--tags64=eyLDqSI6InggeSJ9", "a", "b"]);
        assert_eq!(o.tags.as_deref(), Some("{\"é\":\"x y\"}"));
        assert_eq!(base64_decode("Zm9vYmE=").unwrap(), b"fooba");
        assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
        assert!(base64_decode("Z").is_none());
        // What the hand-written decoder accepted before the base64 crate took over: any
        // number of trailing `=`, no padding, bits past the last byte, the empty string.
        assert_eq!(base64_decode("Zm9v====").unwrap(), b"foo");
        assert_eq!(base64_decode("Zm9vYh").unwrap(), b"foob");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
        for bad in ["Zm=v", "Zm9v Yg", "Zm9vY", "Zm9v-_", "Zm9v\n"] {
            assert!(base64_decode(bad).is_none(), "{bad:?}");
        }
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(4090));
        assert_eq!(
            err(&[&format!("--tags={big}")]),
            "tag argument too large. It is greater than 4Kb"
        );
    }
}
