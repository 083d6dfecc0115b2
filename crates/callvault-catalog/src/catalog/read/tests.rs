//! Recordings read back — one, a page, filtered, a node's active ones — and their JSON, on both engines.

use crate::catalog::tests::*;
use crate::catalog::*;
use crate::error::Error;
use crate::model::*;
use crate::sql::like_contains;
use crate::testing::*;
use callvault_types::{DtmfSource, EndReason, LegCounters};
use std::collections::BTreeSet;
use time::macros::datetime;

async fn insert_then_get_round_trips_every_field(catalog: &Catalog) {
    let rec = NewRecording {
        mode: callvault_types::RecordingMode::Siprec,
        route: None,
        id: "0193c1a2-0000-7000-8000-000000000001".to_owned(),
        node_id: "node-a".to_owned(),
        session_id: "ZGVhZGJlZWY=".to_owned(),
        ingress_call_id: "a84b4c76e66710@src.example".to_owned(),
        egress_call_id: Some("egress-1@callvault".to_owned()),
        from: "<sip:src@sbc.example>;tag=1928301774".to_owned(),
        to: "<sip:srs@callvault.example>".to_owned(),
        started_at: datetime!(2026-11-30 10:00:00.123 +01:00),
        participants: vec![
            participant("p1", Some("sip:alice@example.com"), Some("Alice")),
            participant("p2", Some("tel:+15551234"), None),
        ],
        legs: vec![leg(0, "2", Some("p2")), leg(1, "1", Some("p1"))],
        metadata: Some(NewMetadataRevision {
            number: 1,
            received_at: datetime!(2026-11-30 09:00:00.124 UTC),
            datamode: Some("complete".to_owned()),
            raw_xml: "<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>".to_owned(),
            // p2 gains a name, p3 is new.
            participants: vec![
                participant("p2", None, Some("Bob")),
                participant("p3", None, None),
            ],
        }),
        correlation_ids: vec![
            ("ucid".to_owned(), "00001000011234567890".to_owned()),
            ("cisco-guid".to_owned(), "1234-5678".to_owned()),
            ("ucid".to_owned(), "00001000011234567890".to_owned()),
        ],
        warnings: vec!["label order binding".to_owned(), "no aor for p3".to_owned()],
        source_address: "[2001:db8::1]:5061".to_owned(),
        transport: "tls".to_owned(),
        tenant: Some("acme".to_owned()),
    };
    catalog.insert_recording(&rec).await.unwrap();

    let expected = Recording {
        mode: callvault_types::RecordingMode::Siprec,
        route: None,
        final_status: None,
        hung_up_by: None,
        id: rec.id.clone(),
        session_id: "ZGVhZGJlZWY=".to_owned(),
        ingress_call_id: "a84b4c76e66710@src.example".to_owned(),
        egress_call_id: Some("egress-1@callvault".to_owned()),
        from: "<sip:src@sbc.example>;tag=1928301774".to_owned(),
        to: "<sip:srs@callvault.example>".to_owned(),
        started_at: datetime!(2026-11-30 09:00:00.123 UTC),
        ended_at: None,
        duration_ms: None,
        state: RecordingState::Active,
        end_reason: None,
        node_id: Some("node-a".to_owned()),
        participants: vec![
            Participant {
                id: "p1".to_owned(),
                aor: Some("sip:alice@example.com".to_owned()),
                name: Some("Alice".to_owned()),
            },
            Participant {
                id: "p2".to_owned(),
                aor: Some("tel:+15551234".to_owned()),
                name: Some("Bob".to_owned()),
            },
            Participant {
                id: "p3".to_owned(),
                aor: None,
                name: None,
            },
        ],
        legs: [(0, "2"), (1, "1")]
            .iter()
            .map(|(position, label)| Leg {
                position: *position,
                label: (*label).to_owned(),
                participant: Some(format!("p{label}")),
                binding_rule: "metadata".to_owned(),
                codec: "PCMA".to_owned(),
                sample_rate: 8000,
                path: format!("recordings/2026/11/30/rec/{position}-{label}.wav"),
                sha256: None,
                added_at_ms: 0,
                error: None,
                object_key: None,
                counters: LegCounters::default(),
            })
            .collect(),
        dtmf: Vec::new(),
        correlation_ids: vec![
            CorrelationId {
                kind: "ucid".to_owned(),
                value: "00001000011234567890".to_owned(),
            },
            CorrelationId {
                kind: "cisco-guid".to_owned(),
                value: "1234-5678".to_owned(),
            },
        ],
        warnings: vec!["label order binding".to_owned(), "no aor for p3".to_owned()],
        metadata_revisions: 1,
        // Opened from the legs' participants at 0, in leg order.
        associations: vec![
            Association {
                participant: "p2".to_owned(),
                leg: "2".to_owned(),
                from_ms: 0,
                to_ms: None,
            },
            Association {
                participant: "p1".to_owned(),
                leg: "1".to_owned(),
                from_ms: 0,
                to_ms: None,
            },
        ],
        source_address: "[2001:db8::1]:5061".to_owned(),
        transport: "tls".to_owned(),
    };
    assert_eq!(get(catalog, &rec.id).await, expected);
    assert_eq!(catalog.get_recording("no-such-id").await.unwrap(), None);
}

async fn list_is_newest_first_and_pages(catalog: &Catalog) {
    // "b" and "c" start in the same millisecond: the id breaks the tie (descending).
    let starts = [
        ("a", datetime!(2026-11-30 08:00 UTC)),
        ("b", datetime!(2026-11-30 09:00 UTC)),
        ("c", datetime!(2026-11-30 09:00 UTC)),
        ("d", datetime!(2026-11-30 07:00 UTC)),
        ("e", datetime!(2026-11-30 10:00 UTC)),
    ];
    for (id, started_at) in starts {
        let mut rec = new_recording(id, started_at);
        // A child per recording that names its parent, to catch children given to the
        // wrong recording by the batched child queries.
        rec.legs = vec![leg(0, &format!("leg-of-{id}"), None)];
        rec.warnings = vec![format!("warning-of-{id}")];
        catalog.insert_recording(&rec).await.unwrap();
    }
    let ids = |page: &[Recording]| page.iter().map(|r| r.id.clone()).collect::<Vec<_>>();

    let all = catalog
        .list_recordings(&ListQuery::default())
        .await
        .unwrap();
    assert_eq!(ids(&all), ["e", "c", "b", "a", "d"]);
    for r in &all {
        assert_eq!(r.legs.len(), 1);
        assert_eq!(r.legs[0].label, format!("leg-of-{}", r.id));
        assert_eq!(r.warnings, [format!("warning-of-{}", r.id)]);
        assert_eq!(r.participants.len(), 1);
    }

    let page = async |limit, offset| {
        catalog
            .list_recordings(&ListQuery {
                limit,
                offset,
                ..ListQuery::default()
            })
            .await
    };
    assert_eq!(ids(&page(2, 0).await.unwrap()), ["e", "c"]);
    assert_eq!(ids(&page(2, 2).await.unwrap()), ["b", "a"]);
    assert_eq!(ids(&page(2, 4).await.unwrap()), ["d"]);
    assert!(page(2, 5).await.unwrap().is_empty());
    assert!(page(0, 0).await.unwrap().is_empty());
    // Out-of-range paging is clamped, not an error.
    assert_eq!(ids(&page(-1, -7).await.unwrap()), Vec::<String>::new());
    assert_eq!(page(i64::MAX, -7).await.unwrap().len(), 5);
}

/// Node ids: a node repairs only its own `active` rows and those of no node (version 1-2).
async fn active_recordings_are_per_node(catalog: &Catalog) {
    for (id, node) in [
        ("a-live", "node-a"),
        ("a-done", "node-a"),
        ("a-failed", "node-a"),
        ("b-live", "node-b"),
    ] {
        let mut rec = new_recording(id, datetime!(2026-11-30 10:00 UTC));
        rec.node_id = node.to_owned();
        catalog.insert_recording(&rec).await.unwrap();
    }
    let mut rec = new_recording("a-later", datetime!(2026-11-30 10:30 UTC));
    rec.node_id = "node-a".to_owned();
    catalog.insert_recording(&rec).await.unwrap();
    // A row from before version 3: no node.
    catalog
        .insert_recording(&new_recording("legacy", datetime!(2026-11-30 09:00 UTC)))
        .await
        .unwrap();
    execute_raw(
        catalog,
        "UPDATE recordings SET node_id = NULL WHERE id = 'legacy'",
    )
    .await;
    catalog
        .complete_recording(&completion("a-done", 0, 10, "aa"))
        .await
        .unwrap();
    let mut failed = completion("a-failed", 0, 0, "bb");
    failed.state = RecordingState::Failed;
    catalog.complete_recording(&failed).await.unwrap();

    let ids = |recordings: Vec<Recording>| recordings.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let of_a = catalog.active_recordings("node-a").await.unwrap();
    // Oldest first, with their legs (the caller repairs the files).
    assert_eq!(of_a[1].legs.len(), 1);
    assert_eq!(ids(of_a), ["legacy", "a-live", "a-later"]);
    assert_eq!(
        ids(catalog.active_recordings("node-b").await.unwrap()),
        ["legacy", "b-live"]
    );
    assert!(
        ids(catalog.active_recordings("node-c").await.unwrap()) == ["legacy"],
        "a node with no rows sees only the legacy one"
    );

    // Node a repairs its rows: node b's live call is untouched.
    for id in ["legacy", "a-live", "a-later"] {
        let repaired = Completion {
            final_status: None,
            hung_up_by: None,
            state: RecordingState::Interrupted,
            end_reason: EndReason::Crash,
            legs: Vec::new(),
            ..completion(id, 0, 0, "")
        };
        catalog.complete_recording(&repaired).await.unwrap();
    }
    assert!(
        catalog
            .active_recordings("node-a")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ids(catalog.active_recordings("node-b").await.unwrap()),
        ["b-live"]
    );
    let a_live = get(catalog, "a-live").await;
    assert_eq!(
        (a_live.state, a_live.end_reason, a_live.node_id.as_deref()),
        (
            RecordingState::Interrupted,
            Some(EndReason::Crash),
            Some("node-a")
        )
    );
    assert_eq!(get(catalog, "legacy").await.node_id, None);
}

async fn json_has_exactly_the_contract_fields(catalog: &Catalog) {
    let mut rec = new_recording("json", datetime!(2026-11-30 10:00:00.5 UTC));
    rec.correlation_ids = vec![("ucid".to_owned(), "42".to_owned())];
    catalog.insert_recording(&rec).await.unwrap();
    let mut info = dtmf(0, "7", "", 10);
    info.source = DtmfSource::SipInfo;
    catalog.add_dtmf("json", &info).await.unwrap();

    let keys = |value: &serde_json::Value| -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    };
    let set = |names: &[&str]| {
        names
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };

    let active = serde_json::to_value(get(catalog, "json").await).unwrap();
    assert_eq!(
        keys(&active),
        set(&[
            "id",
            "session_id",
            "ingress_call_id",
            "egress_call_id",
            "from",
            "to",
            "started_at",
            "ended_at",
            "duration_ms",
            "state",
            "end_reason",
            "node_id",
            "participants",
            "legs",
            "dtmf",
            "correlation_ids",
            "warnings",
            "metadata_revisions",
            "associations",
            "source_address",
            "transport",
            "mode",
            "route",
            "final_status",
            "hung_up_by",
        ])
    );
    assert_eq!(active["mode"], "siprec");
    assert_eq!(active["final_status"], serde_json::Value::Null);
    assert_eq!(active["started_at"], "2026-11-30T10:00:00.5Z");
    assert_eq!(active["ended_at"], serde_json::Value::Null);
    assert_eq!(active["state"], "active");
    assert_eq!(
        keys(&active["participants"][0]),
        set(&["id", "aor", "name"])
    );
    // The leg keys of versions 1-2 keep their names; the counters are flattened in beside
    // them (every field of LegCounters), with the leg's position and error.
    let counter_keys = keys(&serde_json::to_value(LegCounters::default()).unwrap());
    let mut leg_keys = set(&[
        "position",
        "label",
        "participant",
        "binding_rule",
        "codec",
        "sample_rate",
        "path",
        "sha256",
        "added_at_ms",
        "error",
    ]);
    leg_keys.extend(counter_keys);
    assert_eq!(keys(&active["legs"][0]), leg_keys);
    for old in [
        "packets",
        "lost",
        "duplicates",
        "out_of_order",
        "late",
        "jitter_ms",
        "gaps_filled_ms",
        "ssrcs_seen",
        "codec_changes",
        "unknown_payload",
        "rtcp_packets",
    ] {
        assert!(leg_keys.contains(old), "{old}");
    }
    assert_eq!(active["legs"][0]["jitter_ms"], serde_json::Value::Null);
    assert_eq!(active["legs"][0]["packets"], 0);
    assert_eq!(active["legs"][0]["error"], serde_json::Value::Null);
    assert_eq!(active["node_id"], NODE);
    assert_eq!(
        keys(&active["associations"][0]),
        set(&["participant", "leg", "from_ms", "to_ms"])
    );
    assert_eq!(active["associations"][0]["to_ms"], serde_json::Value::Null);
    assert_eq!(
        keys(&active["dtmf"][0]),
        set(&["seq", "digit", "leg", "offset_ms", "duration_ms", "source"])
    );
    assert_eq!(active["dtmf"][0]["source"], "sip-info");
    assert_eq!(keys(&active["correlation_ids"][0]), set(&["kind", "value"]));

    let mut done = completion("json", 0, 1, "ff");
    done.legs[0].counters.jitter_ms = Some(0.5);
    done.end_reason = EndReason::RtpTimeout;
    catalog.complete_recording(&done).await.unwrap();
    let complete = get(catalog, "json").await;
    let value = serde_json::to_value(&complete).unwrap();
    assert_eq!(value["ended_at"], "2026-11-30T10:05:00.25Z");
    assert_eq!(value["state"], "complete");
    assert_eq!(value["end_reason"], "rtp-timeout");
    assert_eq!(value["legs"][0]["jitter_ms"], 0.5);
    assert_eq!(value["legs"][0]["packets"], 1);
    // And the JSON reads back into the same value (scripts post it back, tests compare).
    let back: Recording = serde_json::from_value(value).unwrap();
    assert_eq!(back, complete);
}

async fn quality_figures_and_added_at_round_trip(catalog: &Catalog) {
    let mut rec = new_recording("q", datetime!(2026-11-30 10:00 UTC));
    rec.legs = vec![leg(0, "1", Some("p1")), leg(1, "2", None)];
    catalog.insert_recording(&rec).await.unwrap();
    let mut late = leg(2, "3", None);
    late.added_at_ms = 12_345;
    catalog.add_legs("q", &[late]).await.unwrap();

    let stored = get(catalog, "q").await;
    let added: Vec<_> = stored.legs.iter().map(|l| l.added_at_ms).collect();
    assert_eq!(added, [0, 0, 12_345]);
    assert!(stored.legs.iter().all(|l| l.counters.jitter_ms.is_none()));

    // Every counter round-trips, not only the ones the columns of version 2 had.
    let figures = |position: i64, jitter_ms: Option<f64>, base: u64| LegCompletion {
        position,
        counters: LegCounters {
            packets: 100,
            jitter_ms,
            gaps_filled_ms: base + 1,
            ssrcs_seen: base + 2,
            codec_changes: base + 3,
            unknown_payload: base + 4,
            rtcp_packets: base + 5,
            comfort_noise: base + 6,
            decode_errors: base + 7,
            blocks_dropped: base + 8,
            ..LegCounters::default()
        },
        ..LegCompletion::default()
    };
    let done = Completion {
        final_status: None,
        hung_up_by: None,
        legs: vec![
            figures(0, Some(3.25), 10),
            figures(1, Some(f64::NAN), 20),
            figures(2, Some(0.125), 30),
        ],
        ..completion("q", 0, 0, "")
    };
    catalog.complete_recording(&done).await.unwrap();
    let stored = get(catalog, "q").await;
    for (leg, sent) in stored.legs.iter().zip(&done.legs) {
        if leg.position == 1 {
            // A non-finite jitter is stored as unknown.
            assert_eq!(leg.counters.jitter_ms, None);
            assert_eq!(
                LegCounters {
                    jitter_ms: None,
                    ..sent.counters.clone()
                },
                leg.counters
            );
        } else {
            assert_eq!(leg.counters, sent.counters);
        }
    }
    assert_eq!(stored.legs[2].added_at_ms, 12_345);
}

/// A stored name this build does not know is reported, not guessed.
async fn unknown_stored_names_are_corrupt(catalog: &Catalog) {
    catalog
        .insert_recording(&new_recording("odd", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    execute_raw(
        catalog,
        "UPDATE recordings SET end_reason = 'vendor-reason' WHERE id = 'odd'",
    )
    .await;
    let err = catalog.get_recording("odd").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupt {
                table: "recordings",
                column: "end_reason",
                ref value
            } if value == "vendor-reason"
        ),
        "{err:?}"
    );
    execute_raw(
        catalog,
        "UPDATE recordings SET end_reason = NULL WHERE id = 'odd'",
    )
    .await;
    catalog
        .add_dtmf("odd", &dtmf(0, "1", "1", 0))
        .await
        .unwrap();
    execute_raw(
        catalog,
        "UPDATE dtmf_events SET source = 'info' WHERE recording_id = 'odd'",
    )
    .await;
    let err = catalog.get_recording("odd").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Corrupt {
                table: "dtmf_events",
                column: "source",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_transient());
}

async fn digits_search_in_offset_order_across_legs(catalog: &Catalog) {
    for id in ["d1", "d2", "d3"] {
        let mut rec = new_recording(id, datetime!(2026-11-30 10:00 UTC));
        rec.legs = vec![leg(0, "a", None), leg(1, "b", None)];
        catalog.insert_recording(&rec).await.unwrap();
    }
    // d1, reported out of order on two legs: by offset the digits are "9#15".
    for e in [
        dtmf(0, "1", "a", 300),
        dtmf(1, "9", "b", 100),
        dtmf(2, "5", "b", 400),
        dtmf(3, "#", "a", 200),
    ] {
        catalog.add_dtmf("d1", &e).await.unwrap();
    }
    // d2: "*A!" (a lowercase letter is stored uppercased for the search).
    for e in [
        dtmf(0, "*", "a", 0),
        dtmf(1, "a", "b", 5),
        dtmf(2, "!", "a", 9),
    ] {
        catalog.add_dtmf("d2", &e).await.unwrap();
    }
    // d3 has no digits.

    assert_eq!(listed(catalog, &digits("9#15")).await, ["d1"]);
    assert_eq!(listed(catalog, &digits("#1")).await, ["d1"]);
    assert_eq!(listed(catalog, &digits("5")).await, ["d1"]);
    // Arrival order ("19…") and non-adjacent digits do not match.
    assert!(listed(catalog, &digits("19")).await.is_empty());
    assert!(listed(catalog, &digits("95")).await.is_empty());
    assert_eq!(listed(catalog, &digits("A!")).await, ["d2"]);
    assert_eq!(listed(catalog, &digits("*")).await, ["d2"]);
    assert!(listed(catalog, &digits("0")).await.is_empty());
    assert_eq!(listed(catalog, &digits("")).await, ["d1", "d2", "d3"]);

    for bad in ["%", "_", "1%", "a", "12 ", "E", "\\", "x'--"] {
        let err = catalog.list_recordings(&digits(bad)).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidQuery { .. }),
            "{bad:?}: {err:?}"
        );
    }

    // The LIKE escaping itself, on the engine: an escaped '_' and '%' match only themselves.
    let mut tx = catalog.pool.begin_read().await.unwrap();
    for (text, expected) in [("_", 0), ("%", 0), ("9#", 1), ("\\", 0)] {
        let pattern = like_contains(text);
        let count = tx
            .fetch_i64(
                "SELECT COUNT(*) FROM recordings WHERE dtmf_digits LIKE $1 ESCAPE '\\'",
                &[Arg::Text(&pattern)],
            )
            .await
            .unwrap();
        assert_eq!(count, expected, "{text:?} as {pattern:?}");
    }
    tx.commit().await.unwrap();
}

async fn list_filters_by_state_and_call_id(catalog: &Catalog) {
    for id in ["s1", "s2", "s3"] {
        let mut rec = new_recording(id, datetime!(2026-11-30 10:00 UTC));
        if id == "s2" {
            rec.egress_call_id = Some("shared@callvault".to_owned());
        }
        if id == "s3" {
            rec.ingress_call_id = "shared@callvault".to_owned();
        }
        catalog.insert_recording(&rec).await.unwrap();
    }
    catalog
        .complete_recording(&completion("s1", 0, 1, "aa"))
        .await
        .unwrap();
    catalog.add_dtmf("s3", &dtmf(0, "7", "1", 1)).await.unwrap();
    let query = |state: Option<RecordingState>, call_id: Option<&str>| ListQuery {
        state,
        call_id: call_id.map(str::to_owned),
        ..ListQuery::default()
    };
    assert_eq!(
        listed(catalog, &query(Some(RecordingState::Active), None)).await,
        ["s2", "s3"]
    );
    assert_eq!(
        listed(catalog, &query(Some(RecordingState::Complete), None)).await,
        ["s1"]
    );
    assert!(
        listed(catalog, &query(Some(RecordingState::Failed), None))
            .await
            .is_empty()
    );
    // Ingress or egress, exactly.
    assert_eq!(
        listed(catalog, &query(None, Some("shared@callvault"))).await,
        ["s2", "s3"]
    );
    assert_eq!(
        listed(catalog, &query(None, Some("ingress-s1@src.example"))).await,
        ["s1"]
    );
    assert!(
        listed(catalog, &query(None, Some("shared@")))
            .await
            .is_empty()
    );
    // Filters combine, and paging applies after filtering.
    assert_eq!(
        listed(
            catalog,
            &query(Some(RecordingState::Complete), Some("shared@callvault"))
        )
        .await,
        Vec::<String>::new()
    );
    let mut combined = query(Some(RecordingState::Active), Some("shared@callvault"));
    combined.digits = Some("7".to_owned());
    assert_eq!(listed(catalog, &combined).await, ["s3"]);
    combined.digits = None;
    combined.limit = 1;
    combined.offset = 1;
    assert_eq!(listed(catalog, &combined).await, ["s2"]);
}

async fn metadata_revisions_read_back_in_order(catalog: &Catalog) {
    let mut rec = new_recording("mr", datetime!(2026-11-30 10:00 UTC));
    rec.metadata = Some(NewMetadataRevision {
        number: 1,
        received_at: datetime!(2026-11-30 10:00:00.001 UTC),
        datamode: Some("complete".to_owned()),
        raw_xml: "<recording n='1'/>".to_owned(),
        participants: Vec::new(),
    });
    catalog.insert_recording(&rec).await.unwrap();
    for (n, datamode) in [(2, Some("partial")), (3, None)] {
        let rev = NewMetadataRevision {
            number: n,
            received_at: datetime!(2026-11-30 10:00 UTC) + time::Duration::seconds(n),
            datamode: datamode.map(str::to_owned),
            raw_xml: format!("<recording n='{n}'/>"),
            participants: Vec::new(),
        };
        catalog.add_metadata_revision("mr", &rev).await.unwrap();
    }
    let revisions = catalog.metadata_revisions("mr").await.unwrap();
    assert_eq!(
        revisions,
        [
            MetadataRevision {
                number: 1,
                received_at: datetime!(2026-11-30 10:00:00.001 UTC),
                datamode: Some("complete".to_owned()),
                raw_xml: "<recording n='1'/>".to_owned(),
            },
            MetadataRevision {
                number: 2,
                received_at: datetime!(2026-11-30 10:00:02 UTC),
                datamode: Some("partial".to_owned()),
                raw_xml: "<recording n='2'/>".to_owned(),
            },
            MetadataRevision {
                number: 3,
                received_at: datetime!(2026-11-30 10:00:03 UTC),
                datamode: None,
                raw_xml: "<recording n='3'/>".to_owned(),
            },
        ]
    );
    assert_eq!(get(catalog, "mr").await.metadata_revisions, 3);
    let json = serde_json::to_value(&revisions[0]).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "number": 1,
            "received_at": "2026-11-30T10:00:00.001Z",
            "datamode": "complete",
            "raw_xml": "<recording n='1'/>",
        })
    );

    catalog
        .insert_recording(&new_recording("none", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    assert!(catalog.metadata_revisions("none").await.unwrap().is_empty());
    let err = catalog.metadata_revisions("nope").await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

on_both_engines!(
    insert_then_get_round_trips_every_field,
    list_is_newest_first_and_pages,
    active_recordings_are_per_node,
    json_has_exactly_the_contract_fields,
    quality_figures_and_added_at_round_trip,
    unknown_stored_names_are_corrupt,
    digits_search_in_offset_order_across_legs,
    list_filters_by_state_and_call_id,
    metadata_revisions_read_back_in_order,
);
