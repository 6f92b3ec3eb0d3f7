//! Checkouts, subscriptions and payment events applied at most once.

use sparebox_core::{AgentState, CommandId, CommandKind, CommandStatus, HostId, Reserve, Tier};
use sparebox_store::{
    BillingEffect, BillingOutcome, CheckoutRecord, HostSettings, NewBillingEvent, NewCheckout,
    Store, StoreError, SubscriptionStatus,
};
use uuid::Uuid;

use crate::common::{at, hardware, heartbeat, host, new_agent, Backend, World};

fn event(id: &str, secs: i64) -> NewBillingEvent {
    NewBillingEvent {
        id: id.to_owned(),
        kind: "test.event".to_owned(),
        received_at: at(secs),
    }
}

fn complete(checkout: &CheckoutRecord, subscription: &str) -> BillingEffect {
    BillingEffect::CompleteCheckout {
        checkout: checkout.id,
        subscription: subscription.to_owned(),
        customer: "cus_1".to_owned(),
        deploy: CommandId::new_random(),
        reserve: Reserve::default(),
    }
}

fn set_status(subscription: &str, status: SubscriptionStatus) -> BillingEffect {
    BillingEffect::SetStatus {
        subscription: subscription.to_owned(),
        status,
        undeploy: CommandId::new_random(),
    }
}

async fn checkout_on<S: Store + Clone>(
    world: &World<S>,
    host: HostId,
    tier: Tier,
    secs: i64,
) -> CheckoutRecord {
    world
        .store
        .create_checkout(NewCheckout {
            id: Uuid::new_v4(),
            agent: new_agent(host, &world.owner, tier, secs),
            price_cents: 1500,
        })
        .await
        .expect("create checkout")
}

pub async fn checkout_completes_into_a_subscription_an_agent_and_its_deploy<B: Backend>(
    backend: &B,
) {
    let world = World::new(backend.open().await).await;
    let checkout = checkout_on(&world, world.host.id, Tier::Standard, 10).await;
    let stored = world.store.checkout(checkout.id).await.unwrap().unwrap();
    assert_eq!(stored.agent.id, checkout.agent.id);
    assert_eq!(stored.agent.sealed_secrets, checkout.agent.sealed_secrets);
    assert_eq!(stored.price_cents, 1500);
    assert!(stored.completed_at.is_none());
    // A pending checkout reserves nothing.
    assert!(world
        .store
        .agents_for_host(world.host.id)
        .await
        .unwrap()
        .is_empty());

    let outcome = world
        .store
        .apply_billing_event(event("evt_1", 20), complete(&checkout, "sub_1"))
        .await
        .unwrap();
    let BillingOutcome::Subscribed {
        subscription,
        agent,
        command,
    } = outcome
    else {
        panic!("expected a subscription, got {outcome:?}");
    };
    assert_eq!(subscription.id, "sub_1");
    assert_eq!(subscription.customer, "cus_1");
    assert_eq!(subscription.status, SubscriptionStatus::Active);
    assert_eq!(subscription.agent, checkout.agent.id);
    assert_eq!(subscription.tier, Tier::Standard);
    assert_eq!(subscription.price_cents, 1500);
    assert_eq!(agent.id, checkout.agent.id);
    assert_eq!(agent.state, AgentState::PendingDeploy);
    assert_eq!(command.kind, CommandKind::Deploy);
    assert_eq!(command.status, CommandStatus::Pending);
    assert_eq!(
        world.store.subscription("sub_1").await.unwrap(),
        Some(subscription)
    );
    let done = world.store.checkout(checkout.id).await.unwrap().unwrap();
    assert_eq!(done.completed_at, Some(at(20)));
}

pub async fn replayed_billing_event_changes_nothing<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let checkout = checkout_on(&world, world.host.id, Tier::Lite, 10).await;
    world
        .store
        .apply_billing_event(event("evt_1", 20), complete(&checkout, "sub_1"))
        .await
        .unwrap();
    let again = world
        .store
        .apply_billing_event(event("evt_1", 21), complete(&checkout, "sub_2"))
        .await
        .unwrap();
    assert!(matches!(again, BillingOutcome::Replayed), "{again:?}");
    // The same id with another effect changes nothing either.
    let other = world
        .store
        .apply_billing_event(
            event("evt_1", 22),
            set_status("sub_1", SubscriptionStatus::Canceled),
        )
        .await
        .unwrap();
    assert!(matches!(other, BillingOutcome::Replayed), "{other:?}");
    assert_eq!(
        world
            .store
            .subscription("sub_1")
            .await
            .unwrap()
            .unwrap()
            .status,
        SubscriptionStatus::Active
    );
    assert!(world.store.subscription("sub_2").await.unwrap().is_none());
    assert_eq!(
        world
            .store
            .agents_for_host(world.host.id)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn checkout_completes_once<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let checkout = checkout_on(&world, world.host.id, Tier::Lite, 10).await;
    world
        .store
        .apply_billing_event(event("evt_1", 20), complete(&checkout, "sub_1"))
        .await
        .unwrap();
    let second = world
        .store
        .apply_billing_event(event("evt_2", 21), complete(&checkout, "sub_2"))
        .await
        .unwrap();
    assert!(matches!(second, BillingOutcome::Recorded), "{second:?}");
    assert!(world.store.subscription("sub_2").await.unwrap().is_none());
    assert_eq!(
        world
            .store
            .agents_for_host(world.host.id)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn checkout_without_room_needs_refund_and_creates_no_agent<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    // A host that takes one agent at most.
    let small = host(&world.store, &world.owner, 3).await;
    world
        .store
        .record_heartbeat(small.id, heartbeat(hardware(64, 16)), at(4))
        .await
        .unwrap();
    world
        .store
        .set_host_settings(
            small.id,
            HostSettings {
                max_agents: Some(1),
                ..HostSettings::default()
            },
        )
        .await
        .unwrap();
    let first = checkout_on(&world, small.id, Tier::Standard, 10).await;
    let second = checkout_on(&world, small.id, Tier::Standard, 11).await;
    let won = world
        .store
        .apply_billing_event(event("evt_1", 20), complete(&first, "sub_1"))
        .await
        .unwrap();
    assert!(matches!(won, BillingOutcome::Subscribed { .. }), "{won:?}");
    let lost = world
        .store
        .apply_billing_event(event("evt_2", 21), complete(&second, "sub_2"))
        .await
        .unwrap();
    let BillingOutcome::NeedsRefund(subscription) = lost else {
        panic!("expected needs_refund, got {lost:?}");
    };
    assert_eq!(subscription.status, SubscriptionStatus::NeedsRefund);
    assert_eq!(subscription.agent, second.agent.id);
    assert!(world.store.agent(second.agent.id).await.unwrap().is_none());
    assert_eq!(
        world.store.agents_for_host(small.id).await.unwrap().len(),
        1
    );
    // A payment failure leaves it needing a refund; only a cancellation moves it.
    world
        .store
        .apply_billing_event(
            event("evt_3", 22),
            set_status("sub_2", SubscriptionStatus::PastDue),
        )
        .await
        .unwrap();
    assert_eq!(
        world
            .store
            .subscription("sub_2")
            .await
            .unwrap()
            .unwrap()
            .status,
        SubscriptionStatus::NeedsRefund
    );
    let canceled = world
        .store
        .apply_billing_event(
            event("evt_4", 23),
            set_status("sub_2", SubscriptionStatus::Canceled),
        )
        .await
        .unwrap();
    let BillingOutcome::StatusChanged { undeploy, .. } = canceled else {
        panic!("expected a status change, got {canceled:?}");
    };
    assert!(undeploy.is_none());
}

pub async fn canceled_subscription_undeploys_its_agent_once<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let checkout = checkout_on(&world, world.host.id, Tier::Lite, 10).await;
    world
        .store
        .apply_billing_event(event("evt_1", 20), complete(&checkout, "sub_1"))
        .await
        .unwrap();
    let agent = checkout.agent.id;
    let mut wakeups = world.store.host_wakeups();

    let past_due = world
        .store
        .apply_billing_event(
            event("evt_2", 30),
            set_status("sub_1", SubscriptionStatus::PastDue),
        )
        .await
        .unwrap();
    let BillingOutcome::StatusChanged {
        subscription,
        undeploy,
    } = past_due
    else {
        panic!("expected a status change, got {past_due:?}");
    };
    assert_eq!(subscription.status, SubscriptionStatus::PastDue);
    assert_eq!(subscription.updated_at, at(30));
    assert!(undeploy.is_none());
    assert_eq!(
        world.store.agent(agent).await.unwrap().unwrap().state,
        AgentState::PendingDeploy
    );

    let canceled = world
        .store
        .apply_billing_event(
            event("evt_3", 40),
            set_status("sub_1", SubscriptionStatus::Canceled),
        )
        .await
        .unwrap();
    let BillingOutcome::StatusChanged {
        subscription,
        undeploy: Some(undeploy),
    } = canceled
    else {
        panic!("expected an undeploy, got {canceled:?}");
    };
    assert_eq!(subscription.status, SubscriptionStatus::Canceled);
    assert_eq!(undeploy.kind, CommandKind::Undeploy);
    assert_eq!(undeploy.agent, agent);
    assert_eq!(
        world.store.agent(agent).await.unwrap().unwrap().state,
        AgentState::Undeploying
    );
    // The undeploy replaced the deploy that had not been delivered.
    let commands = world.store.commands_for_agent(agent, 10).await.unwrap();
    assert_eq!(commands[1].status, CommandStatus::Superseded);
    let woken = tokio::time::timeout(std::time::Duration::from_secs(10), wakeups.recv())
        .await
        .expect("a wakeup")
        .unwrap();
    assert_eq!(woken, world.host.id);

    // Canceled is terminal: a later event changes nothing and queues nothing.
    for (id, status) in [
        ("evt_4", SubscriptionStatus::Active),
        ("evt_5", SubscriptionStatus::Canceled),
    ] {
        let later = world
            .store
            .apply_billing_event(event(id, 50), set_status("sub_1", status))
            .await
            .unwrap();
        assert!(matches!(later, BillingOutcome::Recorded), "{later:?}");
    }
    assert_eq!(
        world
            .store
            .commands_for_agent(agent, 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

pub async fn unknown_checkout_or_subscription_is_only_recorded<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let phantom = CheckoutRecord {
        id: Uuid::new_v4(),
        agent: new_agent(world.host.id, &world.owner, Tier::Lite, 1),
        price_cents: 1,
        completed_at: None,
    };
    for (id, effect) in [
        ("evt_1", complete(&phantom, "sub_x")),
        ("evt_2", set_status("sub_y", SubscriptionStatus::Canceled)),
        ("evt_3", BillingEffect::Nothing),
    ] {
        let outcome = world
            .store
            .apply_billing_event(event(id, 10), effect)
            .await
            .unwrap();
        assert!(matches!(outcome, BillingOutcome::Recorded), "{outcome:?}");
    }
    let replay = world
        .store
        .apply_billing_event(event("evt_3", 11), BillingEffect::Nothing)
        .await
        .unwrap();
    assert!(matches!(replay, BillingOutcome::Replayed), "{replay:?}");
    assert!(world.store.subscription("sub_x").await.unwrap().is_none());
}

pub async fn subscriptions_are_listed_by_owner_oldest_first<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let first = checkout_on(&world, world.host.id, Tier::Lite, 10).await;
    let second = checkout_on(&world, world.host.id, Tier::Pro, 11).await;
    for (i, (checkout, sub)) in [(&second, "sub_b"), (&first, "sub_a")]
        .into_iter()
        .enumerate()
    {
        world
            .store
            .apply_billing_event(
                event(&format!("evt_{i}"), 20 + i as i64),
                complete(checkout, sub),
            )
            .await
            .unwrap();
    }
    let listed: Vec<_> = world
        .store
        .subscriptions_for_owner(world.owner.id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, ["sub_b", "sub_a"]);
    assert!(world
        .store
        .subscriptions_for_owner(Uuid::new_v4())
        .await
        .unwrap()
        .is_empty());
}

pub async fn checkout_on_unknown_host_is_not_found<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let err = world
        .store
        .create_checkout(NewCheckout {
            id: Uuid::new_v4(),
            agent: new_agent(HostId::new_random(), &world.owner, Tier::Lite, 10),
            price_cents: 100,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
}

pub async fn racing_replicas_apply_a_billing_event_once<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let checkout = checkout_on(&world, world.host.id, Tier::Lite, 10).await;
    let mut replicas = Vec::new();
    for _ in 0..8 {
        replicas.push(backend.open().await);
    }
    let tasks: Vec<_> = replicas
        .into_iter()
        .map(|replica| {
            let effect = complete(&checkout, "sub_1");
            tokio::spawn(async move {
                replica
                    .apply_billing_event(event("evt_race", 20), effect)
                    .await
            })
        })
        .collect();
    let mut applied = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            BillingOutcome::Subscribed { .. } => applied += 1,
            BillingOutcome::Replayed => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(
        world
            .store
            .agents_for_host(world.host.id)
            .await
            .unwrap()
            .len(),
        1
    );
    let commands = world
        .store
        .commands_for_agent(checkout.agent.id, 10)
        .await
        .unwrap();
    assert_eq!(commands.len(), 1);
}
