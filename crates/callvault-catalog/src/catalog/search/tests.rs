//! Search on both engines: keyset pages across equal start times, every filter, scopes, the
//! JSON of items and details; the query plans of the common searches (they use the indexes);
//! and, ignored by default, timings on 100,000 recordings.

use std::collections::BTreeSet;

use crate::catalog::tests::*;
use crate::catalog::*;
use crate::db::DbRow;
use crate::error::Error;
use crate::model::*;
use crate::scope::Scope;
use crate::testing::*;
use time::macros::datetime;

use super::{Owned, page_sql};

const T0: time::OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

fn ids(page: &SearchPage) -> Vec<&str> {
    page.items.iter().map(|i| i.recording.id.as_str()).collect()
}

async fn pages_follow_the_cursor_across_equal_start_times(catalog: &Catalog) {
    // Five recordings in the same millisecond, two around them: ordered by id within it.
    let same = datetime!(2026-11-30 10:00:00.123 UTC);
    for id in ["c", "a", "e", "b", "d"] {
        catalog
            .insert_recording(&new_recording(id, same))
            .await
            .unwrap();
    }
    catalog
        .insert_recording(&new_recording(
            "newest",
            same + time::Duration::milliseconds(1),
        ))
        .await
        .unwrap();
    catalog
        .insert_recording(&new_recording(
            "oldest",
            same - time::Duration::milliseconds(1),
        ))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = catalog
            .search(
                &Scope::All,
                &SearchQuery {
                    limit: 2,
                    cursor: cursor.clone(),
                    ..SearchQuery::default()
                },
            )
            .await
            .unwrap();
        pages += 1;
        seen.extend(ids(&page).into_iter().map(str::to_owned));
        // A recording added meanwhile, older than the page, is found by a later page, and
        // nothing repeats.
        if pages == 1 {
            catalog
                .insert_recording(&new_recording(
                    "late-but-old",
                    same - time::Duration::seconds(9),
                ))
                .await
                .unwrap();
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["newest", "e", "d", "c", "b", "a", "oldest", "late-but-old"]
    );
    assert_eq!(pages, 4);
    // Exactly a page's worth: no cursor to an empty page.
    let all = catalog
        .search(
            &Scope::All,
            &SearchQuery {
                limit: 8,
                ..SearchQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((all.items.len(), all.next_cursor), (8, None));
    for bad in [
        SearchQuery {
            limit: 0,
            ..SearchQuery::default()
        },
        SearchQuery {
            limit: 501,
            ..SearchQuery::default()
        },
        SearchQuery {
            cursor: Some("not-a-cursor".to_owned()),
            ..SearchQuery::default()
        },
        SearchQuery {
            digits: Some("12x".to_owned()),
            ..SearchQuery::default()
        },
    ] {
        let err = catalog.search(&Scope::All, &bad).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidQuery { .. }),
            "{bad:?}: {err:?}"
        );
    }
}

/// Recordings that differ in one way each, so each filter finds exactly its own.
async fn varied(catalog: &Catalog) {
    let mut a = new_recording("alice-call", datetime!(2026-11-30 08:00 UTC));
    a.from = "<sip:Alice.Smith@example.com>;tag=1".to_owned();
    a.tenant = Some("acme".to_owned());
    a.correlation_ids = vec![("ucid".to_owned(), "00FA080018803B69".to_owned())];
    catalog.insert_recording(&a).await.unwrap();
    catalog
        .complete_recording(&Completion {
            final_status: None,
            hung_up_by: None,
            duration_ms: 30_000,
            ..completion("alice-call", 0, 1, "x")
        })
        .await
        .unwrap();

    let mut b = new_recording("named-bob", datetime!(2026-11-30 09:00 UTC));
    b.participants = vec![participant(
        "p1",
        Some("tel:+15550100"),
        Some("Bob O'Brien"),
    )];
    b.egress_call_id = Some("egress-bob@callvault".to_owned());
    b.tenant = Some("globex".to_owned());
    catalog.insert_recording(&b).await.unwrap();
    catalog
        .complete_recording(&Completion {
            final_status: None,
            hung_up_by: None,
            duration_ms: 600_000,
            ..completion("named-bob", 0, 1, "y")
        })
        .await
        .unwrap();
    catalog
        .add_dtmf("named-bob", &dtmf(0, "4", "1", 10))
        .await
        .unwrap();
    catalog
        .add_dtmf("named-bob", &dtmf(1, "2", "1", 20))
        .await
        .unwrap();

    let mut c = new_recording("still-live", datetime!(2026-11-30 10:00 UTC));
    c.tenant = Some("acme".to_owned());
    catalog.insert_recording(&c).await.unwrap();
    catalog
        .lock(&Scope::All, "still-live", "hold", &alice(), T0)
        .await
        .unwrap();
}

async fn each_filter_finds_its_own(catalog: &Catalog) {
    varied(catalog).await;
    let find = |query: SearchQuery| async move {
        let page = catalog.search(&Scope::All, &query).await.unwrap();
        ids(&page)
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let q = SearchQuery::default;
    assert_eq!(find(q()).await, ["still-live", "named-bob", "alice-call"]);
    assert_eq!(
        find(SearchQuery {
            since: Some(datetime!(2026-11-30 09:00 UTC)),
            ..q()
        })
        .await,
        ["still-live", "named-bob"]
    );
    assert_eq!(
        find(SearchQuery {
            until: Some(datetime!(2026-11-30 09:00 UTC)),
            ..q()
        })
        .await,
        ["alice-call"]
    );
    // Party: From/To, a participant's AOR or name, ASCII case ignored, wildcards literal.
    assert_eq!(
        find(SearchQuery {
            party: Some("alice.smith".to_owned()),
            ..q()
        })
        .await,
        ["alice-call"]
    );
    assert_eq!(
        find(SearchQuery {
            party: Some("o'brien".to_owned()),
            ..q()
        })
        .await,
        ["named-bob"]
    );
    assert_eq!(
        find(SearchQuery {
            party: Some("5550100".to_owned()),
            ..q()
        })
        .await,
        ["named-bob"]
    );
    assert!(
        find(SearchQuery {
            party: Some("%".to_owned()),
            ..q()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        find(SearchQuery {
            call_id: Some("egress-bob@callvault".to_owned()),
            ..q()
        })
        .await,
        ["named-bob"]
    );
    assert_eq!(
        find(SearchQuery {
            call_id: Some("ingress-alice-call@src.example".to_owned()),
            ..q()
        })
        .await,
        ["alice-call"]
    );
    assert_eq!(
        find(SearchQuery {
            session_id: Some("session-still-live".to_owned()),
            ..q()
        })
        .await,
        ["still-live"]
    );
    // Any id: recording, session, either Call-ID, correlation value.
    for any in [
        "named-bob",
        "session-named-bob",
        "ingress-named-bob@src.example",
        "egress-bob@callvault",
    ] {
        assert_eq!(
            find(SearchQuery {
                id: Some(any.to_owned()),
                ..q()
            })
            .await,
            ["named-bob"],
            "{any}"
        );
    }
    assert_eq!(
        find(SearchQuery {
            id: Some("00FA080018803B69".to_owned()),
            ..q()
        })
        .await,
        ["alice-call"]
    );
    assert!(
        find(SearchQuery {
            id: Some("00FA08".to_owned()),
            ..q()
        })
        .await
        .is_empty(),
        "exact, not a substring"
    );
    assert_eq!(
        find(SearchQuery {
            digits: Some("42".to_owned()),
            ..q()
        })
        .await,
        ["named-bob"]
    );
    assert_eq!(
        find(SearchQuery {
            state: Some(RecordingState::Active),
            ..q()
        })
        .await,
        ["still-live"]
    );
    assert_eq!(
        find(SearchQuery {
            locked: Some(true),
            ..q()
        })
        .await,
        ["still-live"]
    );
    assert_eq!(
        find(SearchQuery {
            locked: Some(false),
            ..q()
        })
        .await,
        ["named-bob", "alice-call"]
    );
    assert_eq!(
        find(SearchQuery {
            min_duration_ms: Some(60_000),
            ..q()
        })
        .await,
        ["named-bob"]
    );
    assert_eq!(
        find(SearchQuery {
            max_duration_ms: Some(60_000),
            ..q()
        })
        .await,
        ["alice-call"]
    );
    assert_eq!(
        find(SearchQuery {
            tenant: Some("acme".to_owned()),
            ..q()
        })
        .await,
        ["still-live", "alice-call"]
    );
    assert_eq!(
        find(SearchQuery {
            tenant: Some("acme".to_owned()),
            locked: Some(false),
            ..q()
        })
        .await,
        ["alice-call"],
        "filters combine"
    );
}

async fn a_tenant_searches_only_its_own(catalog: &Catalog) {
    varied(catalog).await;
    let acme = Scope::Tenant("acme".to_owned());
    let page = catalog
        .search(&acme, &SearchQuery::default())
        .await
        .unwrap();
    assert_eq!(ids(&page), ["still-live", "alice-call"]);
    assert!(
        page.items
            .iter()
            .all(|i| i.tenant.as_deref() == Some("acme"))
    );
    // Naming another tenant's ids or the other tenant finds nothing.
    for query in [
        SearchQuery {
            tenant: Some("globex".to_owned()),
            ..SearchQuery::default()
        },
        SearchQuery {
            id: Some("named-bob".to_owned()),
            ..SearchQuery::default()
        },
        SearchQuery {
            party: Some("bob".to_owned()),
            ..SearchQuery::default()
        },
    ] {
        assert!(
            catalog
                .search(&acme, &query)
                .await
                .unwrap()
                .items
                .is_empty(),
            "{query:?}"
        );
    }
    assert_eq!(
        catalog.recording_details(&acme, "named-bob").await.unwrap(),
        None
    );
    assert!(
        catalog
            .recording_details(&acme, "alice-call")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        catalog
            .search(&Scope::Tenant("nobody".to_owned()), &SearchQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn items_and_details_carry_the_contract_and_management_fields(catalog: &Catalog) {
    varied(catalog).await;
    catalog
        .annotate(
            &Scope::All,
            "still-live",
            &NewAnnotation {
                text: "x".to_owned(),
                offset_ms: Some(5),
            },
            None,
            &alice(),
            T0,
        )
        .await
        .unwrap();
    let keys = |value: &serde_json::Value| {
        value
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
    };
    let page = catalog
        .search(&Scope::All, &SearchQuery::default())
        .await
        .unwrap();
    let item = serde_json::to_value(&page.items[0]).unwrap();
    let recording = serde_json::to_value(get(catalog, "still-live").await).unwrap();
    let mut expected = keys(&recording);
    for extra in [
        "tenant",
        "locked",
        "score",
        "annotation_count",
        "pause_count",
        "paused_now",
        "deleted_at",
        "deleted_by",
        "delete_reason",
        "restricted",
        "never_expire",
        "media_deleted_at",
        "has_transcript",
    ] {
        assert!(expected.insert(extra.to_owned()), "{extra} is new");
    }
    assert_eq!(keys(&item), expected);
    assert_eq!(
        (item["locked"].clone(), item["annotation_count"].clone()),
        (true.into(), 1.into())
    );
    assert_eq!(item["tenant"], "acme");
    assert_eq!(
        page.items[0].recording,
        get(catalog, "still-live").await,
        "the recording in full"
    );
    let details = catalog
        .recording_details(&Scope::All, "still-live")
        .await
        .unwrap()
        .unwrap();
    let json = serde_json::to_value(&details).unwrap();
    for extra in [
        "locks",
        "annotations",
        "complete",
        "categories",
        "custom",
        "review_seconds",
        "paused",
        "deleted_legs",
    ] {
        assert!(expected.insert(extra.to_owned()), "{extra} is new");
    }
    assert_eq!(keys(&json), expected);
    assert_eq!(
        keys(&json["locks"][0]),
        [
            "at",
            "by",
            "id",
            "matter_id",
            "reason",
            "recording_id",
            "remove_reason",
            "removed_at",
            "removed_by"
        ]
        .map(str::to_owned)
        .into()
    );
    assert_eq!(
        keys(&json["annotations"][0]),
        ["at", "by", "id", "offset_ms", "text"]
            .map(str::to_owned)
            .into()
    );
    // And both read back.
    assert_eq!(
        serde_json::from_value::<RecordingDetails>(json).unwrap(),
        details
    );
    assert_eq!(
        serde_json::from_value::<RecordingItem>(item).unwrap(),
        page.items[0]
    );
}

async fn items_say_whether_a_recording_is_paused_now_and_how_often_it_was(catalog: &Catalog) {
    for id in ["live", "ended", "never"] {
        catalog
            .insert_recording(&new_recording(id, T0))
            .await
            .unwrap();
    }
    let pause = |seq, from_ms, to_ms| Pause {
        seq,
        from_ms,
        to_ms,
        by: "pci-desk".to_owned(),
    };
    catalog
        .set_pause("live", &pause(0, 1000, Some(2000)))
        .await
        .unwrap();
    catalog
        .set_pause("live", &pause(1, 3000, None))
        .await
        .unwrap();
    catalog
        .set_pause("ended", &pause(0, 500, Some(900)))
        .await
        .unwrap();
    let page = catalog
        .search(&Scope::All, &SearchQuery::default())
        .await
        .unwrap();
    let mut seen: Vec<(&str, i64, bool)> = page
        .items
        .iter()
        .map(|i| (i.recording.id.as_str(), i.pause_count, i.paused_now))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [("ended", 1, false), ("live", 2, true), ("never", 0, false)]
    );
    // Resumed: still counted, no longer in force.
    catalog
        .set_pause("live", &pause(1, 3000, Some(3500)))
        .await
        .unwrap();
    let page = catalog
        .search(
            &Scope::All,
            &SearchQuery {
                id: Some("live".to_owned()),
                ..SearchQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (page.items[0].pause_count, page.items[0].paused_now),
        (2, false)
    );
}

on_both_engines!(
    items_say_whether_a_recording_is_paused_now_and_how_often_it_was,
    pages_follow_the_cursor_across_equal_start_times,
    each_filter_finds_its_own,
    a_tenant_searches_only_its_own,
    items_and_details_carry_the_contract_and_management_fields,
    common_searches_use_the_indexes,
);

/// Seeds `n` ended recordings quickly (multi-row inserts in one transaction): one a second
/// from 2026-01-01, twenty tenants, a participant each, a correlation id each, a lock on every
/// 100th.
async fn seed(catalog: &Catalog, n: usize) {
    const BATCH: usize = 500;
    let start = 1_767_225_600_000_i64; // 2026-01-01T00:00:00Z
    let mut tx = catalog.pool.begin().await.unwrap();
    for first in (0..n).step_by(BATCH) {
        let range = first..(first + BATCH).min(n);
        let recordings: Vec<String> = range
            .clone()
            .map(|i| {
                // Twenty tenants: acme, globex, then tenant-2…tenant-19.
                let tenant = match i % 20 {
                    0 => "acme".to_owned(),
                    1 => "globex".to_owned(),
                    t => format!("tenant-{t}"),
                };
                format!(
                    "('rec-{i:06}', 'session-{i}', 'call-{i}@sbc', NULL, 'sip:caller{i}@example.com', \
                     'sip:agent{}@example.com', {}, {}, {}, 'complete', 'bye', '192.0.2.1:5060', 'udp', \
                     '{}', 'node-a', '{tenant}')",
                    i % 50,
                    start + i as i64 * 1000,
                    start + i as i64 * 1000 + 60_000,
                    (i % 600) as i64 * 1000,
                    ["", "12", "1234#"][i % 3]
                )
            })
            .collect();
        let sql = format!(
            "INSERT INTO recordings (id, session_id, ingress_call_id, egress_call_id, from_uri, \
             to_uri, started_at, ended_at, duration_ms, state, end_reason, source_address, \
             transport, dtmf_digits, node_id, tenant) VALUES {}",
            recordings.join(", ")
        );
        tx.execute(&sql, &[]).await.unwrap();
        let participants: Vec<String> = range
            .clone()
            .map(|i| format!("('rec-{i:06}', 'p1', 0, 'sip:caller{i}@example.com', 'Caller {i}')"))
            .collect();
        let sql = format!(
            "INSERT INTO participants (recording_id, id, position, aor, name) VALUES {}",
            participants.join(", ")
        );
        tx.execute(&sql, &[]).await.unwrap();
        let correlation: Vec<String> = range
            .clone()
            .map(|i| format!("('rec-{i:06}', 'ucid', 'ucid-{i}', 0)"))
            .collect();
        let sql = format!(
            "INSERT INTO correlation_ids (recording_id, kind, value, position) VALUES {}",
            correlation.join(", ")
        );
        tx.execute(&sql, &[]).await.unwrap();
        let locks: Vec<String> = range
            .filter(|i| i % 100 == 0)
            .map(|i| format!("('lock-{i}', 'rec-{i:06}', 'hold', 'alice', {start})"))
            .collect();
        if !locks.is_empty() {
            let sql = format!(
                "INSERT INTO locks (id, recording_id, reason, locked_by, locked_at) VALUES {}",
                locks.join(", ")
            );
            tx.execute(&sql, &[]).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
    if is_postgres(catalog) {
        execute_raw(catalog, "ANALYZE").await;
    }
}

/// The common searches, by name.
fn common_searches() -> Vec<(&'static str, Scope, SearchQuery)> {
    let q = SearchQuery::default;
    vec![
        ("newest first", Scope::All, q()),
        ("a tenant's newest", Scope::Tenant("acme".to_owned()), q()),
        (
            "the next page",
            Scope::All,
            SearchQuery {
                cursor: Some(crate::cursor::recordings(
                    1_767_225_600_000 + 5_000_000,
                    "rec-005000",
                )),
                ..q()
            },
        ),
        (
            "a day",
            Scope::All,
            SearchQuery {
                since: Some(datetime!(2026-01-02 00:00 UTC)),
                until: Some(datetime!(2026-01-03 00:00 UTC)),
                ..q()
            },
        ),
        (
            "a Call-ID",
            Scope::All,
            SearchQuery {
                call_id: Some("call-77@sbc".to_owned()),
                ..q()
            },
        ),
        (
            "a session",
            Scope::All,
            SearchQuery {
                session_id: Some("session-77".to_owned()),
                ..q()
            },
        ),
        (
            "any id",
            Scope::All,
            SearchQuery {
                id: Some("ucid-77".to_owned()),
                ..q()
            },
        ),
        (
            "locked",
            Scope::All,
            SearchQuery {
                locked: Some(true),
                ..q()
            },
        ),
        (
            "a tenant's locked",
            Scope::Tenant("acme".to_owned()),
            SearchQuery {
                locked: Some(true),
                ..q()
            },
        ),
    ]
}

/// The plan of one page of `query`, as text (SQLite's `EXPLAIN QUERY PLAN` details, or
/// PostgreSQL's `EXPLAIN` with sequential scans priced out, so an index that can be used is).
async fn plan(catalog: &Catalog, scope: &Scope, query: &SearchQuery) -> String {
    let owned = Owned::of(query).unwrap();
    let (sql, args) = page_sql(scope, query, &owned);
    let mut tx = catalog.pool.begin().await.unwrap();
    let (explain, column) = if is_postgres(catalog) {
        tx.execute("SET LOCAL enable_seqscan = off", &[])
            .await
            .unwrap();
        (format!("EXPLAIN {sql}"), "QUERY PLAN")
    } else {
        (format!("EXPLAIN QUERY PLAN {sql}"), "detail")
    };
    let rows = tx.fetch_all(&explain, &args).await.unwrap();
    tx.commit().await.unwrap();
    rows.iter()
        .map(|row| match row {
            DbRow::Sqlite(row) => sqlx::Row::get::<String, _>(row, column),
            DbRow::Postgres(row) => sqlx::Row::get::<String, _>(row, column),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

async fn common_searches_use_the_indexes(catalog: &Catalog) {
    seed(catalog, 2_000).await;
    let expected: &[(&str, &[&str])] = &[
        ("newest first", &["recordings_started_at"]),
        ("a tenant's newest", &["recordings_tenant_started_at"]),
        ("the next page", &["recordings_started_at"]),
        ("a day", &["recordings_started_at"]),
        (
            "a Call-ID",
            &["recordings_ingress_call_id", "recordings_egress_call_id"],
        ),
        ("a session", &["recordings_session_id"]),
        (
            "any id",
            &[
                "correlation_ids_value",
                "recordings_session_id",
                "recordings_ingress_call_id",
            ],
        ),
        ("locked", &["locks_active"]),
        (
            "a tenant's locked",
            &["recordings_tenant_started_at", "locks_active"],
        ),
    ];
    for (name, scope, query) in common_searches() {
        let plan = plan(catalog, &scope, &query).await;
        let (_, indexes) = expected.iter().find(|(n, _)| *n == name).unwrap();
        for index in *indexes {
            assert!(plan.contains(index), "{name}: {index} unused in\n{plan}");
        }
        // No scan of a whole table. Lookups sort their few matches; a page of the newest (from
        // the top, after a cursor, within a time range) takes its order from the index.
        let full_scan = plan.lines().any(|line| {
            line.contains("Seq Scan")
                || (line.trim_start().starts_with("SCAN ") && !line.contains(" INDEX "))
        });
        assert!(!full_scan, "{name}: a table is scanned whole\n{plan}");
        if ["newest first", "the next page", "a day"].contains(&name) {
            let sorted = plan.contains("TEMP B-TREE FOR ORDER BY") || plan.contains("Sort Key");
            assert!(!sorted, "{name}: sorted\n{plan}");
        }
    }
}

/// Timings of the common searches on 100,000 recordings (a benchmark, not a test: it asserts
/// nothing about time). Run:
/// `cargo test -p callvault-catalog --release -- --ignored --nocapture search_timings`
/// (with `CALLVAULT_TEST_POSTGRES_URL` set for the PostgreSQL figures).
async fn search_timings(catalog: &Catalog) {
    const N: usize = 100_000;
    let seeding = std::time::Instant::now();
    seed(catalog, N).await;
    eprintln!("seeded {N} recordings in {:.1?}", seeding.elapsed());
    let mut searches = common_searches();
    let q = SearchQuery::default;
    searches.push((
        "party (substring)",
        Scope::All,
        SearchQuery {
            party: Some("caller99999".to_owned()),
            ..q()
        },
    ));
    searches.push((
        "digits (substring, rare)",
        Scope::All,
        SearchQuery {
            digits: Some("34#".to_owned()),
            tenant: Some("globex".to_owned()),
            ..q()
        },
    ));
    for (name, scope, query) in searches {
        let mut times = Vec::new();
        let mut found = 0;
        for _ in 0..5 {
            let started = std::time::Instant::now();
            found = catalog.search(&scope, &query).await.unwrap().items.len();
            times.push(started.elapsed());
        }
        times.sort();
        eprintln!(
            "{name:<28} {found:>4} items  median {:>9.2?}  max {:>9.2?}",
            times[2], times[4]
        );
    }
}

mod timings {
    use super::*;
    on_both_engines_ignored!(search_timings);
}
