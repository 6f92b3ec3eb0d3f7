//! Accounts, their API tokens and their sessions.

use std::collections::BTreeSet;

use chrono::TimeDelta;
use sparebox_store::{NewAccount, NewSession, Role, Store, StoreError};
use uuid::Uuid;

use crate::common::{account, at, new_account, new_token, random_hash, Backend};

pub async fn accounts_are_found_by_id_email_and_token_hash<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let new = new_account(0);
    let token = new_token(new.id, 0);
    let hash = token.token_hash.clone();

    let (created, first) = store
        .create_account(new.clone(), token.clone())
        .await
        .unwrap();

    assert_eq!(created.id, new.id);
    assert_eq!(created.email.as_deref(), Some(new.email.as_str()));
    assert_eq!(created.roles, new.roles);
    assert_eq!(created.created_at, at(0));
    assert_eq!((first.id, first.account), (token.id, new.id));
    assert_eq!(first.prefix, "sbx_pat_1234");
    assert_eq!(store.account(new.id).await.unwrap(), Some(created.clone()));
    assert_eq!(
        store.account_by_token_hash(&hash).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        store.account_by_token_hash(&random_hash()).await.unwrap(),
        None
    );
    let credentials = store.account_by_email(&new.email).await.unwrap().unwrap();
    assert_eq!(credentials.account, created);
    assert_eq!(credentials.password_hash, Some(new.password_hash.clone()));
    assert!(!format!("{credentials:?}").contains("argon2"));
    assert_eq!(
        store.account_by_email("nobody@example.com").await.unwrap(),
        None
    );
}

pub async fn account_email_taken_twice_is_a_conflict<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let first = new_account(0);
    let email = first.email.clone();
    store
        .create_account(first.clone(), new_token(first.id, 0))
        .await
        .unwrap();
    let second = NewAccount {
        email,
        ..new_account(1)
    };

    let err = store
        .create_account(second.clone(), new_token(second.id, 1))
        .await
        .unwrap_err();

    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(store.account(second.id).await.unwrap(), None);
}

pub async fn first_token_for_another_account_is_invalid<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let new = new_account(0);

    let err = store
        .create_account(new.clone(), new_token(Uuid::new_v4(), 0))
        .await
        .unwrap_err();

    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(store.account(new.id).await.unwrap(), None);
}

pub async fn account_roles_are_replaced<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let created = account(&store, 0).await;
    let roles = BTreeSet::from([Role::Admin, Role::Deployer]);

    let updated = store
        .set_account_roles(created.id, roles.clone())
        .await
        .unwrap();

    assert_eq!(updated.roles, roles);
    assert!(updated.has_role(Role::Admin) && !updated.has_role(Role::HostOwner));
    assert_eq!(store.account(created.id).await.unwrap(), Some(updated));
    let err = store
        .set_account_roles(Uuid::new_v4(), roles)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "account",
                ..
            }
        ),
        "{err}"
    );
}

pub async fn api_tokens_are_listed_and_revoked_only_by_their_owner<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let alice = account(&store, 0).await;
    let bob = account(&store, 1).await;
    let second = new_token(alice.id, 5);
    let hash = second.token_hash.clone();
    let created = store.create_api_token(second).await.unwrap();

    let listed = store.api_tokens_for_account(alice.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1], created);

    assert!(!store.delete_api_token(bob.id, created.id).await.unwrap());
    assert_eq!(
        store.account_by_token_hash(&hash).await.unwrap(),
        Some(alice.clone())
    );
    assert!(store.delete_api_token(alice.id, created.id).await.unwrap());
    assert_eq!(store.account_by_token_hash(&hash).await.unwrap(), None);
    assert!(!store.delete_api_token(alice.id, created.id).await.unwrap());
    assert_eq!(
        store.api_tokens_for_account(alice.id).await.unwrap().len(),
        1
    );

    let err = store
        .create_api_token(new_token(Uuid::new_v4(), 6))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "account",
                ..
            }
        ),
        "{err}"
    );
}

pub async fn sessions_are_found_until_they_expire_or_are_deleted<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let alice = account(&store, 0).await;
    let id_hash = random_hash();
    let csrf_hash = random_hash();
    store
        .create_session(NewSession {
            id_hash: id_hash.clone(),
            account: alice.id,
            csrf_hash: csrf_hash.clone(),
            created_at: at(10),
            expires_at: at(100),
        })
        .await
        .unwrap();
    let other = random_hash();
    store
        .create_session(NewSession {
            id_hash: other.clone(),
            account: alice.id,
            csrf_hash: random_hash(),
            created_at: at(10),
            expires_at: at(50),
        })
        .await
        .unwrap();

    let found = store
        .session_by_hash(&id_hash, at(99))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.account, alice);
    assert_eq!(found.csrf_hash, csrf_hash);
    assert_eq!((found.created_at, found.expires_at), (at(10), at(100)));
    assert_eq!(
        store.session_by_hash(&id_hash, at(100)).await.unwrap(),
        None
    );
    assert_eq!(
        store.session_by_hash(&random_hash(), at(11)).await.unwrap(),
        None
    );

    assert_eq!(
        store
            .delete_expired_sessions(at(50) + TimeDelta::microseconds(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(store.session_by_hash(&other, at(11)).await.unwrap(), None);
    assert!(store.delete_session(&id_hash).await.unwrap());
    assert!(!store.delete_session(&id_hash).await.unwrap());
    assert_eq!(store.session_by_hash(&id_hash, at(11)).await.unwrap(), None);

    let err = store
        .create_session(NewSession {
            id_hash: random_hash(),
            account: Uuid::new_v4(),
            csrf_hash: random_hash(),
            created_at: at(10),
            expires_at: at(100),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "account",
                ..
            }
        ),
        "{err}"
    );
}
