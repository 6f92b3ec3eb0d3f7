//! Accounts, hosts and heartbeats.

use sparebox_store::{NewAccount, NewHost, Store, StoreError};

use crate::common::{account, at, hardware, heartbeat, host, random_hash, Backend};

pub async fn accounts_are_found_by_token_hash_only<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let hash = random_hash();
    let created = store
        .create_account(NewAccount {
            name: "alice".into(),
            token_hash: hash.clone(),
            created_at: at(0),
        })
        .await
        .unwrap();

    assert_eq!(created.name, "alice");
    assert_eq!(created.created_at, at(0));
    assert_eq!(
        store.account_by_token_hash(&hash).await.unwrap(),
        Some(created)
    );
    assert_eq!(
        store.account_by_token_hash(&random_hash()).await.unwrap(),
        None
    );
}

pub async fn account_name_taken_twice_is_a_conflict<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let new = |hash| NewAccount {
        name: "bob".into(),
        token_hash: hash,
        created_at: at(0),
    };
    store.create_account(new(random_hash())).await.unwrap();

    let err = store.create_account(new(random_hash())).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

pub async fn hosts_are_listed_oldest_first_and_found_by_id_and_key<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let owner = account(&store, 0).await;
    let key = random_hash();
    let later = host(&store, &owner, 20).await;
    let earlier = store
        .create_host(NewHost {
            owner: owner.id,
            name: "garage".into(),
            key_hash: key.clone(),
            key_prefix: "sbh_abcd".into(),
            created_at: at(10),
        })
        .await
        .unwrap();

    assert_eq!(earlier.owner, owner.id);
    assert_eq!(earlier.hardware, None);
    assert_eq!(earlier.last_heartbeat_at, None);
    assert_eq!(store.host(earlier.id).await.unwrap(), Some(earlier.clone()));
    assert_eq!(
        store.host_by_key_hash(&key).await.unwrap(),
        Some(earlier.clone())
    );
    assert_eq!(store.host_by_key_hash(&random_hash()).await.unwrap(), None);
    assert_eq!(store.list_hosts().await.unwrap(), vec![earlier, later]);
}

pub async fn host_of_unknown_account_is_not_found<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let err = store
        .create_host(NewHost {
            owner: uuid::Uuid::new_v4(),
            name: "orphan".into(),
            key_hash: random_hash(),
            key_prefix: "sbh_0000".into(),
            created_at: at(0),
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

pub async fn heartbeat_records_hardware_isolation_and_version<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let owner = account(&store, 0).await;
    let registered = host(&store, &owner, 1).await;

    store
        .record_heartbeat(registered.id, heartbeat(hardware(8, 4)), at(5))
        .await
        .unwrap();

    let seen = store.host(registered.id).await.unwrap().unwrap();
    assert_eq!(seen.hardware, Some(hardware(8, 4)));
    assert_eq!(
        seen.isolation,
        Some(sparebox_protocol::IsolationMode::Docker)
    );
    assert_eq!(seen.daemon_version.as_deref(), Some("0.1.0"));
    assert_eq!(seen.last_heartbeat_at, Some(at(5)));
    assert_eq!(seen.created_at, registered.created_at);
}

pub async fn heartbeat_for_unknown_host_is_not_found<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let err = store
        .record_heartbeat(
            sparebox_core::HostId::new_random(),
            heartbeat(hardware(8, 4)),
            at(0),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "host", .. }),
        "{err}"
    );
}
