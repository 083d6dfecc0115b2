//! `/metrics` as Prometheus scrapes it, after real calls: parsed by an independent
//! Prometheus text-format parser, its labelled series and histograms must tell the story of
//! the calls (how many, over which transport, with which codec, how they ended) and agree with
//! the catalog.

use std::time::{Duration, SystemTime};

use crate::sipp::siprec_call;
use crate::support::client::{Call, CallSpec, Transport};
use crate::support::http::request;
use crate::support::metrics::Metrics;
use crate::support::{Server, leg};

fn scrape(server: &Server) -> Metrics {
    let (status, page) = server.http_get("/metrics");
    assert_eq!(status, 200);
    Metrics::parse(&page)
}

fn packets(recording: &serde_json::Value) -> f64 {
    ["1", "2"]
        .iter()
        .map(|label| leg(recording, label)["packets"].as_i64().unwrap() as f64)
        .sum()
}

#[tokio::test]
async fn metrics_after_a_sipp_call_and_a_tcp_call_are_labelled_and_agree_with_the_catalog() {
    let server = Server::start();
    let before = scrape(&server);
    assert!(
        before.series("callvault_sessions_total", &[]).is_empty(),
        "no call, no series"
    );
    let build = before.series(
        "callvault_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
    );
    assert_eq!(build.len(), 1, "one build");
    assert!(!build[0].labels.get("git_commit").unwrap().is_empty());
    assert!(build[0].labels.get("rustc").unwrap().starts_with("rustc "));
    let started = before.value("callvault_start_time_seconds", &[]);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 600.0..=now).contains(&started),
        "started at {started}, now {now}"
    );

    // A SIPREC call from sipp over UDP: two PCMU streams, 2.5 s from the ACK to the BYE.
    let sipp_call = siprec_call(&server, 45200);
    let sipp_recording = server.completed(&sipp_call);
    let m = scrape(&server);
    let siprec = [("mode", "siprec")];
    assert_eq!(
        m.value(
            "callvault_recordings_completed_total",
            &[
                ("mode", "siprec"),
                ("end_reason", "bye"),
                ("state", "complete")
            ]
        ),
        1.0
    );
    assert_eq!(m.total("callvault_recordings_completed_total"), 1.0);
    // The source is this host, named after its allow-list entry; never an unbounded address.
    let sessions = m.series("callvault_sessions_total", &siprec);
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].labels.get("source"), Some("127.0.0.0/8"));
    assert_eq!(m.total("callvault_sessions_total"), 1.0);

    let setup = m.histogram("callvault_call_setup_seconds", &siprec);
    setup.assert_consistent();
    assert_eq!(setup.count, 1.0, "one call set up");
    assert_eq!(
        setup.at_most(1.0),
        1.0,
        "answered within a second: {setup:?}"
    );
    let duration = m.histogram("callvault_call_duration_seconds", &siprec);
    duration.assert_consistent();
    assert_eq!(duration.count, 1.0);
    assert!(
        (2.0..4.0).contains(&duration.sum),
        "the call lasted 2.5 s: {duration:?}"
    );
    assert_eq!(duration.at_most(1.0), 0.0);
    assert_eq!(duration.at_most(5.0), 1.0);

    // Media, by codec: two PCMU legs, and exactly the packets the catalog's legs hold.
    assert_eq!(
        m.value("callvault_media_legs_started_total", &[("codec", "PCMU")]),
        2.0
    );
    assert_eq!(m.total("callvault_media_legs_started_total"), 2.0);
    let sipp_packets = packets(&sipp_recording);
    assert!(sipp_packets >= 95.0, "{sipp_recording}");
    assert_eq!(
        m.value("callvault_media_packets_total", &[("codec", "PCMU")]),
        sipp_packets
    );
    assert_eq!(
        m.value("callvault_media_packets_total", &[("codec", "OPUS")]),
        0.0
    );
    let disk = m.histogram("callvault_media_disk_write_seconds", &[]);
    disk.assert_consistent();
    assert!(disk.count >= 2.0, "both legs' audio written: {disk:?}");
    let catalog = m.histogram("callvault_catalog_write_seconds", &[]);
    catalog.assert_consistent();
    assert!(catalog.count >= 2.0, "the recording's rows: {catalog:?}");

    // SIP by transport: sipp's INVITE, ACK and BYE over UDP; our 100, 200 and 200.
    for method in ["INVITE", "ACK", "BYE"] {
        assert_eq!(
            m.value(
                "callvault_sip_requests_received_total",
                &[("transport", "udp"), ("method", method)]
            ),
            1.0,
            "{method}"
        );
    }
    assert!(
        m.value(
            "callvault_sip_responses_sent_total",
            &[("transport", "udp"), ("status", "200")]
        ) >= 2.0
    );

    // A second call, over TCP, from the tests' own SIPREC client.
    let mut call = Call::answered(
        Transport::Tcp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(600), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let tcp_recording = server.completed(&call.call_id);
    let m = scrape(&server);
    assert_eq!(
        m.value(
            "callvault_sip_requests_received_total",
            &[("transport", "tcp"), ("method", "INVITE")]
        ),
        1.0
    );
    assert!(
        m.value(
            "callvault_sip_responses_sent_total",
            &[("transport", "tcp"), ("status", "200")]
        ) >= 2.0
    );
    assert_eq!(
        m.value(
            "callvault_sip_requests_received_total",
            &[("transport", "udp"), ("method", "INVITE")]
        ),
        1.0,
        "the TCP call is not counted as UDP"
    );
    assert!(
        m.series(
            "callvault_sip_requests_received_total",
            &[("transport", "tls")]
        )
        .is_empty()
    );
    assert_eq!(
        m.value(
            "callvault_recordings_completed_total",
            &[
                ("mode", "siprec"),
                ("end_reason", "bye"),
                ("state", "complete")
            ]
        ),
        2.0
    );
    assert_eq!(
        m.histogram("callvault_call_setup_seconds", &siprec).count,
        2.0
    );
    assert_eq!(
        m.value("callvault_media_packets_total", &[("codec", "PCMU")]),
        sipp_packets + packets(&tcp_recording)
    );
    // What an unlabelled query sums: every call, whatever its source and mode.
    assert_eq!(m.total("callvault_sessions_total"), 2.0);
}

#[test]
fn an_openmetrics_scraper_gets_openmetrics_and_others_the_classic_text_format() {
    let server = Server::start();
    let open = request(
        server.http,
        "GET",
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )],
        None,
    );
    assert_eq!(open.status, 200);
    assert!(
        open.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text; version=1.0.0"),
        "{:?}",
        open.header("content-type")
    );
    let body = String::from_utf8(open.body).unwrap();
    assert!(body.contains("# TYPE callvault_build info\n"), "{body}");
    assert_eq!(
        body.lines().last(),
        Some("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    // OpenMetrics names a counter without its `_total`.
    assert!(
        body.contains("# TYPE callvault_sessions_rejected counter\n"),
        "{body}"
    );

    let classic = request(server.http, "GET", "/metrics", &[], None);
    assert_eq!(
        classic.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = String::from_utf8(classic.body).unwrap();
    assert!(body.contains("# TYPE callvault_build_info gauge\n"));
    assert!(body.contains("# TYPE callvault_sessions_rejected_total counter\n"));
    assert!(!body.contains("# EOF"));
    // Every figure the page declares parses.
    let metrics = Metrics::parse(&body);
    assert_eq!(metrics.total("callvault_sessions_active"), 0.0);
}
