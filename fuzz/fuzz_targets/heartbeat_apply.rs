//! Heartbeats as the platform applies them: any decodable request (acks, status reports,
//! engine events) from a registered host either is refused with a client error or is
//! applied, and never panics or fails inside the store. Ids `00000000-...-00000000000N`
//! in acks, reports and events stand for the harness's real commands and agents, so short
//! inputs reach the ack and report paths.
#![no_main]

#[path = "common/platform.rs"]
mod platform;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sparebox_protocol::{HeartbeatRequest, MAX_HEARTBEAT_BYTES};
use sparebox_server::{ErrorCode, PlatformConfig};

fuzz_target!(|data: &[u8]| {
    static HARNESS: OnceLock<platform::Harness> = OnceLock::new();
    if data.len() > MAX_HEARTBEAT_BYTES {
        return;
    }
    let Ok(mut request) = serde_json::from_slice::<HeartbeatRequest>(data) else {
        return;
    };
    let h = HARNESS.get_or_init(|| platform::harness(PlatformConfig::default()));
    request.wait_seconds = None;
    for ack in &mut request.command_acks {
        ack.id = platform::aim(ack.id.0, &h.commands).unwrap_or(ack.id);
    }
    for report in &mut request.agent_statuses {
        report.agent_id = platform::aim(report.agent_id.0, &h.agents).unwrap_or(report.agent_id);
    }
    for event in &mut request.agent_events {
        event.agent_id = platform::aim(event.agent_id.0, &h.agents).unwrap_or(event.agent_id);
    }
    if let Err(err) = h.runtime.block_on(h.platform.heartbeat(&h.host, request)) {
        assert_ne!(err.code, ErrorCode::Internal, "{err}");
    }
});
