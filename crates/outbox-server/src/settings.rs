//! What `outbox serve` is told: one TOML file with the browser's
//! configuration schema (parsed by core), a `[serve]` table for the
//! proxy's own settings, and flags and environment variables over both.
//!
//! # The file
//!
//! Every key of the browser's JSON configuration (README, "Configuration")
//! is a TOML key of the same name: the file is turned into JSON as it is
//! and read by [`OutboxConfig::parse`], so there is one schema, one set of
//! defaults and one set of error messages. The `[serve]` table is the
//! proxy's:
//!
//! ```toml
//! region = "mypurecloud.ie"        # or apiBase = "http://127.0.0.1:8081"
//! maxEntries = 100000
//! [pacer]
//! ratePerMinute = 150
//!
//! [serve]
//! listen = "127.0.0.1:8788"
//! store = "/var/lib/outbox/outbox.db"
//! clientId = "…"
//! clientSecretFile = "/run/secrets/genesys"
//! apiKeyFile = "/run/secrets/outbox-key"
//! loginBase = "https://login.mypurecloud.ie"
//! ```
//!
//! A flag (or its environment variable) beats the file. The client secret
//! and the API key come from a file or from the environment
//! (`OUTBOX_CLIENT_SECRET`, `OUTBOX_API_KEY`), never from a flag (a flag
//! shows in `ps`), and are never logged.

use std::net::SocketAddr;
use std::path::PathBuf;

use outbox_core::config::OutboxConfig;
use outbox_native::tokens::{ClientCredentials, Secret};
use serde_json::Value;

/// The flags of `outbox serve` (each with its environment variable).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// The configuration file (TOML): the browser's configuration schema,
    /// plus a `[serve]` table.
    #[arg(long, env = "OUTBOX_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where to listen [default: 127.0.0.1:8788]. Anything but a loopback
    /// address needs an API key.
    #[arg(long, env = "OUTBOX_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// The store: a SQLite file (`PATH` or `sqlite:PATH`) [default:
    /// outbox.db], one process per file; or a PostgreSQL database
    /// (`postgres://user@host:port/db`, the password in the URL or
    /// PGPASSWORD), one queue for any number of instances.
    #[arg(long, env = "OUTBOX_STORE", value_name = "PATH|URL")]
    pub store: Option<String>,
    /// With a PostgreSQL store: the schema the outbox's tables live in
    /// [default: outbox]. Instances on one schema share one queue.
    #[arg(long, env = "OUTBOX_PG_SCHEMA", value_name = "NAME")]
    pub pg_schema: Option<String>,
    /// With a PostgreSQL store: how long a record of each delivered or
    /// cancelled entry is kept (no body), in seconds [default: 86400; 0
    /// keeps none].
    #[arg(long, env = "OUTBOX_DONE_RETENTION", value_name = "SECONDS")]
    pub done_retention: Option<u64>,
    /// The Genesys Cloud API origin requests go to (overrides `apiBase`).
    #[arg(long, env = "OUTBOX_API_BASE", value_name = "URL")]
    pub api_base: Option<String>,
    /// A Genesys Cloud region domain, e.g. mypurecloud.ie (overrides
    /// `region`; the API is https://api.<region>).
    #[arg(long, env = "OUTBOX_REGION", value_name = "DOMAIN")]
    pub region: Option<String>,
    /// The OAuth server [default: https://login.<domain> for an
    /// api.<domain> API, else the API origin itself].
    #[arg(long, env = "OUTBOX_LOGIN_BASE", value_name = "URL")]
    pub login_base: Option<String>,
    /// The OAuth client id for the client-credentials grant. Without one,
    /// replays use the latest bearer token a caller sent.
    #[arg(long, env = "OUTBOX_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// A file holding the client secret (or set OUTBOX_CLIENT_SECRET).
    #[arg(long, env = "OUTBOX_CLIENT_SECRET_FILE", value_name = "FILE")]
    pub client_secret_file: Option<PathBuf>,
    /// A file holding the API key callers must send as `x-outbox-key` (or
    /// set OUTBOX_API_KEY). Required to listen on a non-loopback address.
    #[arg(long, env = "OUTBOX_API_KEY_FILE", value_name = "FILE")]
    pub api_key_file: Option<PathBuf>,
}

/// Where the queue is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, shared by any number of instances.
    Postgres(PgStore),
}

/// A PostgreSQL store's settings.
#[derive(Clone, PartialEq, Eq)]
pub struct PgStore {
    /// The URL (it may hold a password: never shown, see
    /// [`PgStore::shown`]).
    pub url: String,
    /// The schema.
    pub schema: String,
    /// How long a record of a completed entry is kept, in ms.
    pub retention_ms: u64,
}

impl PgStore {
    /// The URL without its password, for logs.
    pub fn shown(&self) -> String {
        let url = &self.url;
        match (url.find("://"), url.rfind('@')) {
            (Some(scheme), Some(at)) if at > scheme => {
                let user = &url[scheme + 3..at];
                let user = user.split(':').next().unwrap_or("");
                format!("{}{}@{}", &url[..scheme + 3], user, &url[at + 1..])
            }
            _ => url.clone(),
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.shown())
            .field("schema", &self.schema)
            .field("retention_ms", &self.retention_ms)
            .finish()
    }
}

/// Everything `outbox serve` runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The listening address.
    pub listen: SocketAddr,
    /// The store.
    pub store: StoreUrl,
    /// The outbox configuration, as core read it.
    pub config: OutboxConfig,
    /// The API origin requests are forwarded to.
    pub upstream: String,
    /// The host's own OAuth client, if any.
    pub credentials: Option<ClientCredentials>,
    /// The key callers must send as `x-outbox-key`, if any.
    pub api_key: Option<Secret>,
}

/// A problem with the settings: what, and where it came from.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The configuration file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not TOML.
    #[error("{path} is not valid TOML: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// What the TOML reader said.
        message: String,
    },
    /// Core refused the configuration.
    #[error("{0}")]
    Config(#[from] outbox_core::config::ConfigError),
    /// A `[serve]` setting has the wrong type.
    #[error("`serve.{0}` must be a string")]
    ServeField(&'static str),
    /// No API origin.
    #[error(
        "no Genesys Cloud API to send to: set `region` or `apiBase` in the file, or --region / --api-base"
    )]
    NoUpstream,
    /// An unsupported store.
    #[error(
        "store `{0}`: give a SQLite file (PATH or sqlite:PATH) or a PostgreSQL URL (postgres://…)"
    )]
    Store(String),
    /// A client id without a secret, or the reverse.
    #[error(
        "client credentials need both a client id and a secret (OUTBOX_CLIENT_SECRET or --client-secret-file)"
    )]
    HalfCredentials,
    /// A secret file could not be read.
    #[error("cannot read the {what} file {path}: {source}")]
    SecretFile {
        /// Which secret.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A non-loopback address without an API key.
    #[error(
        "listening on {0} (not loopback) needs an API key: set OUTBOX_API_KEY or --api-key-file"
    )]
    NeedsApiKey(SocketAddr),
}

/// The default listening address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8788";

/// The file turned into the JSON core reads, and its `[serve]` table.
pub fn toml_to_json(text: &str) -> Result<(String, serde_json::Map<String, Value>), String> {
    let value: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let mut json = serde_json::to_value(value).map_err(|e| e.to_string())?;
    let serve = match json.as_object_mut().and_then(|o| o.remove("serve")) {
        Some(Value::Object(serve)) => serve,
        _ => serde_json::Map::new(),
    };
    Ok((json.to_string(), serve))
}

impl Settings {
    /// Reads the settings: the file (if any), then flags and environment
    /// (`env` looks a variable up: the secrets' own variables).
    pub fn read(
        args: &ServeArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let (mut json, serve) = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                    path: path.clone(),
                    source,
                })?;
                let (json, serve) = toml_to_json(&text).map_err(|message| SettingsError::Toml {
                    path: path.clone(),
                    message,
                })?;
                (
                    serde_json::from_str::<Value>(&json).unwrap_or_default(),
                    serve,
                )
            }
            None => (
                Value::Object(serde_json::Map::new()),
                serde_json::Map::new(),
            ),
        };
        let serve_str = |key: &'static str| -> Result<Option<String>, SettingsError> {
            match serve.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(SettingsError::ServeField(key)),
            }
        };
        if let Some(o) = json.as_object_mut() {
            if let Some(base) = &args.api_base {
                o.insert("apiBase".into(), Value::String(base.clone()));
                o.remove("region");
            } else if let Some(region) = &args.region {
                o.insert("region".into(), Value::String(region.clone()));
                o.remove("apiBase");
            }
        }
        let config = OutboxConfig::parse(&json.to_string(), "")?;
        let upstream = config.api_base.clone().ok_or(SettingsError::NoUpstream)?;

        let listen = match (args.listen, serve_str("listen")?) {
            (Some(a), _) => a,
            (None, Some(s)) => s.parse().map_err(|_| SettingsError::ServeField("listen"))?,
            (None, None) => DEFAULT_LISTEN
                .parse()
                .map_err(|_| SettingsError::ServeField("listen"))?,
        };
        let store = match args.store.clone().or(serve_str("store")?) {
            None => StoreUrl::Sqlite(PathBuf::from("outbox.db")),
            Some(s) => store_url(&s)?,
        };
        let store = match store {
            StoreUrl::Postgres(mut pg) => {
                if let Some(schema) = args.pg_schema.clone().or(serve_str("pgSchema")?) {
                    pg.schema = schema;
                }
                let retention = match (args.done_retention, serve.get("doneRetentionSeconds")) {
                    (Some(s), _) => Some(s),
                    (None, Some(v)) => Some(
                        v.as_u64()
                            .ok_or(SettingsError::ServeField("doneRetentionSeconds"))?,
                    ),
                    (None, None) => None,
                };
                if let Some(secs) = retention {
                    pg.retention_ms = secs.saturating_mul(1000);
                }
                StoreUrl::Postgres(pg)
            }
            sqlite => sqlite,
        };
        let read_secret = |what: &'static str, path: PathBuf| {
            std::fs::read_to_string(&path)
                .map(Secret::new)
                .map_err(|source| SettingsError::SecretFile { what, path, source })
        };
        let secret = match (
            env("OUTBOX_CLIENT_SECRET"),
            args.client_secret_file
                .clone()
                .or(serve_str("clientSecretFile")?.map(PathBuf::from)),
        ) {
            (Some(s), _) => Some(Secret::new(s)),
            (None, Some(path)) => Some(read_secret("client secret", path)?),
            (None, None) => None,
        };
        let client_id = args.client_id.clone().or(serve_str("clientId")?);
        let credentials = match (client_id, secret) {
            (Some(client_id), Some(secret)) => {
                let login = args
                    .login_base
                    .clone()
                    .or(serve_str("loginBase")?)
                    .unwrap_or_else(|| login_base(&upstream));
                Some(ClientCredentials {
                    token_url: format!("{}/oauth/token", login.trim_end_matches('/')),
                    client_id,
                    secret,
                    origin: upstream.clone(),
                })
            }
            (None, None) => None,
            _ => return Err(SettingsError::HalfCredentials),
        };
        let api_key = match (
            env("OUTBOX_API_KEY"),
            args.api_key_file
                .clone()
                .or(serve_str("apiKeyFile")?.map(PathBuf::from)),
        ) {
            (Some(k), _) => Some(Secret::new(k)),
            (None, Some(path)) => Some(read_secret("API key", path)?),
            (None, None) => None,
        }
        .filter(|k| !k.expose().is_empty());
        if api_key.is_none() && !listen.ip().is_loopback() {
            return Err(SettingsError::NeedsApiKey(listen));
        }
        Ok(Self {
            listen,
            store,
            config,
            upstream,
            credentials,
            api_key,
        })
    }
}

fn store_url(s: &str) -> Result<StoreUrl, SettingsError> {
    if let Some(path) = s.strip_prefix("sqlite:") {
        return Ok(StoreUrl::Sqlite(PathBuf::from(
            path.trim_start_matches("//"),
        )));
    }
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return Ok(StoreUrl::Postgres(PgStore {
            url: s.to_owned(),
            schema: "outbox".into(),
            retention_ms: 24 * 3_600_000,
        }));
    }
    if s.contains("://") {
        return Err(SettingsError::Store(s.to_owned()));
    }
    Ok(StoreUrl::Sqlite(PathBuf::from(s)))
}

/// The OAuth origin of an API origin: `https://login.<domain>` for
/// `https://api.<domain>`, else the API origin itself (an emulator, a
/// gateway that serves both).
pub fn login_base(api: &str) -> String {
    match api.split_once("://") {
        Some((scheme, host)) if host.starts_with("api.") => {
            format!("{scheme}://login.{}", &host["api.".len()..])
        }
        _ => api.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn with_file(text: &str) -> (tempfile::TempDir, ServeArgs) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("outbox.toml");
        std::fs::write(&path, text).unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        (dir, args)
    }

    #[test]
    fn the_file_is_the_browsers_schema_read_by_core() {
        let (_dir, args) = with_file(
            "apiBase = \"http://127.0.0.1:9\"\nmaxEntries = 7\n[retry]\nbaseMs = 5\n[serve]\nstore = \"q.db\"\n",
        );
        let s = Settings::read(&args, &no_env).unwrap();
        assert_eq!(s.config.core.limits.max_entries, 7);
        assert_eq!(s.config.core.retry.base_ms, 5);
        assert_eq!(s.upstream, "http://127.0.0.1:9");
        assert_eq!(s.store, StoreUrl::Sqlite("q.db".into()));
        assert_eq!(
            s.listen,
            DEFAULT_LISTEN.parse().unwrap(),
            "loopback by default"
        );
        assert!(s.credentials.is_none() && s.api_key.is_none());
    }

    #[test]
    fn a_wrong_value_names_its_field() {
        let (_dir, args) = with_file("apiBase = \"http://127.0.0.1:9\"\n[retry]\ncapMs = -1\n");
        let e = Settings::read(&args, &no_env).unwrap_err().to_string();
        assert!(e.contains("retry.capMs"), "{e}");
        let (_dir, args) = with_file("apiBase = [");
        let e = Settings::read(&args, &no_env).unwrap_err().to_string();
        assert!(e.contains("not valid TOML"), "{e}");
    }

    #[test]
    fn flags_beat_the_file_and_a_region_gives_both_origins() {
        let (_dir, mut args) =
            with_file("apiBase = \"http://127.0.0.1:9\"\n[serve]\nclientId = \"file-id\"\n");
        args.region = Some("mypurecloud.ie".into());
        args.client_id = Some("flag-id".into());
        let env = |k: &str| (k == "OUTBOX_CLIENT_SECRET").then(|| "s3cret".to_owned());
        let s = Settings::read(&args, &env).unwrap();
        assert_eq!(s.upstream, "https://api.mypurecloud.ie");
        let creds = s.credentials.unwrap();
        assert_eq!(creds.client_id, "flag-id");
        assert_eq!(creds.token_url, "https://login.mypurecloud.ie/oauth/token");
        assert!(
            !format!("{creds:?}").contains("s3cret"),
            "the secret is never shown"
        );
    }

    #[test]
    fn anything_but_loopback_needs_an_api_key() {
        let args = ServeArgs {
            api_base: Some("http://127.0.0.1:9".into()),
            listen: Some("0.0.0.0:8788".parse().unwrap()),
            ..ServeArgs::default()
        };
        let e = Settings::read(&args, &no_env).unwrap_err();
        assert!(matches!(e, SettingsError::NeedsApiKey(_)), "{e}");
        let env = |k: &str| (k == "OUTBOX_API_KEY").then(|| "key".to_owned());
        assert!(Settings::read(&args, &env).is_ok());
    }

    #[test]
    fn half_credentials_and_other_stores_are_refused() {
        let mut args = ServeArgs {
            api_base: Some("http://127.0.0.1:9".into()),
            client_id: Some("id".into()),
            ..ServeArgs::default()
        };
        assert!(matches!(
            Settings::read(&args, &no_env),
            Err(SettingsError::HalfCredentials)
        ));
        args.client_id = None;
        args.store = Some("mysql://db".into());
        assert!(matches!(
            Settings::read(&args, &no_env),
            Err(SettingsError::Store(_))
        ));
        args.store = Some("postgres://app:hunter2@db:5432/outbox".into());
        args.pg_schema = Some("fleet".into());
        args.done_retention = Some(60);
        let StoreUrl::Postgres(pg) = Settings::read(&args, &no_env).unwrap().store else {
            panic!("a PostgreSQL store");
        };
        assert_eq!((pg.schema.as_str(), pg.retention_ms), ("fleet", 60_000));
        assert_eq!(pg.shown(), "postgres://app@db:5432/outbox");
        assert!(
            !format!("{pg:?}").contains("hunter2"),
            "the password is never shown"
        );
        args.pg_schema = None;
        args.done_retention = None;
        args.store = Some("sqlite:///tmp/x.db".into());
        assert_eq!(
            Settings::read(&args, &no_env).unwrap().store,
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
    }
}
