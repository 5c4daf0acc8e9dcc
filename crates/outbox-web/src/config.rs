//! The browser's side of the configuration: the page hands a plain object,
//! the service worker the JSON text from its script URL; both are read by
//! [`outbox_core::config::OutboxConfig::parse`], where the schema, its
//! defaults and its error messages live. This module only turns a JS value
//! into that text and supplies the origin the code runs on.

pub use outbox_core::config::{ConfigError, GuestConfig, OutboxConfig as WebConfig, Problem};
use wasm_bindgen::JsValue;

use crate::js;

/// Reads a configuration object (`undefined` or `null`: every default).
pub fn from_js(value: &JsValue) -> Result<WebConfig, ConfigError> {
    from_json(&json_of(value)?)
}

/// Reads a guest outbox's configuration object ([`GuestConfig`]).
pub fn guest_from_js(value: &JsValue) -> Result<GuestConfig, ConfigError> {
    GuestConfig::parse(&json_of(value)?, &origin_of_global())
}

/// The JSON text of a configuration object (`undefined` or `null`: `{}`).
fn json_of(value: &JsValue) -> Result<String, ConfigError> {
    if value.is_undefined() || value.is_null() {
        return Ok("{}".to_owned());
    }
    js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| ConfigError {
            field: "(config)".into(),
            problem: Problem::NotAnObject,
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn object(json: &str) -> JsValue {
        js_sys::JSON::parse(json).expect("test JSON")
    }

    #[wasm_bindgen_test]
    fn a_page_object_is_read_through_its_json() {
        let value = object(
            r#"{"genesysRegions": false, "database": "db", "retry": {"capMs": 5},
                "routes": [{"name": "p", "path": "/c/{room}", "lane": ["path:room"]}]}"#,
        );
        // A function (getToken) is not JSON; it is left out, not an error.
        let f = js_sys::Function::new_no_args("return 't'");
        js::set(&value, "getToken", f);
        let c = from_js(&value).expect("reads");
        assert_eq!(c.database, "db");
        assert_eq!(c.core.retry.cap_ms, 5);
        assert!(c.core.routes.route("p").is_some());
        assert!(!c.json.contains("getToken"));
        for nothing in [JsValue::UNDEFINED, JsValue::NULL] {
            assert_eq!(from_js(&nothing).expect("defaults").database, "outbox");
        }
        assert_eq!(from_json("").expect("defaults").channel, "outbox");
    }

    #[wasm_bindgen_test]
    fn errors_name_the_field_and_token_urls_stay_on_this_origin() {
        let e = from_js(&object(r#"{"pacer": {"burst": -1}}"#)).expect_err("refused");
        assert_eq!(
            e.to_string(),
            "config `pacer.burst`: must be a whole number ≥ 0"
        );
        assert!(from_js(&JsValue::from_f64(3.0)).is_err());
        assert!(from_json("{").is_err());
        let here = origin_of_global();
        assert!(from_json(&format!(r#"{{"tokenUrl": "{here}/token"}}"#)).is_ok());
        let e =
            from_json(r#"{"tokenUrl": "https://elsewhere.example/token"}"#).expect_err("refused");
        assert_eq!(e.field, "tokenUrl");
    }
}
