//! A guest WebSocket client for tests: every frame received is checked
//! against the Guest API schema (strictly, see `shapes`).
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::Emulator;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Guest {
    pub ws: Ws,
}

pub const DEPLOYMENT: &str = "demo-deployment";

impl Guest {
    pub async fn connect(emu: &Emulator) -> Guest {
        Self::connect_to(emu, DEPLOYMENT).await
    }

    pub async fn connect_to(emu: &Emulator, deployment: &str) -> Guest {
        let (ws, resp) =
            tokio_tungstenite::connect_async(format!("{}?deploymentId={deployment}", emu.ws_url()))
                .await
                .unwrap();
        assert_eq!(resp.status().as_u16(), 101);
        Guest { ws }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).await.unwrap();
    }

    /// The next frame within 2 s (pings skipped), parsed and checked against the swagger.
    pub async fn recv(&mut self) -> Value {
        let v = self
            .try_recv(Duration::from_secs(20))
            .await
            .expect("no frame within 20 s");
        super::shapes::assert_frame_shape(&v);
        v
    }

    pub async fn try_recv(&mut self, within: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Text(t)))) => {
                    return Some(serde_json::from_str(t.as_str()).unwrap());
                }
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// Waits for the end of the socket; true when it ended without a close frame (1006).
    pub async fn ended_abruptly(&mut self) -> bool {
        loop {
            match tokio::time::timeout(Duration::from_secs(2), self.ws.next())
                .await
                .expect("socket still open after 2 s")
            {
                Some(Ok(Message::Close(_))) => return false,
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return true,
            }
        }
    }

    /// Waits for a close frame and returns its code.
    pub async fn close_code(&mut self) -> u16 {
        loop {
            match tokio::time::timeout(Duration::from_secs(2), self.ws.next())
                .await
                .expect("no close within 2 s")
            {
                Some(Ok(Message::Close(Some(f)))) => return f.code.into(),
                Some(Ok(Message::Close(None))) => return 1005,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    pub async fn configure(&mut self, token: &str) -> Value {
        self.send(json!({"action": "configureSession", "deploymentId": DEPLOYMENT, "token": token, "tracingId": "cfg"})).await;
        let v = self.recv().await;
        assert_eq!(
            (v["class"].as_str(), v["code"].as_i64()),
            (Some("SessionResponse"), Some(200)),
            "{v}"
        );
        v
    }

    pub async fn message(&mut self, token: &str, text: &str, tracing: &str) {
        self.send(json!({"action": "onMessage", "token": token, "tracingId": tracing, "message": {"type": "Text", "text": text}})).await;
    }
}
