//! The recorder's writes, replayed and concurrent, on both engines.

use crate::catalog::tests::*;
use crate::catalog::*;
use crate::error::Error;
use crate::model::*;
use crate::testing::*;
use callvault_types::{DtmfSource, EndReason, LegCounters};
use time::macros::datetime;

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
        final_status: None,
        hung_up_by: None,
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

async fn a_passthrough_call_keeps_its_mode_route_ids_status_and_who_hung_up(catalog: &Catalog) {
    let mut rec = new_recording("pt", datetime!(2026-12-03 10:00 UTC));
    rec.mode = callvault_types::RecordingMode::Passthrough;
    rec.route = Some("pbx".to_owned());
    rec.egress_call_id = Some("egress@callvault".to_owned());
    rec.legs = Vec::new();
    catalog.insert_recording(&rec).await.unwrap();
    let active = get(catalog, "pt").await;
    assert_eq!(active.mode, callvault_types::RecordingMode::Passthrough);
    assert_eq!(active.route.as_deref(), Some("pbx"));
    assert_eq!(active.final_status, None);

    let mut done = completion("pt", 0, 0, "");
    done.legs.clear();
    done.end_reason = EndReason::NotAnswered;
    done.final_status = Some(486);
    catalog.complete_recording(&done).await.unwrap();
    let busy = get(catalog, "pt").await;
    assert_eq!(busy.final_status, Some(486));
    assert_eq!(busy.hung_up_by, None);
    assert_eq!(busy.end_reason, Some(EndReason::NotAnswered));
    assert_eq!(busy.egress_call_id.as_deref(), Some("egress@callvault"));
    // Found by either Call-ID.
    let by_egress = catalog
        .list_recordings(&ListQuery {
            call_id: Some("egress@callvault".to_owned()),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(by_egress.len(), 1);

    // A replayed completion without the pass-through facts keeps them.
    let mut answered = new_recording("pt2", datetime!(2026-12-03 11:00 UTC));
    answered.mode = callvault_types::RecordingMode::Passthrough;
    catalog.insert_recording(&answered).await.unwrap();
    let mut done = completion("pt2", 0, 100, "ab");
    done.final_status = Some(200);
    done.hung_up_by = Some(callvault_types::Party::Callee);
    catalog.complete_recording(&done).await.unwrap();
    done.final_status = None;
    done.hung_up_by = None;
    catalog.complete_recording(&done).await.unwrap();
    let stored = get(catalog, "pt2").await;
    assert_eq!(stored.final_status, Some(200));
    assert_eq!(stored.hung_up_by, Some(callvault_types::Party::Callee));
    let json = serde_json::to_value(&stored).unwrap();
    assert_eq!(json["mode"], "passthrough");
    assert_eq!(json["hung_up_by"], "callee");
    assert_eq!(json["final_status"], 200);
}

on_both_engines!(
    a_passthrough_call_keeps_its_mode_route_ids_status_and_who_hung_up,
    insert_of_a_known_id_is_already_exists_and_changes_nothing,
    complete_updates_state_counts_and_digests_once,
    legs_with_the_same_label_are_distinct,
    metadata_revisions_are_counted_and_add_participants,
    legs_and_dtmf_added_mid_call,
    complete_accepts_every_end_state_and_reason,
    associations_follow_join_transfer_and_leave,
    every_write_replayed_changes_nothing,
    concurrent_writers_all_land,
    constraint_violations_and_missing_rows_are_permanent,
);
