//! The browser configuration: one plain object (or its JSON text, for the
//! service worker, which receives it in its script URL) read into the
//! engine's [`Config`] plus the browser-only settings.
//!
//! ```json
//! {
//!   "origins": ["http://127.0.0.1:8081"],
//!   "genesysRegions": true, "defaultRoutes": true,
//!   "routes": [{ "name": "proxy", "path": "/chat/{room}/send", "lane": ["path:room"],
//!                "carriers": ["header:Idempotency-Key"], "conflictMeansDelivered": false,
//!                "needsToken": true }],
//!   "keepHeaders": ["X-Trace"],
//!   "idempotencyHeaders": false,
//!   "tokenUrl": "/token",
//!   "apiBase": "http://127.0.0.1:8081", "region": "mypurecloud.ie",
//!   "database": "outbox", "channel": "outbox",
//!   "maxEntries": 10000, "maxEntryBytes": 262144,
//!   "retry": { "baseMs": 2000, "factor": 2, "capMs": 60000, "maxAttempts": 25,
//!              "maxAgeMs": 259200000, "maxAuthFailures": 3 },
//!   "pacer": { "ratePerMinute": 150, "burst": 10,
//!              "throttle": { "enabled": true, "spreadPercent": 10, "spreadMaxMs": 300000,
//!                            "maxIntervalMs": 120000 } },
//!   "batchSize": 8, "sendTimeoutMs": 30000, "leaseMs": 60000, "forwardTimeoutMs": 10000,
//!   "retryAfterCapMs": 21600000
//! }
//! ```
//! `idempotencyHeaders` adds an `Idempotency-Key` header carrier to every
//! route without one (only for servers whose CORS allows that header).
//! `genesysRegions` includes `https://api.<domain>` of every Genesys region
//! as an origin; `defaultRoutes` the four routes of the design. Every
//! field is optional. A wrong type or value is an error naming the
//! field; unknown fields are ignored.

use outbox_core::engine::Config;
use outbox_core::route::{Carrier, LaneSource, Route, RouteTable};
use wasm_bindgen::JsValue;

use crate::js;

/// A configuration problem, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config `{field}`: {problem}")]
pub struct ConfigError {
    /// The field.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

fn bad(field: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field: field.to_owned(),
        problem: problem.into(),
    }
}

/// Everything the browser side is told.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The engine's configuration.
    pub core: Config,
    /// Same-origin URL that hands out access tokens (`{access_token,
    /// expires_in}`), if any.
    pub token_url: Option<String>,
    /// IndexedDB database name.
    pub database: String,
    /// `BroadcastChannel` name for events.
    pub channel: String,
    /// Timeout of the first, live attempt of an intercepted request.
    pub forward_timeout_ms: u64,
    /// Base URL of the Genesys API for the page's helpers (`apiBase`, or
    /// `https://api.<region>` from `region`).
    pub api_base: Option<String>,
    /// The original JSON text (passed on to the service worker).
    pub json: String,
}

impl WebConfig {
    /// Reads a configuration object.
    pub fn from_js(value: &JsValue) -> Result<Self, ConfigError> {
        let json = if value.is_undefined() || value.is_null() {
            "{}".to_owned()
        } else {
            js_sys::JSON::stringify(value)
                .ok()
                .and_then(|s| s.as_string())
                .ok_or_else(|| bad("(config)", "must be a plain object"))?
        };
        Self::read(value, json)
    }

    /// Reads a configuration from JSON text.
    pub fn from_json(text: &str) -> Result<Self, ConfigError> {
        let value = if text.trim().is_empty() {
            js::object()
        } else {
            js_sys::JSON::parse(text)
                .map_err(|e| bad("(config)", format!("not JSON: {}", js::error_text(&e))))?
        };
        Self::read(&value, text.to_owned())
    }

    fn read(v: &JsValue, json: String) -> Result<Self, ConfigError> {
        if !v.is_object() && !v.is_undefined() && !v.is_null() {
            return Err(bad("(config)", "must be an object"));
        }
        let mut core = Config::default();
        let regions = bool_field(v, "genesysRegions")? != Some(false);
        let defaults = bool_field(v, "defaultRoutes")? != Some(false);
        core.routes = if regions {
            RouteTable::genesys()
        } else {
            let mut t = RouteTable::empty();
            for r in outbox_core::route::default_routes() {
                t.add_route(r);
            }
            t
        };
        if !defaults {
            let origins = core.routes.origins().to_vec();
            core.routes = RouteTable::empty();
            for o in origins {
                core.routes
                    .add_origin(&o)
                    .map_err(|e| bad("origins", e.to_string()))?;
            }
        }
        for origin in string_list(v, "origins")? {
            core.routes
                .add_origin(&origin)
                .map_err(|e| bad("origins", e.to_string()))?;
        }
        if let Some(routes) = js::get(v, "routes") {
            let array = routes
                .dyn_ref_array()
                .ok_or_else(|| bad("routes", "must be an array"))?;
            for (i, r) in array.iter().enumerate() {
                core.routes.add_route(route(&r, i)?);
            }
        }
        if bool_field(v, "idempotencyHeaders")? == Some(true) {
            core.routes.carry_key_in_header("Idempotency-Key");
        }
        for h in string_list(v, "keepHeaders")? {
            if outbox_core::headers::is_credential(&h) {
                return Err(bad(
                    "keepHeaders",
                    format!("`{h}` looks like a credential; it is never stored"),
                ));
            }
            core.routes.keep_header(&h);
        }
        if let Some(n) = count(v, "maxEntries")? {
            core.limits.max_entries = n as usize;
        }
        if let Some(n) = count(v, "maxEntryBytes")? {
            core.limits.max_entry_bytes = n as usize;
        }
        if let Some(retry) = js::get(v, "retry") {
            let r = &mut core.retry;
            r.base_ms = count(&retry, "baseMs")?.unwrap_or(r.base_ms);
            r.factor = count(&retry, "factor")?.map_or(r.factor, |f| f as u32);
            r.cap_ms = count(&retry, "capMs")?.unwrap_or(r.cap_ms);
            r.max_attempts = count(&retry, "maxAttempts")?.map_or(r.max_attempts, |f| f as u32);
            r.max_age_ms = count(&retry, "maxAgeMs")?.unwrap_or(r.max_age_ms);
            r.max_auth_failures =
                count(&retry, "maxAuthFailures")?.map_or(r.max_auth_failures, |f| f as u32);
        }
        if let Some(pacer) = js::get(v, "pacer") {
            let p = &mut core.pacer;
            p.rate_per_minute = count(&pacer, "ratePerMinute")?
                .map_or(p.rate_per_minute, |f| f as u32)
                .max(1);
            p.burst = count(&pacer, "burst")?.map_or(p.burst, |f| f as u32).max(1);
            if let Some(throttle) = js::get(&pacer, "throttle") {
                let t = &mut p.throttle;
                t.enabled = bool_field(&throttle, "enabled")?.unwrap_or(t.enabled);
                t.spread_percent = count(&throttle, "spreadPercent")?
                    .map_or(t.spread_percent, |f| f.min(100) as u32);
                t.spread_max_ms = count(&throttle, "spreadMaxMs")?.unwrap_or(t.spread_max_ms);
                t.max_interval_ms = count(&throttle, "maxIntervalMs")?
                    .unwrap_or(t.max_interval_ms)
                    .max(1);
            }
        }
        if let Some(n) = count(v, "batchSize")? {
            core.batch_size = (n as usize).max(1);
        }
        core.send_timeout_ms = count(v, "sendTimeoutMs")?.unwrap_or(core.send_timeout_ms);
        core.lease_ms = count(v, "leaseMs")?.unwrap_or(core.lease_ms);
        if core.lease_ms <= core.send_timeout_ms {
            return Err(bad("leaseMs", "must be longer than sendTimeoutMs"));
        }
        core.classify.retry_after_cap_ms =
            count(v, "retryAfterCapMs")?.unwrap_or(core.classify.retry_after_cap_ms);
        let token_url = js::get_str(v, "tokenUrl");
        if let Some(url) = &token_url
            && url.contains("://")
            && !url.starts_with(&origin_of_global())
        {
            return Err(bad(
                "tokenUrl",
                "must be same-origin (a relative path is best)",
            ));
        }
        let api_base = match (js::get_str(v, "apiBase"), js::get_str(v, "region")) {
            (Some(base), _) => Some(
                outbox_core::url::normalize_origin(&base)
                    .map_err(|e| bad("apiBase", e.to_string()))?,
            ),
            (None, Some(region)) => {
                if !outbox_core::route::GENESYS_REGIONS.contains(&region.as_str()) {
                    return Err(bad(
                        "region",
                        format!("`{region}` is not a Genesys Cloud region domain"),
                    ));
                }
                Some(format!("https://api.{region}"))
            }
            (None, None) => None,
        };
        if let Some(base) = &api_base {
            core.routes
                .add_origin(base)
                .map_err(|e| bad("apiBase", e.to_string()))?;
        }
        Ok(Self {
            api_base,
            core,
            token_url,
            database: js::get_str(v, "database").unwrap_or_else(|| "outbox".into()),
            channel: js::get_str(v, "channel").unwrap_or_else(|| "outbox".into()),
            forward_timeout_ms: count(v, "forwardTimeoutMs")?.unwrap_or(10_000),
            json,
        })
    }
}

fn origin_of_global() -> String {
    js::get(&js::global(), "location")
        .and_then(|l| js::get_str(&l, "origin"))
        .unwrap_or_default()
}

trait ArrayExt {
    fn dyn_ref_array(&self) -> Option<&js_sys::Array>;
}

impl ArrayExt for JsValue {
    fn dyn_ref_array(&self) -> Option<&js_sys::Array> {
        use wasm_bindgen::JsCast;
        if js_sys::Array::is_array(self) {
            self.dyn_ref::<js_sys::Array>()
        } else {
            None
        }
    }
}

fn string_list(v: &JsValue, field: &str) -> Result<Vec<String>, ConfigError> {
    let Some(list) = js::get(v, field) else {
        return Ok(Vec::new());
    };
    let array = list
        .dyn_ref_array()
        .ok_or_else(|| bad(field, "must be an array of strings"))?;
    array
        .iter()
        .map(|item| {
            item.as_string()
                .ok_or_else(|| bad(field, "must be an array of strings"))
        })
        .collect()
}

fn bool_field(v: &JsValue, field: &str) -> Result<Option<bool>, ConfigError> {
    match js::get(v, field) {
        None => Ok(None),
        Some(b) => b
            .as_bool()
            .map(Some)
            .ok_or_else(|| bad(field, "must be true or false")),
    }
}

fn count(v: &JsValue, field: &str) -> Result<Option<u64>, ConfigError> {
    match js::get(v, field) {
        None => Ok(None),
        Some(n) => match n.as_f64() {
            Some(f) if f >= 0.0 && f.fract() == 0.0 && f <= 9.0e15 => Ok(Some(f as u64)),
            _ => Err(bad(field, "must be a whole number ≥ 0")),
        },
    }
}

fn route(r: &JsValue, i: usize) -> Result<Route, ConfigError> {
    let field = format!("routes[{i}]");
    let name = js::get_str(r, "name").ok_or_else(|| bad(&field, "needs a `name`"))?;
    let path = js::get_str(r, "path").ok_or_else(|| bad(&field, "needs a `path`"))?;
    let mut lanes = Vec::new();
    for l in string_list(r, "lane")? {
        lanes.push(match l.split_once(':') {
            Some(("path", p)) => LaneSource::PathParam(p.to_owned()),
            Some(("body", p)) => LaneSource::BodyField(p.split('.').map(str::to_owned).collect()),
            _ => {
                return Err(bad(
                    &format!("{field}.lane"),
                    format!("`{l}`: use `path:NAME` or `body:a.b`"),
                ));
            }
        });
    }
    if lanes.is_empty() {
        return Err(bad(
            &format!("{field}.lane"),
            "needs at least one lane source",
        ));
    }
    let mut route = Route::post(&name, &path, lanes).map_err(|e| bad(&field, e.to_string()))?;
    if let Some(m) = js::get_str(r, "method") {
        route.method = m.to_ascii_uppercase();
    }
    for c in string_list(r, "carriers")? {
        route = route.with_carrier(match c.split_once(':') {
            Some(("header", h)) => Carrier::Header(h.to_owned()),
            Some(("body", p)) => Carrier::BodyField(p.split('.').map(str::to_owned).collect()),
            _ => {
                return Err(bad(
                    &format!("{field}.carriers"),
                    format!("`{c}`: use `header:NAME` or `body:a.b`"),
                ));
            }
        });
    }
    if bool_field(r, "conflictMeansDelivered")? == Some(true) {
        route = route.conflict_means_delivered();
    }
    if let Some(t) = bool_field(r, "needsToken")? {
        route.needs_token = t;
    }
    Ok(route)
}
