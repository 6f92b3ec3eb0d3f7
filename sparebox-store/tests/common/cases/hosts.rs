//! Hosts, their keys and settings, and heartbeats.

use std::collections::{BTreeMap, BTreeSet};

use sparebox_core::{CommandKind, Reserve, Tier};
use sparebox_store::{HostSettings, NewHost, Store, StoreError};

use crate::common::{
    account, at, hardware, heartbeat, host, new_agent, new_command, random_hash, Backend,
};

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

pub async fn hosts_are_listed_by_owner<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let alice = account(&store, 0).await;
    let bob = account(&store, 1).await;
    let first = host(&store, &alice, 2).await;
    host(&store, &bob, 3).await;
    let second = host(&store, &alice, 4).await;

    assert_eq!(
        store.hosts_for_owner(alice.id).await.unwrap(),
        vec![first, second]
    );
    assert!(store
        .hosts_for_owner(uuid::Uuid::new_v4())
        .await
        .unwrap()
        .is_empty());
}

pub async fn rotated_host_key_replaces_the_old_one_at_once<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let owner = account(&store, 0).await;
    let old = random_hash();
    let registered = store
        .create_host(NewHost {
            owner: owner.id,
            name: "garage".into(),
            key_hash: old.clone(),
            key_prefix: "sbx_host_aaaa".into(),
            created_at: at(1),
        })
        .await
        .unwrap();
    let new = random_hash();

    let rotated = store
        .rotate_host_key(registered.id, new.clone(), "sbx_host_bbbb".into())
        .await
        .unwrap();

    assert_eq!(rotated.key_prefix, "sbx_host_bbbb");
    assert_eq!(store.host_by_key_hash(&old).await.unwrap(), None);
    assert_eq!(store.host_by_key_hash(&new).await.unwrap(), Some(rotated));
    let err = store
        .rotate_host_key(
            sparebox_core::HostId::new_random(),
            random_hash(),
            "x".into(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "host", .. }),
        "{err}"
    );
    let other = host(&store, &owner, 2).await;
    let err = store
        .rotate_host_key(other.id, new, "sbx_host_bbbb".into())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
}

pub async fn host_settings_default_to_every_tier_and_are_replaced<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let owner = account(&store, 0).await;
    let registered = host(&store, &owner, 1).await;
    assert_eq!(registered.settings, HostSettings::default());
    let settings = HostSettings {
        offered: BTreeSet::from([Tier::Lite, Tier::Pro]),
        prices: BTreeMap::from([(Tier::Lite, 500), (Tier::Pro, 1_000_000)]),
        max_agents: Some(3),
        region: Some("eu-west".into()),
    };

    let updated = store
        .set_host_settings(registered.id, settings.clone())
        .await
        .unwrap();

    assert_eq!(updated.settings, settings);
    assert_eq!(store.host(registered.id).await.unwrap(), Some(updated));
    let err = store
        .set_host_settings(sparebox_core::HostId::new_random(), settings)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound { what: "host", .. }),
        "{err}"
    );
}

pub async fn agent_of_a_tier_not_offered_or_beyond_the_cap_is_refused<B: Backend>(backend: &B) {
    let store = backend.open().await;
    let owner = account(&store, 0).await;
    let big = host(&store, &owner, 1).await;
    store
        .record_heartbeat(big.id, heartbeat(hardware(64, 16)), at(2))
        .await
        .unwrap();
    store
        .set_host_settings(
            big.id,
            HostSettings {
                offered: BTreeSet::from([Tier::Lite]),
                prices: BTreeMap::new(),
                max_agents: Some(1),
                region: None,
            },
        )
        .await
        .unwrap();
    let create = |tier, secs| {
        let agent = new_agent(big.id, &owner, tier, secs);
        let command = new_command(agent.id, agent.host, CommandKind::Deploy, secs);
        store.create_agent(agent, command, Reserve::default())
    };

    let err = create(Tier::Standard, 3).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NotOffered {
                tier: Tier::Standard,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!("host {} does not offer the standard tier", big.id)
    );
    create(Tier::Lite, 4).await.unwrap();
    let err = create(Tier::Lite, 5).await.unwrap_err();
    assert!(matches!(err, StoreError::HostAtCap { max: 1, .. }), "{err}");
    assert_eq!(store.agents_for_host(big.id).await.unwrap().len(), 1);
}
