//! The envelopes of the frames the Guest API sends (`BaseMessage`
//! `{type, class, code, body, tracingId?}` of `webmessaging-guest.swagger.json`):
//! answers (`type: "response"`), messages and events (`type: "message"`),
//! errors (`class: "string"`) and the 429 frame.

use serde_json::{Value, json};

fn with_tracing(mut frame: Value, tracing_id: Option<&str>) -> String {
    if let (Value::Object(o), Some(t)) = (&mut frame, tracing_id) {
        o.insert("tracingId".to_owned(), json!(t));
    }
    frame.to_string()
}

/// `{"type":"response","class":"string","code":c,"body":"text"}`.
pub(crate) fn error(code: u16, text: &str, tracing_id: Option<&str>) -> String {
    with_tracing(
        json!({"type": "response", "class": "string", "code": code, "body": text}),
        tracing_id,
    )
}

/// An answer to a request (`SessionResponse`, `JwtResponse`, `PresignedUrlResponse`, …).
pub(crate) fn response(class: &str, body: Value, tracing_id: Option<&str>) -> String {
    with_tracing(
        json!({"type": "response", "class": class, "code": 200, "body": body}),
        tracing_id,
    )
}

/// A message or event (`StructuredMessage`, `SessionExpiredEvent`, …).
pub(crate) fn event(class: &str, body: Value, tracing_id: Option<&str>) -> String {
    with_tracing(
        json!({"type": "message", "class": class, "code": 200, "body": body}),
        tracing_id,
    )
}

/// `TooManyRequestsErrorMessage` (429, error code 4029).
pub(crate) fn too_many(retry_after: u32, message: &str, tracing_id: Option<&str>) -> String {
    with_tracing(
        json!({
            "type": "response",
            "class": "TooManyRequestsErrorMessage",
            "code": 429,
            "body": {
                "retryAfter": retry_after,
                "errorCode": 4029,
                "errorMessage": message,
                "name": "TooManyRequestsError",
                "message": message,
            },
        }),
        tracing_id,
    )
}

/// An attachment error (`GenerateUrlError` / `UploadFailureEvent` style body).
pub(crate) fn attachment_error(
    class: &str,
    attachment_id: &str,
    code: u16,
    message: &str,
    timestamp: &str,
    tracing_id: Option<&str>,
) -> String {
    let mut body = json!({
        "attachmentId": attachment_id,
        "errorCode": code,
        "errorMessage": message,
    });
    if let Value::Object(o) = &mut body {
        if class == "GenerateUrlError" {
            o.insert("name".to_owned(), json!("GenerateUrlError"));
            o.insert("message".to_owned(), json!(message));
        } else {
            o.insert("timestamp".to_owned(), json!(timestamp));
        }
    }
    // A refused request is a response with the error's code; a failed
    // upload is an event.
    let (kind, frame_code) = if class == "GenerateUrlError" {
        ("response", code)
    } else {
        ("message", 200)
    };
    with_tracing(
        json!({"type": kind, "class": class, "code": frame_code, "body": body}),
        tracing_id,
    )
}
