//! A cluster starts, answers on its port, and is gone once dropped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;

#[test]
fn a_cluster_starts_answers_and_stops_when_dropped() {
    let cluster = pg_throwaway::Cluster::start().expect("a cluster");
    let port = cluster.port();
    assert!(cluster.url().ends_with(&format!(":{port}/postgres")));
    TcpStream::connect(("127.0.0.1", port)).expect("it listens");
    drop(cluster);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "stopped once dropped"
    );
}
