//! The daemon: where it listens, who may call it, and how it stops.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use fasp_jobs::{JobEvent, JobStore};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{broadcast, watch};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::InterceptorLayer;
use tonic::transport::Server;

use crate::auth::{RequireToken, Token};
use crate::error::ServeError;
use crate::pb::jobs_server::JobsServer;
use crate::service::JobsService;
use crate::tls::TlsIdentity;

/// The address `fasp serve` listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50071";

/// Where the server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address (`127.0.0.1:50071`, `[::1]:0`...).
    Tcp(SocketAddr),
    /// A Unix socket, created with mode 0600 (removed first if a stale one is there).
    Unix(PathBuf),
}

impl Listen {
    /// `HOST:PORT` (an IP address), or `unix:PATH`.
    pub fn parse(text: &str) -> Result<Listen, ServeError> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(ServeError::Address {
                    text: text.to_owned(),
                    reason: "no socket path after unix:".to_owned(),
                });
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        text.parse::<SocketAddr>()
            .map(Listen::Tcp)
            .map_err(|e| ServeError::Address {
                text: text.to_owned(),
                reason: format!("{e}: give IP:PORT (127.0.0.1:50071, [::1]:50071) or unix:PATH"),
            })
    }

    /// Whether only this machine can reach it (a loopback address, or a Unix socket).
    pub fn is_local(&self) -> bool {
        match self {
            Listen::Tcp(addr) => addr.ip().is_loopback(),
            Listen::Unix(_) => true,
        }
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// How the server is reached and who may call it.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    listen: Listen,
    token: Option<Token>,
    tls: Option<TlsIdentity>,
    max_streams: usize,
}

impl ServeConfig {
    /// Listen on `listen`; with no token, which [`Daemon::bind`] allows on loopback and Unix
    /// sockets only.
    pub fn new(listen: Listen) -> ServeConfig {
        ServeConfig {
            listen,
            token: None,
            tls: None,
            max_streams: crate::service::DEFAULT_MAX_STREAMS,
        }
    }

    /// Serve over TLS with this certificate and key (TCP addresses only). TLS keeps the token
    /// and the jobs' specs private on the network and proves the server to its clients; it does
    /// not authenticate clients: an address other machines reach still needs a token.
    pub fn tls(mut self, identity: TlsIdentity) -> ServeConfig {
        self.tls = Some(identity);
        self
    }

    /// At most `n` Watch and Events streams open at once (default
    /// [`DEFAULT_MAX_STREAMS`](crate::DEFAULT_MAX_STREAMS)); more are refused with
    /// `RESOURCE_EXHAUSTED`.
    pub fn max_streams(mut self, n: usize) -> ServeConfig {
        self.max_streams = n;
        self
    }

    /// Require this token of every call.
    pub fn token(mut self, token: Token) -> ServeConfig {
        self.token = Some(token);
        self
    }
}

enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

/// A bound server, not yet serving: [`Daemon::local_addr`] tells where it listens (port 0
/// is given a free port), [`Daemon::serve`] runs it.
pub struct Daemon {
    store: JobStore,
    events: Option<broadcast::Receiver<JobEvent>>,
    bound: Bound,
    listen: Listen,
    token: Option<Token>,
    tls: Option<TlsIdentity>,
    max_streams: usize,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("listen", &self.listen)
            .field("token", &self.token)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Daemon {
    /// Bind the address of `config`. Refused ([`ServeError::TokenRequired`]) for an address
    /// other machines can reach when no token is set; TLS on a Unix socket is refused
    /// ([`ServeError::TlsOnUnixSocket`]), and a certificate and key rustls cannot use are
    /// reported here, before anything is bound.
    pub async fn bind(store: JobStore, config: ServeConfig) -> Result<Daemon, ServeError> {
        if let Some(identity) = &config.tls {
            if let Listen::Unix(path) = &config.listen {
                return Err(ServeError::TlsOnUnixSocket {
                    what: path.display().to_string(),
                });
            }
            // Built once here to check it (the server builds it again when it starts).
            Server::builder()
                .tls_config(identity.server_config())
                .map_err(|source| ServeError::Transport {
                    what: "setting up TLS with the certificate and key given".to_owned(),
                    source,
                })?;
        }
        let bound = match &config.listen {
            Listen::Tcp(addr) => {
                if config.token.is_none() && !addr.ip().is_loopback() {
                    return Err(ServeError::TokenRequired { addr: *addr });
                }
                let listener =
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| ServeError::Bind {
                            what: addr.to_string(),
                            source,
                        })?;
                Bound::Tcp(listener)
            }
            Listen::Unix(path) => Bound::Unix(bind_unix(path)?, path.clone()),
        };
        let listen = match &bound {
            Bound::Tcp(l) => Listen::Tcp(l.local_addr().map_err(|source| ServeError::Bind {
                what: config.listen.to_string(),
                source,
            })?),
            Bound::Unix(_, path) => Listen::Unix(path.clone()),
        };
        Ok(Daemon {
            store,
            events: None,
            bound,
            listen,
            token: config.token,
            tls: config.tls,
            max_streams: config.max_streams,
        })
    }

    /// The address clients give [`connect`](crate::connect): `http://IP:PORT`,
    /// `https://IP:PORT` with TLS, or `unix:PATH`.
    pub fn url(&self) -> String {
        match (&self.listen, &self.tls) {
            (Listen::Tcp(addr), None) => format!("http://{addr}"),
            (Listen::Tcp(addr), Some(_)) => format!("https://{addr}"),
            (unix, _) => unix.to_string(),
        }
    }

    /// Serve the Events method from this feed: [`fasp_jobs::Worker::subscribe`] of the
    /// worker that runs in this process (without one, Events answers
    /// `FAILED_PRECONDITION`).
    pub fn with_events(mut self, events: broadcast::Receiver<JobEvent>) -> Daemon {
        self.events = Some(events);
        self
    }

    /// Where it listens (with the port the system gave, for port 0).
    pub fn local_addr(&self) -> &Listen {
        &self.listen
    }

    /// Serve until `shutdown` completes: then no new call is taken, Watch streams end with
    /// `UNAVAILABLE`, and calls in flight finish. A Unix socket is removed at the end.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ServeError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut service = JobsService::new(self.store, stop_rx).max_streams(self.max_streams);
        if let Some(events) = self.events {
            service = service.with_events(events);
        }
        let service = JobsServer::new(service);
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let mut builder = Server::builder();
        if let Some(identity) = &self.tls {
            builder = builder
                .tls_config(identity.server_config())
                .map_err(|source| ServeError::Transport {
                    what: "setting up TLS".to_owned(),
                    source,
                })?;
        }
        let mut server = builder.layer(InterceptorLayer::new(RequireToken::new(self.token)));
        let router = server
            .add_service(service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);
        let signal = async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        };
        tracing::info!(listen = %self.listen, "fasp serve: listening");
        let what = format!("serving on {}", self.listen);
        let result = match self.bound {
            Bound::Tcp(listener) => {
                router
                    .serve_with_incoming_shutdown(TcpListenerStream::new(listener), signal)
                    .await
            }
            Bound::Unix(listener, path) => {
                let r = router
                    .serve_with_incoming_shutdown(UnixListenerStream::new(listener), signal)
                    .await;
                let _ = std::fs::remove_file(&path);
                r
            }
        };
        result.map_err(|source| ServeError::Transport { what, source })
    }
}

/// Bind a Unix socket at `path`, mode 0600: a stale socket file is replaced, any other file
/// is left alone (an error).
fn bind_unix(path: &Path) -> Result<UnixListener, ServeError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let what = format!("unix:{}", path.display());
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ServeError::Bind {
                what,
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is there",
                ),
            });
        }
        // A server still listening there answers a connection: leave it alone.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServeError::Bind {
                what,
                source: std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another server listens on this socket",
                ),
            });
        }
        std::fs::remove_file(path).map_err(|source| ServeError::Bind {
            what: what.clone(),
            source,
        })?;
    }
    let listener = UnixListener::bind(path).map_err(|source| ServeError::Bind {
        what: what.clone(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|source| ServeError::Bind { what, source })?;
    Ok(listener)
}
