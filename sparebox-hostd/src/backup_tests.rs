use std::fs;

use flate2::write::GzEncoder;
use flate2::Compression;
use sparebox_core::crypto::{open_backup, seal_backup};
use sparebox_core::{AgentId, CommandKind};
use sparebox_protocol::{AckStatus, Command, CommandParams};
use sparebox_runtime::fake::FakeCall;

use crate::testing::{command, session_key, FakeServer, Harness};

async fn deployed(harness: &Harness) -> AgentId {
    let agent = AgentId::new_random();
    let ack = harness
        .executor
        .execute(&command(CommandKind::Deploy, agent))
        .await;
    assert_eq!(ack.status, AckStatus::Acked, "{:?}", ack.error);
    agent
}

fn restore(agent: AgentId) -> Command {
    let mut restore = command(CommandKind::Restore, agent);
    restore.params = Some(CommandParams::Restore {
        backup_id: "b".into(),
    });
    restore
}

/// Makes the fake server hand out `archive`, sealed for `restore`, to that command.
fn offer(harness: &Harness, restore: &Command, archive: &[u8]) {
    let key = session_key(restore.id);
    let sealed = seal_backup(&key, restore.agent_id, restore.id, archive).unwrap();
    let mut backups = harness.server.backups.lock().unwrap();
    backups.insert(restore.id, sealed);
}

fn stops_and_starts(harness: &Harness) -> (usize, usize) {
    let calls = harness.runtime.mutations();
    let stops = calls
        .iter()
        .filter(|c| matches!(c, FakeCall::Stop(..)))
        .count();
    let starts = calls
        .iter()
        .filter(|c| matches!(c, FakeCall::Start(..)))
        .count();
    (stops, starts)
}

#[tokio::test]
async fn a_backup_uploads_the_state_and_a_restore_swaps_it_back_in() {
    let harness = Harness::new(FakeServer::with_files(&[("SOUL.md", "be kind")]), true);
    let agent = deployed(&harness).await;
    let state = harness.state_dir(agent);
    fs::create_dir_all(state.join("agents/main/sessions")).unwrap();
    fs::write(state.join("agents/main/sessions/s.jsonl"), "{}\n").unwrap();

    let backup = command(CommandKind::Backup, agent);
    let ack = harness.executor.execute(&backup).await;
    assert_eq!(ack.status, AckStatus::Acked, "{:?}", ack.error);
    let sealed = harness.server.backups.lock().unwrap()[&backup.id].clone();
    let key = session_key(backup.id);
    let archive = open_backup(&key, agent, backup.id, &sealed, 1 << 20).unwrap();

    fs::write(state.join("agents/main/sessions/s.jsonl"), "changed").unwrap();
    fs::write(state.join("workspace/NEW.md"), "made after the backup").unwrap();
    let restore = restore(agent);
    offer(&harness, &restore, &archive);
    let ack = harness.executor.execute(&restore).await;

    assert_eq!(ack.status, AckStatus::Acked, "{:?}", ack.error);
    assert_eq!(
        fs::read_to_string(state.join("agents/main/sessions/s.jsonl")).unwrap(),
        "{}\n"
    );
    assert!(!state.join("workspace/NEW.md").exists());
    assert_eq!(
        fs::read_to_string(state.join("workspace/SOUL.md")).unwrap(),
        "be kind"
    );
    assert!(state.join("openclaw.json").is_file());
    assert_eq!(stops_and_starts(&harness), (1, 1), "stopped for the swap");
}

#[tokio::test]
async fn a_hostile_archive_is_refused_before_the_agent_is_touched() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = deployed(&harness).await;
    let restore = restore(agent);

    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..9].copy_from_slice(b"../escape");
    header.set_size(1);
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    let hostile = builder.into_inner().unwrap().finish().unwrap();
    offer(&harness, &restore, &hostile);

    let ack = harness.executor.execute(&restore).await;

    assert_eq!(ack.status, AckStatus::Failed);
    assert!(ack.error.unwrap().contains("refused"));
    assert_eq!(stops_and_starts(&harness), (0, 0));
    assert!(!harness.dir.path().join("agents/escape").exists());
    assert!(harness.state_dir(agent).join("openclaw.json").is_file());
}

#[tokio::test]
async fn an_archive_sealed_for_another_command_or_missing_key_fails() {
    let harness = Harness::new(FakeServer::default(), true);
    let agent = deployed(&harness).await;
    let restore = restore(agent);
    let other = command(CommandKind::Restore, agent);
    offer(&harness, &other, b"x");
    let sealed = harness.server.backups.lock().unwrap()[&other.id].clone();
    harness
        .server
        .backups
        .lock()
        .unwrap()
        .insert(restore.id, sealed);
    let ack = harness.executor.execute(&restore).await;
    assert!(ack.error.unwrap().contains("does not verify"));

    let mut keyless = command(CommandKind::Backup, agent);
    keyless.session_key = None;
    let ack = harness.executor.execute(&keyless).await;
    assert!(ack.error.unwrap().contains("no session key"));
}
