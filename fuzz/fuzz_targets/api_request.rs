//! JSON request bodies of the API that carry custom validation, as the platform handles
//! them for a signed-in deployer and host owner. The first input byte picks the body:
//! agent creation (`POST /api/v1/agents`), a configuration change
//! (`PUT /api/v1/agents/{id}/config`) or host settings (`PUT /api/v1/hosts/{id}/settings`).
//! Every body is either refused with a client error (bad request, conflict) or applied;
//! none panics or fails inside the store.
#![no_main]

#[path = "common/platform.rs"]
mod platform;

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sparebox_server::{
    AgentRequest, ConfigUpdate, ErrorCode, HostSettingsRequest, PlatformConfig, PlatformError,
};

/// The API's body limit for JSON requests is larger; a megabyte is plenty to explore.
const MAX_BODY: usize = 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    static HARNESS: OnceLock<platform::Harness> = OnceLock::new();
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    if body.len() > MAX_BODY {
        return;
    }
    let h = HARNESS.get_or_init(|| platform::harness(PlatformConfig::default()));
    let result: Option<Result<(), PlatformError>> = h.runtime.block_on(async {
        match which % 3 {
            0 => {
                let mut request: AgentRequest = serde_json::from_slice(body).ok()?;
                request.host_id = h.host.id;
                Some(h.platform.create_agent(&h.owner, request).await.map(|_| ()))
            }
            1 => {
                let update: ConfigUpdate = serde_json::from_slice(body).ok()?;
                let agent = h.agents[usize::from(which) % h.agents.len()];
                Some(
                    h.platform
                        .update_config(&h.owner, agent, update)
                        .await
                        .map(|_| ()),
                )
            }
            _ => {
                let settings: HostSettingsRequest = serde_json::from_slice(body).ok()?;
                let result = h
                    .platform
                    .set_host_settings(&h.owner, h.host.id, settings)
                    .await;
                Some(result.map(|_| ()))
            }
        }
    });
    if let Some(Err(err)) = result {
        assert_ne!(err.code, ErrorCode::Internal, "{err}");
    }
});
