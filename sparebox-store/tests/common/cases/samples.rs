//! Agents' resource samples: thinned to one per interval, read back oldest first, pruned.

use sparebox_core::AgentId;
use sparebox_store::{AgentSample, SampleRetention, Store, StoreError};

use crate::common::{at, Backend, World};

fn sample(agent: AgentId, secs: i64, cpu: f64, ram: u64) -> AgentSample {
    AgentSample {
        agent,
        at: at(secs),
        cpu_percent: Some(cpu),
        ram_usage_mb: Some(ram),
        ram_limit_mb: Some(2048),
    }
}

pub async fn samples_are_thinned_to_one_per_interval_and_read_oldest_first<B: Backend>(
    backend: &B,
) {
    let world = World::new(backend.open().await).await;
    let (agent, _) = world.deploy(10).await;
    let (other, _) = world.deploy(11).await;
    let retention = SampleRetention::default();
    let store = &world.store;

    assert!(store
        .record_agent_sample(sample(agent.id, 100, 12.5, 700), retention)
        .await
        .unwrap());
    assert!(!store
        .record_agent_sample(sample(agent.id, 130, 99.0, 900), retention)
        .await
        .unwrap());
    assert!(store
        .record_agent_sample(sample(agent.id, 161, 250.0, 800), retention)
        .await
        .unwrap());
    assert!(store
        .record_agent_sample(sample(other.id, 130, 1.0, 100), retention)
        .await
        .unwrap());
    let blank = AgentSample {
        cpu_percent: None,
        ram_usage_mb: None,
        ram_limit_mb: None,
        ..sample(agent.id, 300, 0.0, 0)
    };
    assert!(store
        .record_agent_sample(blank.clone(), retention)
        .await
        .unwrap());

    let all = store.agent_samples(agent.id, at(0)).await.unwrap();
    assert_eq!(
        all,
        vec![
            sample(agent.id, 100, 12.5, 700),
            sample(agent.id, 161, 250.0, 800),
            blank
        ]
    );
    let recent = store.agent_samples(agent.id, at(161)).await.unwrap();
    assert_eq!(recent.len(), 2);
    assert_eq!(recent[0].at, at(161));
}

pub async fn samples_older_than_the_retention_are_pruned<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, _) = world.deploy(10).await;
    let (other, _) = world.deploy(11).await;
    let retention = SampleRetention {
        min_interval: chrono::Duration::seconds(60),
        keep_for: chrono::Duration::seconds(1000),
    };
    let store = &world.store;
    store
        .record_agent_sample(sample(other.id, 100, 1.0, 1), retention)
        .await
        .unwrap();
    store
        .record_agent_sample(sample(agent.id, 500, 2.0, 2), retention)
        .await
        .unwrap();
    store
        .record_agent_sample(sample(agent.id, 1200, 3.0, 3), retention)
        .await
        .unwrap();

    assert!(store
        .agent_samples(other.id, at(0))
        .await
        .unwrap()
        .is_empty());
    let kept = store.agent_samples(agent.id, at(0)).await.unwrap();
    assert_eq!(
        kept.iter().map(|s| s.at).collect::<Vec<_>>(),
        vec![at(500), at(1200)]
    );
}

pub async fn sample_for_unknown_agent_is_not_found<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let err = world
        .store
        .record_agent_sample(
            sample(AgentId::new_random(), 100, 1.0, 1),
            SampleRetention::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}
