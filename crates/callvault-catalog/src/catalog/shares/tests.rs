//! Share links on both engines: the token finds its link and is stored only hashed; links
//! are made and revoked within a scope, audited, and never made for a tombstone.

use crate::catalog::tests::*;
use crate::catalog::*;
use crate::error::Error;
use crate::scope::Scope;
use time::macros::datetime;

const T0: time::OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

fn link(recording_id: &str) -> NewShareLink {
    NewShareLink {
        recording_id: recording_id.to_owned(),
        expires_at: T0 + time::Duration::days(7),
        allow_download: false,
        note: Some("for the customer".to_owned()),
    }
}

async fn a_token_finds_its_link_and_is_stored_only_hashed(catalog: &Catalog) {
    ended(catalog, "r", Some("acme"), datetime!(2026-11-30 10:00 UTC)).await;
    let made = catalog
        .create_share(&Scope::All, &link("r"), &alice(), T0)
        .await
        .unwrap();
    assert_eq!(made.token.len(), 43, "32 bytes, base64url");
    assert!(made.link.id.starts_with("shr_"));
    assert!(!format!("{made:?}").contains(&made.token));
    assert_eq!(
        catalog.share_by_token(&made.token).await.unwrap(),
        Some(made.link.clone())
    );
    assert_eq!(catalog.share_by_token("not-a-token").await.unwrap(), None);
    // Nowhere in the catalog in clear: not in the links, not in the audit trail.
    let stored = raw_texts(
        catalog,
        "SELECT id || ' ' || token_sha256 || ' ' || COALESCE(note, '') FROM share_links",
    )
    .await;
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(&made.token));
    let audit = raw_texts(
        catalog,
        "SELECT user_name || ' ' || COALESCE(detail, '') || ' ' || COALESCE(reason, '') FROM audit",
    )
    .await;
    assert!(audit.iter().all(|entry| !entry.contains(&made.token)));
    assert!(audit.iter().any(|entry| entry.contains(&made.link.id)));
}

async fn links_are_made_and_revoked_within_a_scope(catalog: &Catalog) {
    ended(catalog, "r", Some("acme"), datetime!(2026-11-30 10:00 UTC)).await;
    ended(
        catalog,
        "other",
        Some("globex"),
        datetime!(2026-11-30 10:00 UTC),
    )
    .await;
    let acme = Scope::Tenant("acme".to_owned());
    assert!(matches!(
        catalog
            .create_share(&acme, &link("other"), &alice(), T0)
            .await,
        Err(Error::NotFound { .. })
    ));
    let made = catalog
        .create_share(&acme, &link("r"), &alice(), T0)
        .await
        .unwrap();
    let globex = Scope::Tenant("globex".to_owned());
    assert!(catalog.shares_of(&globex, "r").await.unwrap().is_empty());
    assert!(matches!(
        catalog
            .revoke_share(&globex, &made.link.id, &alice(), T0)
            .await,
        Err(Error::NotFound { .. })
    ));
    let at = T0 + time::Duration::hours(1);
    let revoked = catalog
        .revoke_share(&acme, &made.link.id, &alice(), at)
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(revoked.revoked_by.as_deref(), Some("alice"));
    // Twice keeps the first; audited once.
    let again = catalog
        .revoke_share(
            &acme,
            &made.link.id,
            &alice(),
            at + time::Duration::hours(1),
        )
        .await
        .unwrap();
    assert_eq!(again.revoked_at, Some(at));
    let unshares = catalog
        .audit(
            &Scope::All,
            &AuditQuery {
                action: Some(AuditAction::Unshare),
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap()
        .items;
    assert_eq!(unshares.len(), 1);
    assert_eq!(unshares[0].recording_id.as_deref(), Some("r"));
    assert_eq!(unshares[0].tenant.as_deref(), Some("acme"));
    assert_eq!(catalog.shares_of(&acme, "r").await.unwrap(), [again]);
}

async fn no_link_to_a_tombstone_or_into_the_past(catalog: &Catalog) {
    ended(catalog, "r", None, datetime!(2026-11-30 10:00 UTC)).await;
    let mut past = link("r");
    past.expires_at = T0;
    assert!(matches!(
        catalog.create_share(&Scope::All, &past, &alice(), T0).await,
        Err(Error::InvalidInput { .. })
    ));
    catalog
        .delete(&Scope::All, "r", "retention", &alice(), T0)
        .await
        .unwrap();
    assert!(matches!(
        catalog
            .create_share(&Scope::All, &link("r"), &alice(), T0)
            .await,
        Err(Error::Deleted { .. })
    ));
    assert!(
        catalog
            .shares_of(&Scope::All, "r")
            .await
            .unwrap()
            .is_empty()
    );
}

on_both_engines!(
    a_token_finds_its_link_and_is_stored_only_hashed,
    links_are_made_and_revoked_within_a_scope,
    no_link_to_a_tombstone_or_into_the_past,
);
