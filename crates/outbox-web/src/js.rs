//! Small helpers over `js_sys` for reading and writing plain JS objects,
//! time, randomness and timers, in a window or a worker alike.

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use outbox_core::clock::{Clock, Millis};

/// `obj[key]`, or `None` when missing, `undefined` or `null`.
pub fn get(obj: &JsValue, key: &str) -> Option<JsValue> {
    if !obj.is_object() {
        return None;
    }
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// `obj[key]` as a string.
pub fn get_str(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key).and_then(|v| v.as_string())
}

/// `obj[key]` as a number.
pub fn get_f64(obj: &JsValue, key: &str) -> Option<f64> {
    get(obj, key).and_then(|v| v.as_f64())
}

/// `obj[key]` as a boolean.
pub fn get_bool(obj: &JsValue, key: &str) -> Option<bool> {
    get(obj, key).and_then(|v| v.as_bool())
}

/// `obj[key] = value` (ignores failures on frozen objects).
pub fn set(obj: &JsValue, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value.into());
}

/// A new empty object.
pub fn object() -> JsValue {
    Object::new().into()
}

/// Parses JSON produced by this crate (events, answers) into a JS value.
pub fn parse_json(text: &str) -> JsValue {
    js_sys::JSON::parse(text).unwrap_or_else(|_| JsValue::from_str(text))
}

/// The global object (`self` in a worker, `window` in a page).
pub fn global() -> JsValue {
    js_sys::global().into()
}

/// A JavaScript `Error` with `e`'s message: what the exported functions
/// throw or reject with.
pub fn error(e: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}

/// A message for any thrown JS value.
pub fn error_text(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        let name = String::from(err.name());
        let msg = String::from(err.message());
        return if name.is_empty() {
            msg
        } else {
            format!("{name}: {msg}")
        };
    }
    if let Some(s) = e.as_string() {
        return s;
    }
    get_str(e, "message").unwrap_or_else(|| thrown_text(e))
}

/// Any thrown value as text: a string as it is, anything else as JSON
/// (not through `JsValue`'s `Debug`, which brings wasm-bindgen's
/// `debugString` glue into the bundle).
pub fn thrown_text(e: &JsValue) -> String {
    e.as_string()
        .or_else(|| js_sys::JSON::stringify(e).ok().and_then(|s| s.as_string()))
        .unwrap_or_else(|| "a value that is not an Error".into())
}

/// The DOM exception name of a thrown value (`QuotaExceededError`, …).
pub fn error_name(e: &JsValue) -> Option<String> {
    get_str(e, "name")
}

/// The wall clock (`Date.now()`).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsClock;

impl Clock for JsClock {
    fn now(&self) -> Millis {
        js_sys::Date::now() as Millis
    }
}

/// 64 bits from `crypto.getRandomValues`, to seed the engine.
pub fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    let array = js_sys::Uint8Array::new_with_length(8);
    if let Some(crypto) = get(&global(), "crypto")
        && call(&crypto, "getRandomValues", &[array.clone().into()]).is_ok()
    {
        array.copy_to(&mut bytes);
        return u64::from_le_bytes(bytes);
    }
    // No Web Crypto: fall back to time and Math.random (jitter only needs spread).
    (js_sys::Math::random() * u64::MAX as f64) as u64 ^ js_sys::Date::now() as u64
}

/// Resolves after `ms` milliseconds (`setTimeout` on the global).
pub async fn sleep(ms: u64) {
    let promise = Promise::new(&mut |resolve, _reject| {
        let g = global();
        if let Some(set_timeout) =
            get(&g, "setTimeout").and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        {
            let delay = JsValue::from_f64(ms.min(i32::MAX as u64) as f64);
            if set_timeout.call2(&g, &resolve, &delay).is_ok() {
                return;
            }
        }
        let _ = resolve.call0(&JsValue::UNDEFINED);
    });
    let _ = JsFuture::from(promise).await;
}

/// One pending `setTimeout` callback: [`Timer::set`] replaces the one
/// before, [`Timer::clear`] cancels it. The callback is called at most
/// once.
#[derive(Default)]
pub struct Timer {
    id: Option<f64>,
    at: Option<Millis>,
}

impl Timer {
    /// When the pending callback is due, if one is.
    pub fn at(&self) -> Option<Millis> {
        self.at
    }

    /// Calls `f` at `at` (now, when that is past), cancelling what was set
    /// before. Without `setTimeout` nothing is set.
    pub fn set(&mut self, at: Millis, f: impl FnOnce() + 'static) {
        self.clear();
        let g = global();
        let delay = at.saturating_sub(JsClock.now()).min(i32::MAX as u64);
        let callback: js_sys::Function = Closure::once_into_js(f).unchecked_into();
        if let Ok(id) = call(
            &g,
            "setTimeout",
            &[callback.into(), JsValue::from_f64(delay as f64)],
        ) {
            self.id = id.as_f64();
            self.at = Some(at);
        }
    }

    /// Cancels the pending callback, if any.
    pub fn clear(&mut self) {
        self.at = None;
        if let Some(id) = self.id.take() {
            let _ = call(&global(), "clearTimeout", &[JsValue::from_f64(id)]);
        }
    }

    /// Forgets the pending callback without cancelling it (call from the
    /// callback itself).
    pub fn fired(&mut self) {
        self.id = None;
        self.at = None;
    }
}

/// Calls `obj.method(...args)`.
pub fn call(obj: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let f: js_sys::Function = get(obj, method)
        .ok_or_else(|| JsValue::from_str(&format!("{method} is not available here")))?
        .dyn_into()?;
    let array = js_sys::Array::new();
    for a in args {
        array.push(a);
    }
    f.apply(obj, &array)
}

/// Awaits `obj.method(...args)` that returns a promise.
pub async fn call_async(obj: &JsValue, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let value = call(obj, method, args)?;
    JsFuture::from(Promise::resolve(&value)).await
}
