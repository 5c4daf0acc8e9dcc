//! The JSON scanner against `serde_json`, on generated documents.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use outbox_core::json;
use proptest::prelude::*;
use serde_json::{Map, Value};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1_000_000i32..1_000_000).prop_map(|i| Value::from(f64::from(i) / 4.0)),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(vec!["\"", "\\", "\n", "\u{1}", "é", "😀", "\u{2028}"])
            .prop_map(|s| Value::String(s.into())),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn object() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-zA-Z_]{1,6}", value(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_valid_document_validates_and_every_member_is_found(doc in object(), pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_string_pretty(&doc).unwrap() } else { serde_json::to_string(&doc).unwrap() };
        prop_assert!(json::validate(text.as_bytes()).is_ok(), "{text}");
        for (key, expected) in doc.as_object().unwrap() {
            let found = json::get(text.as_bytes(), &[key]).unwrap().expect("member present");
            let reparsed: Value = serde_json::from_slice(found.raw).unwrap();
            prop_assert_eq!(&reparsed, expected);
            if let Value::String(s) = expected {
                prop_assert_eq!(found.as_str().unwrap(), s.as_str());
            }
            if let Value::Object(inner) = expected {
                for (k2, v2) in inner {
                    let f2 = json::get(text.as_bytes(), &[key, k2]).unwrap().expect("nested member");
                    prop_assert_eq!(&serde_json::from_slice::<Value>(f2.raw).unwrap(), v2);
                }
            }
        }
        prop_assert_eq!(json::get(text.as_bytes(), &["no such key!"]).unwrap(), None);
    }

    #[test]
    fn truncated_documents_never_validate(doc in object(), cut in any::<prop::sample::Index>()) {
        let text = serde_json::to_string(&doc).unwrap();
        let at = cut.index(text.len());
        let prefix = &text.as_bytes()[..at];
        prop_assert!(json::validate(prefix).is_err(), "{:?}", String::from_utf8_lossy(prefix));
    }

    #[test]
    fn scanner_agrees_with_serde_on_random_bytes(bytes in prop::collection::vec(prop::sample::select(b"{}[]\":,0123456789.eE+-truefalsn \\u".to_vec()), 0..40)) {
        let serde = serde_json::from_slice::<Value>(&bytes);
        // serde_json also refuses numbers beyond f64 (`1e310`), which JSON's
        // grammar allows; the scanner checks the grammar, so such inputs
        // prove nothing here (see `numbers_beyond_f64_are_valid_json`).
        prop_assume!(!matches!(&serde, Err(e) if e.to_string().starts_with("number out of range")));
        prop_assert_eq!(json::validate(&bytes).is_ok(), serde.is_ok(), "{:?}", String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn insert_adds_exactly_one_member(doc in object(), value in "\\PC{0,20}", nested in any::<bool>()) {
        let text = serde_json::to_string(&doc).unwrap();
        let path: &[&str] = if nested { &["zz_parent"] } else { &[] };
        let out = json::insert_string(text.as_bytes(), path, "zz_key", &value).unwrap();
        let parsed: Value = serde_json::from_slice(&out).unwrap();
        let mut expected = doc.clone();
        let target = if nested {
            expected.as_object_mut().unwrap().entry("zz_parent").or_insert_with(|| Value::Object(Map::new()))
        } else {
            &mut expected
        };
        target.as_object_mut().unwrap().insert("zz_key".into(), Value::String(value.clone()));
        prop_assert_eq!(parsed, expected);
    }
}

#[test]
fn insert_refuses_existing_keys_and_non_objects() {
    assert!(json::insert_string(br#"{"a":1}"#, &[], "a", "x").is_err());
    assert!(json::insert_string(br#"{"a":1}"#, &["a"], "b", "x").is_err());
    assert!(json::insert_string(b"[1]", &[], "b", "x").is_err());
    assert!(json::insert_string(b"{", &[], "b", "x").is_err());
    assert_eq!(
        json::insert_string(b" { } ", &[], "k", "v").unwrap(),
        br#" {"k":"v" } "#
    );
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = "[".repeat(100_000);
    assert_eq!(
        json::validate(deep.as_bytes()),
        Err(json::JsonError::TooDeep)
    );
    let ok = format!("{}{}", "[".repeat(60), "]".repeat(60));
    assert!(json::validate(ok.as_bytes()).is_ok());
}

#[test]
fn escapes_and_surrogate_pairs_unescape() {
    let doc = br#"{"s":"a\"b\\c\/d\n\u00e9\ud83d\ude00"}"#;
    let v = json::get(doc, &["s"]).unwrap().unwrap();
    assert_eq!(v.as_str().unwrap(), "a\"b\\c/d\né😀");
    let lone = br#"{"s":"\ud83d"}"#;
    assert_eq!(
        json::get(lone, &["s"]).unwrap().unwrap().as_str(),
        None,
        "a lone surrogate is not text"
    );
    let mut out = String::new();
    json::write_string(&mut out, "q\"\\\n\u{1}é");
    assert_eq!(out, r#""q\"\\\n\u0001é""#);
}

#[test]
fn numbers_beyond_f64_are_valid_json() {
    // Valid by the grammar (RFC 8259 sets no range); the server decides.
    for text in ["1e310", "{\"a\":-1e400}", "[1E+999]"] {
        assert!(json::validate(text.as_bytes()).is_ok(), "{text}");
        assert!(
            serde_json::from_str::<Value>(text).is_err(),
            "serde refuses {text}"
        );
    }
}

#[test]
fn members_lists_an_objects_members_in_order() {
    let doc = br#" {"a": 1, "b\u0021": {"c": [true]}, "a": "x"} "#;
    let members = json::members(doc).unwrap();
    let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_ref()).collect();
    assert_eq!(keys, ["a", "b!", "a"]);
    assert_eq!(members[1].1.raw, br#"{"c": [true]}"#);
    assert_eq!(members[2].1.as_str().as_deref(), Some("x"));
    assert_eq!(json::members(b"{}").unwrap().len(), 0);
    for not_an_object in [
        &b"[1]"[..],
        b"1",
        b"",
        b"{\"a\" 1}",
        b"{\"a\":1",
        b"{\"a\":}",
    ] {
        assert!(json::members(not_an_object).is_none(), "{not_an_object:?}");
    }
}
