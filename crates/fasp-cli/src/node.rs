//! `fasp node upload-setup|download-setup --url URL [auth] (--path P)... [--timeout SECS]
//! [--show-secrets]`: ask a node API for a transfer spec and print it.
//!
//! `--path` is a destination on the node for `upload-setup` and a source on the node for
//! `download-setup`; all paths go into one transfer request, so one spec is printed, as a JSON
//! object, with the token and every other secret shown as `"<redacted>"` unless
//! `--show-secrets`.
//!
//! Authentication: `--user U` with the password in the environment variable
//! `FASP_NODE_PASSWORD` (or `--password`, which other users can see in the process list), or
//! `--bearer TOKEN --access-key ID`.
//!
//! Exit status: 0 with the spec on standard output; 1 when the node refuses (a node error,
//! named by its code and message, or an HTTP error status) or cannot be asked (unreachable,
//! TLS, timeout, an answer that is not a node answer), with one line on standard error; 2 for
//! a usage error (no password, a bad URL, a bad timeout).

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use fasp_spec::TransferSpec;
use fasp_token::{Error, NodeClient, TransferRequest};
use serde_json::Value;

/// The environment variable holding the node user's password.
pub(crate) const PASSWORD_ENV: &str = "FASP_NODE_PASSWORD";

/// Arguments of `fasp node`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Ask for an upload spec (POST /files/upload_setup); --path is a destination on the node.
    UploadSetup(SetupArgs),
    /// Ask for a download spec (POST /files/download_setup); --path is a source on the node.
    DownloadSetup(SetupArgs),
}

/// Where the node API is and how to authenticate (shared by `fasp node`, `fasp upload` and
/// `fasp download`).
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("auth").required(true).args(["user", "bearer"])))]
pub(crate) struct NodeArgs {
    /// The node API's base URL, for example https://node.example.com:9092.
    // The doc comment is the --help text, kept verbatim: not a rustdoc link.
    #[allow(rustdoc::bare_urls)]
    #[arg(long, value_name = "URL")]
    url: String,
    /// Node API user (basic authentication); the password comes from FASP_NODE_PASSWORD, or
    /// --password.
    #[arg(long, value_name = "U", conflicts_with_all = ["bearer", "access_key"])]
    user: Option<String>,
    /// The node user's password. Prefer FASP_NODE_PASSWORD: arguments are visible to other
    /// users of the machine.
    #[arg(long, value_name = "PASSWORD", requires = "user")]
    password: Option<String>,
    /// Bearer token, sent with the access key of --access-key.
    #[arg(long, value_name = "TOKEN", requires = "access_key")]
    bearer: Option<String>,
    /// Access key id, sent as X-Aspera-AccessKey with --bearer.
    #[arg(long, value_name = "ID", requires = "bearer")]
    access_key: Option<String>,
    /// Seconds to wait for the node's answer (decimals allowed). Default 30.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    timeout: Option<Duration>,
    /// DANGER: accept any TLS certificate of the node, even self-signed or for another name.
    /// Anyone on the path can then read the credentials and the token. For lab nodes only;
    /// prefer --cacert.
    #[arg(long = "insecure-skip-tls-verify")]
    insecure: bool,
    /// Trust this CA certificate (PEM file) for the node, beside the usual roots: the safe
    /// way to reach a node with a self-signed or private-CA certificate.
    #[arg(long, value_name = "FILE")]
    cacert: Vec<std::path::PathBuf>,
}

impl NodeArgs {
    /// The client, or (exit status, message) for a usage error.
    /// The client and the warnings to show (TLS checks off, credentials in clear), or
    /// (exit status, message) for a usage error.
    pub(crate) fn client(&self) -> Result<(NodeClient, Vec<String>), (u8, String)> {
        let mut warnings = Vec::new();
        let mut builder = NodeClient::builder(self.url.clone());
        if self.insecure {
            warnings.push(
                "--insecure-skip-tls-verify: the node's certificate is not checked; the \
                 credentials and the token can be read by anyone on the path"
                    .to_owned(),
            );
            builder = builder.danger_accept_invalid_certs(true);
        }
        for file in &self.cacert {
            builder = builder.add_root_certificate_pem(file.clone());
        }
        if let Some(user) = &self.user {
            let password = match self.password.clone() {
                Some(password) => password,
                None => std::env::var(PASSWORD_ENV).map_err(|_| {
                    (
                        2,
                        format!("--user needs a password: set {PASSWORD_ENV} (or --password)"),
                    )
                })?,
            };
            builder = builder.basic_auth(user.clone(), password);
        } else if let (Some(token), Some(access_key)) = (&self.bearer, &self.access_key) {
            builder = builder.bearer_auth(token.clone(), access_key.clone());
        }
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        let client = builder.build().map_err(|e| (2, e.to_string()))?;
        if client.sends_credentials_in_clear() {
            warnings.push(format!(
                "{} is plain HTTP: the credentials go unencrypted",
                crate::escape(&self.url)
            ));
        }
        Ok((client, warnings))
    }
}

#[derive(clap::Args)]
struct SetupArgs {
    #[command(flatten)]
    node: NodeArgs,
    /// A destination on the node (upload-setup) or a source on the node (download-setup).
    /// Repeat for several paths.
    #[arg(long = "path", value_name = "P", required = true)]
    paths: Vec<String>,
    /// Print the token and other secrets instead of "<redacted>".
    // The doc comment is the --help text, kept verbatim: not rustdoc HTML.
    #[allow(rustdoc::invalid_html_tags)]
    #[arg(long)]
    show_secrets: bool,
    /// Also save the whole spec, secrets included, to FILE (created with mode 0600), ready
    /// for `fasp transfer --spec FILE`; standard output stays redacted.
    #[arg(long, value_name = "FILE")]
    save: Option<std::path::PathBuf>,
}

/// A number of seconds (decimals allowed), more than 0 and at most a day: `--timeout`.
pub(crate) fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        return Err(format!(
            "{text:?}: give more than 0 and at most 86400 seconds"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

pub(crate) fn run(args: Args) -> ExitCode {
    let (name, upload, setup) = match args.action {
        Action::UploadSetup(setup) => ("upload-setup", true, setup),
        Action::DownloadSetup(setup) => ("download-setup", false, setup),
    };
    let fail = |code: u8, message: &dyn std::fmt::Display| {
        eprintln!("fasp node {name}: {}", crate::escape(&message.to_string()));
        ExitCode::from(code)
    };

    let client = match setup.node.client() {
        Ok((client, warnings)) => {
            for warning in warnings {
                eprintln!("fasp node {name}: warning: {warning}");
            }
            client
        }
        Err((code, message)) => return fail(code, &message),
    };
    let request = if upload {
        TransferRequest::upload_to(setup.paths.iter().cloned())
    } else {
        TransferRequest::download_from(setup.paths.iter().cloned())
    };

    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(1, &format!("cannot start the async runtime: {e}")),
    };
    let result = runtime.block_on(async {
        if upload {
            client.upload_setup_one_detailed(&request).await
        } else {
            client.download_setup_one_detailed(&request).await
        }
    });
    let spec = match result {
        Ok(answer) => {
            if let Some(warning) = dropped_warning(&answer.dropped_keys) {
                eprintln!("fasp node {name}: warning: {warning}");
            }
            answer.spec
        }
        Err(e @ Error::InvalidUrl { .. }) => return fail(2, &e),
        Err(e) => return fail(1, &e),
    };
    if let Some(path) = &setup.save {
        if let Err(e) = save_private(path, &spec) {
            return fail(
                1,
                &format!("cannot save the spec to {}: {e}", path.display()),
            );
        }
    }

    let text = match serde_json::to_string_pretty(&printable(&spec, setup.show_secrets)) {
        Ok(text) => text,
        Err(e) => return fail(1, &e),
    };
    let mut stdout = io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(1, &e),
    }
}

/// The warning for keys a node answer set that a node may not set, if any.
pub(crate) fn dropped_warning(dropped: &[String]) -> Option<String> {
    (!dropped.is_empty()).then(|| {
        format!(
            "the node's answer set keys that only you may set, ignored: {} (they act on this \
             machine: give them yourself with --ts if you want them)",
            crate::escape(&dropped.join(", "))
        )
    })
}

/// Writes the spec, secrets included, to a file only its owner can read.
fn save_private(path: &std::path::Path, spec: &TransferSpec) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let text = serde_json::to_string_pretty(&spec.to_json_value()).map_err(io::Error::other)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its mode on open: make it private before writing the secrets.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// The spec as JSON, secrets redacted (fasp-spec's rule) unless `show_secrets`.
fn printable(spec: &TransferSpec, show_secrets: bool) -> Value {
    if show_secrets {
        spec.to_json_value()
    } else {
        spec.to_redacted_json_value()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fasp_spec::REDACTED;

    #[test]
    fn secrets_are_redacted() {
        let spec = TransferSpec::from_json(
            r#"{"remote_host": "h", "token": "ATM3_x", "cookie": "c",
                "proxy": "dnats://u:pw@proxy:9091", "x_api_token": "t", "ssh_port": 33001}"#,
        )
        .unwrap();
        let shown = printable(&spec, false);
        assert_eq!(shown["token"], REDACTED);
        assert_eq!(shown["cookie"], REDACTED);
        assert_eq!(shown["x_api_token"], REDACTED);
        assert_eq!(shown["proxy"], "dnats://u:<redacted>@proxy:9091");
        assert_eq!(shown["remote_host"], "h");
        assert_eq!(shown["ssh_port"], 33001);
        let clear = printable(&spec, true);
        assert_eq!(clear["token"], "ATM3_x");
        assert_eq!(clear["proxy"], "dnats://u:pw@proxy:9091");
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_seconds("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_seconds("0.25").unwrap(), Duration::from_millis(250));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
        assert!(parse_seconds("NaN").is_err());
    }
}
