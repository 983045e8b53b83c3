//! What can go wrong when starting or reaching the server, each case naming what and where.

use std::net::SocketAddr;
use std::path::PathBuf;

/// An error of the server or of a client's connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A non-loopback address was asked for without a token: anyone who can reach it could
    /// submit transfers of this machine's files.
    #[error(
        "refusing to listen on {addr} without a token: only loopback addresses and Unix sockets \
         may go without one (give a token file)"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The token file cannot be used.
    #[error("token file {path}: {reason}")]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A TLS certificate or key file cannot be used.
    #[error("TLS file {path}: {reason}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// TLS was asked for on a Unix socket: it is for TCP addresses.
    #[error("TLS is for TCP addresses: {what} is a Unix socket (private to this machine already)")]
    TlsOnUnixSocket {
        /// The socket's path.
        what: String,
    },
    /// The listening address or socket cannot be bound.
    #[error("cannot listen on {what}: {source}")]
    Bind {
        /// The address or socket path.
        what: String,
        /// The system's error.
        #[source]
        source: std::io::Error,
    },
    /// The address text is neither `HOST:PORT` nor `unix:PATH`.
    #[error("invalid address {text:?}: {reason}")]
    Address {
        /// The text given.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The gRPC transport failed (serving, or connecting to a server).
    #[error("gRPC transport failed ({what}): {source}")]
    Transport {
        /// What was being done.
        what: String,
        /// tonic's error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The reflection service could not be built from the embedded descriptors.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}
