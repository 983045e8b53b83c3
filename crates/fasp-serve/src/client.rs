//! A client of the service: over TCP (`http://HOST:PORT`, or a bare `HOST:PORT`) or a Unix
//! socket (`unix:PATH`), sending the token, if any, with every call.

use std::path::PathBuf;

use hyper_util::rt::TokioIo;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::auth::{SendToken, Token};
use crate::error::ServeError;
use crate::pb::jobs_client::JobsClient;

/// A connected client.
pub type Client = JobsClient<InterceptedService<Channel, SendToken>>;

/// Connect to the server at `target`: `unix:PATH`, `http://HOST:PORT` or `HOST:PORT`.
pub async fn connect(target: &str, token: Option<Token>) -> Result<Client, ServeError> {
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
        let endpoint = Endpoint::from_shared(url).map_err(|e| ServeError::Address {
            text: target.to_owned(),
            reason: e.to_string(),
        })?;
        endpoint.connect().await.map_err(failed)?
    };
    Ok(JobsClient::with_interceptor(channel, SendToken::new(token)))
}
