//! The outbox configuration as an app writes it: one JSON object, read once
//! here into the engine's [`Config`] plus the settings only a driver uses
//! (database, channel, token URL, …). The service worker receives the JSON
//! text in its script URL; the page passes a plain object, which its driver
//! turns into JSON text first; both end in [`OutboxConfig::parse`], so the
//! schema, its defaults and its error messages live in this one place.
//!
//! ```json
//! {
//!   "origins": ["http://127.0.0.1:8081"],
//!   "genesysRegions": true, "defaultRoutes": true,
//!   "routes": [{ "name": "proxy", "path": "/chat/{room}/send", "lane": ["path:room"],
//!                "carriers": ["header:Idempotency-Key"], "conflictMeansDelivered": false,
//!                "needsToken": true, "onDead": "hold" }],
//!   "onDead": { "agentless": "skip" },
//!   "keepHeaders": ["X-Trace"],
//!   "idempotencyHeaders": false,
//!   "tokenUrl": "/token",
//!   "apiBase": "http://127.0.0.1:8081", "region": "mypurecloud.ie",
//!   "database": "outbox", "channel": "outbox",
//!   "maxEntries": 10000, "maxEntryBytes": 262144,
//!   "retry": { "baseMs": 2000, "factor": 2, "capMs": 60000, "maxAttempts": 25,
//!              "maxAgeMs": 259200000, "maxAuthFailures": 3, "authWindowMs": 60000 },
//!   "pacer": { "ratePerMinute": 150, "burst": 10,
//!              "throttle": { "enabled": true, "tolerancePercent": 30, "stepPercent": 5,
//!                            "memoryMs": 120000, "maxIntervalMs": 120000 } },
//!   "batchSize": 8, "sendTimeoutMs": 30000, "leaseMs": 60000, "forwardTimeoutMs": 10000,
//!   "retryAfterCapMs": 21600000
//! }
//! ```
//!
//! * `genesysRegions` (default true) includes `https://api.<domain>` of
//!   every Genesys region as an origin; `defaultRoutes` (default true) the
//!   four routes of [`default_routes`].
//! * `idempotencyHeaders` adds an `Idempotency-Key` header carrier to every
//!   route without one (only for servers whose CORS allows that header).
//! * `onDead` (per route, or by route name at the top level) says what a
//!   lane does when its head becomes a dead letter: `hold` (default: later
//!   entries wait until it is retried or discarded) or `skip` (the lane
//!   goes on).
//! * `keepHeaders` refuses credential-like names ([`is_credential`]).
//! * `tokenUrl` must be same-origin: a relative path, or an absolute URL
//!   on the origin the driver runs on.
//! * `apiBase` (or `https://api.<region>` from `region`) is also an origin
//!   the routes apply to.
//! * `leaseMs` must be longer than `sendTimeoutMs`, so that only a dead
//!   sender lets a lease expire.
//!
//! A guest outbox (`Outbox.guest`) reads the same schema with its own
//! defaults under it, and where its conversation lives ([`GuestConfig`]).
//!
//! Every field is optional and `null` counts as absent. A wrong type or
//! value is a [`ConfigError`] naming the field (`routes[2].lane`,
//! `retry.baseMs`); unknown fields are ignored. With a repeated key the
//! first one counts (the JSON scanner's rule, [`json::find`]).
//!
//! [`default_routes`]: crate::route::default_routes
//! [`is_credential`]: crate::headers::is_credential

use crate::classify::ClassifyConfig;
use crate::hold::OnDead;
use crate::json::{self, JsonError, Kind, Value};
use crate::pacer::PacerConfig;
use crate::queue::QueueLimits;
use crate::retry::RetryPolicy;
use crate::route::{Carrier, LaneSource, Route, RouteError, RouteTable};
use alloc::{borrow::ToOwned, format, string::String, vec::Vec};

/// Everything the engine can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// What is intercepted, lanes, idempotency carriers.
    pub routes: RouteTable,
    /// Backoff and dead-letter limits.
    pub retry: RetryPolicy,
    /// Pacing per origin.
    pub pacer: PacerConfig,
    /// `Retry-After` fallback and cap.
    pub classify: ClassifyConfig,
    /// Queue size limits.
    pub limits: QueueLimits,
    /// Most requests sent at once in a flush cycle (default 8; one per lane).
    pub batch_size: usize,
    /// Send timeout (default 30 s).
    pub send_timeout_ms: u64,
    /// How long a send's lease lasts (default 60 s; longer than the
    /// timeout, so only a dead sender lets it expire).
    pub lease_ms: u64,
    /// Most cycles one [`Flush`](crate::flush::Flush) runs before handing
    /// back (default 64; browsers kill long-running workers, so runs stay
    /// short).
    pub max_cycles_per_flush: usize,
    /// How long entries parked for a token wait before a token is asked
    /// for again (default 15 s).
    pub token_retry_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            routes: RouteTable::genesys(),
            retry: RetryPolicy::default(),
            pacer: PacerConfig::default(),
            classify: ClassifyConfig::default(),
            limits: QueueLimits::default(),
            batch_size: 8,
            send_timeout_ms: 30_000,
            lease_ms: 60_000,
            max_cycles_per_flush: 64,
            token_retry_ms: 15_000,
        }
    }
}

/// A configuration problem: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config `{field}`: {problem}")]
pub struct ConfigError {
    /// The field, as a path (`(config)` for the whole document,
    /// `routes[0].lane`, `retry.capMs`).
    pub field: String,
    /// What is wrong.
    pub problem: Problem,
}

/// What is wrong with a configuration field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The text is not JSON.
    #[error("not JSON: {0}")]
    NotJson(#[from] JsonError),
    /// The value must be a JSON object.
    #[error("must be an object")]
    NotAnObject,
    /// The value must be `true` or `false`.
    #[error("must be true or false")]
    NotABool,
    /// The value must be a whole number from 0 to 9·10¹⁵.
    #[error("must be a whole number ≥ 0")]
    NotACount,
    /// The value must be a string.
    #[error("must be a string")]
    NotAString,
    /// The value must be an array of strings.
    #[error("must be an array of strings")]
    NotAStringList,
    /// The value must be an array.
    #[error("must be an array")]
    NotAnArray,
    /// An origin, a template or another part of a route is malformed.
    #[error("{0}")]
    Route(#[from] RouteError),
    /// A header to keep at rest looks like a credential.
    #[error("`{0}` looks like a credential; it is never stored")]
    Credential(String),
    /// `leaseMs` is not longer than `sendTimeoutMs`.
    #[error("must be longer than sendTimeoutMs")]
    LeaseNotLongerThanTimeout,
    /// `tokenUrl` names another origin.
    #[error("must be same-origin (a relative path is best)")]
    NotSameOrigin,
    /// `region` is not a Genesys Cloud region domain.
    #[error("`{0}` is not a Genesys Cloud region domain")]
    UnknownRegion(String),
    /// A route lacks a required member (`name`, `path`).
    #[error("needs a `{0}`")]
    Missing(&'static str),
    /// A lane source is neither `path:NAME` nor `body:a.b`.
    #[error("`{0}`: use `path:NAME` or `body:a.b`")]
    BadLane(String),
    /// A route has no lane source.
    #[error("needs at least one lane source")]
    NoLane,
    /// A carrier is neither `header:NAME` nor `body:a.b`.
    #[error("`{0}`: use `header:NAME` or `body:a.b`")]
    BadCarrier(String),
    /// An `onDead` policy is neither `"hold"` nor `"skip"`.
    #[error("must be \"hold\" or \"skip\"")]
    NotAnOnDead,
    /// The top-level `onDead` is not an object of route names.
    #[error("must be an object of route name → \"hold\" or \"skip\"")]
    NotAnOnDeadMap,
    /// The top-level `onDead` names a route that is not configured.
    #[error("names no configured route")]
    UnknownRoute,
    /// A guest outbox has neither a `region` nor a socket `url`.
    #[error("needs a `region` or a socket `url`")]
    NoGuestSocket,
    /// A guest socket `url` is not a WebSocket URL.
    #[error("`{0}` is not a ws:// or wss:// URL")]
    NotAWebSocketUrl(String),
}

fn bad(field: &str, problem: impl Into<Problem>) -> ConfigError {
    ConfigError {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// Everything an outbox is told: the engine's [`Config`] and what the
/// drivers use around it.
#[derive(Debug, Clone)]
pub struct OutboxConfig {
    /// The engine's configuration.
    pub core: Config,
    /// Same-origin URL that hands out access tokens (`{access_token,
    /// expires_in}`), if any.
    pub token_url: Option<String>,
    /// IndexedDB database name (default `outbox`).
    pub database: String,
    /// `BroadcastChannel` name for events (default `outbox`).
    pub channel: String,
    /// Timeout of the first, live attempt of an intercepted request
    /// (default 10 s).
    pub forward_timeout_ms: u64,
    /// Base URL of the Genesys API for the page's helpers (`apiBase`, or
    /// `https://api.<region>` from `region`).
    pub api_base: Option<String>,
    /// The original JSON text (passed on to the service worker).
    pub json: String,
}

impl OutboxConfig {
    /// Reads a configuration from its JSON text. Empty (or all white
    /// space) text, and `null`, mean every default. `here` is the origin
    /// the driver runs on (`location.origin`), against which an absolute
    /// `tokenUrl` is checked.
    pub fn parse(text: &str, here: &str) -> Result<Self, ConfigError> {
        let obj = Obj::root(text)?;

        let routes = routes(&obj)?;
        let mut core = Config {
            routes,
            ..Config::default()
        };
        if let Some(n) = obj.count("maxEntries")? {
            core.limits.max_entries = to_usize(n);
        }
        if let Some(n) = obj.count("maxEntryBytes")? {
            core.limits.max_entry_bytes = to_usize(n);
        }
        if let Some(retry) = obj.object("retry")? {
            let r = &mut core.retry;
            r.base_ms = retry.count("baseMs")?.unwrap_or(r.base_ms);
            r.factor = retry.count("factor")?.map_or(r.factor, to_u32);
            r.cap_ms = retry.count("capMs")?.unwrap_or(r.cap_ms);
            r.max_attempts = retry.count("maxAttempts")?.map_or(r.max_attempts, to_u32);
            r.max_age_ms = retry.count("maxAgeMs")?.unwrap_or(r.max_age_ms);
            r.max_auth_failures = retry
                .count("maxAuthFailures")?
                .map_or(r.max_auth_failures, to_u32);
            r.auth_window_ms = retry.count("authWindowMs")?.unwrap_or(r.auth_window_ms);
        }
        if let Some(pacer) = obj.object("pacer")? {
            let p = &mut core.pacer;
            p.rate_per_minute = pacer
                .count("ratePerMinute")?
                .map_or(p.rate_per_minute, to_u32)
                .max(1);
            p.burst = pacer.count("burst")?.map_or(p.burst, to_u32).max(1);
            if let Some(throttle) = pacer.object("throttle")? {
                let t = &mut p.throttle;
                t.enabled = throttle.bool("enabled")?.unwrap_or(t.enabled);
                t.tolerance_percent = throttle
                    .count("tolerancePercent")?
                    .map_or(t.tolerance_percent, |f| to_u32(f.min(100)));
                t.step_percent = throttle
                    .count("stepPercent")?
                    .map_or(t.step_percent, |f| to_u32(f.min(100)))
                    .max(1);
                t.memory_ms = throttle.count("memoryMs")?.unwrap_or(t.memory_ms).max(1);
                t.max_interval_ms = throttle
                    .count("maxIntervalMs")?
                    .unwrap_or(t.max_interval_ms)
                    .max(1);
            }
        }
        if let Some(n) = obj.count("batchSize")? {
            core.batch_size = to_usize(n).max(1);
        }
        core.send_timeout_ms = obj.count("sendTimeoutMs")?.unwrap_or(core.send_timeout_ms);
        core.lease_ms = obj.count("leaseMs")?.unwrap_or(core.lease_ms);
        if core.lease_ms <= core.send_timeout_ms {
            return Err(bad("leaseMs", Problem::LeaseNotLongerThanTimeout));
        }
        core.classify.retry_after_cap_ms = obj
            .count("retryAfterCapMs")?
            .unwrap_or(core.classify.retry_after_cap_ms);
        let token_url = obj.string("tokenUrl")?;
        if let Some(url) = &token_url
            && url.contains("://")
            && !url.starts_with(here)
        {
            return Err(bad("tokenUrl", Problem::NotSameOrigin));
        }
        let api_base = api_base(&obj)?;
        if let Some(base) = &api_base {
            core.routes
                .add_origin(base)
                .map_err(|e| bad("apiBase", e))?;
        }
        Ok(Self {
            api_base,
            core,
            token_url,
            database: obj.string("database")?.unwrap_or_else(|| "outbox".into()),
            channel: obj.string("channel")?.unwrap_or_else(|| "outbox".into()),
            forward_timeout_ms: obj.count("forwardTimeoutMs")?.unwrap_or(10_000),
            json: text.to_owned(),
        })
    }
}

/// The route table a configuration gives, but for `apiBase`/`region`
/// ([`api_base`]): the Genesys regions and default routes unless turned
/// off, the configured origins and routes, `onDead`,
/// `idempotencyHeaders`, `keepHeaders` — read in that order.
#[inline(always)]
fn routes(obj: &Obj<'_>) -> Result<RouteTable, ConfigError> {
    let regions = obj.bool("genesysRegions")? != Some(false);
    let defaults = obj.bool("defaultRoutes")? != Some(false);
    let mut table = if regions {
        RouteTable::genesys()
    } else {
        let mut t = RouteTable::empty();
        for r in crate::route::default_routes() {
            t.add_route(r);
        }
        t
    };
    if !defaults {
        let origins = table.origins().to_vec();
        table = RouteTable::empty();
        for o in origins {
            table.add_origin(&o).map_err(|e| bad("origins", e))?;
        }
    }
    for origin in obj.strings("origins")? {
        table.add_origin(&origin).map_err(|e| bad("origins", e))?;
    }
    if let Some(routes) = obj.get("routes") {
        if routes.kind != Kind::Array {
            return Err(bad("routes", Problem::NotAnArray));
        }
        for (i, r) in json::items(routes.raw)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            table.add_route(route(r, i)?);
        }
    }
    if let Some(policies) = obj.get("onDead") {
        let members = (policies.kind == Kind::Object)
            .then(|| json::members(policies.raw))
            .flatten()
            .ok_or_else(|| bad("onDead", Problem::NotAnOnDeadMap))?;
        #[cfg(test)]
        tests::looked_up("onDead.*");
        for (name, value) in members {
            let field = format!("onDead.{name}");
            let policy = on_dead(&value, &field)?;
            if !table.set_on_dead(&name, policy) {
                return Err(bad(&field, Problem::UnknownRoute));
            }
        }
    }
    if obj.bool("idempotencyHeaders")? == Some(true) {
        table.carry_key_in_header("Idempotency-Key");
    }
    for h in obj.strings("keepHeaders")? {
        if crate::headers::is_credential(&h) {
            return Err(bad("keepHeaders", Problem::Credential(h)));
        }
        table.keep_header(&h);
    }
    Ok(table)
}

/// The origin of `apiBase`, or of `region`'s API (`https://api.<region>`).
#[inline(always)]
fn api_base(obj: &Obj<'_>) -> Result<Option<String>, ConfigError> {
    Ok(match (obj.string("apiBase")?, obj.string("region")?) {
        (Some(base), _) => Some(
            crate::url::normalize_origin(&base).map_err(|e| bad("apiBase", RouteError::from(e)))?,
        ),
        (None, Some(region)) => Some(crate::genesys::api_origin(known_region(region)?)),
        (None, None) => None,
    })
}

/// Which requests a configuration's outbox owns: its route table, read by
/// the very code [`OutboxConfig::parse`] reads it with (`apiBase` and
/// `region` included), and nothing else of the configuration. A service
/// worker answers "is this request Outbox's?" from it before its engine
/// has started ([`RouteTable::is_candidate`]).
pub fn route_table(text: &str) -> Result<RouteTable, ConfigError> {
    let obj = Obj::root(text)?;
    let mut table = routes(&obj)?;
    if let Some(base) = api_base(&obj)? {
        table.add_origin(&base).map_err(|e| bad("apiBase", e))?;
    }
    Ok(table)
}

/// What a guest outbox (`Outbox.guest`) is told: an outbox's
/// configuration, read with the guest's defaults under it
/// ([`GUEST_DEFAULTS`]), and where the guest's conversation lives.
///
/// Besides every [`OutboxConfig`] field it reads `deploymentId`
/// (required), `region` (a Genesys region: the socket is
/// `wss://webmessaging.<region>/v1`, history at `https://api.<region>`),
/// `url` (the socket, instead of a region's) and `apiBase` (where history
/// is read; default the region's API, else the socket's host over
/// `http(s)`).
#[derive(Debug, Clone)]
pub struct GuestConfig {
    /// The outbox's configuration.
    pub outbox: OutboxConfig,
    /// The Messenger deployment.
    pub deployment_id: String,
    /// The Guest WebSocket URL.
    pub socket_url: String,
    /// Where the guest's history is read.
    pub api_base: String,
}

/// A guest outbox's defaults, under what the app gives (a key given
/// replaces the default's whole value): its own database and channel, no
/// REST routes, and Genesys's per-session rate (2 messages a second) kept
/// with room to spare.
pub const GUEST_DEFAULTS: &str = r#"{"database":"outbox-guest","channel":"outbox-guest","genesysRegions":false,"defaultRoutes":false,"sendTimeoutMs":15000,"leaseMs":30000,"pacer":{"ratePerMinute":60,"burst":1}}"#;

/// Every field of an outbox's configuration, as a path: `.` into an
/// object, `[]` into each element of an array, `.*` into each member of a
/// map. [`OutboxConfig::parse`] reads exactly these (a test holds it to
/// the list), and the page API's TypeScript types
/// (`web/host/types.ts`, `OutboxConfig`) declare exactly these (`cargo
/// test -p xtask config_types_are_cores`), plus the page-only `getToken`.
pub const FIELDS: &[&str] = &[
    "genesysRegions",
    "defaultRoutes",
    "origins",
    "routes",
    "routes[].name",
    "routes[].path",
    "routes[].lane",
    "routes[].method",
    "routes[].carriers",
    "routes[].conflictMeansDelivered",
    "routes[].needsToken",
    "routes[].onDead",
    "onDead",
    "onDead.*",
    "idempotencyHeaders",
    "keepHeaders",
    "maxEntries",
    "maxEntryBytes",
    "retry",
    "retry.baseMs",
    "retry.factor",
    "retry.capMs",
    "retry.maxAttempts",
    "retry.maxAgeMs",
    "retry.maxAuthFailures",
    "retry.authWindowMs",
    "pacer",
    "pacer.ratePerMinute",
    "pacer.burst",
    "pacer.throttle",
    "pacer.throttle.enabled",
    "pacer.throttle.tolerancePercent",
    "pacer.throttle.stepPercent",
    "pacer.throttle.memoryMs",
    "pacer.throttle.maxIntervalMs",
    "batchSize",
    "sendTimeoutMs",
    "leaseMs",
    "retryAfterCapMs",
    "tokenUrl",
    "apiBase",
    "region",
    "database",
    "channel",
    "forwardTimeoutMs",
];

/// The fields a guest outbox's configuration reads besides [`FIELDS`]
/// ([`GuestConfig::parse`]); its TypeScript type (`GuestConfig`) declares
/// these and a part of `FIELDS`.
pub const GUEST_FIELDS: &[&str] = &["deploymentId", "region", "url", "apiBase"];

impl GuestConfig {
    /// Reads a guest outbox's configuration from its JSON text; `here` as
    /// for [`OutboxConfig::parse`].
    pub fn parse(text: &str, here: &str) -> Result<Self, ConfigError> {
        let obj = Obj::root(text)?;
        let deployment_id = obj
            .string("deploymentId")?
            .ok_or_else(|| bad("deploymentId", Problem::Missing("deploymentId")))?;
        let region = obj.string("region")?.map(known_region).transpose()?;
        let socket_url = obj
            .string("url")?
            .or_else(|| region.map(crate::genesys::guest_socket_url))
            .ok_or_else(|| bad("url", Problem::NoGuestSocket))?;
        if !(socket_url.starts_with("ws://") || socket_url.starts_with("wss://")) {
            return Err(bad("url", Problem::NotAWebSocketUrl(socket_url)));
        }
        let api_base = obj
            .string("apiBase")?
            .or_else(|| region.map(crate::genesys::api_origin))
            .or_else(|| crate::guest::http_origin(&socket_url))
            .unwrap_or_else(|| socket_url.clone());
        let merged = under(GUEST_DEFAULTS, &obj);
        Ok(Self {
            outbox: OutboxConfig::parse(&merged, here)?,
            deployment_id,
            socket_url,
            api_base,
        })
    }

    /// The local-storage key of the guest's session token: one per
    /// database and deployment.
    pub fn storage_key(&self) -> String {
        let mut key = String::from("outbox-guest-token:");
        key.push_str(&self.outbox.database);
        key.push(':');
        key.push_str(&self.deployment_id);
        key
    }
}

/// `defaults` (a JSON object) with the members of `given` over it: a key
/// `given` has replaces the default's whole value.
fn under(defaults: &str, given: &Obj<'_>) -> String {
    let given = given
        .value
        .and_then(|v| json::members(v.raw))
        .unwrap_or_default();
    let mut out = json::Object::new();
    for (key, value) in json::members(defaults.as_bytes()).unwrap_or_default() {
        if !given.iter().any(|(k, _)| *k == key) {
            out.raw(&key, &String::from_utf8_lossy(value.raw));
        }
    }
    for (key, value) in &given {
        out.raw(key, &String::from_utf8_lossy(value.raw));
    }
    out.finish()
}

/// The largest count accepted (a JS number is exact up to 2⁵³; 9·10¹⁵
/// stays clear of it).
const MAX_COUNT: u64 = 9_000_000_000_000_000;

/// The value of a JSON number's text when it is a whole number from 0 to
/// [`MAX_COUNT`] (`1e3`, `2.0` and `-0` are; `1.5`, `-1`, `1e16` are
/// not), computed exactly on the digits: no float parsing, which would
/// add its tables to the service worker's bundle for this alone.
fn whole_number(raw: &[u8]) -> Option<u64> {
    let (negative, rest) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    let mantissa_end = rest
        .iter()
        .position(|b| matches!(b, b'e' | b'E'))
        .unwrap_or(rest.len());
    let (mantissa, exponent) = rest.split_at(mantissa_end);
    let (int, frac) = match mantissa.iter().position(|b| *b == b'.') {
        Some(dot) => (&mantissa[..dot], &mantissa[dot + 1..]),
        None => (mantissa, &[][..]),
    };
    if int.is_empty() || !int.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    let mut exp: i64 = match exponent.split_first() {
        None => 0,
        Some((_, e)) => {
            let (sign, digits) = match e.split_first() {
                Some((b'-', d)) => (-1, d),
                Some((b'+', d)) => (1, d),
                _ => (1, e),
            };
            if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            // Saturate: anything beyond ±10⁹ is out of range either way.
            let n = digits.iter().fold(0i64, |n, d| {
                (n * 10 + i64::from(d - b'0')).min(1_000_000_000)
            });
            sign * n
        }
    };
    // The significant digits, without leading or trailing zeros; each
    // trailing zero dropped raises the exponent.
    let all: Vec<u8> = int.iter().chain(frac).copied().collect();
    exp -= frac.len() as i64;
    let first = all.iter().position(|d| *d != b'0');
    let Some(first) = first else {
        return Some(0); // zero, whatever its sign or exponent
    };
    let mut digits = &all[first..];
    while let Some((b'0', head)) = digits.split_last() {
        digits = head;
        exp += 1;
    }
    if negative || exp < 0 || digits.len() as i64 + exp > 16 {
        return None;
    }
    let mut n: u64 = 0;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    for _ in 0..exp {
        n = n.checked_mul(10)?;
    }
    (n <= MAX_COUNT).then_some(n)
}

/// The top-level `region` as a known Genesys region domain
/// ([`crate::genesys::REGIONS`]).
fn known_region(region: String) -> Result<&'static str, ConfigError> {
    crate::genesys::region(&region).map_err(|_| bad("region", Problem::UnknownRegion(region)))
}

fn to_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// An object of a validated document (or nothing, for an absent one), and
/// its field path for error messages.
struct Obj<'a> {
    value: Option<Value<'a>>,
    /// The path of this object with a trailing `.` (empty at the root).
    at: String,
}

impl<'a> Obj<'a> {
    /// The document `text` as the root object: empty (or all white space)
    /// text and `null` are an absent one.
    fn root(text: &'a str) -> Result<Self, ConfigError> {
        const ROOT: &str = "(config)";
        let doc = text.as_bytes();
        let value = if text.trim().is_empty() {
            None
        } else {
            json::validate(doc).map_err(|e| bad(ROOT, e))?;
            match json::find(doc, &[]) {
                Some(v) if v.kind == Kind::Object => Some(v),
                Some(v) if v.kind == Kind::Null => None,
                _ => return Err(bad(ROOT, Problem::NotAnObject)),
            }
        };
        Ok(Obj {
            value,
            at: String::new(),
        })
    }

    fn field(&self, key: &str) -> String {
        format!("{}{key}", self.at)
    }

    /// `obj[key]`, `None` when absent or `null`.
    fn get(&self, key: &str) -> Option<Value<'a>> {
        #[cfg(test)]
        tests::looked_up(&self.field(key));
        let v = json::find(self.value?.raw, &[key])?;
        (v.kind != Kind::Null).then_some(v)
    }

    fn object(&self, key: &str) -> Result<Option<Obj<'a>>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.kind == Kind::Object => Ok(Some(Obj {
                value: Some(v),
                at: format!("{}{key}.", self.at),
            })),
            Some(_) => Err(bad(&self.field(key), Problem::NotAnObject)),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.kind == Kind::Bool => Ok(Some(v.raw == b"true")),
            Some(_) => Err(bad(&self.field(key), Problem::NotABool)),
        }
    }

    fn count(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match (v.kind, whole_number(v.raw)) {
                (Kind::Number, Some(n)) => Ok(Some(n)),
                _ => Err(bad(&self.field(key), Problem::NotACount)),
            },
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(|s| Some(s.into_owned()))
                .ok_or_else(|| bad(&self.field(key), Problem::NotAString)),
        }
    }

    fn strings(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        let Some(list) = self.get(key) else {
            return Ok(Vec::new());
        };
        let wrong = || bad(&self.field(key), Problem::NotAStringList);
        if list.kind != Kind::Array {
            return Err(wrong());
        }
        json::items(list.raw)
            .unwrap_or_default()
            .iter()
            .map(|item| item.as_str().map(|s| s.into_owned()).ok_or_else(wrong))
            .collect()
    }
}

fn route(r: &Value<'_>, i: usize) -> Result<Route, ConfigError> {
    let field = format!("routes[{i}]");
    if r.kind != Kind::Object {
        return Err(bad(&field, Problem::NotAnObject));
    }
    let obj = Obj {
        value: Some(*r),
        at: format!("{field}."),
    };
    let name = obj
        .string("name")?
        .ok_or_else(|| bad(&field, Problem::Missing("name")))?;
    let path = obj
        .string("path")?
        .ok_or_else(|| bad(&field, Problem::Missing("path")))?;
    let mut lanes = Vec::new();
    for l in obj.strings("lane")? {
        lanes.push(match l.split_once(':') {
            Some(("path", p)) => LaneSource::PathParam(p.to_owned()),
            Some(("body", p)) => LaneSource::BodyField(p.split('.').map(str::to_owned).collect()),
            _ => return Err(bad(&format!("{field}.lane"), Problem::BadLane(l))),
        });
    }
    if lanes.is_empty() {
        return Err(bad(&format!("{field}.lane"), Problem::NoLane));
    }
    let mut route = Route::post(&name, &path, lanes).map_err(|e| bad(&field, e))?;
    if let Some(m) = obj.string("method")? {
        route.method = m.to_ascii_uppercase();
    }
    for c in obj.strings("carriers")? {
        route = route.with_carrier(match c.split_once(':') {
            Some(("header", h)) => Carrier::Header(h.to_owned()),
            Some(("body", p)) => Carrier::BodyField(p.split('.').map(str::to_owned).collect()),
            _ => return Err(bad(&format!("{field}.carriers"), Problem::BadCarrier(c))),
        });
    }
    if obj.bool("conflictMeansDelivered")? == Some(true) {
        route = route.conflict_means_delivered();
    }
    if let Some(t) = obj.bool("needsToken")? {
        route.needs_token = t;
    }
    if let Some(policy) = obj.get("onDead") {
        route.on_dead = on_dead(&policy, &format!("{field}.onDead"))?;
    }
    Ok(route)
}

/// `"hold"` or `"skip"`.
fn on_dead(v: &Value<'_>, field: &str) -> Result<OnDead, ConfigError> {
    v.as_str()
        .as_deref()
        .and_then(OnDead::parse)
        .ok_or_else(|| bad(field, Problem::NotAnOnDead))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use std::{
        borrow::ToOwned,
        boxed::Box,
        format,
        string::{String, ToString},
        vec,
        vec::Vec,
    };

    std::thread_local! {
        static LOOKED_UP: core::cell::RefCell<Vec<String>> = const { core::cell::RefCell::new(Vec::new()) };
    }

    /// Notes a field the parser looked up (`routes[3].lane` as `routes[].lane`).
    pub(super) fn looked_up(path: &str) {
        let mut normal = String::new();
        let mut in_index = false;
        for c in path.chars() {
            match c {
                '[' => {
                    in_index = true;
                    normal.push_str("[]");
                }
                ']' => in_index = false,
                _ if in_index => {}
                c => normal.push(c),
            }
        }
        LOOKED_UP.with(|l| {
            let mut l = l.borrow_mut();
            if !l.contains(&normal) {
                l.push(normal);
            }
        });
    }

    #[test]
    fn the_parser_reads_exactly_the_documented_fields() {
        let every = r#"{"retry":{},"pacer":{"throttle":{}},"onDead":{"r":"skip"},
            "routes":[{"name":"r","path":"/r/{x}","lane":["path:x"]}]}"#;
        LOOKED_UP.with(|l| l.borrow_mut().clear());
        parse(every).expect("valid");
        let mut read = LOOKED_UP.with(|l| l.borrow().clone());
        read.sort();
        let mut fields: Vec<String> = FIELDS.iter().map(|f| (*f).to_owned()).collect();
        fields.sort();
        assert_eq!(read, fields);
        LOOKED_UP.with(|l| l.borrow_mut().clear());
        GuestConfig::parse(r#"{"deploymentId":"d","url":"ws://h/v1"}"#, HERE).expect("valid");
        let read = LOOKED_UP.with(|l| l.borrow().clone());
        for f in read {
            assert!(
                FIELDS.contains(&f.as_str()) || GUEST_FIELDS.contains(&f.as_str()),
                "a guest field not in the lists: {f}"
            );
        }
    }

    const HERE: &str = "http://127.0.0.1:8081";

    fn parse(text: &str) -> Result<OutboxConfig, ConfigError> {
        OutboxConfig::parse(text, HERE)
    }

    /// The error for `text`, as the user sees it.
    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("{text} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_text_null_and_empty_object_mean_every_default() {
        for text in ["", "  \n", "null", "{}", " { } "] {
            let c = parse(text).expect(text);
            let d = Config::default();
            assert_eq!(c.core.routes.origins(), d.routes.origins(), "{text}");
            assert_eq!(c.core.routes.routes(), d.routes.routes());
            assert_eq!(c.core.retry, d.retry);
            assert_eq!(c.core.batch_size, 8);
            assert_eq!(
                (c.database.as_str(), c.channel.as_str()),
                ("outbox", "outbox")
            );
            assert_eq!(c.forward_timeout_ms, 10_000);
            assert_eq!((c.token_url, c.api_base), (None, None));
            assert_eq!(c.json, text);
        }
    }

    #[test]
    fn every_documented_field_is_read() {
        let text = r#"{
          "origins": ["http://127.0.0.1:8081", "HTTPS://proxy.example:443"],
          "genesysRegions": false, "defaultRoutes": true,
          "routes": [{ "name": "proxy", "path": "/chat/{room}/send", "lane": ["path:room", "body:a.b"],
                       "carriers": ["header:Idempotency-Key", "body:meta.id"],
                       "conflictMeansDelivered": true, "needsToken": false, "method": "put",
                       "onDead": "skip" }],
          "keepHeaders": ["X-Trace"], "idempotencyHeaders": true, "tokenUrl": "/token",
          "apiBase": "http://127.0.0.1:9000", "region": "mypurecloud.ie",
          "database": "db", "channel": "ch", "maxEntries": 5, "maxEntryBytes": 1e3,
          "retry": { "baseMs": 1, "factor": 3, "capMs": 4, "maxAttempts": 5, "maxAgeMs": 6,
                     "maxAuthFailures": 7, "authWindowMs": 8 },
          "onDead": { "agentless": "skip" },
          "pacer": { "ratePerMinute": 0, "burst": 2,
                     "throttle": { "enabled": false, "tolerancePercent": 250, "stepPercent": 0,
                                   "memoryMs": 0, "maxIntervalMs": 0 } },
          "batchSize": 0, "sendTimeoutMs": 100, "leaseMs": 101, "forwardTimeoutMs": 7,
          "retryAfterCapMs": 9, "unknown": [1, {"x": null}]
        }"#;
        let c = parse(text).unwrap();
        assert_eq!(
            c.core.routes.origins(),
            [
                "http://127.0.0.1:8081",
                "https://proxy.example",
                "http://127.0.0.1:9000"
            ]
        );
        let proxy = c.core.routes.route("proxy").unwrap();
        assert_eq!(proxy.method, "PUT");
        assert_eq!(
            proxy.lane,
            [
                LaneSource::PathParam("room".into()),
                LaneSource::BodyField(vec!["a".into(), "b".into()])
            ]
        );
        assert_eq!(
            proxy.carriers,
            [
                Carrier::Header("Idempotency-Key".into()),
                Carrier::BodyField(vec!["meta".into(), "id".into()])
            ]
        );
        assert!(proxy.conflict_is_delivered && !proxy.needs_token);
        assert_eq!(proxy.on_dead, OnDead::Skip);
        assert_eq!(
            c.core.routes.on_dead(crate::route::names::AGENTLESS),
            OnDead::Skip
        );
        assert_eq!(
            c.core.routes.on_dead(crate::route::names::AGENT_SEND),
            OnDead::Hold
        );
        assert_eq!(c.core.retry.auth_window_ms, 8);
        // `idempotencyHeaders` gave every default route a header carrier.
        let agent = c
            .core
            .routes
            .route(crate::route::names::AGENT_SEND)
            .unwrap();
        assert!(
            agent
                .carriers
                .contains(&Carrier::Header("Idempotency-Key".into()))
        );
        assert_eq!(c.core.limits.max_entries, 5);
        assert_eq!(c.core.limits.max_entry_bytes, 1000);
        let r = &c.core.retry;
        assert_eq!(
            (
                r.base_ms,
                r.factor,
                r.cap_ms,
                r.max_attempts,
                r.max_age_ms,
                r.max_auth_failures
            ),
            (1, 3, 4, 5, 6, 7)
        );
        assert_eq!((c.core.pacer.rate_per_minute, c.core.pacer.burst), (1, 2));
        let t = c.core.pacer.throttle;
        assert_eq!(
            (
                t.enabled,
                t.tolerance_percent,
                t.step_percent,
                t.memory_ms,
                t.max_interval_ms
            ),
            (false, 100, 1, 1, 1)
        );
        assert_eq!(c.core.batch_size, 1);
        assert_eq!((c.core.send_timeout_ms, c.core.lease_ms), (100, 101));
        assert_eq!(c.core.classify.retry_after_cap_ms, 9);
        assert_eq!(c.token_url.as_deref(), Some("/token"));
        assert_eq!(c.api_base.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!((c.database.as_str(), c.channel.as_str()), ("db", "ch"));
        assert_eq!(c.forward_timeout_ms, 7);
    }

    #[test]
    fn regions_and_default_routes_switch_independently() {
        let c = parse(r#"{"genesysRegions": false, "defaultRoutes": false}"#).unwrap();
        assert!(c.core.routes.origins().is_empty() && c.core.routes.routes().is_empty());
        let c = parse(r#"{"defaultRoutes": false}"#).unwrap();
        assert!(c.core.routes.routes().is_empty());
        assert!(
            c.core
                .routes
                .origins()
                .contains(&"https://api.mypurecloud.ie".to_owned())
        );
        let c = parse(r#"{"genesysRegions": false}"#).unwrap();
        assert!(c.core.routes.origins().is_empty());
        assert_eq!(c.core.routes.routes().len(), 4);
    }

    #[test]
    fn region_sets_the_api_base_and_null_is_absent() {
        let c = parse(r#"{"region": "mypurecloud.ie", "apiBase": null, "retry": null}"#).unwrap();
        assert_eq!(c.api_base.as_deref(), Some("https://api.mypurecloud.ie"));
        let c = parse(r#"{"tokenUrl": "http://127.0.0.1:8081/token"}"#).unwrap();
        assert_eq!(c.token_url.as_deref(), Some("http://127.0.0.1:8081/token"));
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let c = parse(r#"{"database": "a\"b\u00e9", "keepHeaders": ["X-\u0041"]}"#).unwrap();
        assert_eq!(c.database, "a\"bé");
    }

    /// Every error the parser can give, with the message the user sees.
    #[test]
    fn every_error_names_its_field() {
        let cases: &[(&str, &str)] = &[
            (
                "{",
                "config `(config)`: not JSON: invalid JSON at byte 1: expected a key",
            ),
            (
                "{} x",
                "config `(config)`: not JSON: invalid JSON at byte 3: trailing characters",
            ),
            ("[]", "config `(config)`: must be an object"),
            ("5", "config `(config)`: must be an object"),
            (
                r#"{"genesysRegions": 1}"#,
                "config `genesysRegions`: must be true or false",
            ),
            (
                r#"{"defaultRoutes": "no"}"#,
                "config `defaultRoutes`: must be true or false",
            ),
            (
                r#"{"idempotencyHeaders": 0}"#,
                "config `idempotencyHeaders`: must be true or false",
            ),
            (
                r#"{"origins": "x"}"#,
                "config `origins`: must be an array of strings",
            ),
            (
                r#"{"origins": [1]}"#,
                "config `origins`: must be an array of strings",
            ),
            (
                r#"{"origins": ["/x"]}"#,
                "config `origins`: not an absolute http(s) URL: /x",
            ),
            (
                r#"{"origins": ["https://x/y"]}"#,
                "config `origins`: not an absolute http(s) URL: https://x/y",
            ),
            (r#"{"routes": {}}"#, "config `routes`: must be an array"),
            (
                r#"{"routes": [1]}"#,
                "config `routes[0]`: must be an object",
            ),
            (
                r#"{"routes": [{"path": "/a"}]}"#,
                "config `routes[0]`: needs a `name`",
            ),
            (
                r#"{"routes": [{"name": 1}]}"#,
                "config `routes[0].name`: must be a string",
            ),
            (
                r#"{"routes": [{"name": "a"}]}"#,
                "config `routes[0]`: needs a `path`",
            ),
            (
                r#"{"routes": [{"name": "a", "path": "/a"}]}"#,
                "config `routes[0].lane`: needs at least one lane source",
            ),
            (
                r#"{"routes": [{"name": "a", "path": "/a", "lane": "path:x"}]}"#,
                "config `routes[0].lane`: must be an array of strings",
            ),
            (
                r#"{"routes": [{"name": "a", "path": "/a", "lane": ["x"]}]}"#,
                "config `routes[0].lane`: `x`: use `path:NAME` or `body:a.b`",
            ),
            (
                r#"{"routes": [{"name": "a", "path": "a", "lane": ["body:x"]}]}"#,
                "config `routes[0]`: bad path template `a`: must start with /",
            ),
            (
                r#"{"routes": [{"name": "a", "path": "/a", "lane": ["path:x"]}]}"#,
                "config `routes[0]`: route `a`: lane parameter `x` is not in its path",
            ),
            (
                r#"{"routes": [{"name": "a", "path": "/a", "lane": ["body:x"], "method": 1}]}"#,
                "config `routes[0].method`: must be a string",
            ),
            (
                r#"{"routes": [{"name": "a", "path": "/a", "lane": ["body:x"], "carriers": ["x"]}]}"#,
                "config `routes[0].carriers`: `x`: use `header:NAME` or `body:a.b`",
            ),
            (
                r#"{"routes": [{"name": "a", "path": "/a", "lane": ["body:x"], "conflictMeansDelivered": 1}]}"#,
                "config `routes[0].conflictMeansDelivered`: must be true or false",
            ),
            (
                r#"{"routes": [{"name": "a", "path": "/a", "lane": ["body:x"], "needsToken": "yes"}]}"#,
                "config `routes[0].needsToken`: must be true or false",
            ),
            (
                r#"{"routes": [{"name": "a", "path": "/a", "lane": ["body:x"], "onDead": "drop"}]}"#,
                "config `routes[0].onDead`: must be \"hold\" or \"skip\"",
            ),
            (
                r#"{"onDead": ["agentless"]}"#,
                "config `onDead`: must be an object of route name → \"hold\" or \"skip\"",
            ),
            (
                r#"{"onDead": {"agentless": 1}}"#,
                "config `onDead.agentless`: must be \"hold\" or \"skip\"",
            ),
            (
                r#"{"onDead": {"nope": "skip"}}"#,
                "config `onDead.nope`: names no configured route",
            ),
            (
                r#"{"retry": {"authWindowMs": -1}}"#,
                "config `retry.authWindowMs`: must be a whole number ≥ 0",
            ),
            (
                r#"{"keepHeaders": ["Authorization"]}"#,
                "config `keepHeaders`: `Authorization` looks like a credential; it is never stored",
            ),
            (
                r#"{"maxEntries": -1}"#,
                "config `maxEntries`: must be a whole number ≥ 0",
            ),
            (
                r#"{"maxEntryBytes": 1.5}"#,
                "config `maxEntryBytes`: must be a whole number ≥ 0",
            ),
            (
                r#"{"batchSize": 1e16}"#,
                "config `batchSize`: must be a whole number ≥ 0",
            ),
            (
                r#"{"sendTimeoutMs": "1"}"#,
                "config `sendTimeoutMs`: must be a whole number ≥ 0",
            ),
            (r#"{"retry": 1}"#, "config `retry`: must be an object"),
            (
                r#"{"retry": {"baseMs": true}}"#,
                "config `retry.baseMs`: must be a whole number ≥ 0",
            ),
            (
                r#"{"retry": {"factor": -2}}"#,
                "config `retry.factor`: must be a whole number ≥ 0",
            ),
            (
                r#"{"retry": {"capMs": []}}"#,
                "config `retry.capMs`: must be a whole number ≥ 0",
            ),
            (
                r#"{"retry": {"maxAttempts": 0.1}}"#,
                "config `retry.maxAttempts`: must be a whole number ≥ 0",
            ),
            (
                r#"{"retry": {"maxAgeMs": {}}}"#,
                "config `retry.maxAgeMs`: must be a whole number ≥ 0",
            ),
            (
                r#"{"retry": {"maxAuthFailures": "3"}}"#,
                "config `retry.maxAuthFailures`: must be a whole number ≥ 0",
            ),
            (r#"{"pacer": []}"#, "config `pacer`: must be an object"),
            (
                r#"{"pacer": {"ratePerMinute": -1}}"#,
                "config `pacer.ratePerMinute`: must be a whole number ≥ 0",
            ),
            (
                r#"{"pacer": {"burst": "x"}}"#,
                "config `pacer.burst`: must be a whole number ≥ 0",
            ),
            (
                r#"{"leaseMs": 30000}"#,
                "config `leaseMs`: must be longer than sendTimeoutMs",
            ),
            (
                r#"{"sendTimeoutMs": 60000}"#,
                "config `leaseMs`: must be longer than sendTimeoutMs",
            ),
            (
                r#"{"leaseMs": 1.5}"#,
                "config `leaseMs`: must be a whole number ≥ 0",
            ),
            (
                r#"{"retryAfterCapMs": false}"#,
                "config `retryAfterCapMs`: must be a whole number ≥ 0",
            ),
            (
                r#"{"forwardTimeoutMs": -5}"#,
                "config `forwardTimeoutMs`: must be a whole number ≥ 0",
            ),
            (
                r#"{"tokenUrl": "https://evil.example/token"}"#,
                "config `tokenUrl`: must be same-origin (a relative path is best)",
            ),
            (r#"{"tokenUrl": 5}"#, "config `tokenUrl`: must be a string"),
            (
                r#"{"apiBase": "nope"}"#,
                "config `apiBase`: not an absolute http(s) URL: nope",
            ),
            (
                r#"{"apiBase": "http://x/y"}"#,
                "config `apiBase`: not an absolute http(s) URL: http://x/y",
            ),
            (
                r#"{"region": "example.com"}"#,
                "config `region`: `example.com` is not a Genesys Cloud region domain",
            ),
            (r#"{"region": 1}"#, "config `region`: must be a string"),
            (r#"{"database": 1}"#, "config `database`: must be a string"),
            (
                r#"{"channel": false}"#,
                "config `channel`: must be a string",
            ),
            (
                r#"{"database": "\ud800"}"#,
                "config `database`: must be a string",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&error(text), want, "{text}");
        }
    }

    #[test]
    fn errors_are_typed() {
        let e = parse(r#"{"retry": {"capMs": -1}}"#).unwrap_err();
        assert_eq!(e.field, "retry.capMs");
        assert_eq!(e.problem, Problem::NotACount);
        let e = parse("{").unwrap_err();
        assert!(matches!(
            e.problem,
            Problem::NotJson(JsonError::Invalid { .. })
        ));
        let e = parse(r#"{"routes": [{"name": "a", "path": "/a//b", "lane": ["body:x"]}]}"#)
            .unwrap_err();
        assert!(matches!(
            e.problem,
            Problem::Route(RouteError::Template { .. })
        ));
    }

    #[test]
    fn whole_numbers_are_read_exactly_without_floats() {
        for (text, want) in [
            ("0", Some(0)),
            ("-0", Some(0)),
            ("-0.0e5", Some(0)),
            ("7", Some(7)),
            ("1e3", Some(1000)),
            ("1E+3", Some(1000)),
            ("2.0", Some(2)),
            ("2.50e1", Some(25)),
            ("12345e-2", None),
            ("1200e-2", Some(12)),
            ("9e15", Some(MAX_COUNT)),
            ("9000000000000000", Some(MAX_COUNT)),
            ("9000000000000001", None),
            ("9e16", None),
            ("1e999999999999", None),
            ("1e-999999999999", None),
            ("0.5", None),
            ("-1", None),
            ("1.5", None),
            ("18446744073709551616", None),
        ] {
            assert_eq!(whole_number(text.as_bytes()), want, "{text}");
        }
        // Whatever a float reading says of a short number, this says too.
        for n in 0..2_000u32 {
            for text in [
                format!("{n}"),
                format!("{}.{}", n / 10, n % 10),
                format!("{n}e-1"),
                format!("{n}e2"),
            ] {
                let f: f64 = text.parse().unwrap();
                let by_float = (f >= 0.0 && f.fract() == 0.0 && f <= 9.0e15).then_some(f as u64);
                assert_eq!(whole_number(text.as_bytes()), by_float, "{text}");
            }
        }
    }

    #[test]
    fn the_first_of_repeated_keys_counts() {
        let c = parse(r#"{"database": "a", "database": 5}"#).unwrap();
        assert_eq!(c.database, "a");
    }

    #[test]
    fn a_guest_outbox_reads_its_defaults_under_what_it_is_given() {
        let g = GuestConfig::parse(
            r#"{"deploymentId": "dep-1", "region": "mypurecloud.ie", "channel": "mine",
                "pacer": {"ratePerMinute": 30}}"#,
            HERE,
        )
        .unwrap();
        assert_eq!(g.deployment_id, "dep-1");
        assert_eq!(g.socket_url, "wss://webmessaging.mypurecloud.ie/v1");
        assert_eq!(g.api_base, "https://api.mypurecloud.ie");
        let c = &g.outbox;
        assert_eq!(
            (c.database.as_str(), c.channel.as_str()),
            ("outbox-guest", "mine")
        );
        assert_eq!((c.core.send_timeout_ms, c.core.lease_ms), (15_000, 30_000));
        // A key given replaces the default's whole value: `burst` is the
        // engine's default again, not the guest's 1.
        assert_eq!((c.core.pacer.rate_per_minute, c.core.pacer.burst), (30, 10));
        assert!(c.core.routes.routes().is_empty(), "no REST routes");
        assert_eq!(g.storage_key(), "outbox-guest-token:outbox-guest:dep-1");

        let g = GuestConfig::parse(
            r#"{"deploymentId": "d", "url": "ws://127.0.0.1:9/v1"}"#,
            HERE,
        )
        .unwrap();
        assert_eq!(
            g.api_base, "http://127.0.0.1:9",
            "the socket's host over http"
        );
        assert_eq!(g.outbox.core.pacer.burst, 1, "the guest's default");
    }

    #[test]
    fn a_guest_outbox_says_what_is_missing_or_wrong() {
        let error = |text: &str| {
            GuestConfig::parse(text, HERE)
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(error("{}"), "config `deploymentId`: needs a `deploymentId`");
        assert_eq!(
            error(r#"{"deploymentId": "d"}"#),
            "config `url`: needs a `region` or a socket `url`"
        );
        assert_eq!(
            error(r#"{"deploymentId": "d", "region": "example.com"}"#),
            "config `region`: `example.com` is not a Genesys Cloud region domain"
        );
        assert_eq!(
            error(r#"{"deploymentId": "d", "url": "https://x/v1"}"#),
            "config `url`: `https://x/v1` is not a ws:// or wss:// URL"
        );
        assert_eq!(
            error(r#"{"deploymentId": "d", "url": "ws://x/v1", "leaseMs": 5}"#),
            "config `leaseMs`: must be longer than sendTimeoutMs"
        );
        assert_eq!(error("[1]"), "config `(config)`: must be an object");
    }
}
