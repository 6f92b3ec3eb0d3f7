//! The container configuration an agent gets: tier limits and hardening, written once here
//! and checked back against the engine in [`super::verify`].

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig, PortBinding,
    RestartPolicy, RestartPolicyNameEnum,
};
use sparebox_core::Tier;

use crate::{AgentSpec, AGENT_LABEL, GATEWAY_CONTAINER_PORT, TIER_LABEL};

/// The user and group every agent runs as (`node` in the OpenClaw image).
pub(crate) const AGENT_USER: &str = "1000:1000";

/// The agent's home directory: a tmpfs, so a read-only root filesystem still leaves OpenClaw
/// a writable `~/.cache` and temp directory.
pub(crate) const HOME_DIR: &str = "/home/node";

/// Where the host's state directory is mounted inside the container.
pub(crate) const STATE_DIR: &str = "/home/node/.openclaw";

/// The pids limit every agent gets, whatever its tier.
pub(crate) const PIDS_LIMIT: i64 = 512;

/// The only address a gateway port is published on.
pub(crate) const LOOPBACK: &str = "127.0.0.1";

/// Environment variables the runtime sets itself; values from the spec under these names
/// are replaced.
pub(crate) const RESERVED_ENV: [&str; 3] = ["HOME", "NODE_OPTIONS", "XDG_CACHE_HOME"];

/// The limits a tier's container must have, as the engine reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TierLimits {
    /// Memory limit in bytes.
    pub memory: i64,
    /// Memory plus swap in bytes: equal to `memory`, so the container gets no swap.
    pub memory_swap: i64,
    /// CPU in billionths of a core.
    pub nano_cpus: i64,
    /// Process limit.
    pub pids: i64,
}

impl TierLimits {
    /// The limits for `tier`.
    pub(crate) fn for_tier(tier: Tier) -> Self {
        let resources = tier.resources();
        let memory = mib_to_bytes(resources.ram_mb);
        Self {
            memory,
            memory_swap: memory,
            nano_cpus: i64::try_from(resources.cpu_millicores)
                .unwrap_or(i64::MAX)
                .saturating_mul(1_000_000),
            pids: PIDS_LIMIT,
        }
    }
}

fn mib_to_bytes(mib: u64) -> i64 {
    i64::try_from(mib)
        .unwrap_or(i64::MAX)
        .saturating_mul(1024 * 1024)
}

/// The port key the engine uses for the gateway, `18789/tcp`.
pub(crate) fn gateway_port_key() -> String {
    format!("{GATEWAY_CONTAINER_PORT}/tcp")
}

/// The create request for `spec`, attached to the network `network`.
///
/// The environment in the result holds the spec's secrets in plain text, as the engine
/// needs them; the value must not be logged.
pub(crate) fn container_body(spec: &AgentSpec, network: &str) -> ContainerCreateBody {
    let secret_names: Vec<&str> = spec.secret_env.keys().map(String::as_str).collect();
    let labels = HashMap::from([
        (AGENT_LABEL.to_owned(), spec.agent.to_string()),
        (TIER_LABEL.to_owned(), spec.tier.as_str().to_owned()),
        (crate::SECRET_ENV_LABEL.to_owned(), secret_names.join(",")),
    ]);
    let port_key = gateway_port_key();

    ContainerCreateBody {
        image: Some(spec.image.clone()),
        user: Some(AGENT_USER.to_owned()),
        env: Some(environment(spec)),
        labels: Some(labels),
        exposed_ports: Some(HashMap::from([(port_key, HashMap::new())])),
        host_config: Some(host_config(spec, network)),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.to_owned(),
                EndpointSettings::default(),
            )])),
        }),
        ..Default::default()
    }
}

/// `KEY=value` lines: the spec's plain variables, then its secrets, then the runtime's own
/// (which win on a name clash).
fn environment(spec: &AgentSpec) -> Vec<String> {
    let mut env: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, value) in &spec.env {
        env.insert(key, value);
    }
    for (key, value) in &spec.secret_env {
        env.insert(key, value.expose());
    }
    for reserved in RESERVED_ENV {
        env.remove(reserved);
    }

    let mut lines: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    lines.push(format!("HOME={HOME_DIR}"));
    lines.push(format!(
        "NODE_OPTIONS=--max-old-space-size={}",
        spec.tier.node_heap_mb()
    ));
    lines.push(format!("XDG_CACHE_HOME={STATE_DIR}/.cache"));
    lines
}

fn host_config(spec: &AgentSpec, network: &str) -> HostConfig {
    let limits = TierLimits::for_tier(spec.tier);
    let binding = PortBinding {
        host_ip: Some(LOOPBACK.to_owned()),
        host_port: Some(spec.gateway_port.to_string()),
    };

    HostConfig {
        memory: Some(limits.memory),
        memory_swap: Some(limits.memory_swap),
        nano_cpus: Some(limits.nano_cpus),
        pids_limit: Some(limits.pids),
        readonly_rootfs: Some(true),
        privileged: Some(false),
        cap_drop: Some(vec!["ALL".to_owned()]),
        security_opt: Some(vec!["no-new-privileges".to_owned()]),
        init: Some(true),
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
            maximum_retry_count: None,
        }),
        tmpfs: Some(HashMap::from([
            ("/tmp".to_owned(), "rw,nosuid,nodev,mode=1777".to_owned()),
            (
                HOME_DIR.to_owned(),
                "rw,nosuid,nodev,uid=1000,gid=1000,mode=0700".to_owned(),
            ),
        ])),
        binds: Some(vec![format!("{}:{STATE_DIR}:rw", spec.state_dir.display())]),
        port_bindings: Some(HashMap::from([(gateway_port_key(), Some(vec![binding]))])),
        network_mode: Some(network.to_owned()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use sparebox_core::{AgentId, Secret};

    use super::*;

    fn spec(tier: Tier) -> AgentSpec {
        AgentSpec {
            agent: AgentId::new_random(),
            tier,
            image: "example/agent:1".to_owned(),
            gateway_port: 19100,
            state_dir: PathBuf::from("/var/lib/sparebox/agents/a"),
            env: BTreeMap::from([
                ("OPENCLAW_SKIP_CHANNELS".to_owned(), "1".to_owned()),
                ("HOME".to_owned(), "/root".to_owned()),
            ]),
            secret_env: BTreeMap::from([("ANTHROPIC_API_KEY".to_owned(), Secret::new("sk-test"))]),
        }
    }

    #[test]
    fn standard_tier_gets_two_gib_without_swap_and_one_core() {
        let body = container_body(&spec(Tier::Standard), "net");
        let host = body.host_config.unwrap();
        assert_eq!(host.memory, Some(2 * 1024 * 1024 * 1024));
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(host.nano_cpus, Some(1_000_000_000));
        assert_eq!(host.pids_limit, Some(512));
    }

    #[test]
    fn lite_tier_gets_half_a_core() {
        let limits = TierLimits::for_tier(Tier::Lite);
        assert_eq!(limits.nano_cpus, 500_000_000);
        assert_eq!(limits.memory, 1024 * 1024 * 1024);
    }

    #[test]
    fn container_is_hardened_and_publishes_only_on_loopback() {
        let body = container_body(&spec(Tier::Lite), "net");
        assert_eq!(body.user.as_deref(), Some("1000:1000"));
        let host = body.host_config.unwrap();
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(
            host.security_opt,
            Some(vec!["no-new-privileges".to_owned()])
        );
        assert_eq!(host.init, Some(true));
        assert_eq!(host.network_mode.as_deref(), Some("net"));
        let bindings = host.port_bindings.unwrap();
        let gateway = bindings["18789/tcp"].as_ref().unwrap();
        assert_eq!(gateway.len(), 1);
        assert_eq!(gateway[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(gateway[0].host_port.as_deref(), Some("19100"));
        let binds = host.binds.unwrap();
        assert_eq!(
            binds,
            vec!["/var/lib/sparebox/agents/a:/home/node/.openclaw:rw"]
        );
        assert!(!binds.iter().any(|b| b.contains("docker.sock")));
    }

    #[test]
    fn runtime_environment_overrides_spec_and_includes_secrets() {
        let env = environment(&spec(Tier::Lite));
        assert!(env.contains(&"OPENCLAW_SKIP_CHANNELS=1".to_owned()));
        assert!(env.contains(&"ANTHROPIC_API_KEY=sk-test".to_owned()));
        assert!(env.contains(&"NODE_OPTIONS=--max-old-space-size=640".to_owned()));
        assert!(env.contains(&"XDG_CACHE_HOME=/home/node/.openclaw/.cache".to_owned()));
        let homes: Vec<_> = env.iter().filter(|l| l.starts_with("HOME=")).collect();
        assert_eq!(homes, vec!["HOME=/home/node"]);
    }

    #[test]
    fn labels_carry_agent_id_and_tier() {
        let spec = spec(Tier::Pro);
        let labels = container_body(&spec, "net").labels.unwrap();
        assert_eq!(labels[AGENT_LABEL], spec.agent.to_string());
        assert_eq!(labels[TIER_LABEL], "pro");
    }
}
