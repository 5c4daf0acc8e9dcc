//! Herd safety through the real engine: the probe, the spread after an
//! outage, a shed signal slowing the origin, and the throttle's state
//! surviving a restart (virtual time, simulated server).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Harness, T0, config};
use outbox_core::clock::{Clock, Millis};
use outbox_driver::sim::{SimFaults, SimOutcome, SimServer, SimTokens, run_until_stalled};
use outbox_driver::store::Store;

fn outage() -> SimFaults {
    SimFaults {
        outage: true,
        ..SimFaults::default()
    }
}

/// Times (since `from`) of the requests that reached the server.
fn arrivals(h: &Harness<SimTokens>, from: Millis) -> Vec<Millis> {
    h.server
        .requests()
        .iter()
        .filter(|r| r.outcome != SimOutcome::NetworkError && r.at >= from)
        .map(|r| r.at - from)
        .collect()
}

/// Ten messages on three lanes written during an outage of `outage_ms`
/// (flushed as they are written, as the page does); then the network is
/// back and the page says so. Returns the time it came back.
fn outage_then_online(h: &Harness<SimTokens>, outage_ms: Millis) -> Millis {
    h.server.set_faults(outage());
    for i in 0..10 {
        h.submit(&format!("lane{}", i % 3), &format!("m{i}"));
        h.flush();
        h.clock.advance(outage_ms / 10);
    }
    h.server.set_faults(SimFaults::default());
    let back = h.clock.now();
    run_until_stalled(h.engine.network_back()).unwrap().unwrap();
    back
}

/// Whether every request after the first `skip` was sent only once the
/// one before it was answered.
fn one_at_a_time(h: &Harness<SimTokens>, skip: usize) -> bool {
    let r = h.server.requests();
    r[skip..].windows(2).all(|w| w[0].answered_tick < w[1].tick)
}

#[test]
fn while_offline_one_probe_goes_at_a_time() {
    let h = Harness::new(1);
    h.server.set_faults(outage());
    for lane in ["a", "b", "c"] {
        h.submit(lane, lane);
    }
    // The first batch finds the origin gone.
    h.flush();
    assert_eq!(h.server.requests().len(), 3);
    // From then on, one probe at a time, never a request per lane at once.
    h.clock.advance(3_600_000);
    h.flush();
    assert_eq!(h.server.requests().len(), 6);
    assert!(one_at_a_time(&h, 3));
    // Without the throttle, every lane tries again.
    let mut cfg = config();
    cfg.pacer.throttle.enabled = false;
    let h = Harness::with_config(1, cfg);
    h.server.set_faults(outage());
    for lane in ["a", "b", "c"] {
        h.submit(lane, lane);
    }
    h.flush();
    h.clock.advance(3_600_000);
    h.flush();
    assert_eq!(h.server.requests().len(), 6);
    assert!(!one_at_a_time(&h, 3));
}

#[test]
fn after_a_long_outage_the_backlog_is_spread_over_a_tenth_of_it() {
    let h = Harness::new(2);
    let back = outage_then_online(&h, 600_000);
    h.drain(1_000);
    assert_eq!(h.stats().queued(), 0);
    let sent = arrivals(&h, back);
    assert_eq!(sent.len(), 10, "{sent:?}");
    // The outage began with the first write, 10 minutes before: a window
    // of 60 s for 10 entries, one every 6 s after a random phase.
    assert!(
        sent[0] <= 6_000,
        "the probe within the first step: {sent:?}"
    );
    assert!(
        sent.windows(2).all(|w| w[1] - w[0] >= 5_900),
        "paced, no burst: {sent:?}"
    );
    assert!(
        *sent.last().unwrap() <= 60_000,
        "within the window: {sent:?}"
    );
    // Without the throttle, all three lane heads go at once.
    let mut cfg = config();
    cfg.pacer.throttle.enabled = false;
    let h = Harness::with_config(2, cfg);
    let back = outage_then_online(&h, 600_000);
    h.flush();
    assert_eq!(arrivals(&h, back), vec![0; 10], "all at once");
}

#[test]
fn after_a_blip_the_backlog_goes_at_once() {
    let h = Harness::new(3);
    let back = outage_then_online(&h, 30_000);
    h.drain(1_000);
    let sent = arrivals(&h, back);
    assert_eq!(sent.len(), 10);
    assert!(sent[0] <= 300, "the first within 0.3 s: {sent:?}");
    assert!(*sent.last().unwrap() <= 3_000, "{sent:?}");
}

#[test]
fn a_restarted_worker_keeps_the_spread() {
    let mut h = Harness::new(4);
    let back = outage_then_online(&h, 600_000);
    h.clock.set(back + 20_000);
    h.flush();
    let before = arrivals(&h, back).len();
    assert!(before <= 4, "{before} sent in 20 s");
    // The worker dies and starts again: no fresh burst.
    let tokens = SimTokens::new(h.server.clone());
    h.restart(tokens, 99);
    h.flush();
    assert!(arrivals(&h, back).len() <= before + 1);
    let schedule = run_until_stalled(h.store.schedule()).unwrap().unwrap();
    assert!(
        schedule.get(SimServer::ORIGIN).unwrap().throttle.rate > 0,
        "still throttled after the restart"
    );
}

#[test]
fn a_503_without_retry_after_slows_the_whole_origin() {
    let h = Harness::new(5);
    for i in 0..6 {
        h.submit(&format!("lane{i}"), &format!("m{i}"));
    }
    h.server.set_faults(SimFaults {
        server_error_rate: 1.0,
        ..SimFaults::default()
    });
    h.flush();
    let shed = h.server.requests().len();
    assert!(shed >= 1);
    h.server.set_faults(SimFaults::default());
    // Each entry's own backoff is at most 2 s (full jitter); the origin's
    // rate is halved, to 75 a minute, without a burst: within those 2 s at
    // most 2 requests go (the random phase, then 0.8 s apart).
    h.clock.set(T0 + 2_000);
    h.flush();
    let after = h.server.requests().len() - shed;
    assert!(after <= 3, "{after} requests within 2 s of the 503s");
    // And everything is delivered in the end.
    h.drain(1_000);
    assert_eq!(h.stats().queued(), 0);
    assert_eq!(h.server.first_deliveries().len(), 6);
}
