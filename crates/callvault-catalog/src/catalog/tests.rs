//! Each scenario takes a [`Catalog`], so the same assertions run on SQLite (always) and on
//! PostgreSQL (when `CALLVAULT_TEST_POSTGRES_URL` names a server we may create databases on).

use super::*;
use crate::model::{LegCompletion, NewLeg};
use crate::testing::{PostgresDb, Tmpfs};
use callvault_types::{DtmfSource, EndReason};
use std::collections::BTreeSet;
use std::str::FromStr as _;
use time::OffsetDateTime;
use time::macros::datetime;

/// The node the scenarios record on.
const NODE: &str = "node-a";

struct TestDb {
    catalog: Catalog,
    // Dropped after the catalog: the SQLite file lives in here.
    _dir: tempfile::TempDir,
}

async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::open(&Catalog::sqlite_url(dir.path()))
        .await
        .unwrap();
    TestDb { catalog, _dir: dir }
}

fn participant(id: &str, aor: Option<&str>, name: Option<&str>) -> NewParticipant {
    NewParticipant {
        id: id.to_owned(),
        aor: aor.map(str::to_owned),
        name: name.map(str::to_owned),
    }
}

fn leg(position: i64, label: &str, participant: Option<&str>) -> NewLeg {
    NewLeg {
        position,
        label: label.to_owned(),
        participant: participant.map(str::to_owned),
        binding_rule: "metadata".to_owned(),
        codec: "PCMA".to_owned(),
        sample_rate: 8000,
        path: format!("recordings/2026/11/30/rec/{position}-{label}.wav"),
        added_at_ms: 0,
    }
}

fn new_recording(id: &str, started_at: OffsetDateTime) -> NewRecording {
    NewRecording {
        id: id.to_owned(),
        node_id: NODE.to_owned(),
        session_id: format!("session-{id}"),
        ingress_call_id: format!("ingress-{id}@src.example"),
        egress_call_id: None,
        from: "sip:src@sbc.example".to_owned(),
        to: "sip:srs@callvault.example".to_owned(),
        started_at,
        participants: vec![participant("p1", Some("sip:alice@example.com"), None)],
        legs: vec![leg(0, "1", Some("p1"))],
        metadata: None,
        correlation_ids: Vec::new(),
        warnings: Vec::new(),
        source_address: "192.0.2.10:5060".to_owned(),
        transport: "udp".to_owned(),
    }
}

fn counters(packets: u64) -> LegCounters {
    LegCounters {
        packets,
        lost: 3,
        duplicates: 1,
        out_of_order: 2,
        late: 4,
        ..LegCounters::default()
    }
}

fn completion(id: &str, position: i64, packets: u64, sha256: &str) -> Completion {
    Completion {
        recording_id: id.to_owned(),
        state: RecordingState::Complete,
        ended_at: datetime!(2026-11-30 10:05:00.250 UTC),
        duration_ms: 300_250,
        end_reason: EndReason::Bye,
        legs: vec![LegCompletion {
            position,
            samples: i64::try_from(packets).unwrap() * 160,
            sha256: Some(sha256.to_owned()),
            error: None,
            counters: counters(packets),
        }],
        warnings: Vec::new(),
    }
}

fn dtmf(seq: i64, digit: &str, leg: &str, offset_ms: i64) -> DtmfEvent {
    DtmfEvent {
        seq,
        digit: digit.to_owned(),
        leg: leg.to_owned(),
        offset_ms,
        duration_ms: 80,
        source: DtmfSource::Rfc4733,
    }
}

async fn get(catalog: &Catalog, id: &str) -> Recording {
    catalog.get_recording(id).await.unwrap().unwrap()
}

async fn insert_then_get_round_trips_every_field(catalog: &Catalog) {
    let rec = NewRecording {
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
    };
    catalog.insert_recording(&rec).await.unwrap();

    let expected = Recording {
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

async fn insert_of_a_known_id_is_already_exists_and_changes_nothing(catalog: &Catalog) {
    let first = new_recording("dup", datetime!(2026-11-30 10:00 UTC));
    catalog.insert_recording(&first).await.unwrap();
    let mut second = new_recording("dup", datetime!(2026-11-30 11:00 UTC));
    second.legs.push(leg(1, "9", None));
    let err = catalog.insert_recording(&second).await.unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists { ref id } if id == "dup"),
        "{err:?}"
    );
    let stored = get(catalog, "dup").await;
    assert_eq!(stored.started_at, first.started_at);
    assert_eq!(stored.legs.len(), 1);
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

async fn complete_updates_state_counts_and_digests_once(catalog: &Catalog) {
    let mut rec = new_recording("r", datetime!(2026-11-30 10:00 UTC));
    rec.legs = vec![leg(0, "1", Some("p1")), leg(1, "2", None)];
    catalog.insert_recording(&rec).await.unwrap();

    let mut done = completion("r", 0, 15_000, "ab12");
    done.legs.push(LegCompletion {
        position: 7,
        ..done.legs[0].clone()
    });
    done.warnings = vec!["leg 2: no RTP".to_owned()];
    catalog.complete_recording(&done).await.unwrap();
    let stored = get(catalog, "r").await;
    assert_eq!(stored.state, RecordingState::Complete);
    assert_eq!(
        stored.ended_at,
        Some(datetime!(2026-11-30 10:05:00.250 UTC))
    );
    assert_eq!(stored.duration_ms, Some(300_250));
    assert_eq!(stored.end_reason, Some(EndReason::Bye));
    assert_eq!(stored.warnings, ["leg 2: no RTP"]);
    assert_eq!(stored.legs.len(), 2, "an unknown position adds no leg");
    let leg0 = &stored.legs[0];
    assert_eq!(leg0.counters, counters(15_000));
    assert_eq!(leg0.sha256.as_deref(), Some("ab12"));
    assert_eq!(leg0.error, None);
    assert_eq!(
        (&stored.legs[1].counters, stored.legs[1].sha256.as_deref()),
        (&LegCounters::default(), None)
    );
    assert_eq!(
        raw_i64s(
            catalog,
            "SELECT samples FROM legs WHERE recording_id = 'r' ORDER BY position"
        )
        .await,
        [15_000 * 160, 0]
    );

    // Completing again overwrites; nothing is duplicated, a known warning is not added again.
    let mut again = completion("r", 0, 15_001, "cd34");
    again.warnings = vec!["leg 2: no RTP".to_owned(), "second".to_owned()];
    catalog.complete_recording(&again).await.unwrap();
    let stored = get(catalog, "r").await;
    assert_eq!(stored.legs.len(), 2);
    assert_eq!(stored.legs[0].counters.packets, 15_001);
    assert_eq!(stored.legs[0].sha256.as_deref(), Some("cd34"));
    assert_eq!(stored.warnings, ["leg 2: no RTP", "second"]);

    let err = catalog
        .complete_recording(&completion("nope", 0, 1, "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { ref id } if id == "nope"),
        "{err:?}"
    );
}

/// The issue-12 case: two m-lines labelled `dup` are two legs, each with its own counters,
/// digest and file; a third added mid-call with the same label is a third.
async fn legs_with_the_same_label_are_distinct(catalog: &Catalog) {
    let mut rec = new_recording("dup-labels", datetime!(2026-11-30 10:00 UTC));
    rec.legs = vec![leg(0, "dup", Some("p1")), leg(1, "dup", Some("p2"))];
    catalog.insert_recording(&rec).await.unwrap();
    catalog
        .add_legs("dup-labels", &[leg(3, "dup", None)])
        .await
        .unwrap();
    let done = Completion {
        legs: [
            (0, 100, "aa", None),
            (1, 200, "bb", None),
            (3, 300, "", Some("disk full")),
        ]
        .into_iter()
        .map(|(position, packets, sha256, error)| LegCompletion {
            position,
            samples: 0,
            sha256: (!sha256.is_empty()).then(|| sha256.to_owned()),
            error: error.map(str::to_owned),
            counters: counters(packets),
        })
        .collect(),
        ..completion("dup-labels", 0, 0, "")
    };
    catalog.complete_recording(&done).await.unwrap();
    let stored = get(catalog, "dup-labels").await;
    let legs: Vec<_> = stored
        .legs
        .iter()
        .map(|l| {
            (
                l.position,
                l.label.as_str(),
                l.path.as_str(),
                l.counters.packets,
                l.sha256.as_deref(),
                l.error.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        legs,
        [
            (
                0,
                "dup",
                "recordings/2026/11/30/rec/0-dup.wav",
                100,
                Some("aa"),
                None
            ),
            (
                1,
                "dup",
                "recordings/2026/11/30/rec/1-dup.wav",
                200,
                Some("bb"),
                None
            ),
            (
                3,
                "dup",
                "recordings/2026/11/30/rec/3-dup.wav",
                300,
                None,
                Some("disk full")
            ),
        ]
    );
    // Both participants were on a leg labelled "dup" from the start.
    let associations: Vec<_> = stored
        .associations
        .iter()
        .map(|a| (a.participant.as_str(), a.leg.as_str()))
        .collect();
    assert_eq!(associations, [("p1", "dup"), ("p2", "dup")]);
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

async fn metadata_revisions_are_counted_and_add_participants(catalog: &Catalog) {
    let rec = new_recording("m", datetime!(2026-11-30 10:00 UTC));
    catalog.insert_recording(&rec).await.unwrap();
    assert_eq!(get(catalog, "m").await.metadata_revisions, 0);

    for (n, participants) in [
        vec![participant("p1", None, Some("Alice"))],
        vec![participant("p9", Some("sip:carol@example.com"), None)],
    ]
    .into_iter()
    .enumerate()
    {
        let rev = NewMetadataRevision {
            number: i64::try_from(n).unwrap() + 1,
            received_at: datetime!(2026-11-30 10:01 UTC),
            datamode: Some("partial".to_owned()),
            raw_xml: format!("<recording n='{n}'/>"),
            participants,
        };
        catalog.add_metadata_revision("m", &rev).await.unwrap();
    }
    let stored = get(catalog, "m").await;
    assert_eq!(stored.metadata_revisions, 2);
    assert_eq!(
        stored.participants,
        [
            Participant {
                id: "p1".to_owned(),
                aor: Some("sip:alice@example.com".to_owned()),
                name: Some("Alice".to_owned()),
            },
            Participant {
                id: "p9".to_owned(),
                aor: Some("sip:carol@example.com".to_owned()),
                name: None,
            },
        ]
    );

    let rev = NewMetadataRevision {
        number: 1,
        received_at: datetime!(2026-11-30 10:01 UTC),
        datamode: None,
        raw_xml: String::new(),
        participants: Vec::new(),
    };
    let err = catalog
        .add_metadata_revision("nope", &rev)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

async fn legs_and_dtmf_added_mid_call(catalog: &Catalog) {
    let mut rec = new_recording("mid", datetime!(2026-11-30 10:00 UTC));
    rec.legs = vec![leg(0, "b", None), leg(1, "a", None)];
    catalog.insert_recording(&rec).await.unwrap();

    // A re-INVITE repeats m-line 1 (kept as it was) and adds m-lines 2 and 4 (3 declined).
    let mut repeated = leg(1, "a", Some("p1"));
    repeated.codec = "PCMU".to_owned();
    catalog
        .add_legs("mid", &[repeated, leg(2, "c", None), leg(4, "0", None)])
        .await
        .unwrap();
    let stored = get(catalog, "mid").await;
    let legs: Vec<_> = stored
        .legs
        .iter()
        .map(|l| (l.position, l.label.as_str()))
        .collect();
    assert_eq!(legs, [(0, "b"), (1, "a"), (2, "c"), (4, "0")]);
    assert_eq!(stored.legs[1].codec, "PCMA");
    assert_eq!(stored.legs[1].participant, None);

    // Reported out of order (INFO arrives before a late RFC 4733 event); stored by offset.
    let mut info = dtmf(1, "1", "", 1_000);
    info.source = DtmfSource::SipInfo;
    for event in [
        dtmf(0, "5", "a", 2_000),
        info.clone(),
        dtmf(2, "#", "a", 2_000),
    ] {
        catalog.add_dtmf("mid", &event).await.unwrap();
    }
    assert_eq!(
        get(catalog, "mid").await.dtmf,
        [info, dtmf(0, "5", "a", 2_000), dtmf(2, "#", "a", 2_000)]
    );

    let err = catalog
        .add_dtmf("nope", &dtmf(0, "1", "a", 0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = catalog
        .add_legs("nope", &[leg(0, "x", None)])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
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
        ])
    );
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

async fn complete_accepts_every_end_state_and_reason(catalog: &Catalog) {
    let states = [
        RecordingState::Complete,
        RecordingState::Failed,
        RecordingState::Interrupted,
    ];
    for (n, reason) in EndReason::ALL.iter().enumerate() {
        let id = format!("end-{n}");
        catalog
            .insert_recording(&new_recording(&id, datetime!(2026-11-30 10:00 UTC)))
            .await
            .unwrap();
        let state = states[n % states.len()];
        let mut done = completion(&id, 0, 1, "aa");
        done.state = state;
        done.end_reason = *reason;
        catalog.complete_recording(&done).await.unwrap();
        let stored = get(catalog, &id).await;
        assert_eq!((stored.state, stored.end_reason), (state, Some(*reason)));
        // Stored with its one spelling.
        let mut tx = catalog.pool.begin_read().await.unwrap();
        let rows = tx
            .fetch_all(
                "SELECT end_reason FROM recordings WHERE id = $1",
                &[Arg::Text(&id)],
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            rows[0].get::<String>("end_reason").unwrap(),
            reason.as_str()
        );
    }
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

async fn associations_follow_join_transfer_and_leave(catalog: &Catalog) {
    let mut rec = new_recording("assoc", datetime!(2026-11-30 10:00 UTC));
    rec.legs = vec![
        leg(0, "1", Some("p1")),
        leg(1, "2", Some("p2")),
        leg(2, "3", None),
    ];
    catalog.insert_recording(&rec).await.unwrap();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(p, l)| ((*p).to_owned(), (*l).to_owned()))
            .collect()
    };
    let assoc = |participant: &str, leg: &str, from_ms, to_ms| Association {
        participant: participant.to_owned(),
        leg: leg.to_owned(),
        from_ms,
        to_ms,
    };
    assert_eq!(
        get(catalog, "assoc").await.associations,
        [assoc("p1", "1", 0, None), assoc("p2", "2", 0, None)]
    );

    // Revision 2, join: p3 comes in on leg 3 (repeated pairs count once).
    catalog
        .set_associations(
            "assoc",
            1_000,
            2,
            &pairs(&[("p1", "1"), ("p2", "2"), ("p3", "3"), ("p3", "3")]),
        )
        .await
        .unwrap();
    // Revision 3, transfer: p2 leaves leg 2, p4 takes it over.
    catalog
        .set_associations(
            "assoc",
            2_000,
            3,
            &pairs(&[("p3", "3"), ("p4", "2"), ("p1", "1")]),
        )
        .await
        .unwrap();
    // Revision 4, leave: p3 hangs up.
    catalog
        .set_associations("assoc", 3_000, 4, &pairs(&[("p1", "1"), ("p4", "2")]))
        .await
        .unwrap();
    let expected = [
        assoc("p1", "1", 0, None),
        assoc("p2", "2", 0, Some(2_000)),
        assoc("p3", "3", 1_000, Some(3_000)),
        assoc("p4", "2", 2_000, None),
    ];
    assert_eq!(get(catalog, "assoc").await.associations, expected);

    // The same state again changes nothing; rejoining opens a new association.
    catalog
        .set_associations("assoc", 3_500, 5, &pairs(&[("p1", "1"), ("p4", "2")]))
        .await
        .unwrap();
    assert_eq!(get(catalog, "assoc").await.associations, expected);
    catalog
        .set_associations("assoc", 4_000, 6, &pairs(&[("p4", "2"), ("p2", "2")]))
        .await
        .unwrap();
    let stored = get(catalog, "assoc").await.associations;
    assert_eq!(stored.len(), 5);
    assert_eq!(stored[0], assoc("p1", "1", 0, Some(4_000)));
    assert_eq!(stored[4], assoc("p2", "2", 4_000, None));
    // Stored revisions: 0 for the initial offer without metadata, then as given.
    let revisions = raw_i64s(
        catalog,
        "SELECT revision FROM participant_associations WHERE recording_id = 'assoc' \
         ORDER BY seq",
    )
    .await;
    assert_eq!(revisions, [0, 0, 2, 3, 6]);

    let err = catalog
        .set_associations("nope", 0, 1, &pairs(&[("p1", "1")]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(p, l)| ((*p).to_owned(), (*l).to_owned()))
        .collect()
}

/// What the archive does after a crash or a lost connection: the same writes again, in the
/// same order. Each write, and the whole run, applied twice leaves the catalog as once.
async fn every_write_replayed_changes_nothing(catalog: &Catalog) {
    let mut rec = new_recording("replay", datetime!(2026-11-30 10:00 UTC));
    rec.legs = vec![leg(0, "1", Some("p1")), leg(1, "2", Some("p2"))];
    rec.warnings = vec!["tolerated".to_owned()];
    rec.metadata = Some(NewMetadataRevision {
        number: 1,
        received_at: datetime!(2026-11-30 10:00 UTC),
        datamode: Some("complete".to_owned()),
        raw_xml: "<recording n='1'/>".to_owned(),
        participants: vec![participant("p2", None, Some("Bob"))],
    });
    let revision = |number: i64, name: &str| NewMetadataRevision {
        number,
        received_at: datetime!(2026-11-30 10:01 UTC),
        datamode: Some("partial".to_owned()),
        raw_xml: format!("<recording n='{number}'/>"),
        participants: vec![participant("p2", None, Some(name))],
    };
    let mut done = completion("replay", 0, 500, "aa");
    done.warnings = vec!["leg 2: disk full".to_owned()];
    done.legs.push(LegCompletion {
        position: 1,
        error: Some("disk full".to_owned()),
        ..LegCompletion::default()
    });

    /// One write of the run.
    enum Write {
        Legs(Vec<NewLeg>),
        Revision(NewMetadataRevision),
        Dtmf(DtmfEvent),
        Associations(i64, i64, Vec<(String, String)>),
        Complete(Completion),
    }
    let run = [
        Write::Legs(vec![leg(2, "1", None)]),
        Write::Dtmf(dtmf(0, "4", "1", 1_500)),
        Write::Revision(revision(2, "Robert")),
        Write::Associations(1_000, 2, pairs(&[("p1", "1"), ("p3", "1")])),
        // Two changes in the same millisecond: the second one holds.
        Write::Associations(2_000, 2, pairs(&[("p1", "1"), ("p3", "1"), ("p4", "2")])),
        Write::Associations(2_000, 3, pairs(&[("p1", "1"), ("p2", "2")])),
        Write::Dtmf(dtmf(1, "2", "2", 500)),
        Write::Revision(revision(3, "Bobby")),
        Write::Complete(done),
    ];
    let apply = async |write: &Write| match write {
        Write::Legs(legs) => catalog.add_legs("replay", legs).await,
        Write::Revision(rev) => catalog.add_metadata_revision("replay", rev).await,
        Write::Dtmf(event) => catalog.add_dtmf("replay", event).await,
        Write::Associations(at_ms, revision, current) => {
            catalog
                .set_associations("replay", *at_ms, *revision, current)
                .await
        }
        Write::Complete(c) => catalog.complete_recording(c).await,
    };

    catalog.insert_recording(&rec).await.unwrap();
    // Each write twice in a row (a retry after a commit whose answer was lost).
    for write in &run {
        apply(write).await.unwrap();
        let once = get(catalog, "replay").await;
        apply(write).await.unwrap();
        assert_eq!(get(catalog, "replay").await, once);
    }
    let once = get(catalog, "replay").await;
    let revisions = catalog.metadata_revisions("replay").await.unwrap();
    // Then the whole run again, from the insert (a spool file replayed from its start).
    let err = catalog.insert_recording(&rec).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    for write in &run {
        apply(write).await.unwrap();
    }
    assert_eq!(get(catalog, "replay").await, once);
    assert_eq!(
        catalog.metadata_revisions("replay").await.unwrap(),
        revisions
    );

    // And what the run left is what it said.
    assert_eq!(once.metadata_revisions, 3);
    assert_eq!(once.participants[1].name.as_deref(), Some("Bobby"));
    assert_eq!(once.warnings, ["tolerated", "leg 2: disk full"]);
    assert_eq!(once.dtmf.len(), 2);
    assert_eq!(once.legs.len(), 3);
    assert_eq!(once.legs[1].error.as_deref(), Some("disk full"));
    let assoc = |participant: &str, leg: &str, from_ms, to_ms| Association {
        participant: participant.to_owned(),
        leg: leg.to_owned(),
        from_ms,
        to_ms,
    };
    assert_eq!(
        once.associations,
        [
            assoc("p1", "1", 0, None),
            // p2 left at 1 s and came back at 2 s.
            assoc("p2", "2", 0, Some(1_000)),
            assoc("p3", "1", 1_000, Some(2_000)),
            assoc("p2", "2", 2_000, None),
        ]
    );
}

/// Runs a raw statement (to set up what only an older build or a hand edit would store).
async fn execute_raw(catalog: &Catalog, sql: &str) {
    let mut tx = catalog.pool.begin().await.unwrap();
    tx.execute(sql, &[]).await.unwrap();
    tx.commit().await.unwrap();
}

/// The first column of every row of a raw query, as integers.
async fn raw_i64s(catalog: &Catalog, sql: &str) -> Vec<i64> {
    let mut tx = catalog.pool.begin_read().await.unwrap();
    let rows = tx.fetch_all(sql, &[]).await.unwrap();
    tx.commit().await.unwrap();
    rows.iter()
        .map(|row| match row {
            DbRow::Sqlite(row) => sqlx::Row::get(row, 0),
            DbRow::Postgres(row) => sqlx::Row::get(row, 0),
        })
        .collect()
}

fn digits(s: &str) -> ListQuery {
    ListQuery {
        digits: Some(s.to_owned()),
        ..ListQuery::default()
    }
}

async fn listed(catalog: &Catalog, query: &ListQuery) -> Vec<String> {
    let mut ids: Vec<_> = catalog
        .list_recordings(query)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    ids.sort();
    ids
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

async fn concurrent_writers_all_land(catalog: &Catalog) {
    catalog
        .insert_recording(&new_recording("shared", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    // Many sessions write at once, several to the same recording: none may fail with
    // "database is locked" (SQLite) or a serialization failure (PostgreSQL).
    let tasks: Vec<_> = (0..16_i64)
        .map(|n| {
            let catalog = catalog.clone();
            tokio::spawn(async move {
                let id = format!("call-{n}");
                catalog
                    .insert_recording(&new_recording(&id, datetime!(2026-11-30 10:00 UTC)))
                    .await
                    .unwrap();
                for k in 0..3 {
                    let mut event = dtmf(n * 3 + k, &n.to_string(), "1", n * 10 + k);
                    catalog.add_dtmf("shared", &event).await.unwrap();
                    event.seq = k;
                    catalog.add_dtmf(&id, &event).await.unwrap();
                }
                catalog
                    .add_legs("shared", &[leg(n + 1, &format!("extra-{n}"), None)])
                    .await
                    .unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let shared = get(catalog, "shared").await;
    assert_eq!(shared.dtmf.len(), 48);
    assert!(shared.dtmf.is_sorted_by_key(|e| e.offset_ms));
    assert_eq!(shared.legs.len(), 17);
    assert_eq!(get(catalog, "call-7").await.dtmf.len(), 3);
}

/// What the archive must not retry: the same call would fail again.
async fn constraint_violations_and_missing_rows_are_permanent(catalog: &Catalog) {
    let err = catalog
        .add_dtmf("nope", &dtmf(0, "1", "1", 0))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NotFound { .. }) && !err.is_transient(),
        "{err:?}"
    );
    catalog
        .insert_recording(&new_recording("r", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    let err = catalog
        .insert_recording(&new_recording("r", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AlreadyExists { .. }) && !err.is_transient(),
        "{err:?}"
    );
    // A real constraint violation from the engine (a duplicate key no API call can produce).
    let mut tx = catalog.pool.begin().await.unwrap();
    let violation = tx
        .execute(
            "INSERT INTO recording_warnings (recording_id, position, message) \
             VALUES ('r', 0, 'a'), ('r', 0, 'b')",
            &[],
        )
        .await
        .map_err(Error::database("insert warnings"))
        .unwrap_err();
    drop(tx);
    assert!(!violation.is_transient(), "{violation:?}");
    let err = catalog.list_recordings(&digits("x")).await.unwrap_err();
    assert!(matches!(err, Error::InvalidQuery { .. }) && !err.is_transient());
}

/// Runs an async scenario on a fresh SQLite catalog.
macro_rules! sqlite_tests {
    ($($scenario:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let db = super::sqlite().await;
                    super::$scenario(&db.catalog).await;
                    db.catalog.close().await;
                }
            )*
        }
    };
}

sqlite_tests!(
    insert_then_get_round_trips_every_field,
    constraint_violations_and_missing_rows_are_permanent,
    insert_of_a_known_id_is_already_exists_and_changes_nothing,
    list_is_newest_first_and_pages,
    complete_updates_state_counts_and_digests_once,
    legs_with_the_same_label_are_distinct,
    active_recordings_are_per_node,
    every_write_replayed_changes_nothing,
    unknown_stored_names_are_corrupt,
    metadata_revisions_are_counted_and_add_participants,
    legs_and_dtmf_added_mid_call,
    json_has_exactly_the_contract_fields,
    quality_figures_and_added_at_round_trip,
    complete_accepts_every_end_state_and_reason,
    associations_follow_join_transfer_and_leave,
    digits_search_in_offset_order_across_legs,
    list_filters_by_state_and_call_id,
    metadata_revisions_read_back_in_order,
    concurrent_writers_all_land,
);

/// Runs an async scenario on a fresh PostgreSQL database, created on the server named by
/// `CALLVAULT_TEST_POSTGRES_URL` and dropped afterwards; skipped (with a note) when unset.
macro_rules! postgres_tests {
    ($($scenario:ident),* $(,)?) => {
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let Some(db) = super::PostgresDb::create().await else {
                        return;
                    };
                    let catalog = Catalog::open(&db.url).await.unwrap();
                    super::$scenario(&catalog).await;
                    catalog.close().await;
                    // Opening again finds the schema current and changes nothing.
                    Catalog::open(&db.url).await.unwrap().close().await;
                    db.drop().await;
                }
            )*
            use super::super::Catalog;
        }
    };
}

postgres_tests!(
    insert_then_get_round_trips_every_field,
    constraint_violations_and_missing_rows_are_permanent,
    insert_of_a_known_id_is_already_exists_and_changes_nothing,
    list_is_newest_first_and_pages,
    complete_updates_state_counts_and_digests_once,
    legs_with_the_same_label_are_distinct,
    active_recordings_are_per_node,
    every_write_replayed_changes_nothing,
    unknown_stored_names_are_corrupt,
    metadata_revisions_are_counted_and_add_participants,
    legs_and_dtmf_added_mid_call,
    json_has_exactly_the_contract_fields,
    quality_figures_and_added_at_round_trip,
    complete_accepts_every_end_state_and_reason,
    associations_follow_join_transfer_and_leave,
    digits_search_in_offset_order_across_legs,
    list_filters_by_state_and_call_id,
    metadata_revisions_read_back_in_order,
    concurrent_writers_all_land,
);

/// Creates, at `url`, a catalog as a build of schema `version` left it: only the first
/// `version` migrations, applied by sqlx's migrator from a folder holding just those files (so
/// `_sqlx_migrations` records them exactly as in the field), then rows written with that
/// version's columns only.
async fn create_old_catalog(url: &str, version: usize) {
    let engine = if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    let mut names: Vec<_> = std::fs::read_dir(&source)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    names.sort();
    let dir = tempfile::tempdir().unwrap();
    for name in &names[..version] {
        std::fs::copy(source.join(name), dir.path().join(name)).unwrap();
    }
    let migrator = sqlx::migrate::Migrator::new(dir.path().to_path_buf())
        .await
        .unwrap();
    let mut rows = vec![
        "INSERT INTO recordings (id, session_id, ingress_call_id, from_uri, to_uri, \
         started_at, ended_at, duration_ms, state, end_reason, source_address, transport) \
         VALUES ('old', 's', 'old@src', 'f', 't', 1796030553000, 1796030563000, 10000, \
         'complete', 'bye', '192.0.2.1:5060', 'udp')",
        "INSERT INTO recordings (id, session_id, ingress_call_id, from_uri, to_uri, \
         started_at, state, source_address, transport) \
         VALUES ('quiet', 's2', 'quiet@src', 'f', 't', 1796030553000, 'active', \
         '192.0.2.1:5060', 'udp')",
        "INSERT INTO participants (recording_id, id, position, aor) \
         VALUES ('old', 'p1', 0, 'sip:alice@example.com')",
        "INSERT INTO legs (recording_id, label, position, participant_id, binding_rule, \
         codec, sample_rate, path, packets, lost, samples, sha256) \
         VALUES ('old', '1', 0, 'p1', 'metadata', 'PCMA', 8000, 'a.wav', 500, 2, 80000, 'ab')",
        "INSERT INTO legs (recording_id, label, position, binding_rule, codec, sample_rate, \
         path) VALUES ('old', '2', 1, 'label order', 'PCMU', 8000, 'b.wav')",
        "INSERT INTO metadata_revisions (recording_id, revision, received_at, raw_xml) \
         VALUES ('old', 1, 1796030553000, '<recording/>')",
        "INSERT INTO dtmf_events (recording_id, seq, digit, leg_label, offset_ms, \
         duration_ms, source) VALUES ('old', 0, '3', '1', 200, 80, 'rfc4733')",
        "INSERT INTO dtmf_events (recording_id, seq, digit, leg_label, offset_ms, \
         duration_ms, source) VALUES ('old', 1, '2', '2', 100, 80, 'rfc4733')",
    ];
    if version >= 2 {
        // A version-2 build wrote the quality figures and the digits column too.
        rows.extend([
            "INSERT INTO recordings (id, session_id, ingress_call_id, from_uri, to_uri, \
             started_at, ended_at, duration_ms, state, end_reason, source_address, transport, \
             dtmf_digits) VALUES ('v2', 's3', 'v2@src', 'f', 't', 1796030554000, \
             1796030564000, 10000, 'failed', 'rtp-timeout', '192.0.2.1:5060', 'udp', '')",
            "INSERT INTO legs (recording_id, label, position, binding_rule, codec, \
             sample_rate, path, packets, lost, duplicates, out_of_order, late, samples, \
             sha256, added_at_ms, jitter_ms, gaps_filled_ms, ssrcs_seen, codec_changes, \
             unknown_payload, rtcp_packets) VALUES ('v2', 'a', 0, 'order', 'PCMU', 8000, \
             'v2a.wav', 1000, 1, 2, 3, 4, 160000, 'cd', 250, 3.25, 40, 1, 2, 5, 7)",
        ]);
    }
    if engine == "sqlite" {
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        migrator.run(&pool).await.unwrap();
        for sql in rows {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        migrator.run(&pool).await.unwrap();
        for sql in rows {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
}

/// Opens a catalog made by [`create_old_catalog`]: the migrations to version 3 run and the
/// old rows read back with the defaults, their counters computed from the old columns.
async fn old_rows_read_back_after_migration(url: &str, version: usize) {
    create_old_catalog(url, version).await;
    let catalog = Catalog::open(url).await.unwrap();
    assert_eq!(
        raw_i64s(
            &catalog,
            "SELECT version FROM _sqlx_migrations ORDER BY version"
        )
        .await,
        [20261130000001, 20261130000002, 20261130000003]
    );
    let old = get(&catalog, "old").await;
    assert_eq!(old.state, RecordingState::Complete);
    assert_eq!(old.end_reason, Some(EndReason::Bye));
    assert_eq!(old.node_id, None);
    assert_eq!(old.metadata_revisions, 1);
    let legs: Vec<_> = old
        .legs
        .iter()
        .map(|l| {
            (
                l.position,
                l.label.as_str(),
                l.sha256.as_deref(),
                l.added_at_ms,
                l.error.as_deref(),
                l.counters.clone(),
            )
        })
        .collect();
    assert_eq!(
        legs,
        [
            (
                0,
                "1",
                Some("ab"),
                0,
                None,
                LegCounters {
                    packets: 500,
                    lost: 2,
                    ..LegCounters::default()
                }
            ),
            (1, "2", None, 0, None, LegCounters::default()),
        ]
    );
    if version == 1 {
        // The leg's participant became an association from the start (migration 2).
        assert_eq!(
            old.associations,
            [Association {
                participant: "p1".to_owned(),
                leg: "1".to_owned(),
                from_ms: 0,
                to_ms: None,
            }]
        );
    }
    assert_eq!(
        catalog.metadata_revisions("old").await.unwrap()[0].raw_xml,
        "<recording/>"
    );
    assert!(get(&catalog, "quiet").await.associations.is_empty());
    // The digits of old rows were computed in offset order on open.
    assert_eq!(listed(&catalog, &digits("23")).await, ["old"]);
    if version >= 2 {
        let v2 = get(&catalog, "v2").await;
        assert_eq!(v2.end_reason, Some(EndReason::RtpTimeout));
        assert_eq!(v2.legs[0].added_at_ms, 250);
        assert_eq!(
            v2.legs[0].counters,
            LegCounters {
                packets: 1000,
                lost: 1,
                duplicates: 2,
                out_of_order: 3,
                late: 4,
                jitter_ms: Some(3.25),
                gaps_filled_ms: 40,
                ssrcs_seen: 1,
                codec_changes: 2,
                unknown_payload: 5,
                rtcp_packets: 7,
                ..LegCounters::default()
            }
        );
    }
    assert_eq!(
        raw_i64s(&catalog, "SELECT COUNT(*) FROM legs WHERE counters IS NULL").await,
        [0]
    );
    // A row of no node is repaired by whichever node asks (the NULL rule).
    let active: Vec<_> = catalog
        .active_recordings("any-node")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(active, ["quiet"]);
    // And the new code keeps writing to them: a new digit, a new leg with a known label.
    catalog
        .add_dtmf("old", &dtmf(2, "4", "1", 300))
        .await
        .unwrap();
    assert_eq!(listed(&catalog, &digits("234")).await, ["old"]);
    catalog
        .add_legs("old", &[leg(1, "x", None), leg(2, "2", None)])
        .await
        .unwrap();
    let labels: Vec<_> = get(&catalog, "old")
        .await
        .legs
        .into_iter()
        .map(|l| (l.position, l.label))
        .collect();
    assert_eq!(
        labels,
        [
            (0, "1".to_owned()),
            (1, "2".to_owned()),
            (2, "2".to_owned())
        ]
    );
    catalog.close().await;
    // Opening again migrates nothing and finds nothing to backfill.
    let again = Catalog::open(url).await.unwrap();
    assert_eq!(listed(&again, &digits("234")).await, ["old"]);
    again.close().await;
}

#[tokio::test]
async fn sqlite_version_1_database_migrates_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    old_rows_read_back_after_migration(&Catalog::sqlite_url(dir.path()), 1).await;
}

#[tokio::test]
async fn sqlite_version_2_database_migrates_with_counters() {
    let dir = tempfile::tempdir().unwrap();
    old_rows_read_back_after_migration(&Catalog::sqlite_url(dir.path()), 2).await;
}

#[tokio::test]
async fn postgres_version_1_database_migrates_with_defaults() {
    let Some(db) = PostgresDb::create().await else {
        return;
    };
    old_rows_read_back_after_migration(&db.url, 1).await;
    db.drop().await;
}

#[tokio::test]
async fn postgres_version_2_database_migrates_with_counters() {
    let Some(db) = PostgresDb::create().await else {
        return;
    };
    old_rows_read_back_after_migration(&db.url, 2).await;
    db.drop().await;
}

/// The issue-12 fault: another connection holds SQLite's write lock. A write waits out the
/// busy timeout (10 s) and fails as transient; reads go on meanwhile (WAL); once the lock is
/// released the same write succeeds.
#[tokio::test]
async fn sqlite_write_lock_held_elsewhere_is_transient() {
    use sqlx::Connection as _;
    let db = sqlite().await;
    let catalog = &db.catalog;
    catalog
        .insert_recording(&new_recording("r", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    let mut other = sqlx::SqliteConnection::connect(&Catalog::sqlite_url(db._dir.path()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();

    let err = catalog
        .add_dtmf("r", &dtmf(0, "1", "1", 0))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let Error::Database {
        source: sqlx::Error::Database(source),
        ..
    } = &err
    else {
        panic!("expected SQLITE_BUSY, got {err:?}");
    };
    assert_eq!(source.code().as_deref(), Some("5"), "{source}");
    assert_eq!(get(catalog, "r").await.dtmf.len(), 0, "reads go on");

    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    catalog.add_dtmf("r", &dtmf(0, "1", "1", 0)).await.unwrap();
    assert_eq!(get(catalog, "r").await.dtmf.len(), 1);
    other.close().await.unwrap();
    db.catalog.close().await;
}

/// Issue 21: the SQLite catalog on a full disk. Writes fail as transient; reads keep working,
/// for the running catalog and for a new one (what `recordings list` opens); once space is
/// back, writes succeed and nothing stored before changed.
#[tokio::test]
async fn sqlite_on_a_full_disk_keeps_reading_and_recovers() {
    let Some(disk) = Tmpfs::mount(8) else {
        return;
    };
    let url = Catalog::sqlite_url(disk.path());
    let catalog = Catalog::open(&url).await.unwrap();
    catalog
        .insert_recording(&new_recording("before", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    let before = get(&catalog, "before").await;
    let filler = disk.fill("filler");

    // A write that needs new pages (SQLite may reuse WAL space for a small one).
    let mut big = new_recording("big", datetime!(2026-11-30 10:01 UTC));
    big.warnings = vec!["x".repeat(2 << 20)];
    let err = catalog.insert_recording(&big).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    assert_eq!(get(&catalog, "before").await, before);
    assert_eq!(listed(&catalog, &ListQuery::default()).await, ["before"]);
    let reader = Catalog::open(&url).await.unwrap();
    assert_eq!(get(&reader, "before").await, before);
    assert_eq!(listed(&reader, &ListQuery::default()).await, ["before"]);
    reader.close().await;

    std::fs::remove_file(filler).unwrap();
    catalog.insert_recording(&big).await.unwrap();
    assert_eq!(get(&catalog, "big").await.warnings[0].len(), 2 << 20);
    assert_eq!(get(&catalog, "before").await, before);
    catalog.close().await;
}

/// A completion the archive retries while commits fail: its warning is large enough that its
/// COMMIT needs new pages (SQLite could otherwise reuse space the WAL already has).
fn completion_needing_space(id: &str) -> Completion {
    let mut c = completion(id, 0, 50, "ab12");
    c.state = RecordingState::Failed;
    c.end_reason = EndReason::WriteFailed;
    c.warnings = vec!["n".repeat(100_000)];
    c
}

/// The archive's retries of one write while every COMMIT fails: each attempt fails as
/// transient; none reports a write that was not made.
async fn retries_fail_while_commits_fail(catalog: &Catalog, c: &Completion) {
    for attempt in 0..8 {
        let err = catalog
            .complete_recording(c)
            .await
            .expect_err("a write reported done while its commit cannot succeed");
        assert!(err.is_transient(), "attempt {attempt}: {err:?}");
    }
}

/// Once commits can succeed again: the next writes go through at their first attempt and are
/// durable (a new catalog on the same database sees them).
async fn next_writes_go_through(catalog: &Catalog, url: &str, c: &Completion) {
    catalog.complete_recording(c).await.unwrap();
    // The backlog the archive has once space is back, each write tried once.
    for seq in 0..4 {
        catalog
            .insert_recording(&new_recording(
                &format!("after-{seq}"),
                datetime!(2026-11-30 10:02 UTC),
            ))
            .await
            .unwrap();
        catalog
            .add_dtmf(&c.recording_id, &dtmf(seq, "5", "1", 10))
            .await
            .unwrap();
    }
    let fresh = Catalog::open(url).await.unwrap();
    let completed = get(&fresh, &c.recording_id).await;
    assert_eq!(completed.state, RecordingState::Failed);
    assert_eq!(completed.warnings, c.warnings);
    assert_eq!(completed.dtmf.len(), 4);
    assert_eq!(listed(&fresh, &ListQuery::default()).await.len(), 5);
    fresh.close().await;
}

/// Issue 21, the moment space is back. SQLite rolls a transaction back by itself when its
/// COMMIT fails for lack of space; the pool must not keep a connection that believes
/// otherwise (it would hold SQLite's write lock on its next use, so every other writer waits
/// out the busy timeout and fails "database is locked", and its own writes would never
/// commit). So: the retries fail as transient, and once the filler is deleted nothing holds
/// the write lock and the next writes go through at once.
#[tokio::test]
async fn sqlite_full_disk_failed_commits_leave_nothing_locked() {
    use sqlx::{ConnectOptions as _, Connection as _};
    let Some(disk) = Tmpfs::mount(8) else {
        return;
    };
    let url = Catalog::sqlite_url(disk.path());
    let catalog = Catalog::open(&url).await.unwrap();
    catalog
        .insert_recording(&new_recording("r", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    let c = completion_needing_space("r");
    let filler = disk.fill("filler");
    retries_fail_while_commits_fail(&catalog, &c).await;

    std::fs::remove_file(filler).unwrap();
    // Another writer gets the write lock (tried without a busy timeout): nobody keeps it. The
    // last failed transaction's rollback runs when its connection goes back to the pool, which
    // happens beside this test, so the lock is polled for a short while — far less than the
    // 10 s busy timeout a writer would wait out, and for ever without the fix.
    let mut other = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
        .unwrap()
        .busy_timeout(std::time::Duration::ZERO)
        .connect()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await {
            Ok(_) => break,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Err(error) => panic!("the write lock is still held after space is back: {error}"),
        }
    }
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();

    next_writes_go_through(&catalog, &url, &c).await;
    catalog.close().await;
}

/// The same on PostgreSQL, whose disk we cannot fill here: a deferred constraint trigger
/// fails every COMMIT with `disk_full` (SQLSTATE 53100) while `test_disk.is_full` is set. Once it
/// is cleared, no catalog session is left inside a transaction and the next writes go
/// through at once.
#[tokio::test]
async fn postgres_failed_commits_leave_nothing_locked() {
    let Some(db) = PostgresDb::create().await else {
        return;
    };
    let catalog = Catalog::open(&db.url).await.unwrap();
    catalog
        .insert_recording(&new_recording("r", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE test_disk (is_full BOOLEAN NOT NULL); \
         INSERT INTO test_disk VALUES (true); \
         CREATE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF (SELECT is_full FROM test_disk) THEN \
             RAISE EXCEPTION 'could not extend file: No space left on device' \
               USING ERRCODE = 'disk_full'; \
           END IF; RETURN NULL; END $$; \
         CREATE CONSTRAINT TRIGGER test_disk_full AFTER INSERT OR UPDATE ON recordings \
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_disk_full();",
    )
    .execute(&admin)
    .await
    .unwrap();
    let c = completion_needing_space("r");
    retries_fail_while_commits_fail(&catalog, &c).await;

    sqlx::query("UPDATE test_disk SET is_full = false")
        .execute(&admin)
        .await
        .unwrap();
    let in_transaction: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert_eq!(
        in_transaction, 0,
        "a catalog session left inside a transaction"
    );

    next_writes_go_through(&catalog, &db.url, &c).await;
    admin.close().await;
    catalog.close().await;
    db.drop().await;
}

/// A PostgreSQL server that closes the connection under a statement (a restart, a failover,
/// an administrator): the error is transient, and the next call reconnects.
#[tokio::test]
async fn postgres_connection_terminated_by_the_server_is_transient() {
    use sqlx::Connection as _;
    let Some(db) = PostgresDb::create().await else {
        return;
    };
    let catalog = Catalog::open(&db.url).await.unwrap();
    catalog
        .insert_recording(&new_recording("r", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    // Another client holds the recording's row, so the catalog's write waits on it…
    let mut holder = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT 1 FROM recordings WHERE id = 'r' FOR UPDATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let write = {
        let catalog = catalog.clone();
        tokio::spawn(async move { catalog.add_dtmf("r", &dtmf(0, "1", "1", 0)).await })
    };
    // …until the server terminates the waiting backend.
    let admin = db.admin().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let terminated: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND wait_event_type = 'Lock'",
        )
        .bind(db.name())
        .fetch_all(&admin)
        .await
        .unwrap();
        if terminated.contains(&true) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the write never waited on the lock"
        );
        tokio::task::yield_now().await;
    }
    let err = write.await.unwrap().unwrap_err();
    assert!(err.is_transient(), "{err:?}");

    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    catalog.add_dtmf("r", &dtmf(0, "1", "1", 0)).await.unwrap();
    assert_eq!(get(&catalog, "r").await.dtmf.len(), 1);
    holder.close().await.unwrap();
    admin.close().await;
    catalog.close().await;
    db.drop().await;
}

/// No server listening (PostgreSQL down or still starting): transient, after the pool's
/// short acquire timeout, and the URL's password is not in the message.
#[tokio::test]
async fn postgres_refusing_connections_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = Catalog::open(&format!(
        "postgres://vault:s3cret@127.0.0.1:{port}/callvault"
    ))
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(!format!("{err:?}").contains("s3cret"), "{err:?}");
}

#[test]
fn like_contains_escapes_the_wildcards_and_the_escape() {
    assert_eq!(like_contains("12#"), "%12#%");
    assert_eq!(like_contains("5%_\\"), "%5\\%\\_\\\\%");
    assert_eq!(like_contains(""), "%%");
    assert_eq!(
        digits_pattern("0123456789*#ABCD!").unwrap(),
        "%0123456789*#ABCD!%"
    );
    for bad in ["abcd", "%", "_", " ", "E", "1\\"] {
        assert!(
            matches!(digits_pattern(bad), Err(Error::InvalidQuery { .. })),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn reopening_keeps_rows_and_does_not_migrate_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = Catalog::sqlite_url(dir.path());
    let first = Catalog::open(&url).await.unwrap();
    first
        .insert_recording(&new_recording("kept", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    first.close().await;

    let second = Catalog::open(&url).await.unwrap();
    assert_eq!(get(&second, "kept").await.state, RecordingState::Active);
    // The crash-recovery path: the earlier run's live call is found by its node.
    let active = second.active_recordings(NODE).await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id, "kept");
    let Pool::Sqlite(pool) = &second.pool else {
        unreachable!("opened from a sqlite URL")
    };
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(applied, 3);
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
    second.close().await;
}

#[tokio::test]
async fn sqlite_url_survives_awkward_folder_names() {
    assert_eq!(
        Catalog::sqlite_url(Path::new("/var/lib/callvault")),
        "sqlite:///var/lib/callvault/callvault.db"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data ?#%41 dir");
    std::fs::create_dir(&data).unwrap();
    let catalog = Catalog::open(&Catalog::sqlite_url(&data)).await.unwrap();
    catalog.close().await;
    assert!(data.join(SQLITE_FILE_NAME).is_file());
}

#[tokio::test]
async fn in_memory_sqlite_keeps_its_rows_across_connections() {
    let catalog = Catalog::open("sqlite::memory:").await.unwrap();
    catalog
        .insert_recording(&new_recording("mem", datetime!(2026-11-30 10:00 UTC)))
        .await
        .unwrap();
    // Several statements in parallel use several pool connections.
    let reads = (0..4).map(|_| {
        let catalog = catalog.clone();
        async move { catalog.get_recording("mem").await }
    });
    for read in futures_join_all(reads).await {
        assert!(read.unwrap().is_some());
    }
    catalog.close().await;
}

/// Polls futures concurrently without a futures-util dependency.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.unwrap());
    }
    outputs
}

#[tokio::test]
async fn bad_urls_are_errors() {
    for url in [
        "",
        "mysql://db/callvault",
        "/var/lib/callvault/callvault.db",
    ] {
        let err = Catalog::open(url).await.unwrap_err();
        assert!(matches!(err, Error::InvalidUrl { .. }), "{url}: {err:?}");
    }
    let err = Catalog::open("sqlite:///tmp/x.db?journal=nope")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    let err = Catalog::open("postgres://vault:secret@db.example:notaport/callvault")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("secret"), "{err}");

    // The data dir is the caller's to create: a missing one is reported, not created.
    let dir = tempfile::tempdir().unwrap();
    let err = Catalog::open(&Catalog::sqlite_url(&dir.path().join("missing")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
}

#[test]
fn sqlite_and_postgres_migrations_have_the_same_shape() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let read = |engine: &str| {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(engine))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|path| {
                let sql: String = std::fs::read_to_string(path)
                    .unwrap()
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("--"))
                    .collect::<Vec<_>>()
                    .join("\n");
                (path.file_name().unwrap().to_owned(), sql)
            })
            .collect::<Vec<_>>()
    };
    let sqlite = read("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, read("postgres"));
}
