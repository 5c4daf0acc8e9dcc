//! A small shape checker over the copied Genesys shapes in `testdata/genesys/`.
//!
//! * REST answers against `platform-models.json` (Python-SDK type notation:
//!   `str`, `int`, `bool`, `float`, `datetime`, `list[X]`, `dict(str, X)`,
//!   model names), with `required` fields and enums. A `datetime` must be in
//!   the service's format (`2024-05-01T12:00:00.000Z`).
//! * Guest frames against `webmessaging-guest.swagger.json`, and the
//!   deployment configuration against `deployment-config.json` (JSON-schema
//!   subset: `$ref`, `type`, `enum`, `required`, `properties`, `items`,
//!   `additionalProperties`, `allOf`).
//!
//! Checks are strict: a field the shape does not declare is an error even
//! where the schema allows extra properties, so the emulator cannot drift into
//! fields Genesys does not send.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::OnceLock;

use serde_json::Value;

fn load(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// `platform-models.json`.
pub fn platform_models() -> &'static Value {
    static M: OnceLock<Value> = OnceLock::new();
    M.get_or_init(|| {
        load(include_str!(
            "../../../../testdata/genesys/platform-models.json"
        ))
    })
}

/// `webmessaging-guest.swagger.json`.
pub fn guest_schema() -> &'static Value {
    static M: OnceLock<Value> = OnceLock::new();
    M.get_or_init(|| {
        load(include_str!(
            "../../../../testdata/genesys/webmessaging-guest.swagger.json"
        ))
    })
}

/// `deployment-config.json`.
pub fn deployment_schema() -> &'static Value {
    static M: OnceLock<Value> = OnceLock::new();
    M.get_or_init(|| {
        load(include_str!(
            "../../../../testdata/genesys/deployment-config.json"
        ))
    })
}

/// Whether `s` is a time as the service writes it: UTC, milliseconds, `Z`.
pub fn is_service_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// The problems of `v` as a Platform `model` (empty = conforms).
pub fn model_problems(v: &Value, model: &str) -> Vec<String> {
    let mut out = Vec::new();
    check_model(v, model, model, &mut out);
    out
}

/// Panics unless `v` conforms to the Platform `model`.
pub fn assert_platform(v: &Value, model: &str) {
    let p = model_problems(v, model);
    assert!(
        p.is_empty(),
        "{model} does not conform:\n  {}\nbody: {v}",
        p.join("\n  ")
    );
}

fn check_model(v: &Value, model: &str, path: &str, out: &mut Vec<String>) {
    let Some(fields) = platform_models()[model].as_object() else {
        out.push(format!(
            "{path}: model {model} is not in testdata/genesys/platform-models.json"
        ));
        return;
    };
    let Some(obj) = v.as_object() else {
        out.push(format!("{path}: expected a {model} object, got {v}"));
        return;
    };
    for (name, spec) in fields {
        if spec["required"] == true && obj.get(name).is_none_or(Value::is_null) {
            out.push(format!("{path}.{name}: required by {model}, missing"));
        }
    }
    for (k, val) in obj {
        let Some(spec) = fields.get(k) else {
            out.push(format!("{path}.{k}: {model} has no such field"));
            continue;
        };
        let p = format!("{path}.{k}");
        check_type(val, spec["type"].as_str().unwrap_or("?"), &p, out);
        if let Some(allowed) = spec.get("enum").and_then(Value::as_array)
            && !allowed.contains(val)
        {
            out.push(format!("{p}: {val} is not one of {allowed:?}"));
        }
    }
}

fn check_type(v: &Value, ty: &str, path: &str, out: &mut Vec<String>) {
    let mut bad = |what: &str| out.push(format!("{path}: expected {what}, got {v}"));
    match ty {
        "str" => {
            if !v.is_string() {
                bad("a string");
            }
        }
        "int" => {
            if !(v.is_i64() || v.is_u64()) {
                bad("an integer");
            }
        }
        "float" => {
            if !v.is_number() {
                bad("a number");
            }
        }
        "bool" => {
            if !v.is_boolean() {
                bad("a boolean");
            }
        }
        "object" => {}
        "datetime" => {
            if !v.as_str().is_some_and(is_service_time) {
                bad("a date-time like 2024-05-01T12:00:00.000Z");
            }
        }
        _ => {
            if let Some(inner) = ty.strip_prefix("list[").and_then(|t| t.strip_suffix(']')) {
                match v.as_array() {
                    Some(items) => {
                        for (i, item) in items.iter().enumerate() {
                            check_type(item, inner, &format!("{path}[{i}]"), out);
                        }
                    }
                    None => bad("an array"),
                }
            } else if let Some(inner) = ty
                .strip_prefix("dict(str, ")
                .and_then(|t| t.strip_suffix(')'))
            {
                match v.as_object() {
                    Some(m) => {
                        for (k, item) in m {
                            check_type(item, inner, &format!("{path}.{k}"), out);
                        }
                    }
                    None => bad("an object"),
                }
            } else {
                check_model(v, ty, path, out);
            }
        }
    }
}

/// The problems of `v` against `#/definitions/{def}` of a JSON-schema document.
pub fn schema_problems(root: &Value, v: &Value, def: &str) -> Vec<String> {
    let mut out = Vec::new();
    let schema = &root["definitions"][def];
    if schema.is_null() {
        out.push(format!("no definition {def}"));
    } else {
        check_schema(root, v, schema, def, &mut out);
    }
    out
}

/// Panics unless `v` conforms to the guest swagger's `def`.
pub fn assert_guest(v: &Value, def: &str) {
    let p = schema_problems(guest_schema(), v, def);
    assert!(
        p.is_empty(),
        "{def} does not conform:\n  {}\nvalue: {v}",
        p.join("\n  ")
    );
}

fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.trim_start_matches("#/definitions/");
            resolve(root, &root["definitions"][name])
        }
        None => schema,
    }
}

fn check_schema(root: &Value, v: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    let schema = resolve(root, schema);
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check_schema(root, v, s, path, out);
        }
    }
    if v.is_null() && schema["nullable"] == true {
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(v)
    {
        out.push(format!("{path}: {v} is not one of {allowed:?}"));
    }
    let ok = match schema.get("type").and_then(Value::as_str) {
        Some("string") => v.is_string(),
        Some("boolean") => v.is_boolean(),
        Some("integer") => v.is_i64() || v.is_u64(),
        Some("number") => v.is_number(),
        Some("array") => v.is_array(),
        Some("object") => v.is_object(),
        _ => true,
    };
    if !ok {
        out.push(format!("{path}: expected {}, got {v}", schema["type"]));
        return;
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, item) in arr.iter().enumerate() {
            check_schema(root, item, items, &format!("{path}[{i}]"), out);
        }
    }
    let Some(obj) = v.as_object() else {
        return;
    };
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(r) = r.as_str()
            && !obj.contains_key(r)
        {
            out.push(format!("{path}.{r}: required, missing"));
        }
    }
    let props = schema.get("properties").and_then(Value::as_object);
    let declared = props.is_some_and(|p| !p.is_empty());
    for (k, val) in obj {
        let p = format!("{path}.{k}");
        match props.and_then(|p| p.get(k)) {
            Some(s) => check_schema(root, val, s, &p, out),
            None => match schema.get("additionalProperties") {
                Some(extra) if extra.is_object() => check_schema(root, val, extra, &p, out),
                // Strict: declared shapes take no undeclared fields.
                _ if declared => out.push(format!("{p}: not a declared field")),
                _ => {}
            },
        }
    }
}

/// The definition that describes the body of a frame of this `class`.
pub fn body_definition(class: &str) -> Option<&'static str> {
    Some(match class {
        "SessionResponse" => "SessionResponse",
        // `CleanMessage` is the swagger's `StructuredMessage` with the
        // content types messages carry (quick replies, button responses,
        // cards…) and `originatingEntity`; `StructuredMessage` itself only
        // lists attachments.
        "StructuredMessage" => "CleanMessage",
        "JwtResponse" => "JwtResponse",
        "PresignedUrlResponse" => "PresignedUrlResponse",
        "UploadSuccessEvent" => "UploadSuccessEvent",
        "UploadFailureEvent" => "UploadFailureEvent",
        "AttachmentDeletedResponse" => "AttachmentDeletedResponse",
        "GenerateUrlError" => "GenerateUrlError",
        "ConnectionClosedEvent" => "ConnectionClosedEvent",
        "SessionExpiredEvent" => "SessionExpiredEvent",
        "SessionClearedEvent" => "SessionClearedEvent",
        "LogoutEvent" => "LogoutEvent",
        "TooManyRequestsErrorMessage" => "TooManyRequestsErrorMessage",
        _ => return None,
    })
}

/// The problems of a whole guest frame: the `BaseMessage` envelope, then its
/// body by `class` (`string` bodies are text).
pub fn frame_problems(v: &Value) -> Vec<String> {
    let mut out = schema_problems(guest_schema(), v, "BaseMessage")
        .into_iter()
        .filter(|p| !p.starts_with("BaseMessage.body: expected"))
        .collect::<Vec<_>>();
    let class = v["class"].as_str().unwrap_or("");
    match (class, body_definition(class)) {
        ("string", _) => {
            if !v["body"].is_string() {
                out.push(format!("string frame with a non-text body: {v}"));
            }
        }
        (_, Some(def)) => out.extend(schema_problems(guest_schema(), &v["body"], def)),
        (other, None) => out.push(format!("unknown frame class {other:?}")),
    }
    if v["code"] == 200 && class == "string" {
        out.push("a string frame is an error; code 200 is not".to_owned());
    }
    out
}

/// Panics unless `v` is a well-formed guest frame.
pub fn assert_frame_shape(v: &Value) {
    let p = frame_problems(v);
    assert!(
        p.is_empty(),
        "frame does not conform:\n  {}\nframe: {v}",
        p.join("\n  ")
    );
}
