//! Verified isolation: the limits and hardening the engine actually applied, compared with
//! what the agent's tier requires. Each difference becomes one line such as
//! `memory: 1073741824 != 2147483648` (applied, then expected).

use std::fmt::Display;

use bollard::models::{ContainerInspectResponse, HostConfig};
use sparebox_core::Tier;
use sparebox_protocol::IsolationReport;

use super::create::{gateway_port_key, TierLimits, AGENT_USER, LOOPBACK};

/// Engine sockets that must never be mounted into an agent.
const ENGINE_SOCKETS: [&str; 2] = ["docker.sock", "podman.sock"];

/// Compares the inspected container with `tier` (`None` when its tier label is missing or
/// unknown, which is itself a mismatch). `network` is the only network it may be attached to.
pub(crate) fn verify_isolation(
    tier: Option<Tier>,
    container: &ContainerInspectResponse,
    network: &str,
) -> IsolationReport {
    let mut mismatches = Vec::new();
    let default_host = HostConfig::default();
    let host = container.host_config.as_ref().unwrap_or(&default_host);

    match tier {
        Some(tier) => check_limits(&mut mismatches, host, TierLimits::for_tier(tier)),
        None => mismatches.push("tier label: missing or unknown".to_owned()),
    }
    check_hardening(&mut mismatches, container, host);
    check_ports(&mut mismatches, host);
    check_mounts(&mut mismatches, container, host);
    check_network(&mut mismatches, container, host, network);

    IsolationReport {
        verified: mismatches.is_empty(),
        mismatches,
    }
}

fn mismatch(out: &mut Vec<String>, what: &str, applied: impl Display, expected: impl Display) {
    out.push(format!("{what}: {applied} != {expected}"));
}

fn shown<T: Display>(value: Option<T>) -> String {
    value.map_or_else(|| "unset".to_owned(), |v| v.to_string())
}

fn check_limits(out: &mut Vec<String>, host: &HostConfig, expected: TierLimits) {
    let limits = [
        ("memory", host.memory, expected.memory),
        ("memory_swap", host.memory_swap, expected.memory_swap),
        ("nano_cpus", host.nano_cpus, expected.nano_cpus),
        ("pids_limit", host.pids_limit, expected.pids),
    ];
    for (what, applied, expected) in limits {
        if applied != Some(expected) {
            mismatch(out, what, shown(applied), expected);
        }
    }
}

fn check_hardening(out: &mut Vec<String>, container: &ContainerInspectResponse, host: &HostConfig) {
    if host.readonly_rootfs != Some(true) {
        mismatch(out, "readonly_rootfs", shown(host.readonly_rootfs), true);
    }
    if host.privileged == Some(true) {
        mismatch(out, "privileged", true, false);
    }
    let cap_drop = host.cap_drop.as_deref().unwrap_or_default();
    if !cap_drop.iter().any(|c| c.eq_ignore_ascii_case("ALL")) {
        mismatch(out, "cap_drop", format!("{cap_drop:?}"), "[\"ALL\"]");
    }
    let cap_add = host.cap_add.as_deref().unwrap_or_default();
    if !cap_add.is_empty() {
        mismatch(out, "cap_add", format!("{cap_add:?}"), "[]");
    }
    let security = host.security_opt.as_deref().unwrap_or_default();
    let no_new_privileges = security
        .iter()
        .any(|o| o == "no-new-privileges" || o == "no-new-privileges:true");
    if !no_new_privileges {
        mismatch(
            out,
            "security_opt",
            format!("{security:?}"),
            "[\"no-new-privileges\"]",
        );
    }
    let user = container.config.as_ref().and_then(|c| c.user.as_deref());
    if user != Some(AGENT_USER) {
        mismatch(out, "user", shown(user), AGENT_USER);
    }
}

fn check_ports(out: &mut Vec<String>, host: &HostConfig) {
    if host.publish_all_ports == Some(true) {
        mismatch(out, "publish_all_ports", true, false);
    }
    let bindings = host.port_bindings.clone().unwrap_or_default();
    if !bindings.contains_key(&gateway_port_key()) {
        mismatch(out, "gateway port", "unpublished", gateway_port_key());
    }
    for (port, bindings) in bindings {
        for binding in bindings.unwrap_or_default() {
            let ip = binding.host_ip.unwrap_or_default();
            if ip != LOOPBACK {
                let shown_ip = if ip.is_empty() { "0.0.0.0" } else { &ip };
                mismatch(out, &format!("port {port} host ip"), shown_ip, LOOPBACK);
            }
        }
    }
}

fn check_mounts(out: &mut Vec<String>, container: &ContainerInspectResponse, host: &HostConfig) {
    let is_engine_socket = |path: &str| ENGINE_SOCKETS.iter().any(|s| path.ends_with(s));
    let bind_sources = host
        .binds
        .iter()
        .flatten()
        .filter_map(|b| b.split(':').next().map(str::to_owned));
    let mount_sources = container
        .mounts
        .iter()
        .flatten()
        .filter_map(|m| m.source.clone());
    for source in bind_sources.chain(mount_sources) {
        if is_engine_socket(&source) {
            mismatch(out, "mount", source, "no engine socket");
        }
    }
}

fn check_network(
    out: &mut Vec<String>,
    container: &ContainerInspectResponse,
    host: &HostConfig,
    network: &str,
) {
    let mode = host.network_mode.as_deref().unwrap_or_default();
    if matches!(mode, "host" | "default" | "bridge" | "") || mode.starts_with("container:") {
        mismatch(out, "network_mode", shown(Some(mode)), network);
    }
    let mut attached: Vec<&str> = container
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref())
        .map(|n| n.keys().map(String::as_str).collect())
        .unwrap_or_default();
    attached.sort_unstable();
    if attached != [network] {
        mismatch(
            out,
            "networks",
            format!("{attached:?}"),
            format!("[{network:?}]"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parts of a `docker inspect` of a correctly created Standard agent.
    fn standard_inspect() -> serde_json::Value {
        serde_json::json!({
            "Config": {"User": "1000:1000"},
            "HostConfig": {
                "Memory": 2_147_483_648u64,
                "MemorySwap": 2_147_483_648u64,
                "NanoCpus": 1_000_000_000u64,
                "PidsLimit": 512,
                "ReadonlyRootfs": true,
                "Privileged": false,
                "CapDrop": ["ALL"],
                "CapAdd": null,
                "SecurityOpt": ["no-new-privileges"],
                "PortBindings": {"18789/tcp": [{"HostIp": "127.0.0.1", "HostPort": "19100"}]},
                "PublishAllPorts": false,
                "Binds": ["/var/lib/sparebox/a:/home/node/.openclaw:rw"],
                "NetworkMode": "sparebox-agents"
            },
            "Mounts": [{"Type": "bind", "Source": "/var/lib/sparebox/a", "Destination": "/home/node/.openclaw"}],
            "NetworkSettings": {"Networks": {"sparebox-agents": {}}}
        })
    }

    fn verify(json: serde_json::Value) -> IsolationReport {
        let container: ContainerInspectResponse = serde_json::from_value(json).unwrap();
        verify_isolation(Some(Tier::Standard), &container, "sparebox-agents")
    }

    #[test]
    fn correctly_created_container_is_verified() {
        let report = verify(standard_inspect());
        assert!(report.verified, "{:?}", report.mismatches);
        assert!(report.mismatches.is_empty());
    }

    #[test]
    fn smaller_memory_is_reported_applied_then_expected() {
        let mut json = standard_inspect();
        json["HostConfig"]["Memory"] = 1_073_741_824u64.into();
        let report = verify(json);
        assert!(!report.verified);
        assert_eq!(report.mismatches, vec!["memory: 1073741824 != 2147483648"]);
    }

    #[test]
    fn swap_allowed_like_docker_default_is_a_mismatch() {
        let mut json = standard_inspect();
        json["HostConfig"]["MemorySwap"] = 4_294_967_296u64.into();
        let report = verify(json);
        assert_eq!(
            report.mismatches,
            vec!["memory_swap: 4294967296 != 2147483648"]
        );
    }

    #[test]
    fn port_on_all_interfaces_is_a_mismatch() {
        let mut json = standard_inspect();
        json["HostConfig"]["PortBindings"]["18789/tcp"][0]["HostIp"] = "".into();
        let report = verify(json);
        assert_eq!(
            report.mismatches,
            vec!["port 18789/tcp host ip: 0.0.0.0 != 127.0.0.1"]
        );
    }

    #[test]
    fn engine_socket_mount_is_a_mismatch() {
        let mut json = standard_inspect();
        json["Mounts"] = serde_json::json!([
            {"Type": "bind", "Source": "/var/run/docker.sock", "Destination": "/var/run/docker.sock"}
        ]);
        let report = verify(json);
        assert_eq!(
            report.mismatches,
            vec!["mount: /var/run/docker.sock != no engine socket"]
        );
    }

    #[test]
    fn writable_root_privileged_and_kept_capabilities_are_each_reported() {
        let mut json = standard_inspect();
        json["HostConfig"]["ReadonlyRootfs"] = false.into();
        json["HostConfig"]["Privileged"] = true.into();
        json["HostConfig"]["CapDrop"] = serde_json::Value::Null;
        json["HostConfig"]["SecurityOpt"] = serde_json::Value::Null;
        let report = verify(json);
        assert_eq!(report.mismatches.len(), 4, "{:?}", report.mismatches);
        assert!(report.mismatches[0].starts_with("readonly_rootfs: false"));
    }

    #[test]
    fn missing_tier_label_is_a_mismatch() {
        let container: ContainerInspectResponse =
            serde_json::from_value(standard_inspect()).unwrap();
        let report = verify_isolation(None, &container, "sparebox-agents");
        assert_eq!(report.mismatches, vec!["tier label: missing or unknown"]);
    }

    #[test]
    fn default_bridge_network_is_a_mismatch() {
        let mut json = standard_inspect();
        json["HostConfig"]["NetworkMode"] = "default".into();
        json["NetworkSettings"]["Networks"] = serde_json::json!({"bridge": {}});
        let report = verify(json);
        assert_eq!(report.mismatches.len(), 2, "{:?}", report.mismatches);
    }
}
