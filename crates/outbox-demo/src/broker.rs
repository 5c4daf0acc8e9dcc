//! The token broker: client credentials stay here; pages get access tokens.

use std::time::Duration;

use base64::Engine as _;

/// Where tokens and messages come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Base of the REST API (`https://api.<domain>`, or the emulator).
    pub api_base: String,
    /// Base of the OAuth server (`https://login.<domain>`, or the emulator).
    pub login_base: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (never sent to a browser).
    pub client_secret: String,
    /// The Genesys region domain, when talking to the real service.
    pub region: Option<String>,
    /// The emulator's base URL, when there is one (the demo's fault controls).
    pub emulator: Option<String>,
}

impl Upstream {
    /// The emulator at `base` (it serves both OAuth and the API).
    pub fn emulator(base: &str, client_id: &str, client_secret: &str) -> Self {
        let base = base.trim_end_matches('/').to_owned();
        Self {
            api_base: base.clone(),
            login_base: base.clone(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            region: None,
            emulator: Some(base),
        }
    }

    /// The real Genesys Cloud region `domain` (e.g. `mypurecloud.ie`).
    pub fn region(domain: &str, client_id: &str, client_secret: &str) -> Self {
        Self {
            api_base: format!("https://api.{domain}"),
            login_base: format!("https://login.{domain}"),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            region: Some(domain.into()),
            emulator: None,
        }
    }
}

/// Why no token could be had.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The OAuth server could not be reached.
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// The token URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The OAuth server refused the client.
    #[error("{url} refused the client credentials (HTTP {status}): {body}")]
    Refused {
        /// The token URL.
        url: String,
        /// Its status.
        status: u16,
        /// Its answer (an OAuth error; never contains the secret).
        body: String,
    },
    /// The answer was not a token.
    #[error("{url} answered something that is not a token: {body}")]
    Malformed {
        /// The token URL.
        url: String,
        /// Its answer.
        body: String,
    },
}

/// A token handed to a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The bearer token.
    pub access_token: String,
    /// Seconds it lives.
    pub expires_in: u64,
}

/// Mints tokens with the client credentials.
#[derive(Debug, Clone)]
pub struct Broker {
    upstream: Upstream,
    agent: ureq::Agent,
}

impl Broker {
    /// A broker for `upstream`.
    pub fn new(upstream: Upstream) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(15)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        Self { upstream, agent }
    }

    /// The upstream.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Asks the OAuth server for a fresh token (blocking: call it off the
    /// async threads). Every call mints a new token, so that a page that
    /// was refused one (`401`) gets a different one.
    pub fn mint(&self) -> Result<Grant, BrokerError> {
        let url = format!("{}/oauth/token", self.upstream.login_base);
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            self.upstream.client_id, self.upstream.client_secret
        ));
        let response = self
            .agent
            .post(&url)
            .header("Authorization", &format!("Basic {basic}"))
            .header("Accept", "application/json")
            .content_type("application/x-www-form-urlencoded")
            .send("grant_type=client_credentials")
            .map_err(|e| BrokerError::Unreachable {
                url: url.clone(),
                message: e.to_string(),
            })?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .read_to_string()
            .map_err(|e| BrokerError::Unreachable {
                url: url.clone(),
                message: e.to_string(),
            })?;
        if status != 200 {
            return Err(BrokerError::Refused {
                url,
                status,
                body: body.chars().take(500).collect(),
            });
        }
        let json: serde_json::Value =
            serde_json::from_str(&body).map_err(|_| BrokerError::Malformed {
                url: url.clone(),
                body: body.chars().take(200).collect(),
            })?;
        let access_token = json["access_token"]
            .as_str()
            .ok_or_else(|| BrokerError::Malformed {
                url: url.clone(),
                body: body.chars().take(200).collect(),
            })?;
        Ok(Grant {
            access_token: access_token.to_owned(),
            expires_in: json["expires_in"].as_u64().unwrap_or(3600),
        })
    }
}
