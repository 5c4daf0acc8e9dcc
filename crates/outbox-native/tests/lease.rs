//! The HTTP transport lets no request leave through a lease that ran out
//! (`outbox_native::lease`): a request whose deadline
//! ([`OutgoingRequest::leave_by`]) passes while it is stalled on the
//! network is cut and never reaches a server whole; one already past its
//! deadline never starts; one in time goes as a plain request would.
//!
//! Real sockets and the real emulator; every wait is on a condition (the
//! send returning, the peer closing), bounded only so that a failure
//! does not hang.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use genesys_emulator::{Config, Emulator, RouteKind};
use outbox_core::classify::{FailureKind, Response, TransportError};
use outbox_core::clock::Clock;
use outbox_core::request::OutgoingRequest;
use outbox_driver::transport::Transport;
use outbox_native::clock::SystemClock;
use outbox_native::http::HttpTransport;

const AGENTLESS: &str = "/api/v2/conversations/messages/agentless";

/// Sends `request` on a current-thread runtime, as the host's engine does;
/// gives up after `bound` (a test failure, not a timing claim).
fn send(request: OutgoingRequest<'_>, bound: Duration) -> Option<Result<Response, TransportError>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let transport = HttpTransport::new().unwrap();
    runtime.block_on(async {
        tokio::time::timeout(bound, transport.send(request))
            .await
            .ok()
    })
}

fn request<'a>(
    url: &'a str,
    headers: Vec<(String, String)>,
    body: &'a [u8],
) -> OutgoingRequest<'a> {
    OutgoingRequest {
        method: "POST",
        url,
        headers,
        body,
        // Far longer than anything here takes: only the lease may end it.
        timeout_ms: 120_000,
        unknown_outcome: false,
        leave_by: None,
    }
}

#[test]
fn a_request_stalled_past_its_lease_is_cut_and_never_reaches_the_server_whole() {
    // A server that accepts the connection and reads nothing until told:
    // the request stalls once the socket buffers are full (the body is
    // far larger than they are), as a send of a process paused mid-write.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{AGENTLESS}", listener.local_addr().unwrap());
    let (go, read_now) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        read_now.recv().unwrap();
        // Everything the client wrote, until it closes the connection.
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut got = Vec::new();
        let _ = socket.read_to_end(&mut got);
        got
    });

    let body = vec![b'x'; 64 << 20];
    let leave_by = SystemClock.now() + 300;
    let headers = vec![("content-type".into(), "application/json".into())];
    let result = send(
        request(&url, headers, &body).leaving_by(Some(leave_by)),
        Duration::from_secs(30),
    )
    .expect("the stalled request was not dropped at its lease's end (it waited for its timeout)");
    let err = result.expect_err("no answer came");
    assert_eq!(err.kind, FailureKind::Timeout, "{err}");
    assert!(err.message.contains("cut"), "{err}");
    assert!(SystemClock.now() >= leave_by, "not before its time");

    // Now the server reads what reached it.
    go.send(()).unwrap();
    let got = server.join().unwrap();
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("the request's head reached the server before its deadline")
        + 4;
    let head = String::from_utf8_lossy(&got[..head_end]).to_lowercase();
    assert!(
        head.contains(&format!("content-length: {}", body.len())),
        "sent with its length, as a plain body: {head}"
    );
    let arrived = got.len() - head_end;
    assert!(
        arrived < body.len(),
        "the whole request reached the server after its lease ended ({arrived} of {} body bytes)",
        body.len()
    );
}

#[test]
fn a_request_already_past_its_lease_never_starts() {
    let emu = Emulator::start_blocking(Config::ephemeral()).unwrap();
    let token = emu.control().mint_token(None, None).access_token;
    let url = format!("{}{AGENTLESS}", emu.base_url());
    let body = agentless("+15550001111", "late");
    let headers = vec![
        ("content-type".into(), "application/json".into()),
        ("authorization".into(), format!("Bearer {token}")),
    ];
    let leave_by = SystemClock.now() - 1;
    let result = send(
        request(&url, headers, body.as_bytes()).leaving_by(Some(leave_by)),
        Duration::from_secs(30),
    )
    .expect("answered at once");
    let err = result.expect_err("not sent");
    assert_eq!(err.kind, FailureKind::Timeout, "{err}");
    assert!(err.message.contains("not sent"), "{err}");
    assert!(
        emu.control().requests().entries.is_empty(),
        "nothing reached the server"
    );
    assert_eq!(emu.control().messages().total, 0);
}

#[test]
fn a_request_in_time_goes_as_a_plain_one() {
    let emu = Emulator::start_blocking(Config::ephemeral()).unwrap();
    let token = emu.control().mint_token(None, None).access_token;
    let url = format!("{}{AGENTLESS}", emu.base_url());
    // Larger than a chunk of the guarded body (trailing JSON whitespace),
    // so that it goes in several.
    let text = "in time";
    let body = format!(
        "{}{}",
        agentless("+15550002222", text),
        " ".repeat(3 * outbox_native::lease::CHUNK)
    );
    let headers = vec![
        ("content-type".into(), "application/json".into()),
        ("authorization".into(), format!("Bearer {token}")),
    ];
    let leave_by = SystemClock.now() + 60_000;
    let answer = send(
        request(&url, headers, body.as_bytes()).leaving_by(Some(leave_by)),
        Duration::from_secs(60),
    )
    .expect("answered")
    .expect("an answer");
    assert!(
        (200..300).contains(&answer.status),
        "{}: {}",
        answer.status,
        String::from_utf8_lossy(&answer.body)
    );
    let report = emu.control().messages();
    let lane = report
        .lane(RouteKind::Agentless, "+15550002222")
        .expect("recorded");
    assert_eq!(lane.messages.len(), 1);
    assert_eq!(lane.messages[0].text.as_deref(), Some(text));
}

fn agentless(to: &str, text: &str) -> String {
    serde_json::json!({
        "fromAddress": "+15550000000",
        "toAddress": to,
        "toAddressMessengerType": "sms",
        "textBody": text,
    })
    .to_string()
}
