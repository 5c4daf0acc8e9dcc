//! Start-up settings of the emulator.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Serialize;

use crate::errors::EmulatorError;

/// One OAuth client allowed to use the client-credentials grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientCredentials {
    /// The client id (`client_id`, the user part of Basic auth).
    pub id: String,
    /// The client secret. Never shown by the inspection endpoints.
    #[serde(skip)]
    pub secret: String,
}

impl ClientCredentials {
    /// A client from its id and secret.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
        }
    }

    /// Parses `ID:SECRET` (the secret may itself contain `:`).
    pub fn parse(s: &str) -> Result<Self, EmulatorError> {
        match s.split_once(':') {
            Some((id, secret)) if !id.is_empty() && !secret.is_empty() => Ok(Self::new(id, secret)),
            _ => Err(EmulatorError::InvalidConfig(format!(
                "client must be ID:SECRET, got {s:?}"
            ))),
        }
    }
}

/// Which page origins may call the emulator from a browser (CORS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "mode", content = "origins")]
pub enum CorsPolicy {
    /// Any origin: the request's `Origin` is echoed back (development default).
    Any,
    /// Only these exact origins, e.g. `http://127.0.0.1:8080`.
    Origins(Vec<String>),
}

/// Text length limits, counted in Unicode scalar values (characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TextLimits {
    /// Agent send `textBody` (default 4000: the Help Center figure; the SDK says 2000).
    pub agent: usize,
    /// Agentless `textBody` for non-SMS messengers (default 2000, from the model's doc).
    pub agentless: usize,
    /// Agentless `textBody` when `toAddressMessengerType` is `sms` (default 765).
    pub sms: usize,
    /// Open Messaging inbound `text` (default 4000).
    pub open: usize,
    /// The seed tutorials' route `text` (default 4000).
    pub seed: usize,
    /// Guest WebSocket `onMessage` text (default 4096); longer → error 4011.
    pub guest: usize,
    /// Guest custom attributes, serialized JSON bytes (default 2048); larger → error 4013.
    pub guest_attributes_bytes: usize,
}

impl Default for TextLimits {
    fn default() -> Self {
        Self {
            agent: 4000,
            agentless: 2000,
            sms: 765,
            open: 4000,
            seed: 4000,
            guest: 4096,
            guest_attributes_bytes: 2048,
        }
    }
}

/// Settings of the Guest (Web Messaging) WebSocket and guest history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestConfig {
    /// Known deployment ids; `configureSession` with any other answers error 4007.
    pub deployments: Vec<String>,
    /// `onMessage` requests allowed per session per second (default 2).
    pub message_rate: u32,
    /// Length of the `onMessage` rate window (default 1 s).
    pub message_window: Duration,
    /// `retryAfter` (seconds) announced in `TooManyRequestsErrorMessage` (default 3).
    pub retry_after_secs: u32,
    /// Requests of any kind allowed per connection per minute (default 60).
    pub connection_rate: u32,
    /// Simultaneous connections per session (default 3); a further one closes the oldest.
    pub max_connections: usize,
    /// Session lifetime from creation; afterwards requests answer 4006 (default 72 h).
    pub session_ttl: Duration,
    /// Lifetime of a guest JWT from `getJwt` (default 1 h).
    pub jwt_ttl: Duration,
    /// History reads allowed per session per window (default 10).
    pub history_rate: u32,
    /// Length of the history rate window (default 60 s).
    pub history_window: Duration,
    /// Largest guest attachment, in bytes (default 10 240 000, announced as
    /// `maxFileSizeKB` 10240); a larger `onAttachment` or upload is refused
    /// with error 4002.
    pub attachment_max_bytes: u64,
    /// The guest `metadata` keys the service keeps (echo and history);
    /// `None` (default) keeps every key. Genesys's own transport relies on
    /// `customMessageId` coming back; whether other keys do is unconfirmed,
    /// so a test can make the emulator keep only that one.
    pub metadata_keys: Option<Vec<String>>,
}

impl Default for GuestConfig {
    fn default() -> Self {
        Self {
            deployments: vec!["demo-deployment".to_owned()],
            message_rate: 2,
            message_window: Duration::from_secs(1),
            retry_after_secs: 3,
            connection_rate: 60,
            max_connections: 3,
            session_ttl: Duration::from_secs(72 * 3600),
            jwt_ttl: Duration::from_secs(3600),
            history_rate: 10,
            history_window: Duration::from_secs(60),
            attachment_max_bytes: 10_240_000,
            metadata_keys: None,
        }
    }
}

/// Everything the emulator needs to start. `Config::default()` is the
/// documented default of every flag, bound to `127.0.0.1:8081`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    /// Address to listen on; port 0 picks a free port (tests).
    pub bind: SocketAddr,
    /// OAuth clients (default `demo-client:demo-secret`).
    pub clients: Vec<ClientCredentials>,
    /// Lifetime of issued access tokens (default 86399 s).
    pub token_ttl: Duration,
    /// Requests allowed per token per rate window on `/api` routes (default 300).
    pub rate_limit: u32,
    /// Length of the sliding rate window (default 60 s).
    pub rate_window: Duration,
    /// Honour idempotency keys (default false: Genesys does not de-duplicate).
    pub idempotency: bool,
    /// Browser origins allowed by CORS (default any).
    pub cors: CorsPolicy,
    /// Seed of the fault-injection random generator.
    pub seed: u64,
    /// Text length limits.
    pub text_limits: TextLimits,
    /// Largest accepted request body in bytes (default 64 KiB); larger → 413.
    pub max_body_bytes: usize,
    /// Status of successful message sends: 200 (default) or 202.
    pub success_status: u16,
    /// `Retry-After` of the daily-limit fault (default 4 h).
    pub daily_limit_retry_after: Duration,
    /// Most request-log entries kept; older ones are discarded and counted (default 100 000).
    pub request_log_capacity: usize,
    /// Guest WebSocket and history settings.
    pub guest: GuestConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8081)),
            clients: vec![ClientCredentials::new("demo-client", "demo-secret")],
            token_ttl: Duration::from_secs(86_399),
            rate_limit: 300,
            rate_window: Duration::from_secs(60),
            idempotency: false,
            cors: CorsPolicy::Any,
            seed: 0x5eed,
            text_limits: TextLimits::default(),
            max_body_bytes: 64 * 1024,
            success_status: 200,
            daily_limit_retry_after: Duration::from_secs(4 * 3600),
            request_log_capacity: 100_000,
            guest: GuestConfig::default(),
        }
    }
}

impl Config {
    /// The default configuration on `127.0.0.1` with a free port: what tests want.
    pub fn ephemeral() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            ..Self::default()
        }
    }

    /// Checks the settings that cannot work.
    pub fn validate(&self) -> Result<(), EmulatorError> {
        let bad = |m: &str| Err(EmulatorError::InvalidConfig(m.to_owned()));
        if self.clients.is_empty() {
            return bad("at least one OAuth client is needed");
        }
        if !(200..300).contains(&self.success_status) {
            return bad("success status must be 2xx (200 or 202)");
        }
        if self.rate_limit == 0 || self.rate_window.is_zero() {
            return bad("rate limit and rate window must be positive");
        }
        if self.token_ttl.is_zero() {
            return bad("token lifetime must be positive");
        }
        let g = &self.guest;
        if g.message_rate == 0 || g.message_window.is_zero() || g.connection_rate == 0 {
            return bad("guest message and connection rates must be positive");
        }
        if g.history_rate == 0 || g.history_window.is_zero() {
            return bad("history rate and window must be positive");
        }
        if g.max_connections == 0 {
            return bad("guest max connections must be at least 1");
        }
        if self.max_body_bytes == 0 || self.request_log_capacity == 0 {
            return bad("body size and request log capacity must be positive");
        }
        Ok(())
    }
}
