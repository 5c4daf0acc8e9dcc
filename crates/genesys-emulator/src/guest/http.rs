//! The guest side's plain HTTP routes: the deployment configuration that
//! Genesys's Messenger transport reads before it connects, and the attachment
//! upload (`PUT`, the "presigned URL") and download URLs.

use std::sync::Arc;

use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request};
use serde_json::json;

use super::frames;
use super::socket::{FILE_TYPES, origin_of, upgrade};
use super::state::Outbound;
use super::{DEPLOYMENT_PREFIX, DOWNLOAD_PREFIX, UPLOAD_PREFIX};
use crate::clock::iso8601;
use crate::errors::ApiError;
use crate::ids::new_uuid;
use crate::inspect::Outcome;
use crate::response::{self, Reply};
use crate::state::{Shared, lock};

/// Requests under `/v1`: the WebSocket, uploads and downloads.
pub(crate) async fn handle_v1(shared: &Arc<Shared>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().to_owned();
    if let Some(id) = path.strip_prefix(UPLOAD_PREFIX) {
        let id = id.to_owned();
        return upload(shared, req, &id).await;
    }
    if let Some(id) = path.strip_prefix(DOWNLOAD_PREFIX) {
        return download(shared, req.method(), id);
    }
    upgrade(shared, req)
}

fn not_found(path: &str) -> Reply {
    Reply::error(&ApiError::not_found(path), Outcome::NotFound, &new_uuid())
}

/// `PUT /v1/uploads/{attachmentId}`: the file's bytes. Then the session's
/// sockets get `UploadSuccessEvent` (or `UploadFailureEvent` 4002 when larger
/// than allowed, answered 413).
async fn upload(shared: &Arc<Shared>, req: Request<Incoming>, id: &str) -> Reply {
    if req.method() != Method::PUT {
        return not_found(req.uri().path());
    }
    let max = shared.config.guest.attachment_max_bytes;
    if !lock(&shared.guest.inner).attachments.contains_key(id) {
        return not_found(req.uri().path());
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let body = Limited::new(req.into_body(), limit).collect().await;
    let time = iso8601(shared.clock.system_now());
    let mut g = lock(&shared.guest.inner);
    let Some(a) = g.attachments.get_mut(id) else {
        return not_found(&format!("{UPLOAD_PREFIX}{id}"));
    };
    let token = a.token.clone();
    let (frame, reply) = match body {
        Ok(b) => {
            a.data = Some(b.to_bytes());
            let frame = frames::event(
                "UploadSuccessEvent",
                json!({"attachmentId": id, "downloadUrl": a.download_url, "timestamp": time}),
                None,
            );
            (frame, Reply::respond(response::empty(200), Outcome::Ok))
        }
        Err(_) => {
            let text = format!("File size exceeds the maximum of {max} bytes");
            let frame =
                frames::attachment_error("UploadFailureEvent", id, 4002, &text, &time, None);
            let err = ApiError::new(413, "request.entity.too.large", text);
            (frame, Reply::error(&err, Outcome::Rejected, &new_uuid()))
        }
    };
    if let Some(s) = g.sessions.get(&token) {
        for c in &s.connections {
            let _ = c.tx.send(Outbound::Frame(frame.clone()));
        }
    }
    reply
}

/// `GET /v1/downloads/{attachmentId}`: an uploaded file.
fn download(shared: &Shared, method: &Method, id: &str) -> Reply {
    if method != Method::GET {
        return not_found(&format!("{DOWNLOAD_PREFIX}{id}"));
    }
    let g = lock(&shared.guest.inner);
    let Some((a, data)) = g
        .attachments
        .get(id)
        .and_then(|a| a.data.clone().map(|d| (a, d)))
    else {
        return not_found(&format!("{DOWNLOAD_PREFIX}{id}"));
    };
    let mut r = response::json_bytes(200, data);
    if let Ok(v) = HeaderValue::from_str(&a.file_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    Reply::respond(r, Outcome::Ok)
}

/// `GET /webdeployments/v1/deployments/{deploymentId}/config.json`: the
/// deployment configuration (shape: `testdata/genesys/deployment-config.json`).
/// Unknown deployments answer 404.
pub(crate) fn deployment_config(shared: &Shared, req: &Request<Incoming>) -> Reply {
    let path = req.uri().path();
    let id = path
        .strip_prefix(DEPLOYMENT_PREFIX)
        .and_then(|r| r.strip_suffix("/config.json"))
        .filter(|id| !id.is_empty() && !id.contains('/'));
    let known = id.filter(|id| shared.config.guest.deployments.iter().any(|d| d == id));
    let (Some(id), true) = (known, req.method() == Method::GET) else {
        return not_found(path);
    };
    let origin = origin_of(req, shared);
    let ws = origin.replacen("http://", "ws://", 1);
    let max_kb = shared.config.guest.attachment_max_bytes / 1000;
    let body = json!({
        "id": id,
        "version": "1",
        "languages": ["en-us"],
        "defaultLanguage": "en-us",
        "apiEndpoint": origin,
        "messenger": {
            "enabled": true,
            "apps": {"conversations": {
                "messagingEndpoint": ws,
                "showAgentTypingIndicator": true,
                "showUserTypingIndicator": true,
                "autoStart": {"enabled": false},
                "conversationDisconnect": {"enabled": true, "type": "Send"},
                "conversationClear": {"enabled": true},
                "notifications": {"enabled": false, "notificationContentType": "ExcludeMessagesContent"},
                "markdown": {"enabled": false},
                "humanize": {"enabled": false},
            }},
            "styles": {"primaryColor": "#FF4F1F"},
            "launcherButton": {"visibility": "On"},
            "fileUpload": {
                "enableAttachments": true,
                "modes": [{"fileTypes": FILE_TYPES, "maxFileSizeKB": max_kb}],
            },
        },
        "journeyEvents": {"enabled": false},
        "status": "Active",
        "auth": {"enabled": false, "allowSessionUpgrade": false},
    });
    Reply::respond(response::json(200, &body), Outcome::Ok)
}
