//! Rendering a [`TransferSpec`] into an ascp invocation: [`RenderOptions`] in,
//! [`AscpCommand`] (program, argv, environment, file lists) out.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::error::SpecError;
use crate::proxy;
use crate::secret::Secret;
use crate::spec::TransferSpec;
use crate::validate::MAX_TAGS_BYTES;
use crate::values::{Cipher, Direction, HttpFallback};

/// Environment variable of the transfer token (`token`).
pub const ASPERA_SCP_TOKEN: &str = "ASPERA_SCP_TOKEN";
/// Environment variable of the SSH password (`remote_password`) or, when given, the private
/// key's passphrase (`ssh_private_key_passphrase`): ascp reads both from here.
pub const ASPERA_SCP_PASS: &str = "ASPERA_SCP_PASS";
/// Environment variable of the SSH private key content (`ssh_private_key`).
pub const ASPERA_SCP_KEY: &str = "ASPERA_SCP_KEY";
/// Environment variable of the cookie (`cookie`).
pub const ASPERA_SCP_COOKIE: &str = "ASPERA_SCP_COOKIE";
/// Environment variable of the content-protection passphrase (`content_protection_password`).
pub const ASPERA_SCP_FILEPASS: &str = "ASPERA_SCP_FILEPASS";
/// Environment variable of the Aspera proxy password (the password part of `proxy`).
pub const ASPERA_PROXY_PASS: &str = "ASPERA_PROXY_PASS";

/// Largest `N` of `-C M:N` that ascp 3.9 accepts.
pub const MAX_MULTI_SESSION_PARTS: u32 = 128;

/// How `tags` goes on the command line. Both forms reach the server identically (ascp 3.9
/// echoes the same `Tags` in its SESSION frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TagsEncoding {
    /// `--tags=<compact JSON>`, non-ASCII characters written as `\uXXXX` escapes so that the
    /// argument is plain ASCII whatever the locale (ascp echoes `Tags` with the escapes, equal
    /// as JSON; escapes count toward the 4095-byte limit). Readable in `ps`.
    #[default]
    Json,
    /// `--tags64=<base64 of the compact UTF-8 JSON>`.
    Base64,
}

/// Choices that are not part of the transfer spec: which binary, where file lists go, which
/// part of a multi-session transfer, HTTPS fallback material.
///
/// ```
/// use fasp_spec::RenderOptions;
///
/// let options = RenderOptions::new()
///     .with_program("/opt/aspera/bin/ascp")
///     .with_workdir("/tmp/job-42")
///     .with_multi_session_part(1, 4);
/// assert_eq!(options.multi_session_part, Some((1, 4)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RenderOptions {
    /// The ascp binary (default `ascp`, found on `PATH` by whoever spawns it).
    pub program: PathBuf,
    /// Existing folder where file lists are written (needed only when the spec has several
    /// paths or explicit destinations, see [`TransferSpec::needs_workdir`]). A relative folder
    /// is made absolute against the current directory, so the lists stay valid whatever
    /// directory ascp runs in.
    pub workdir: Option<PathBuf>,
    /// `(m, n)`: render `-C m:n`, this ascp moving part `m` of `n` (1 <= m <= n <= 128).
    /// Splitting a transfer into sessions is the manager's job; this only renders one of them.
    pub multi_session_part: Option<(u32, u32)>,
    /// HTTPS fallback certificate file (`-I`), rendered when fallback is on.
    pub https_cert: Option<PathBuf>,
    /// HTTPS fallback key file (`-Y`), rendered when fallback is on.
    pub https_key: Option<PathBuf>,
    /// HTTP(S) forward proxy for the fallback, as `host[:port]` (`-x`; ascp 3.9 rejects a
    /// URL with a scheme there), rendered when fallback is on.
    pub http_fallback_proxy: Option<String>,
    /// How `tags` is rendered.
    pub tags_encoding: TagsEncoding,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            program: PathBuf::from("ascp"),
            workdir: None,
            multi_session_part: None,
            https_cert: None,
            https_key: None,
            http_fallback_proxy: None,
            tags_encoding: TagsEncoding::Json,
        }
    }
}

impl RenderOptions {
    /// The defaults: program `ascp`, no workdir, everything else unset.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`RenderOptions::program`].
    pub fn with_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.program = program.into();
        self
    }

    /// Sets [`RenderOptions::workdir`].
    pub fn with_workdir(mut self, workdir: impl Into<PathBuf>) -> Self {
        self.workdir = Some(workdir.into());
        self
    }

    /// Sets [`RenderOptions::multi_session_part`] to part `m` of `n`.
    pub fn with_multi_session_part(mut self, m: u32, n: u32) -> Self {
        self.multi_session_part = Some((m, n));
        self
    }

    /// Sets [`RenderOptions::https_cert`] and [`RenderOptions::https_key`].
    pub fn with_https_cert_and_key(
        mut self,
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.https_cert = Some(cert.into());
        self.https_key = Some(key.into());
        self
    }

    /// Sets [`RenderOptions::http_fallback_proxy`] (`host[:port]`).
    pub fn with_http_fallback_proxy(mut self, proxy: impl Into<String>) -> Self {
        self.http_fallback_proxy = Some(proxy.into());
        self
    }

    /// Sets [`RenderOptions::tags_encoding`].
    pub fn with_tags_encoding(mut self, encoding: TagsEncoding) -> Self {
        self.tags_encoding = encoding;
        self
    }

    fn check(&self, spec: &TransferSpec) -> Result<(), SpecError> {
        if let Some((m, n)) = self.multi_session_part {
            let bad = |reason: String| SpecError::Invalid {
                key: "RenderOptions::multi_session_part".into(),
                value: format!("{m}:{n}"),
                reason,
            };
            if m == 0 || m > n || n > MAX_MULTI_SESSION_PARTS {
                return Err(bad(format!(
                    "expected m:n with 1 <= m <= n <= {MAX_MULTI_SESSION_PARTS}"
                )));
            }
            if spec.keepalive == Some(true) {
                return Err(bad(
                    "ascp refuses -C in a persistent (keepalive) session".into()
                ));
            }
        }
        if let Some(proxy) = &self.http_fallback_proxy {
            let bad = |reason: &str| SpecError::Invalid {
                key: "RenderOptions::http_fallback_proxy".into(),
                value: proxy.clone(),
                reason: reason.into(),
            };
            if proxy.contains(['\n', '\r', '\0']) {
                return Err(bad("line break or NUL"));
            }
            if proxy.contains("://") || proxy.contains('@') {
                return Err(bad(
                    "expected host[:port] (ascp's -x takes no scheme or user)",
                ));
            }
            let (host, port) = match proxy.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (proxy.as_str(), None),
            };
            if host.is_empty() {
                return Err(bad("no host"));
            }
            if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
                return Err(bad("bad port (expected 1 to 65535)"));
            }
        }
        Ok(())
    }
}

/// What kind of list a [`GeneratedFile`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileListKind {
    /// One source per line (`--file-list`): several paths without explicit destinations.
    FileList,
    /// Source and destination on alternate lines (`--file-pair-list`): paths with explicit
    /// destinations, relative to the positional destination (`destination_root`).
    FilePairList,
}

impl FileListKind {
    /// `file-list` or `file-pair-list`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileListKind::FileList => "file-list",
            FileListKind::FilePairList => "file-pair-list",
        }
    }
}

/// A file that rendering wrote and the command refers to. File lists hold paths only, never
/// secrets, so their lines are kept here for display.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GeneratedFile {
    /// Absolute path of the file (mode 0600 on Unix).
    pub path: PathBuf,
    /// What it holds.
    pub kind: FileListKind,
    /// Its lines, as written (each followed by a line feed).
    pub lines: Vec<String>,
}

/// An ascp invocation: what to run, with which arguments and environment, and the files it
/// reads. Nothing is spawned here.
///
/// Secrets are only in [`AscpCommand::env`], whose values are [`Secret`]s, so `Debug` shows
/// `<redacted>` for them. Management options (`-M`, `-u`) are not rendered: the process
/// manager adds them.
///
/// The file lists live in the workdir given to [`TransferSpec::render`] and stay there until
/// [`AscpCommand::cleanup`] is called or the workdir is removed: keep them until ascp exits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AscpCommand {
    /// The binary.
    pub program: PathBuf,
    /// The arguments, in order, ending with `--`, the sources (if on the command line) and the
    /// destination.
    pub args: Vec<OsString>,
    /// Variables to add to ascp's environment (names like [`ASPERA_SCP_TOKEN`]).
    pub env: BTreeMap<String, Secret>,
    /// Files written for this command.
    pub files: Vec<GeneratedFile>,
}

impl AscpCommand {
    /// A command running `program` with no arguments, environment or files, to be filled in
    /// by hand (for example to drive a test double); specs get theirs from
    /// [`TransferSpec::render`].
    pub fn new(program: impl Into<PathBuf>) -> Self {
        AscpCommand {
            program: program.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            files: Vec::new(),
        }
    }

    /// A [`std::process::Command`] with program, arguments and environment set (the secrets
    /// exposed into the environment only). The caller adds `-M`, stdio and spawns it.
    pub fn to_command(&self) -> std::process::Command {
        let mut command = std::process::Command::new(&self.program);
        command.args(&self.args);
        for (name, value) in &self.env {
            command.env(name, value.expose());
        }
        command
    }

    /// Removes the generated files (already missing ones are fine). Removing the whole
    /// workdir has the same effect.
    pub fn cleanup(&self) -> io::Result<()> {
        for file in &self.files {
            match std::fs::remove_file(&file.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl TransferSpec {
    /// Whether rendering this spec writes a file list (several paths, or explicit
    /// destinations), and so needs [`RenderOptions::workdir`].
    pub fn needs_workdir(&self) -> bool {
        self.keepalive != Some(true)
            && (self.paths.len() > 1 || self.paths.iter().any(|p| p.destination.is_some()))
    }

    /// Renders the ascp invocation of this spec. Validates first ([`TransferSpec::validate`]),
    /// then the options, then builds argv and environment, and writes a file list last (so
    /// that an error leaves no file behind).
    ///
    /// The mapping of every key is in `docs/transfer-spec.md`. In short: secrets go only to
    /// the environment (never `-W`); a single path without destination goes on the command
    /// line after `--`; several paths go to a `--file-list`, paths with destinations to a
    /// `--file-pair-list`; the positional destination is `destination_root` (or `.`). A
    /// relative path whose first component holds a `:` is written `./path`, because ascp
    /// would otherwise read it as `host:path`. Unknown keys are not rendered.
    pub fn render(&self, options: &RenderOptions) -> Result<AscpCommand, SpecError> {
        self.validate()?;
        options.check(self)?;

        let mut args: Vec<String> = Vec::new();
        let mut env: BTreeMap<String, Secret> = BTreeMap::new();

        // Where and who.
        if let Some(direction) = self.direction {
            args.push(match direction {
                Direction::Send => "--mode=send".into(),
                Direction::Receive => "--mode=recv".into(),
            });
        }
        if let Some(user) = &self.remote_user {
            args.push(format!("--user={user}"));
        }
        if let Some(host) = &self.remote_host {
            args.push(format!("--host={host}"));
        }
        if let Some(port) = self.ssh_port {
            args.extend(["-P".into(), port.to_string()]);
        }
        if let Some(port) = self.fasp_port {
            args.extend(["-O".into(), port.to_string()]);
        }

        // Speed and encryption.
        match self.cipher {
            None => {}
            Some(Cipher::None) => args.push("-T".into()),
            Some(cipher) => args.extend(["-c".into(), cipher_option(cipher).into()]),
        }
        if let Some(policy) = self.rate_policy {
            args.push(format!("--policy={policy}"));
        }
        if let Some(rate) = self.target_rate_kbps {
            args.extend(["-l".into(), rate.to_string()]);
        }
        if let Some(rate) = self.min_rate_kbps {
            args.extend(["-m".into(), rate.to_string()]);
        }

        // SSH.
        if let Some(path) = &self.ssh_private_key_path {
            args.extend(["-i".into(), path.clone()]);
        }
        if let Some(fingerprint) = &self.sshfp {
            args.push(format!("--check-sshfp={fingerprint}"));
        }

        // File handling.
        if let Some(resume) = self.resume_policy {
            args.extend(["-k".into(), resume.level().to_string()]);
        }
        if let Some(overwrite) = self.overwrite {
            args.push(format!("--overwrite={overwrite}"));
        }
        flag(&mut args, self.create_dir, "-d");
        if let Some(policy) = self.symlink_policy {
            args.push(format!("--symbolic-links={policy}"));
        }
        if let Some(checksum) = self.file_checksum {
            args.push(format!("--file-checksum={checksum}"));
        }
        flag(
            &mut args,
            self.precalculate_job_size,
            "--precalculate-job-size",
        );
        flag(&mut args, self.keepalive, "--keepalive");
        if let Some(threshold) = self.multi_session_threshold {
            args.push(format!("--multi-session-threshold={threshold}"));
        }
        if let Some((m, n)) = options.multi_session_part {
            args.extend(["-C".into(), format!("{m}:{n}")]);
        }
        if let Some(size) = self.dgram_size {
            args.extend(["-Z".into(), size.to_string()]);
        }
        if let Some(protection) = self.content_protection {
            args.push(format!("--file-crypt={protection}"));
        }
        flag(&mut args, self.preserve_times, "-p");
        flag(
            &mut args,
            self.preserve_access_time,
            "--preserve-access-time",
        );
        flag(
            &mut args,
            self.preserve_modification_time,
            "--preserve-modification-time",
        );
        flag(
            &mut args,
            self.preserve_creation_time,
            "--preserve-creation-time",
        );
        flag(
            &mut args,
            self.preserve_source_access_time,
            "--preserve-source-access-time",
        );
        flag(
            &mut args,
            self.preserve_file_owner_uid,
            "--preserve-file-owner-uid",
        );
        flag(
            &mut args,
            self.preserve_file_owner_gid,
            "--preserve-file-owner-gid",
        );
        for (option, mode) in [
            ("--preserve-acls", self.preserve_acls),
            ("--remote-preserve-acls", self.preserve_remote_acls),
            ("--preserve-xattrs", self.preserve_xattrs),
            ("--remote-preserve-xattrs", self.preserve_remote_xattrs),
        ] {
            if let Some(mode) = mode {
                args.push(format!("{option}={mode}"));
            }
        }
        flag(
            &mut args,
            self.remove_after_transfer,
            "--remove-after-transfer",
        );
        flag(
            &mut args,
            self.remove_empty_directories,
            "--remove-empty-directories",
        );
        flag(
            &mut args,
            self.remove_empty_source_directory,
            "--remove-empty-source-directory",
        );
        if let Some(archive) = &self.move_after_transfer {
            args.push(format!("--move-after-transfer={archive}"));
        }
        flag(
            &mut args,
            self.delete_before_transfer,
            "--delete-before-transfer",
        );
        flag(
            &mut args,
            self.save_before_overwrite,
            "--save-before-overwrite",
        );
        flag(&mut args, self.skip_special_files, "--skip-special-files");
        if let Some(suffix) = &self.partial_file_suffix {
            args.push(format!("--partial-file-suffix={suffix}"));
        }
        flag(&mut args, self.apply_local_docroot, "--apply-local-docroot");
        if let Some(manifest) = self.file_manifest {
            args.push(format!("--file-manifest={manifest}"));
        }
        if let Some(path) = &self.file_manifest_path {
            args.push(format!("--file-manifest-path={path}"));
        }
        if let Some(time) = self.exclude_newer_than {
            args.push(format!("--exclude-newer-than={time}"));
        }
        if let Some(time) = self.exclude_older_than {
            args.push(format!("--exclude-older-than={time}"));
        }
        // The source prefix is glued to each source before ascp looks for `host:`, so it
        // needs the same protection as the sources (and the base they are compared with).
        if let Some(base) = &self.src_base {
            args.push(format!("--src-base={}", guard(base)));
        }
        if let Some(root) = self.source_root.as_deref().filter(|r| !r.is_empty()) {
            args.push(format!("--source-prefix={}", guard(root)));
        }

        // Proxy and tags.
        if let Some(url) = &self.proxy {
            // validate() has parsed it already.
            let parsed = proxy::parse(url.expose()).map_err(|reason| SpecError::Invalid {
                key: "proxy".into(),
                value: proxy::redacted_url(url.expose()),
                reason,
            })?;
            args.push(format!("--proxy={}", parsed.without_password));
            if let Some(password) = parsed.password.filter(|p| !p.is_empty()) {
                env.insert(ASPERA_PROXY_PASS.into(), password);
            }
        }
        if let Some(tags) = &self.tags {
            args.push(render_tags(tags, options.tags_encoding)?);
        }

        // HTTP fallback.
        if let Some(fallback) = self.http_fallback.filter(|f| f.is_enabled()) {
            args.extend([
                "-y".into(),
                if fallback == HttpFallback::Force {
                    "F".into()
                } else {
                    "1".into()
                },
            ]);
            let encrypted = self.cipher.is_none_or(Cipher::encrypts);
            let port = if encrypted {
                self.https_fallback_port.or(self.http_fallback_port)
            } else {
                self.http_fallback_port
            };
            if let Some(port) = port {
                args.extend(["-t".into(), port.to_string()]);
            }
            if let Some(proxy) = &options.http_fallback_proxy {
                args.extend(["-x".into(), proxy.clone()]);
            }
            if let Some(cert) = &options.https_cert {
                args.extend(["-I".into(), cert.to_string_lossy().into_owned()]);
            }
            if let Some(key) = &options.https_key {
                args.extend(["-Y".into(), key.to_string_lossy().into_owned()]);
            }
        }

        // Secrets: environment only.
        let mut secret = |name: &str, value: Option<&Secret>| {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                env.insert(name.to_owned(), value.clone());
            }
        };
        secret(ASPERA_SCP_TOKEN, self.token.as_ref());
        secret(ASPERA_SCP_COOKIE, self.cookie.as_ref());
        secret(ASPERA_SCP_KEY, self.ssh_private_key.as_ref());
        secret(
            ASPERA_SCP_PASS,
            self.ssh_private_key_passphrase
                .as_ref()
                .filter(|p| !p.is_empty())
                .or(self.remote_password.as_ref()),
        );
        if self.content_protection.is_some() {
            secret(
                ASPERA_SCP_FILEPASS,
                self.content_protection_password.as_ref(),
            );
        }

        // Sources and destination, file list last.
        let destination = self
            .destination_root
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or(".");
        let mut files = Vec::new();
        if self.keepalive == Some(true) {
            // ascp refuses sources in a persistent session: the manager starts each file
            // with a START message. The destination alone is allowed.
            if let Some(root) = self.destination_root.as_deref().filter(|d| !d.is_empty()) {
                args.extend(["--".into(), guard(root)]);
            }
        } else if !self.needs_workdir() {
            let source = self.paths[0].source.as_deref().unwrap_or_default();
            args.extend(["--".into(), guard(source), guard(destination)]);
        } else {
            let pairs = self.paths.iter().any(|p| p.destination.is_some());
            let (kind, lines) = if pairs {
                let lines = self
                    .paths
                    .iter()
                    .flat_map(|p| {
                        [
                            guard(p.source.as_deref().unwrap_or_default()),
                            guard(p.destination.as_deref().unwrap_or_default()),
                        ]
                    })
                    .collect();
                (FileListKind::FilePairList, lines)
            } else {
                let lines = self
                    .paths
                    .iter()
                    .map(|p| guard(p.source.as_deref().unwrap_or_default()))
                    .collect();
                (FileListKind::FileList, lines)
            };
            let Some(workdir) = &options.workdir else {
                return Err(SpecError::Missing {
                    key: "RenderOptions::workdir".into(),
                    reason: "several paths or explicit destinations need a file list, \
                             and a folder to write it in",
                });
            };
            let file = write_list(workdir, kind, lines)?;
            args.push(format!("--{}={}", kind.as_str(), file.path.display()));
            args.extend(["--".into(), guard(destination)]);
            files.push(file);
        }

        Ok(AscpCommand {
            program: options.program.clone(),
            args: args.into_iter().map(OsString::from).collect(),
            env,
            files,
        })
    }
}

fn flag(args: &mut Vec<String>, value: Option<bool>, option: &str) {
    if value == Some(true) {
        args.push(option.to_owned());
    }
}

/// The `-c` argument for an encrypting cipher.
fn cipher_option(cipher: Cipher) -> &'static str {
    match cipher {
        Cipher::Aes128 => "aes128",
        Cipher::Aes192 => "aes192",
        Cipher::Aes256 => "aes256",
        // No CFB/GCM distinction in ascp 3.9 (it rejects these); ascp 4 takes them as is.
        other => other.as_str(),
    }
}

/// A path as ascp must see it: relative paths whose first component holds a `:` get `./` in
/// front, or ascp reads `a:b` as host `a`, path `b` (in positional arguments and file lists
/// alike). ascp drops the `./` again (SESSION shows `a:b`).
fn guard(path: &str) -> String {
    let first = path.split('/').next().unwrap_or_default();
    if !path.starts_with('/') && first.contains(':') {
        format!("./{path}")
    } else {
        path.to_owned()
    }
}

fn render_tags(tags: &crate::JsonMap, encoding: TagsEncoding) -> Result<String, SpecError> {
    let json = crate::json::JsonValue::Object(tags.clone()).to_string();
    match encoding {
        TagsEncoding::Base64 => Ok(format!("--tags64={}", base64(json.as_bytes()))),
        TagsEncoding::Json => {
            let ascii = ascii_json(&json);
            if ascii.len() > MAX_TAGS_BYTES {
                return Err(SpecError::TooLong {
                    key: "tags".into(),
                    length: ascii.len(),
                    value: ascii,
                    max: MAX_TAGS_BYTES,
                });
            }
            Ok(format!("--tags={ascii}"))
        }
    }
}

/// Rewrites non-ASCII characters of JSON text as `\uXXXX` escapes. Outside strings JSON is
/// ASCII, so this only touches string contents and keeps the text equivalent.
fn ascii_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{unit:04x}");
            }
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648), as ascp's `--tags64` reads it.
fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Writes a list into `workdir` under a fresh name (never overwriting anything), mode 0600.
fn write_list(
    workdir: &Path,
    kind: FileListKind,
    lines: Vec<String>,
) -> Result<GeneratedFile, SpecError> {
    let io_error = |path: &Path, source| SpecError::Io {
        path: path.to_owned(),
        source,
    };
    let workdir = if workdir.is_absolute() {
        workdir.to_owned()
    } else {
        std::env::current_dir()
            .map_err(|e| io_error(workdir, e))?
            .join(workdir)
    };
    let mut contents = String::new();
    for line in &lines {
        contents.push_str(line);
        contents.push('\n');
    }
    // A fresh name that nothing else has (tempfile creates it exclusively, mode 0600 on
    // Unix); kept after writing: the command's cleanup removes it when the transfer is over.
    let mut file = tempfile::Builder::new()
        .prefix(&format!("fasp-{}-", kind.as_str()))
        .suffix(".txt")
        .tempfile_in(&workdir)
        .map_err(|e| io_error(&workdir, e))?;
    // A failed write drops the file, which removes it.
    file.write_all(contents.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| io_error(file.path(), e))?;
    let (_, path) = file.keep().map_err(|e| io_error(&workdir, e.error))?;
    Ok(GeneratedFile { path, kind, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected);
        }
        // Verified with the real ascp: --tags64 of {"é":"x y"} echoes Tags {"é":"x y"}.
        assert_eq!(base64("{\"é\":\"x y\"}".as_bytes()), "eyLDqSI6InggeSJ9");
    }

    #[test]
    fn ascii_json_escapes_non_ascii_only() {
        assert_eq!(ascii_json(r#"{"é":"x y"}"#), r#"{"\u00e9":"x y"}"#);
        assert_eq!(ascii_json("\"😀\""), "\"\\ud83d\\ude00\"");
        let original: serde_json::Value = serde_json::from_str(r#"{"é😀":"ü"}"#).unwrap();
        let escaped: serde_json::Value =
            serde_json::from_str(&ascii_json(&original.to_string())).unwrap();
        assert_eq!(original, escaped);
    }

    #[test]
    fn guard_protects_colons_in_the_first_component() {
        assert_eq!(guard("a:b.txt"), "./a:b.txt");
        assert_eq!(guard("host:/x"), "./host:/x");
        assert_eq!(guard("dir/a:b.txt"), "dir/a:b.txt");
        assert_eq!(guard("/abs/a:b.txt"), "/abs/a:b.txt");
        assert_eq!(guard("-dash.txt"), "-dash.txt");
        assert_eq!(guard("."), ".");
    }

    #[test]
    fn render_option_checks() {
        let spec = TransferSpec::default();
        for (m, n) in [(0, 2), (3, 2), (1, 129)] {
            let err = RenderOptions::new()
                .with_multi_session_part(m, n)
                .check(&spec)
                .unwrap_err();
            assert_eq!(err.key(), Some("RenderOptions::multi_session_part"));
        }
        RenderOptions::new()
            .with_multi_session_part(128, 128)
            .check(&spec)
            .unwrap();
        for bad in [
            "http://proxy:3128",
            "u@proxy",
            ":3128",
            "proxy:0",
            "proxy:x",
        ] {
            let err = RenderOptions::new()
                .with_http_fallback_proxy(bad)
                .check(&spec)
                .unwrap_err();
            assert_eq!(err.value(), Some(bad));
        }
        RenderOptions::new()
            .with_http_fallback_proxy("proxy.example:3128")
            .check(&spec)
            .unwrap();
    }
}
