//! Command parameters and uploaded command logs: kept, replaced on re-upload, expired.

use sparebox_core::{CommandId, CommandKind};
use sparebox_protocol::CommandParams;
use sparebox_store::{CommandLogs, Store, StoreError};

use crate::common::{at, new_command, Backend, World};

fn logs(command: CommandId, text: &[u8], expires: i64) -> CommandLogs {
    CommandLogs {
        command,
        sealed: text.to_vec(),
        bytes: text.len() as u64,
        truncated: false,
        uploaded_at: at(expires - 3600),
        expires_at: at(expires),
    }
}

pub async fn command_params_and_upgrade_image_round_trip<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let (agent, _) = world.deploy(10).await;
    let mut read = new_command(agent.id, agent.host, CommandKind::Logs, 20);
    read.params = Some(CommandParams::logs(200, Some(60), 4096).unwrap());
    let mut upgrade = new_command(agent.id, agent.host, CommandKind::Upgrade, 21);
    upgrade.image = Some("ghcr.io/openclaw/openclaw:2026.10.1".into());

    let stored = world.store.enqueue_command(read.clone()).await.unwrap();
    assert_eq!(stored.params, read.params);
    world.store.enqueue_command(upgrade.clone()).await.unwrap();
    let back = world.store.command(upgrade.id).await.unwrap().unwrap();
    assert_eq!(back.image, upgrade.image);
    assert_eq!(back.params, None);
    let delivered = world
        .store
        .deliver_commands(world.host.id, at(30), 10)
        .await
        .unwrap();
    let delivered_read = delivered.iter().find(|c| c.id == read.id).unwrap();
    assert_eq!(delivered_read.params, read.params);
}

pub async fn command_logs_are_replaced_on_reupload_and_deleted_when_expired<B: Backend>(
    backend: &B,
) {
    let world = World::new(backend.open().await).await;
    let (agent, _) = world.deploy(10).await;
    let command = new_command(agent.id, agent.host, CommandKind::Logs, 20);
    world.store.enqueue_command(command.clone()).await.unwrap();
    let store = &world.store;

    assert_eq!(store.command_logs(command.id).await.unwrap(), None);
    store
        .put_command_logs(logs(command.id, b"first", 5000))
        .await
        .unwrap();
    store
        .put_command_logs(logs(command.id, b"second upload", 5000))
        .await
        .unwrap();
    let kept = store.command_logs(command.id).await.unwrap().unwrap();
    assert_eq!(kept, logs(command.id, b"second upload", 5000));

    assert_eq!(
        store.delete_expired_command_logs(at(4999)).await.unwrap(),
        0
    );
    assert_eq!(
        store.delete_expired_command_logs(at(5000)).await.unwrap(),
        1
    );
    assert_eq!(store.command_logs(command.id).await.unwrap(), None);
}

pub async fn logs_for_unknown_command_are_not_found<B: Backend>(backend: &B) {
    let world = World::new(backend.open().await).await;
    let err = world
        .store
        .put_command_logs(logs(CommandId::new_random(), b"x", 5000))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}
