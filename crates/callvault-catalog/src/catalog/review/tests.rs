//! Annotations, the review, custom fields and pauses on both engines.

use crate::catalog::tests::*;
use crate::catalog::*;
use crate::error::Error;
use crate::model::*;
use crate::scope::Scope;
use crate::testing::*;
use serde_json::json;
use time::macros::datetime;

const T0: time::OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

fn note(text: &str, offset_ms: Option<i64>) -> NewAnnotation {
    NewAnnotation {
        text: text.to_owned(),
        offset_ms,
    }
}

async fn annotations_are_kept_in_order_and_counted(catalog: &Catalog) {
    ended(catalog, "r", None, datetime!(2026-11-30 10:00 UTC)).await;
    ended(catalog, "quiet", None, datetime!(2026-11-30 09:00 UTC)).await;
    let all = Scope::All;
    let first = catalog
        .annotate(
            &all,
            "r",
            &note("customer gives card number", Some(61_500)),
            Some("QA-12"),
            &alice(),
            T0,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            first.text.as_str(),
            first.offset_ms,
            first.by.as_str(),
            first.at
        ),
        ("customer gives card number", Some(61_500), "alice", T0)
    );
    catalog
        .annotate(
            &all,
            "r",
            &note("polite close", None),
            None,
            &alice(),
            T0 + time::Duration::seconds(1),
        )
        .await
        .unwrap();
    let details = catalog.recording_details(&all, "r").await.unwrap().unwrap();
    assert_eq!(details.item.annotation_count, 2);
    assert_eq!(details.annotations[0], first);
    assert_eq!(details.annotations[1].offset_ms, None);
    let annotated = |flag| SearchQuery {
        annotated: Some(flag),
        ..SearchQuery::default()
    };
    let ids = |page: SearchPage| {
        page.items
            .into_iter()
            .map(|i| i.recording.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(catalog.search(&all, &annotated(true)).await.unwrap()),
        ["r"]
    );
    assert_eq!(
        ids(catalog.search(&all, &annotated(false)).await.unwrap()),
        ["quiet"]
    );
    for bad in [
        note("", None),
        note("  ", None),
        note("x", Some(-1)),
        note(&"x".repeat(10_001), None),
    ] {
        let err = catalog
            .annotate(&all, "r", &bad, None, &alice(), T0)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    }
    assert!(matches!(
        catalog
            .annotate(&all, "nope", &note("x", None), None, &alice(), T0)
            .await,
        Err(Error::NotFound { .. })
    ));
    let trail = catalog
        .audit(
            &all,
            &AuditQuery {
                action: Some(AuditAction::Annotate),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(trail.items.len(), 2);
    assert_eq!(trail.items[1].reason.as_deref(), Some("QA-12"));
}

async fn review_updates_are_partial_and_checked(catalog: &Catalog) {
    ended(catalog, "r", None, datetime!(2026-11-30 10:00 UTC)).await;
    let all = Scope::All;
    for (name, kind) in [
        ("queue", CustomFieldKind::Text),
        ("order_total", CustomFieldKind::Number),
        ("escalated", CustomFieldKind::Boolean),
        ("follow_up", CustomFieldKind::Date),
    ] {
        catalog
            .define_custom_field(
                &CustomField {
                    name: name.to_owned(),
                    kind,
                },
                &alice(),
                T0,
            )
            .await
            .unwrap();
    }
    // Again with the same kind: nothing changes; another kind: refused.
    catalog
        .define_custom_field(
            &CustomField {
                name: "queue".to_owned(),
                kind: CustomFieldKind::Text,
            },
            &alice(),
            T0,
        )
        .await
        .unwrap();
    assert!(matches!(
        catalog
            .define_custom_field(
                &CustomField {
                    name: "queue".to_owned(),
                    kind: CustomFieldKind::Number
                },
                &alice(),
                T0
            )
            .await,
        Err(Error::InvalidInput { field: "kind", .. })
    ));
    assert_eq!(catalog.custom_fields().await.unwrap().len(), 4);

    let update: ReviewUpdate = serde_json::from_value(json!({
        "score": 4, "complete": true, "categories": ["billing", "billing", " refund "],
        "custom": {"queue": "sales", "order_total": 129.5, "escalated": false, "follow_up": "2026-12-24"},
        "review_seconds": 95
    }))
    .unwrap();
    let review = catalog
        .update_review(&all, "r", &update, None, &alice(), T0)
        .await
        .unwrap();
    assert_eq!(review.score, Some(4));
    assert_eq!(review.complete, Some(true));
    assert_eq!(review.categories, ["billing", "refund"]);
    assert_eq!(review.custom["order_total"], json!(129.5));
    assert_eq!(review.review_seconds, Some(95));

    // Absent fields stay; null clears; custom merges key by key.
    let update: ReviewUpdate = serde_json::from_value(json!({
        "complete": null, "custom": {"queue": "support", "escalated": null}
    }))
    .unwrap();
    let review = catalog
        .update_review(&all, "r", &update, Some("recheck"), &alice(), T0)
        .await
        .unwrap();
    assert_eq!(
        (review.score, review.complete, review.review_seconds),
        (Some(4), None, Some(95))
    );
    assert_eq!(
        serde_json::Value::Object(review.custom.clone()),
        json!({"queue": "support", "order_total": 129.5, "follow_up": "2026-12-24"})
    );
    let details = catalog.recording_details(&all, "r").await.unwrap().unwrap();
    assert_eq!(details.item.score, Some(4));
    assert_eq!((details.complete, details.review_seconds), (None, Some(95)));
    assert_eq!(details.categories, ["billing", "refund"]);
    assert_eq!(details.custom, review.custom);

    // Bad values are refused and change nothing.
    for (update, expected) in [
        (json!({"score": 6}), "score"),
        (json!({"score": 0}), "score"),
        (json!({"review_seconds": -1}), "review_seconds"),
        (json!({"categories": [""]}), "categories"),
        (json!({"custom": {"order_total": "lots"}}), "custom"),
        (json!({"custom": {"escalated": "yes"}}), "custom"),
        (json!({"custom": {"follow_up": "24/12/2026"}}), "custom"),
        (json!({"score": 1, "custom": {"queue": 7}}), "custom"),
    ] {
        let update: ReviewUpdate = serde_json::from_value(update).unwrap();
        let err = catalog
            .update_review(&all, "r", &update, None, &alice(), T0)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput { field, .. } if field == expected),
            "{update:?}: {err:?}"
        );
    }
    let update: ReviewUpdate = serde_json::from_value(json!({"custom": {"mood": "calm"}})).unwrap();
    assert!(matches!(
        catalog.update_review(&all, "r", &update, None, &alice(), T0).await,
        Err(Error::UnknownCustomField { ref name }) if name == "mood"
    ));
    assert!(
        serde_json::from_value::<ReviewUpdate>(json!({"scor": 3})).is_err(),
        "typos are refused"
    );
    assert_eq!(
        catalog
            .recording_details(&all, "r")
            .await
            .unwrap()
            .unwrap()
            .item
            .score,
        Some(4)
    );

    catalog
        .remove_custom_field("queue", &alice(), T0)
        .await
        .unwrap();
    assert!(matches!(
        catalog.remove_custom_field("queue", &alice(), T0).await,
        Err(Error::UnknownCustomField { .. })
    ));
    let updates = catalog
        .audit(
            &all,
            &AuditQuery {
                action: Some(AuditAction::Update),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updates.items.len(), 2, "refused updates are not audited");
    assert_eq!(updates.items[0].reason.as_deref(), Some("recheck"));
    assert!(
        updates.items[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("support")
    );
    let fields = catalog
        .audit(
            &all,
            &AuditQuery {
                action: Some(AuditAction::Fields),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(fields.items.len(), 5);
}

async fn pauses_are_stored_once_and_closed(catalog: &Catalog) {
    catalog
        .insert_recording(&new_recording("live", T0))
        .await
        .unwrap();
    let open = Pause {
        seq: 0,
        from_ms: 12_000,
        to_ms: None,
        by: "agent-7".to_owned(),
    };
    let closed = Pause {
        to_ms: Some(31_500),
        ..open.clone()
    };
    let second = Pause {
        seq: 1,
        from_ms: 40_000,
        to_ms: None,
        by: "bob".to_owned(),
    };
    catalog.set_pause("live", &open).await.unwrap();
    catalog.set_pause("live", &closed).await.unwrap();
    // Replays: the opening again keeps the end; the end again changes nothing.
    catalog.set_pause("live", &open).await.unwrap();
    catalog.set_pause("live", &closed).await.unwrap();
    catalog.set_pause("live", &second).await.unwrap();
    let details = catalog
        .recording_details(&Scope::All, "live")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(details.paused, [closed.clone(), second]);
    assert!(matches!(
        catalog.set_pause("nope", &open).await,
        Err(Error::NotFound { .. })
    ));
    let backwards = Pause {
        to_ms: Some(1),
        ..open
    };
    assert!(matches!(
        catalog.set_pause("live", &backwards).await,
        Err(Error::InvalidInput { .. })
    ));
}

on_both_engines!(
    annotations_are_kept_in_order_and_counted,
    review_updates_are_partial_and_checked,
    pauses_are_stored_once_and_closed,
);
