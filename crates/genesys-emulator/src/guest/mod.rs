//! The guest side of Web Messaging: what a browser or app talks to without
//! OAuth.
//!
//! * [`state`] — sessions, conversations, messages both ways, attachments,
//!   JWTs: plain data, no I/O.
//! * [`frames`] — the Guest API's frame envelopes.
//! * [`socket`] — the WebSocket (`/v1?deploymentId=…`) and its actions.
//! * [`history`] — `GET /api/v2/webmessaging/messages` with the guest JWT.
//! * [`http`] — the deployment configuration
//!   (`/webdeployments/v1/deployments/{id}/config.json`) and the attachment
//!   upload and download URLs handed out by `onAttachment`.
//!
//! Shapes follow `testdata/genesys/webmessaging-guest.swagger.json`,
//! `platform-models.json` (`WebMessagingMessage`) and
//! `deployment-config.json`; the crate's shape suite checks every frame and
//! answer against them.

mod frames;
pub(crate) mod history;
pub(crate) mod http;
mod socket;
pub(crate) mod state;

pub use state::{AgentReply, EchoState, GuestMessageReport, ReplyError, SessionReport};

/// Where `onAttachment` says to upload (`PUT …/{attachmentId}`).
pub(crate) const UPLOAD_PREFIX: &str = "/v1/uploads/";
/// Where an uploaded attachment is served (`GET …/{attachmentId}`).
pub(crate) const DOWNLOAD_PREFIX: &str = "/v1/downloads/";
/// The deployment configuration's path prefix.
pub(crate) const DEPLOYMENT_PREFIX: &str = "/webdeployments/v1/deployments/";
