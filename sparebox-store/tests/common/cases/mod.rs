//! The conformance cases: every backend must pass each of them unchanged.

mod accounts;
mod agents;
mod backups;
mod billing;
mod commands;
mod durability;
mod hosts;
mod logs;
mod moves;
mod races;
mod reports;
mod samples;

pub use accounts::*;
pub use agents::*;
pub use backups::*;
pub use billing::*;
pub use commands::*;
pub use durability::*;
pub use hosts::*;
pub use logs::*;
pub use moves::*;
pub use races::*;
pub use reports::*;
pub use samples::*;

use sparebox_core::{CommandId, CommandStatus};
use sparebox_protocol::{AckStatus, CommandAck};
use sparebox_store::Store;

fn ack(id: CommandId) -> CommandAck {
    CommandAck {
        id,
        status: AckStatus::Acked,
        error: None,
    }
}

fn nack(id: CommandId, error: &str) -> CommandAck {
    CommandAck {
        id,
        status: AckStatus::Failed,
        error: Some(error.into()),
    }
}

async fn status_of(store: &impl Store, id: CommandId) -> CommandStatus {
    store
        .command(id)
        .await
        .unwrap()
        .expect("command exists")
        .status
}
