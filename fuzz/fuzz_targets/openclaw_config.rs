//! Feeds arbitrary text to the `openclaw.json` checks; an accepted config must never hold
//! a platform-owned key, and merging must yield the platform's gateway settings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparebox_core::openclaw_config::{DeployerConfig, GATEWAY_PORT};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = DeployerConfig::parse(text) else {
        return;
    };
    if let Some(gateway) = config.as_map().get("gateway") {
        for key in ["mode", "bind", "port", "auth"] {
            assert!(gateway.get(key).is_none(), "accepted gateway.{key}");
        }
    }
    let merged = config.with_platform_keys();
    assert_eq!(merged["gateway"]["port"], GATEWAY_PORT);
    assert_eq!(merged["gateway"]["bind"], "lan");
});
