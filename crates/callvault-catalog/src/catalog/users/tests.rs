//! Users and tokens on both engines: argon2id passwords, tokens stored as digests, revocation,
//! disabled users.

use crate::catalog::tests::*;
use crate::catalog::*;
use crate::error::Error;
use crate::scope::Scope;
use time::macros::datetime;

const T0: time::OffsetDateTime = datetime!(2026-12-01 09:00 UTC);

fn new_user(name: &str, role: Role, tenant: Option<&str>) -> NewUser {
    NewUser {
        name: name.to_owned(),
        password: format!("{name}'s long passphrase"),
        role,
        tenant: tenant.map(str::to_owned),
    }
}

async fn passwords_are_argon2id_and_verified(catalog: &Catalog) {
    let bob = catalog
        .add_user(&new_user("bob", Role::Reviewer, Some("acme")), &alice(), T0)
        .await
        .unwrap();
    assert_eq!(bob.scope(), Scope::Tenant("acme".to_owned()));
    catalog
        .add_user(&new_user("carol", Role::Admin, None), &alice(), T0)
        .await
        .unwrap();
    let stored = raw_texts(
        catalog,
        "SELECT password_hash FROM users WHERE name = 'bob'",
    )
    .await;
    assert!(stored[0].starts_with("$argon2id$v=19$"), "{}", stored[0]);
    assert!(!stored[0].contains("passphrase"));

    assert_eq!(
        catalog
            .verify_password("bob", "bob's long passphrase")
            .await
            .unwrap(),
        Some(bob.clone())
    );
    for (name, password) in [
        ("bob", "bob's long passphrasE"),
        ("bob", ""),
        ("nobody", "bob's long passphrase"),
    ] {
        assert_eq!(
            catalog.verify_password(name, password).await.unwrap(),
            None,
            "{name}"
        );
    }
    let users = catalog.users().await.unwrap();
    let listed: Vec<_> = users
        .iter()
        .map(|u| (u.name.as_str(), u.role, u.tenant.as_deref()))
        .collect();
    assert_eq!(
        listed,
        [
            ("bob", Role::Reviewer, Some("acme")),
            ("carol", Role::Admin, None)
        ]
    );

    let err = catalog
        .add_user(&new_user("bob", Role::Viewer, None), &alice(), T0)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UserExists { ref name } if name == "bob"),
        "{err:?}"
    );
    for (user, field) in [
        (
            NewUser {
                password: "short".to_owned(),
                ..new_user("dave", Role::Viewer, None)
            },
            "password",
        ),
        (new_user("cli:root", Role::Admin, None), "name"),
        (new_user("with space", Role::Admin, None), "name"),
        (new_user("", Role::Admin, None), "name"),
        (new_user("erin", Role::Admin, Some("bad\ttenant")), "tenant"),
    ] {
        let err = catalog.add_user(&user, &alice(), T0).await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput { field: f, .. } if f == field),
            "{user:?}: {err:?}"
        );
    }

    let disabled = catalog.disable_user("bob", &alice(), T0).await.unwrap();
    assert_eq!(disabled.disabled_at, Some(T0));
    assert_eq!(
        catalog
            .verify_password("bob", "bob's long passphrase")
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        catalog.disable_user("nobody", &alice(), T0).await,
        Err(Error::UnknownUser { .. })
    ));
    // User management is audited, in the tenant of the user concerned.
    let trail = catalog
        .audit(&Scope::All, &AuditQuery::default())
        .await
        .unwrap();
    let details: Vec<_> = trail
        .items
        .iter()
        .rev()
        .map(|e| (e.action, e.detail.clone().unwrap(), e.tenant.clone()))
        .collect();
    assert_eq!(
        details[0],
        (
            AuditAction::Users,
            "added user bob with role reviewer in tenant acme".to_owned(),
            Some("acme".to_owned())
        )
    );
    assert_eq!(details.len(), 3);
}

async fn tokens_authenticate_until_revoked(catalog: &Catalog) {
    catalog
        .add_user(
            &new_user("bob", Role::Compliance, Some("acme")),
            &alice(),
            T0,
        )
        .await
        .unwrap();
    let first = catalog.create_token("bob", &alice(), T0).await.unwrap();
    let second = catalog.create_token("bob", &alice(), T0).await.unwrap();
    assert!(
        first.token.starts_with(TOKEN_PREFIX) && first.token.len() == 3 + 43,
        "{}",
        first.token
    );
    assert_ne!(first.token, second.token);
    assert!(first.info.id.starts_with("tok_"));
    assert!(
        !format!("{first:?}").contains(&first.token),
        "Debug hides the token"
    );
    let stored = raw_texts(
        catalog,
        "SELECT token_sha256 FROM tokens ORDER BY created_at, id",
    )
    .await;
    assert!(
        stored
            .iter()
            .all(|s| s.len() == 64 && !s.contains(&first.token[3..]))
    );

    let found = catalog
        .authenticate(&first.token, T0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (found.user.name.as_str(), found.token_id.as_str()),
        ("bob", first.info.id.as_str())
    );
    assert_eq!(found.user.role, Role::Compliance);
    let used = |id: String| async move {
        catalog
            .tokens(Some("bob"))
            .await
            .unwrap()
            .into_iter()
            .find(|t| t.id == id)
            .unwrap()
            .last_used_at
    };
    assert_eq!(used(first.info.id.clone()).await, Some(T0));
    // Within the minute the use is not written again; after it, it is.
    catalog
        .authenticate(&first.token, T0 + time::Duration::seconds(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used(first.info.id.clone()).await, Some(T0));
    let later = T0 + time::Duration::minutes(5);
    catalog
        .authenticate(&first.token, later)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(used(first.info.id.clone()).await, Some(later));

    for bad in ["", "cv_", "cv_AAAA", "Bearer x", &first.token[..20]] {
        assert_eq!(
            catalog.authenticate(bad, T0).await.unwrap(),
            None,
            "{bad:?}"
        );
    }
    // Revoked by id, and by the token itself.
    let revoked = catalog
        .revoke_token(&first.info.id, &alice(), later)
        .await
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(later));
    assert_eq!(
        catalog.authenticate(&first.token, later).await.unwrap(),
        None
    );
    assert!(
        catalog
            .authenticate(&second.token, later)
            .await
            .unwrap()
            .is_some()
    );
    catalog
        .revoke_token(&second.token, &alice(), later)
        .await
        .unwrap();
    assert_eq!(
        catalog.authenticate(&second.token, later).await.unwrap(),
        None
    );
    let err = catalog
        .revoke_token("cv_unknown", &alice(), later)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::UnknownToken { ref id } if id == "cv_…"),
        "{err:?}"
    );
    assert!(matches!(
        catalog.revoke_token("tok_0", &alice(), later).await,
        Err(Error::UnknownToken { .. })
    ));

    // A disabled user's tokens stop working; no token for unknown or disabled users.
    let third = catalog.create_token("bob", &alice(), T0).await.unwrap();
    catalog.disable_user("bob", &alice(), T0).await.unwrap();
    assert_eq!(
        catalog.authenticate(&third.token, later).await.unwrap(),
        None
    );
    for user in ["bob", "nobody"] {
        assert!(matches!(
            catalog.create_token(user, &alice(), T0).await,
            Err(Error::UnknownUser { .. })
        ));
    }
}

async fn a_token_keeps_its_label_and_stops_working_when_it_expires(catalog: &Catalog) {
    catalog
        .add_user(&new_user("bob", Role::Viewer, None), &alice(), T0)
        .await
        .unwrap();
    let expiry = T0 + time::Duration::days(30);
    let options = TokenOptions {
        label: Some("wallboard".to_owned()),
        expires_at: Some(expiry),
    };
    let token = catalog
        .create_token_with("bob", &options, &alice(), T0)
        .await
        .unwrap();
    assert_eq!(token.info.label.as_deref(), Some("wallboard"));
    assert_eq!(token.info.expires_at, Some(expiry));
    let listed = catalog.tokens(Some("bob")).await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&token.info));

    let just_before = expiry - time::Duration::milliseconds(1);
    assert!(
        catalog
            .authenticate(&token.token, just_before)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        catalog.authenticate(&token.token, expiry).await.unwrap(),
        None
    );
    // A token without options never expires.
    let forever = catalog.create_token("bob", &alice(), T0).await.unwrap();
    assert_eq!((forever.info.label, forever.info.expires_at), (None, None));
    assert!(
        catalog
            .authenticate(&forever.token, T0 + time::Duration::days(3650))
            .await
            .unwrap()
            .is_some()
    );

    for bad in [
        TokenOptions {
            label: Some("tab\x1b[2J".to_owned()),
            expires_at: None,
        },
        TokenOptions {
            label: Some("x".repeat(101)),
            expires_at: None,
        },
        TokenOptions {
            label: None,
            expires_at: Some(T0),
        },
    ] {
        assert!(
            matches!(
                catalog.create_token_with("bob", &bad, &alice(), T0).await,
                Err(Error::InvalidInput { .. })
            ),
            "{bad:?}"
        );
    }
    assert_eq!(catalog.tokens(Some("bob")).await.unwrap().len(), 2);
}

on_both_engines!(
    passwords_are_argon2id_and_verified,
    tokens_authenticate_until_revoked,
    a_token_keeps_its_label_and_stops_working_when_it_expires
);

#[test]
fn each_role_includes_the_one_below() {
    use Permission::*;
    let allowed = |role: Role| {
        [
            View,
            Play,
            Annotate,
            Download,
            Lock,
            Delete,
            Pause,
            ReadAudit,
            ManageUsers,
            Export,
            Share,
        ]
        .into_iter()
        .filter(|p| role.allows(*p))
        .count()
    };
    assert_eq!(allowed(Role::Viewer), 2);
    assert!(Role::Reviewer.allows(Annotate) && !Role::Reviewer.allows(Download));
    assert!(Role::Compliance.allows(Delete) && Role::Compliance.allows(ReadAudit));
    assert!(!Role::Compliance.allows(ManageUsers));
    assert!(Role::Compliance.allows(Export) && Role::Compliance.allows(Share));
    assert!(!Role::Reviewer.allows(Export) && !Role::Reviewer.allows(Share));
    assert_eq!(allowed(Role::Admin), 11);
    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
    }
    assert!("root".parse::<Role>().is_err());
}

#[tokio::test]
async fn the_dummy_hash_is_a_real_one() {
    // Unknown users are checked against it so that they take as long as known ones.
    assert!(argon2::password_hash::PasswordHash::new(super::DUMMY_HASH).is_ok());
    assert!(!super::password_matches(super::DUMMY_HASH.to_owned(), "x".to_owned()).await);
}
