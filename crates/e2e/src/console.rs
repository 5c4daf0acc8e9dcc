//! Console errors a page reported: script errors, uncaught exceptions and
//! the browser's own error messages (e.g. an invalid `pattern` attribute),
//! so that a suite can fail on any of them.
//!
//! Failed loads (`Log.entryAdded` from the `network` source: a dropped
//! connection, a 5xx answer) are left out: an outbox meets them on purpose
//! whenever a test switches the network off or injects server errors.

use serde_json::{Value, json};

use crate::browser::{Browser, Error, Page};

/// Turns on the browser's own log for `page` (`Log.enable`, which also
/// replays what was logged before it). Chromium only: Firefox's client
/// subscribes to BiDi's `log.entryAdded` when it starts (console calls and
/// script errors; the browser's own warnings are not in BiDi's log), and
/// WebKit's classic WebDriver has no log at all.
pub async fn enable(page: &Page<'_>) -> Result<(), Error> {
    match page.cdp() {
        Some(page) => page
            .call("Log.enable", json!({}))
            .await
            .map(|_| ())
            .map_err(Error::from),
        None => Ok(()),
    }
}

/// The console errors seen so far in every page of `browser` (after
/// [`enable`] for the browser's own messages; Chromium's DevTools events,
/// Firefox's BiDi log; none in WebKit, which reports none).
pub async fn errors(browser: &Browser) -> Vec<String> {
    if let Some(b) = browser.cdp() {
        return b.events().await.iter().filter_map(error_of).collect();
    }
    match browser.bidi() {
        Some(f) => f.events().await.iter().filter_map(bidi_error_of).collect(),
        None => Vec::new(),
    }
}

/// The error a WebDriver BiDi event reports: a `log.entryAdded` at level
/// `error` (`console.error`, an uncaught exception).
fn bidi_error_of(e: &Value) -> Option<String> {
    let p = &e["params"];
    (e["method"] == "log.entryAdded" && p["level"] == "error").then(|| {
        format!(
            "{} error: {}",
            p["type"].as_str().unwrap_or("log"),
            p["text"].as_str().unwrap_or("")
        )
    })
}

/// The error an event reports, if it reports one.
fn error_of(e: &Value) -> Option<String> {
    let p = &e["params"];
    match e["method"].as_str()? {
        "Runtime.consoleAPICalled" if matches!(p["type"].as_str(), Some("error" | "assert")) => {
            let args = p["args"].as_array().map_or_else(String::new, |a| {
                a.iter()
                    .map(|x| {
                        x.get("value")
                            .map_or_else(|| x["description"].to_string(), Value::to_string)
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            });
            Some(format!("console.error: {args}"))
        }
        "Runtime.exceptionThrown" => {
            let d = &p["exceptionDetails"];
            Some(format!(
                "exception: {}",
                d["exception"]["description"]
                    .as_str()
                    .or_else(|| d["text"].as_str())
                    .unwrap_or("")
            ))
        }
        "Log.entryAdded" if p["entry"]["level"] == "error" && p["entry"]["source"] != "network" => {
            Some(format!(
                "log ({}): {} {}",
                p["entry"]["source"].as_str().unwrap_or(""),
                p["entry"]["text"].as_str().unwrap_or(""),
                p["entry"]["url"].as_str().unwrap_or("")
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn picks_bidi_errors() {
        let error = json!({"method": "log.entryAdded", "params": {
            "type": "javascript", "level": "error", "text": "TypeError: x is undefined"}});
        let info = json!({"method": "log.entryAdded", "params": {
            "type": "console", "level": "info", "text": "hello"}});
        let other = json!({"method": "browsingContext.load", "params": {}});
        assert_eq!(
            bidi_error_of(&error).unwrap(),
            "javascript error: TypeError: x is undefined"
        );
        assert_eq!(bidi_error_of(&info), None);
        assert_eq!(bidi_error_of(&other), None);
    }

    #[test]
    fn picks_errors_and_leaves_failed_loads_out() {
        let pattern = json!({"method": "Log.entryAdded", "params": {"entry": {
            "level": "error", "source": "rendering",
            "text": "Pattern attribute value [^/?#]+ is not a valid regular expression"}}});
        let load = json!({"method": "Log.entryAdded", "params": {"entry": {
            "level": "error", "source": "network", "text": "Failed to load resource"}}});
        let log = json!({"method": "Runtime.consoleAPICalled", "params": {
            "type": "log", "args": [{"type": "string", "value": "fine"}]}});
        let err = json!({"method": "Runtime.consoleAPICalled", "params": {
            "type": "error", "args": [{"type": "string", "value": "bad"}]}});
        let thrown = json!({"method": "Runtime.exceptionThrown", "params": {
            "exceptionDetails": {"text": "Uncaught", "exception": {"description": "TypeError: x"}}}});
        assert!(error_of(&pattern).unwrap().contains("Pattern attribute"));
        assert_eq!(error_of(&load), None);
        assert_eq!(error_of(&log), None);
        assert_eq!(error_of(&err).unwrap(), "console.error: \"bad\"");
        assert_eq!(error_of(&thrown).unwrap(), "exception: TypeError: x");
    }
}
