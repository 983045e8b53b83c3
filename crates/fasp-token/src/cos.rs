//! IBM Cloud Object Storage: from an API key and a bucket to transfer specs of the bucket's
//! Aspera transfer service (ATS).

use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fasp_spec::{NodeSpec, Secret, TransferSpec};
use reqwest::Url;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderName};
use serde::Deserialize;

use crate::client::{Auth, NodeClient, TransferRequest};
use crate::error::Error;
use crate::http::{ClientConfig, Http, join, parse_base_url, sensitive};

/// IBM Cloud IAM's token endpoint, the default of [`CosConfig::iam_url`].
pub const IBM_IAM_TOKEN_URL: &str = "https://iam.cloud.ibm.com/identity/token";

/// The OAuth grant type of an IBM Cloud API key.
pub const IAM_APIKEY_GRANT_TYPE: &str = "urn:ibm:params:oauth:grant-type:apikey";

/// The IAM client id of the Aspera transfer service, receiver of the delegated refresh token.
pub const ATS_RECEIVER_CLIENT_ID: &str = "aspera_ats";

/// The header carrying the delegated refresh token to the ATS node API.
pub const STORAGE_CREDENTIALS_HEADER: &str = "X-Aspera-Storage-Credentials";

/// A cached token is dropped this long before the expiry IAM announced (at most a fifth of its
/// lifetime).
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Where a COS bucket is and how to get at it.
///
/// `Debug` redacts the API key.
///
/// ```
/// use fasp_token::CosConfig;
///
/// let config = CosConfig::new(
///     "my-ibm-cloud-api-key",
///     "https://s3.us-south.cloud-object-storage.appdomain.cloud",
///     "my-bucket",
/// );
/// assert_eq!(config.iam_url, fasp_token::IBM_IAM_TOKEN_URL);
/// assert!(!format!("{config:?}").contains("my-ibm-cloud-api-key"));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CosConfig {
    /// The IBM Cloud API key (of a user or service ID with access to the bucket).
    pub api_key: Secret,
    /// The bucket's S3 endpoint, `https://s3.<region>.cloud-object-storage.appdomain.cloud`
    /// (path-style requests are made: `<endpoint>/<bucket>?faspConnectionInfo`).
    pub endpoint: String,
    /// The bucket name.
    pub bucket: String,
    /// IAM's token endpoint. Default [`IBM_IAM_TOKEN_URL`].
    pub iam_url: String,
    /// Sent as `ibm-service-instance-id` to the bucket endpoint when set.
    pub service_instance_id: Option<String>,
    /// Use this ATS node API instead of the `ATSEndpoint` the bucket names.
    pub ats_endpoint: Option<String>,
}

impl CosConfig {
    /// A configuration for `bucket` at `endpoint`, authenticated with `api_key`.
    pub fn new(
        api_key: impl Into<Secret>,
        endpoint: impl Into<String>,
        bucket: impl Into<String>,
    ) -> Self {
        CosConfig {
            api_key: api_key.into(),
            endpoint: endpoint.into(),
            bucket: bucket.into(),
            iam_url: IBM_IAM_TOKEN_URL.to_owned(),
            service_instance_id: None,
            ats_endpoint: None,
        }
    }

    /// Sets [`CosConfig::iam_url`].
    pub fn with_iam_url(mut self, url: impl Into<String>) -> Self {
        self.iam_url = url.into();
        self
    }

    /// Sets [`CosConfig::service_instance_id`].
    pub fn with_service_instance_id(mut self, id: impl Into<String>) -> Self {
        self.service_instance_id = Some(id.into());
        self
    }

    /// Sets [`CosConfig::ats_endpoint`].
    pub fn with_ats_endpoint(mut self, url: impl Into<String>) -> Self {
        self.ats_endpoint = Some(url.into());
        self
    }
}

/// What a bucket's `?faspConnectionInfo` answers: the access key of its transfer service and
/// the ATS node API to call. `Debug` redacts the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FaspConnectionInfo {
    /// `AccessKey/Id`.
    pub access_key_id: String,
    /// `AccessKey/Secret`.
    pub access_key_secret: Secret,
    /// `ATSEndpoint`: the node API base URL (`https://ats-sl-dal.aspera.io:443`).
    pub ats_endpoint: String,
}

impl FaspConnectionInfo {
    /// Reads the XML answer of `?faspConnectionInfo`:
    /// `<FASPConnectionInfo><AccessKey><Id>..</Id><Secret>..</Secret></AccessKey>
    /// <ATSEndpoint>..</ATSEndpoint></FASPConnectionInfo>`. The error names what is missing or
    /// malformed, never a value.
    pub fn from_xml(xml: &str) -> Result<Self, String> {
        let leaves = crate::xml::leaves(xml)?;
        let get = |path: &[&str]| {
            crate::xml::find(&leaves, path)
                .map(str::to_owned)
                .ok_or_else(|| format!("no <{}> in the answer", path.join("><")))
        };
        Ok(FaspConnectionInfo {
            access_key_id: get(&["AccessKey", "Id"])?,
            access_key_secret: Secret::new(get(&["AccessKey", "Secret"])?),
            ats_endpoint: get(&["ATSEndpoint"])?,
        })
    }
}

/// A token and the moment it is no longer used.
#[derive(Clone)]
struct Cached {
    token: Secret,
    valid_until: Instant,
}

#[derive(Default)]
struct Cache {
    iam: Option<Cached>,
    delegated: Option<Cached>,
    info: Option<FaspConnectionInfo>,
}

/// The IBM COS flow: IAM token, the bucket's `faspConnectionInfo`, a delegated refresh token
/// for `aspera_ats`, then `upload_setup` / `download_setup` on the ATS node API with the access
/// key (basic authentication) and `X-Aspera-Storage-Credentials`.
///
/// The IAM token and the delegated refresh token are cached until shortly before the expiry
/// IAM announces (`expires_in`); the connection info is cached for the life of the client
/// ([`CosClient::clear_cache`] forgets all three). `Debug` shows the configuration (API key
/// redacted) and which tokens are cached, never a token.
pub struct CosClient {
    http: Http,
    config: CosConfig,
    endpoint: Url,
    iam_url: Url,
    cache: Mutex<Cache>,
}

impl fmt::Debug for CosClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cache = self.lock();
        f.debug_struct("CosClient")
            .field("config", &self.config)
            .field("iam_token_cached", &cache.iam.is_some())
            .field("delegated_token_cached", &cache.delegated.is_some())
            .field("connection_info", &cache.info)
            .field("http", self.http.config())
            .finish()
    }
}

#[derive(Deserialize)]
struct IamAnswer {
    access_token: Option<Secret>,
    delegated_refresh_token: Option<Secret>,
    expires_in: Option<u64>,
    expiration: Option<u64>,
}

impl CosClient {
    /// A client with the default HTTP settings.
    pub fn new(config: CosConfig) -> Result<Self, Error> {
        CosClient::with_client_config(config, ClientConfig::default())
    }

    /// A client with these HTTP settings (used for IAM, the bucket and the ATS node API).
    /// Errors: [`Error::InvalidUrl`] for a bad endpoint, IAM URL or bucket name.
    pub fn with_client_config(config: CosConfig, client: ClientConfig) -> Result<Self, Error> {
        let endpoint = parse_base_url(&config.endpoint)?;
        let iam_url = parse_base_url(&config.iam_url)?;
        if config.bucket.is_empty()
            || config
                .bucket
                .contains(|c: char| matches!(c, '/' | '?' | '#' | '%') || c.is_whitespace())
        {
            return Err(Error::InvalidUrl {
                url: config.bucket.clone(),
                reason: "not a bucket name".into(),
            });
        }
        if let Some(ats) = &config.ats_endpoint {
            parse_base_url(ats)?;
        }
        Ok(CosClient {
            http: Http::new(client)?,
            config,
            endpoint,
            iam_url,
            cache: Mutex::new(Cache::default()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &CosConfig {
        &self.config
    }

    /// Forgets the cached tokens and connection info.
    pub fn clear_cache(&self) {
        *self.lock() = Cache::default();
    }

    /// An IAM access token for the API key (`grant_type=urn:ibm:params:oauth:grant-type:apikey`),
    /// from the cache while it is valid.
    pub async fn iam_token(&self) -> Result<Secret, Error> {
        if let Some(token) = valid(&self.lock().iam) {
            return Ok(token);
        }
        let fresh = self.iam_grant(false).await?;
        let token = fresh.token.clone();
        self.lock().iam = Some(fresh);
        Ok(token)
    }

    /// A delegated refresh token for the Aspera transfer service
    /// (`response_type=delegated_refresh_token&receiver_client_ids=aspera_ats`), from the
    /// cache while it is valid.
    pub async fn delegated_refresh_token(&self) -> Result<Secret, Error> {
        if let Some(token) = valid(&self.lock().delegated) {
            return Ok(token);
        }
        let fresh = self.iam_grant(true).await?;
        let token = fresh.token.clone();
        self.lock().delegated = Some(fresh);
        Ok(token)
    }

    /// The bucket's `faspConnectionInfo` (`GET <endpoint>/<bucket>?faspConnectionInfo` with the
    /// IAM token), from the cache after the first call.
    pub async fn connection_info(&self) -> Result<FaspConnectionInfo, Error> {
        if let Some(info) = self.lock().info.clone() {
            return Ok(info);
        }
        let token = self.iam_token().await?;
        let mut url = join(&self.endpoint, &self.config.bucket);
        url.set_query(Some("faspConnectionInfo"));
        let shown = url.to_string();
        let answer = self
            .http
            .send(&shown, |client| {
                let mut request = client
                    .get(url.clone())
                    .header(ACCEPT, "application/xml")
                    .header(
                        AUTHORIZATION,
                        sensitive(&format!("Bearer {}", token.expose())),
                    );
                if let Some(id) = &self.config.service_instance_id {
                    request = request.header("ibm-service-instance-id", id.as_str());
                }
                request
            })
            .await?;
        let info =
            FaspConnectionInfo::from_xml(&answer.body).map_err(|message| Error::MalformedXml {
                url: shown,
                message,
            })?;
        self.lock().info = Some(info.clone());
        Ok(info)
    }

    /// A [`NodeClient`] for the bucket's ATS node API: basic authentication with the access
    /// key, and `X-Aspera-Storage-Credentials:
    /// {"type":"token","token":{"delegated_refresh_token":"..."}}` on every request. Runs the
    /// steps of the flow that are not cached.
    pub async fn node_client(&self) -> Result<NodeClient, Error> {
        let info = self.connection_info().await?;
        let delegated = self.delegated_refresh_token().await?;
        let ats = self
            .config
            .ats_endpoint
            .as_deref()
            .unwrap_or(&info.ats_endpoint);
        let base = parse_base_url(ats)?;
        let credentials = serde_json::json!({
            "type": "token",
            "token": { "delegated_refresh_token": delegated.expose() }
        });
        Ok(NodeClient::with_http(
            self.http.clone(),
            base,
            Auth::basic(info.access_key_id, info.access_key_secret),
            vec![(
                HeaderName::from_static("x-aspera-storage-credentials"),
                Secret::new(credentials.to_string()),
            )],
        ))
    }

    /// `upload_setup` on the bucket's ATS node API; see [`NodeClient::upload_setup`].
    pub async fn upload_setup(
        &self,
        requests: &[TransferRequest],
    ) -> Result<Vec<Result<TransferSpec, Error>>, Error> {
        self.node_client().await?.upload_setup(requests).await
    }

    /// `download_setup` on the bucket's ATS node API; see [`NodeClient::download_setup`].
    pub async fn download_setup(
        &self,
        requests: &[TransferRequest],
    ) -> Result<Vec<Result<TransferSpec, Error>>, Error> {
        self.node_client().await?.download_setup(requests).await
    }

    /// `upload_setup` on the bucket's ATS node API, with the keys dropped from each answer;
    /// see [`NodeClient::upload_setup_detailed`].
    pub async fn upload_setup_detailed(
        &self,
        requests: &[TransferRequest],
    ) -> Result<Vec<Result<NodeSpec, Error>>, Error> {
        self.node_client()
            .await?
            .upload_setup_detailed(requests)
            .await
    }

    /// `download_setup` on the bucket's ATS node API, with the keys dropped from each answer;
    /// see [`NodeClient::download_setup_detailed`].
    pub async fn download_setup_detailed(
        &self,
        requests: &[TransferRequest],
    ) -> Result<Vec<Result<NodeSpec, Error>>, Error> {
        self.node_client()
            .await?
            .download_setup_detailed(requests)
            .await
    }

    /// One IAM grant with the API key; `delegated` asks for a delegated refresh token for ATS.
    async fn iam_grant(&self, delegated: bool) -> Result<Cached, Error> {
        let url = self.iam_url.clone();
        let shown = url.to_string();
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", IAM_APIKEY_GRANT_TYPE),
            ("apikey", self.config.api_key.expose()),
        ];
        if delegated {
            form.push(("response_type", "delegated_refresh_token"));
            form.push(("receiver_client_ids", ATS_RECEIVER_CLIENT_ID));
        }
        let started = Instant::now();
        let answer = self
            .http
            .send(&shown, |client| {
                client
                    .post(url.clone())
                    .header(ACCEPT, "application/json")
                    .form(&form)
            })
            .await?;
        let parsed: IamAnswer = crate::answer::parse_json(&shown, &answer.body)?;
        let (field, token) = if delegated {
            ("delegated_refresh_token", parsed.delegated_refresh_token)
        } else {
            ("access_token", parsed.access_token)
        };
        let token = token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::MalformedJson {
                url: shown.clone(),
                path: field.into(),
                message: "missing or empty".into(),
            })?;
        let lifetime = match (parsed.expires_in, parsed.expiration) {
            (Some(seconds), _) => Duration::from_secs(seconds),
            (None, Some(epoch)) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                Duration::from_secs(epoch.saturating_sub(now))
            }
            // No expiry given: use the token once.
            (None, None) => Duration::ZERO,
        };
        let margin = EXPIRY_MARGIN.min(lifetime / 5);
        Ok(Cached {
            token,
            valid_until: started + lifetime.saturating_sub(margin),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        // The cache holds plain values: a panic elsewhere cannot leave it half-written.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn valid(cached: &Option<Cached>) -> Option<Secret> {
    cached
        .as_ref()
        .filter(|c| Instant::now() < c.valid_until)
        .map(|c| c.token.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_info_from_xml() {
        let info = FaspConnectionInfo::from_xml(
            "<FASPConnectionInfo><AccessKey><Id>id1</Id><Secret>s3cr3t</Secret></AccessKey>\
             <ATSEndpoint>https://ats.example.com:443</ATSEndpoint></FASPConnectionInfo>",
        )
        .unwrap();
        assert_eq!(info.access_key_id, "id1");
        assert_eq!(info.access_key_secret.expose(), "s3cr3t");
        assert_eq!(info.ats_endpoint, "https://ats.example.com:443");
        assert!(!format!("{info:?}").contains("s3cr3t"));
        let err = FaspConnectionInfo::from_xml(
            "<FASPConnectionInfo><AccessKey><Id>id1</Id></AccessKey></FASPConnectionInfo>",
        )
        .unwrap_err();
        assert_eq!(err, "no <AccessKey><Secret> in the answer");
    }

    #[test]
    fn bad_configuration() {
        let config = CosConfig::new("k", "https://s3.example.com", "a/b");
        assert!(matches!(
            CosClient::new(config),
            Err(Error::InvalidUrl { .. })
        ));
        let config = CosConfig::new("k", "s3.example.com", "b");
        assert!(matches!(
            CosClient::new(config),
            Err(Error::InvalidUrl { .. })
        ));
    }
}
