//! The labelled counters and histograms of the control plane: SIP requests and responses (by
//! transport, method, status), calls taken and refused (by mode and source), recordings ended
//! (by end reason), call setup and duration. The SIP loop updates them once per message or call
//! event; a family takes a short lock to find its series, which is why nothing on the media
//! path uses one — its totals are atomics read at scrape time (`scrape.rs`).

use std::net::IpAddr;
use std::time::Duration;

use callvault_sip::{Method, Transmit, TransportKind};
use callvault_types::{EndReason, RecordingMode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::labels::{
    self, CompletionLabels, ModeLabels, RequestLabels, ResponseLabels, SessionLabels, SourceLabels,
};
use crate::sources::AllowList;

/// INVITE received → 200 OK sent, seconds. A recording session answers in milliseconds (or
/// after `answer_delay`); a pass-through call includes the callee's ringing.
const SETUP_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0, 60.0,
];
/// Answer → end, seconds.
const DURATION_BUCKETS: [f64; 13] = [
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0,
];

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

#[derive(Debug)]
pub struct CallMetrics {
    /// Names sources ([`labels::source`]); SIGHUP's new list applies to the next call.
    allowed: AllowList,
    sip_requests: Family<RequestLabels, Counter>,
    sip_responses: Family<ResponseLabels, Counter>,
    sessions: Family<SessionLabels, Counter>,
    refused_source: Family<SourceLabels, Counter>,
    completed: Family<CompletionLabels, Counter>,
    setup: HistogramFamily<ModeLabels>,
    duration: HistogramFamily<ModeLabels>,
}

impl Default for CallMetrics {
    /// Every source counted as `other` (tests; the server names its allow-list).
    fn default() -> Self {
        CallMetrics::new(AllowList::new(Vec::new()))
    }
}

impl CallMetrics {
    pub fn new(allowed: AllowList) -> CallMetrics {
        CallMetrics {
            allowed,
            sip_requests: Family::default(),
            sip_responses: Family::default(),
            sessions: Family::default(),
            refused_source: Family::default(),
            completed: Family::default(),
            setup: Family::new_with_constructor(|| Histogram::new(SETUP_BUCKETS)),
            duration: Family::new_with_constructor(|| Histogram::new(DURATION_BUCKETS)),
        }
    }

    /// A request reached the recorder (a new transaction, or an ACK).
    pub fn request_received(&self, transport: TransportKind, method: &Method) {
        self.sip_requests
            .get_or_create(&RequestLabels {
                transport: transport.as_str(),
                method: labels::method(method),
            })
            .inc();
    }

    /// A message went to the transports (retransmissions too): a response is counted by its
    /// status.
    pub fn transmitted(&self, transmit: &Transmit) {
        if let Some(status) = labels::response_status(&transmit.bytes) {
            self.sip_responses
                .get_or_create(&ResponseLabels {
                    transport: transmit.to.transport.as_str(),
                    status,
                })
                .inc();
        }
    }

    /// A call was taken: a recording session answered, or a routed call sent on.
    pub fn call_taken(&self, mode: RecordingMode, source: IpAddr) {
        let source = labels::source(&self.allowed.current(), source);
        self.sessions
            .get_or_create(&SessionLabels {
                mode: mode.as_str(),
                source,
            })
            .inc();
    }

    /// A call was refused because its source was over its own limits.
    pub fn refused_for_source(&self, source: IpAddr) {
        let source = labels::source(&self.allowed.current(), source);
        self.refused_source
            .get_or_create(&SourceLabels { source })
            .inc();
    }

    /// The 200 OK to the caller's INVITE went to the transports `setup` after the SIP loop took
    /// the INVITE.
    pub fn answered(&self, mode: RecordingMode, setup: Duration) {
        self.setup
            .get_or_create(&ModeLabels {
                mode: mode.as_str(),
            })
            .observe(setup.as_secs_f64());
    }

    /// A recording ended: its files are closed and its completion queued for the catalog.
    /// `duration` is from the answer (pass-through: from the INVITE when never answered).
    pub fn completed(
        &self,
        mode: RecordingMode,
        reason: EndReason,
        state: &'static str,
        duration: Duration,
    ) {
        self.completed
            .get_or_create(&CompletionLabels {
                mode: mode.as_str(),
                end_reason: reason.as_str(),
                state,
            })
            .inc();
        self.duration
            .get_or_create(&ModeLabels {
                mode: mode.as_str(),
            })
            .observe(duration.as_secs_f64());
    }

    /// Adds every family to `registry` (the families are shared: updates show in its scrapes).
    /// A family shows once it has a series: `callvault_sessions_total` appears with the first
    /// call. (The registry ends each help text with a period.)
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "callvault_sip_requests_received",
            "SIP requests that reached the recorder (new transactions and ACKs; retransmissions \
             are absorbed before), by transport and method",
            self.sip_requests.clone(),
        );
        registry.register(
            "callvault_sip_responses_sent",
            "SIP responses handed to the transports (retransmissions included), by transport \
             and status code",
            self.sip_responses.clone(),
        );
        registry.register(
            "callvault_sessions",
            "Calls taken since start: recording sessions answered and routed calls sent on, by \
             mode and source",
            self.sessions.clone(),
        );
        registry.register(
            "callvault_sessions_refused_source_limit",
            "Recording INVITEs refused because their source was over its own sessions or rate \
             limit, by source",
            self.refused_source.clone(),
        );
        registry.register(
            "callvault_recordings_completed",
            "Recordings finished (files closed, completion queued for the catalog), by mode, \
             end reason and final state",
            self.completed.clone(),
        );
        registry.register(
            "callvault_call_setup_seconds",
            "From the INVITE taken by the SIP loop to the 200 OK handed to the transport, by \
             mode (a pass-through call's includes the callee's ringing)",
            self.setup.clone(),
        );
        registry.register(
            "callvault_call_duration_seconds",
            "Recorded calls' duration, from the answer to the end, by mode",
            self.duration.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use callvault_sip::Peer;
    use prometheus_client::encoding::prometheus_text;

    use super::*;

    fn exposition(metrics: &CallMetrics) -> String {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_text::encode(&mut text, &registry).unwrap();
        text
    }

    #[test]
    fn calls_are_counted_by_mode_and_by_the_allow_list_entry_of_their_source() {
        let allowed = AllowList::new(vec![
            "192.0.2.10/32".parse().unwrap(),
            "198.51.100.0/24".parse().unwrap(),
        ]);
        let metrics = CallMetrics::new(allowed.clone());
        metrics.call_taken(RecordingMode::Siprec, "192.0.2.10".parse().unwrap());
        metrics.call_taken(RecordingMode::Siprec, "198.51.100.1".parse().unwrap());
        metrics.call_taken(RecordingMode::Passthrough, "198.51.100.2".parse().unwrap());
        metrics.refused_for_source("203.0.113.9".parse().unwrap());
        let text = exposition(&metrics);
        for line in [
            r#"callvault_sessions_total{mode="siprec",source="192.0.2.10"} 1"#,
            r#"callvault_sessions_total{mode="siprec",source="198.51.100.0/24"} 1"#,
            r#"callvault_sessions_total{mode="passthrough",source="198.51.100.0/24"} 1"#,
            r#"callvault_sessions_refused_source_limit_total{source="other"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
        // A SIGHUP's new list names the next calls.
        allowed.set(vec!["203.0.113.0/24".parse().unwrap()]);
        metrics.call_taken(RecordingMode::Siprec, "203.0.113.9".parse().unwrap());
        assert!(
            exposition(&metrics)
                .contains(r#"callvault_sessions_total{mode="siprec",source="203.0.113.0/24"} 1"#)
        );
    }

    #[test]
    fn responses_are_counted_by_transport_and_status_and_requests_we_send_are_not() {
        let metrics = CallMetrics::default();
        let to = |transport| Peer {
            transport,
            ..Peer::udp("192.0.2.10:5060".parse::<SocketAddr>().unwrap())
        };
        for (transport, bytes) in [
            (TransportKind::Udp, &b"SIP/2.0 200 OK\r\n\r\n"[..]),
            (TransportKind::Udp, b"SIP/2.0 200 OK\r\n\r\n"),
            (
                TransportKind::Tls,
                b"SIP/2.0 503 Service Unavailable\r\n\r\n",
            ),
            (
                TransportKind::Tcp,
                b"BYE sip:src@192.0.2.10 SIP/2.0\r\n\r\n",
            ),
        ] {
            metrics.transmitted(&Transmit {
                to: to(transport),
                bytes: bytes.to_vec(),
            });
        }
        metrics.request_received(TransportKind::Tcp, &Method::Invite);
        metrics.request_received(TransportKind::Tcp, &Method::Other("FOO".into()));
        let text = exposition(&metrics);
        for line in [
            r#"callvault_sip_responses_sent_total{transport="udp",status="200"} 2"#,
            r#"callvault_sip_responses_sent_total{transport="tls",status="503"} 1"#,
            r#"callvault_sip_requests_received_total{transport="tcp",method="INVITE"} 1"#,
            r#"callvault_sip_requests_received_total{transport="tcp",method="other"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
        assert!(!text.contains(r#"transport="tcp",status"#), "{text}");
    }

    #[test]
    fn a_completed_recording_is_counted_by_end_reason_and_its_duration_observed() {
        let metrics = CallMetrics::default();
        metrics.completed(
            RecordingMode::Siprec,
            EndReason::Bye,
            "complete",
            Duration::from_secs(42),
        );
        metrics.answered(RecordingMode::Siprec, Duration::from_millis(3));
        let text = exposition(&metrics);
        for line in [
            r#"callvault_recordings_completed_total{mode="siprec",end_reason="bye",state="complete"} 1"#,
            r#"callvault_call_duration_seconds_bucket{mode="siprec",le="30"} 0"#,
            r#"callvault_call_duration_seconds_bucket{mode="siprec",le="60"} 1"#,
            r#"callvault_call_duration_seconds_sum{mode="siprec"} 42.0"#,
            r#"callvault_call_setup_seconds_bucket{mode="siprec",le="0.0025"} 0"#,
            r#"callvault_call_setup_seconds_bucket{mode="siprec",le="0.005"} 1"#,
            r#"callvault_call_setup_seconds_count{mode="siprec"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
        }
    }
}
