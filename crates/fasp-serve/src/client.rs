//! A client of the service: over TCP (`http://HOST:PORT`, or a bare `HOST:PORT`), TLS
//! (`https://HOST:PORT`) or a Unix socket (`unix:PATH`), sending the token, if any, with every
//! call.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::auth::{SendToken, Token};
use crate::error::ServeError;
use crate::pb::jobs_client::JobsClient;
use crate::tls::ClientTls;

/// A connected client.
pub type Client = JobsClient<InterceptedService<Channel, SendToken>>;

/// Connect to the server at `target`: `unix:PATH`, `http://HOST:PORT`, `HOST:PORT`, or
/// `https://HOST:PORT` (TLS, the server's certificate checked against the public web's roots:
/// see [`connect_with_tls`] for a private CA).
pub async fn connect(target: &str, token: Option<Token>) -> Result<Client, ServeError> {
    connect_with_tls(target, token, &ClientTls::new()).await
}

/// [`connect`], an `https://` server's certificate checked as `tls` says (a private CA, a
/// name); `tls` is not used for other addresses.
pub async fn connect_with_tls(
    target: &str,
    token: Option<Token>,
    tls: &ClientTls,
) -> Result<Client, ServeError> {
    let failed = |source| ServeError::Transport {
        what: format!("connecting to {target}"),
        source,
    };
    let channel = if let Some(path) = target.strip_prefix("unix:") {
        let path = PathBuf::from(path);
        // The URI is required by the endpoint but unused: the connector opens the socket.
        Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await
            .map_err(failed)?
    } else {
        let url = if target.contains("://") {
            target.to_owned()
        } else {
            format!("http://{target}")
        };
        let mut endpoint = Endpoint::from_shared(url.clone()).map_err(|e| ServeError::Address {
            text: target.to_owned(),
            reason: e.to_string(),
        })?;
        if url.starts_with("https://") {
            endpoint = endpoint.tls_config(tls.config()).map_err(failed)?;
        }
        endpoint.connect().await.map_err(failed)?
    };
    Ok(JobsClient::with_interceptor(channel, SendToken::new(token)))
}
