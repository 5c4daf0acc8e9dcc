//! The browser's side of the configuration: the page hands a plain object,
//! the service worker the JSON text from its script URL; both are read by
//! [`outbox_core::config::OutboxConfig::parse`], where the schema, its
//! defaults and its error messages live. This module only turns a JS value
//! into that text and supplies the origin the code runs on.

pub use outbox_core::config::{ConfigError, OutboxConfig as WebConfig, Problem};
use wasm_bindgen::JsValue;

use crate::js;

/// Reads a configuration object (`undefined` or `null`: every default).
pub fn from_js(value: &JsValue) -> Result<WebConfig, ConfigError> {
    let json = if value.is_undefined() || value.is_null() {
        "{}".to_owned()
    } else {
        js_sys::JSON::stringify(value)
            .ok()
            .and_then(|s| s.as_string())
            .ok_or_else(|| ConfigError {
                field: "(config)".into(),
                problem: Problem::NotAnObject,
            })?
    };
    from_json(&json)
}

/// Reads a configuration from JSON text (empty: every default).
pub fn from_json(text: &str) -> Result<WebConfig, ConfigError> {
    WebConfig::parse(text, &origin_of_global())
}

/// `location.origin` of the window or worker.
fn origin_of_global() -> String {
    js::get(&js::global(), "location")
        .and_then(|l| js::get_str(&l, "origin"))
        .unwrap_or_default()
}
