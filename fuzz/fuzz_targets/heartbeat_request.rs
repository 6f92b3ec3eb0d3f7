//! Heartbeat requests as a server receives them: any bytes either fail to decode with an
//! error or decode into a request that re-encodes and decodes to the same value, and whose
//! status reports map onto the agent lifecycle without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparebox_protocol::{HeartbeatRequest, MAX_HEARTBEAT_BYTES};

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_HEARTBEAT_BYTES {
        return;
    }
    let Ok(request) = serde_json::from_slice::<HeartbeatRequest>(data) else {
        return;
    };
    for report in &request.agent_statuses {
        let _ = report.host_report().shown_state();
    }
    let encoded = serde_json::to_vec(&request).expect("a decoded request encodes");
    let decoded: HeartbeatRequest =
        serde_json::from_slice(&encoded).expect("an encoded request decodes");
    // NaN CPU figures cannot survive JSON; everything else must round-trip exactly.
    if request
        .agent_statuses
        .iter()
        .all(|r| r.cpu_percent.map_or(true, f64::is_finite))
    {
        assert_eq!(decoded, request);
    }
});
