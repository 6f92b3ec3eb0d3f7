//! Heartbeat responses as a host daemon receives them: any bytes either fail to decode or
//! decode into a response that re-encodes and decodes to the same value, whose commands
//! each name a known command type and whose session keys (when present) are usable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparebox_protocol::{HeartbeatResponse, MAX_HEARTBEAT_BYTES};

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_HEARTBEAT_BYTES {
        return;
    }
    let Ok(response) = serde_json::from_slice::<HeartbeatResponse>(data) else {
        return;
    };
    for command in &response.commands {
        let _ = command.kind.needs_bundle();
    }
    let encoded = serde_json::to_vec(&response).expect("a decoded response encodes");
    let decoded: HeartbeatResponse =
        serde_json::from_slice(&encoded).expect("an encoded response decodes");
    assert_eq!(decoded, response);
});
