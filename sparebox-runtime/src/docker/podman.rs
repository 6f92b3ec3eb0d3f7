//! Per-agent networks on Podman.
//!
//! Podman's Docker-compatible API accepts the bridge option that disables inter-container
//! traffic but does not apply it, and drops every other driver option as well. Containers on
//! different Podman networks can still reach each other through the host unless the
//! networks are created with netavark's `isolate` option, which only Podman's own (libpod)
//! API takes. So on Podman each agent gets its own network, `sparebox-agent-<short id>`,
//! created through the libpod API with `isolate=true`, and removed with the agent: an agent
//! is alone on its bridge, and netavark drops traffic between isolated bridges.
//!
//! # The netavark teardown bug
//!
//! netavark 1.4 (Debian 12's, with Podman 4.3) deletes the `FORWARD -j NETAVARK_ISOLATION_1`
//! jump whenever the last container of any isolated network stops, which silently lets
//! every remaining agent reach the others (measured here: agent a reached agent b after a
//! third agent was stopped). [`ensure_isolation_jump`] puts the jump back when its chain
//! exists; the runtime calls it after every create, stop and remove, and on every inspect
//! and list, and reports an agent as not verified when the jump cannot be restored. Between
//! an agent dying on its own and the next inspect, isolation is not enforced: hosts that
//! need it enforced at all times should run Docker. Rootless Podman keeps its rules in
//! its own network namespace and is not affected the same way; the check is skipped there.
//!
//! The libpod API is served on the same socket as the compatible one. bollard does not
//! speak it, so the few calls needed here are plain HTTP/1.0 requests over the socket.

use std::collections::HashMap;

use bollard::models::ContainerCreateBody;
use serde::Deserialize;
use sparebox_core::AgentId;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{agent_container_name, AGENT_LABEL};

/// The libpod API version the requests name; Podman 4.x serves it.
const LIBPOD_VERSION: &str = "v4.0.0";

/// The netavark option that drops traffic between this network and other isolated ones.
const ISOLATE_OPTION: &str = "isolate";

/// The largest response read from the engine.
const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// Why an agent network could not be had on Podman.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PodmanNetworkError {
    /// The socket could not be reached or the exchange broke off.
    #[error("podman network {network}: {source}")]
    Io {
        /// The network.
        network: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The engine answered with an error status.
    #[error("podman network {network}: {operation} answered {status}: {body}")]
    Refused {
        /// The network.
        network: String,
        /// `create`, `inspect` or `remove`.
        operation: &'static str,
        /// The HTTP status.
        status: u16,
        /// The engine's message.
        body: String,
    },
    /// The network exists without the isolation option and could not be replaced.
    #[error(
        "podman network {network} is not isolated (netavark option {ISOLATE_OPTION}=true missing)"
    )]
    NotIsolated {
        /// The network.
        network: String,
    },
    /// The endpoint is not one this module can speak to.
    #[error("podman endpoint {0}: only unix sockets and tcp addresses are supported")]
    Endpoint(String),
}

/// The name of the network an agent gets on Podman (the same as its container's name).
pub fn agent_network_name(agent: AgentId) -> String {
    agent_container_name(agent)
}

/// Rewrites a create request for Podman: its tmpfs mounts do not take `uid=`/`gid=` options
/// ("unknown mount option"), so those are replaced by `U`, which gives the mount to the
/// container's user (uid 1000), the same result.
pub(crate) fn adapt_create_body(body: &mut ContainerCreateBody) {
    let Some(tmpfs) = body.host_config.as_mut().and_then(|h| h.tmpfs.as_mut()) else {
        return;
    };
    for options in tmpfs.values_mut() {
        let kept: Vec<&str> = options
            .split(',')
            .filter(|o| !o.starts_with("uid=") && !o.starts_with("gid="))
            .collect();
        if kept.len() != options.split(',').count() {
            *options = format!("{},U", kept.join(","));
        }
    }
}

/// The chain netavark sends forwarded traffic through to drop traffic between isolated
/// networks.
const ISOLATION_CHAIN: &str = "NETAVARK_ISOLATION_1";

/// Podman's default capability set, which it lists one by one in `CapDrop` when asked to
/// drop `ALL`.
const PODMAN_DEFAULT_CAPS: [&str; 11] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Makes sure forwarded traffic goes through netavark's isolation chain (see the module
/// docs); `Ok(true)` when the jump had to be restored. Does nothing when not root.
///
/// # Errors
///
/// A message saying why isolation cannot be confirmed: `iptables` missing or failing, or
/// the chain absent while isolated networks are in use.
pub async fn ensure_isolation_jump() -> Result<bool, String> {
    if !rustix::process::getuid().is_root() {
        return Ok(false);
    }
    let iptables = |args: &'static [&'static str]| async move {
        tokio::process::Command::new("iptables")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .map(|s| s.success())
            .map_err(|err| format!("iptables: {err}"))
    };
    if iptables(&["-w", "-C", "FORWARD", "-j", ISOLATION_CHAIN]).await? {
        return Ok(false);
    }
    if !iptables(&["-w", "-n", "-L", ISOLATION_CHAIN]).await? {
        return Err(format!("netavark chain {ISOLATION_CHAIN} is missing"));
    }
    if iptables(&["-w", "-I", "FORWARD", "1", "-j", ISOLATION_CHAIN]).await? {
        tracing::warn!(
            chain = ISOLATION_CHAIN,
            "restored the forward jump to netavark's isolation chain"
        );
        Ok(true)
    } else {
        Err(format!(
            "could not restore the FORWARD jump to {ISOLATION_CHAIN}"
        ))
    }
}

/// Adjusts an isolation report for how Podman's compatible API describes a correct
/// container: it lists the dropped capabilities instead of `ALL`, and says `bridge` as the
/// network mode of a container on its own network. Both are accepted when the container
/// really is as asked (every default capability dropped and none added; attached only to
/// `network`); `isolation_error` (from [`ensure_isolation_jump`]) becomes a mismatch.
pub(crate) fn adjust_report(
    report: &mut sparebox_protocol::IsolationReport,
    container: &bollard::models::ContainerInspectResponse,
    network: &str,
    isolation_error: Option<&str>,
) {
    let host = container.host_config.clone().unwrap_or_default();
    let dropped = host.cap_drop.unwrap_or_default();
    let all_dropped = PODMAN_DEFAULT_CAPS.iter().all(|cap| {
        dropped
            .iter()
            .any(|d| d.trim_start_matches("CAP_").eq_ignore_ascii_case(cap))
    });
    let attached: Vec<String> = container
        .network_settings
        .as_ref()
        .and_then(|s| s.networks.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    let only_own_network = attached == [network];
    report.mismatches.retain(|m| {
        let podman_cap_listing = m.starts_with("cap_drop:") && all_dropped;
        let podman_bridge_mode = m.starts_with("network_mode: bridge") && only_own_network;
        !(podman_cap_listing || podman_bridge_mode)
    });
    if let Some(err) = isolation_error {
        report
            .mismatches
            .push(format!("network isolation: {err} != enforced"));
    }
    report.verified = report.mismatches.is_empty();
}

/// The part of a libpod network description this module reads.
#[derive(Debug, Default, Deserialize)]
struct LibpodNetwork {
    #[serde(default)]
    options: HashMap<String, String>,
}

impl LibpodNetwork {
    fn isolated(&self) -> bool {
        self.options.get(ISOLATE_OPTION).map(String::as_str) == Some("true")
    }
}

/// Makes sure the agent's isolated network exists and returns its name. A network of that
/// name without isolation (left by something else) is removed and recreated; the agent's
/// container does not exist yet, so nothing uses it.
pub(crate) async fn ensure_agent_network(
    endpoint: &str,
    agent: AgentId,
) -> Result<String, PodmanNetworkError> {
    let name = agent_network_name(agent);
    if let Some(existing) = inspect(endpoint, &name).await? {
        if existing.isolated() {
            return Ok(name);
        }
        tracing::warn!(network = %name, "replacing agent network that is not isolated");
        remove_agent_network(endpoint, agent).await?;
    }

    tracing::info!(agent.id = %agent, network = %name, "creating isolated agent network");
    let body = serde_json::json!({
        "name": name,
        "driver": "bridge",
        "options": { ISOLATE_OPTION: "true" },
        "labels": {
            AGENT_LABEL: agent.to_string(),
            "dev.sparebox.network": "agent",
        },
    });
    let path = format!("/{LIBPOD_VERSION}/libpod/networks/create");
    let (status, response) = request(endpoint, &name, "POST", &path, Some(&body)).await?;
    if !(200..300).contains(&status) {
        return Err(refused(&name, "create", status, &response));
    }
    let created: LibpodNetwork = serde_json::from_slice(&response).unwrap_or_default();
    if !created.isolated() {
        return Err(PodmanNetworkError::NotIsolated { network: name });
    }
    Ok(name)
}

/// Removes the agent's network; a missing one is fine.
pub(crate) async fn remove_agent_network(
    endpoint: &str,
    agent: AgentId,
) -> Result<(), PodmanNetworkError> {
    let name = agent_network_name(agent);
    let path = format!("/{LIBPOD_VERSION}/libpod/networks/{name}");
    let (status, response) = request(endpoint, &name, "DELETE", &path, None).await?;
    match status {
        200..=299 | 404 => Ok(()),
        _ => Err(refused(&name, "remove", status, &response)),
    }
}

async fn inspect(endpoint: &str, name: &str) -> Result<Option<LibpodNetwork>, PodmanNetworkError> {
    let path = format!("/{LIBPOD_VERSION}/libpod/networks/{name}/json");
    let (status, response) = request(endpoint, name, "GET", &path, None).await?;
    match status {
        200..=299 => Ok(Some(serde_json::from_slice(&response).unwrap_or_default())),
        404 => Ok(None),
        _ => Err(refused(name, "inspect", status, &response)),
    }
}

fn refused(network: &str, operation: &'static str, status: u16, body: &[u8]) -> PodmanNetworkError {
    PodmanNetworkError::Refused {
        network: network.to_owned(),
        operation,
        status,
        body: String::from_utf8_lossy(body)
            .trim()
            .chars()
            .take(300)
            .collect(),
    }
}

/// One HTTP/1.0 exchange with the engine: the status code and the body.
async fn request(
    endpoint: &str,
    network: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, Vec<u8>), PodmanNetworkError> {
    let io = |source| PodmanNetworkError::Io {
        network: network.to_owned(),
        source,
    };
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: podman\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    let raw = if let Some(address) = endpoint
        .strip_prefix("tcp://")
        .or_else(|| endpoint.strip_prefix("http://"))
    {
        let stream = tokio::net::TcpStream::connect(address).await.map_err(io)?;
        exchange(stream, &head, &payload).await.map_err(io)?
    } else if endpoint.contains("://") && !endpoint.starts_with("unix://") {
        return Err(PodmanNetworkError::Endpoint(endpoint.to_owned()));
    } else {
        let socket = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
        let stream = tokio::net::UnixStream::connect(socket).await.map_err(io)?;
        exchange(stream, &head, &payload).await.map_err(io)?
    };
    parse_response(&raw).map_err(io)
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    head: &str,
    payload: &str,
) -> std::io::Result<Vec<u8>> {
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(payload.as_bytes()).await?;
    stream.flush().await?;
    let mut raw = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut raw)
        .await?;
    Ok(raw)
}

/// Splits an HTTP/1.x response into its status code and body.
fn parse_response(raw: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("response without header end"))?;
    let head =
        std::str::from_utf8(&raw[..split]).map_err(|_| invalid("response head not utf-8"))?;
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("response without status code"))?;
    Ok((status, raw[split + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_is_split_into_status_and_body() {
        let raw =
            b"HTTP/1.0 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"message\":\"x\"}";
        let (status, body) = parse_response(raw).unwrap();
        assert_eq!(status, 404);
        assert_eq!(body, b"{\"message\":\"x\"}");
    }

    #[test]
    fn truncated_response_is_an_error_not_a_panic() {
        assert!(parse_response(b"HTTP/1.0 200 OK\r\n").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn tmpfs_owner_options_become_podman_u_option() {
        let mut body = ContainerCreateBody {
            host_config: Some(bollard::models::HostConfig {
                tmpfs: Some(HashMap::from([
                    ("/tmp".to_owned(), "rw,mode=1777".to_owned()),
                    (
                        "/home/node".to_owned(),
                        "rw,nosuid,uid=1000,gid=1000,mode=0700".to_owned(),
                    ),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        };
        adapt_create_body(&mut body);
        let tmpfs = body.host_config.unwrap().tmpfs.unwrap();
        assert_eq!(tmpfs["/tmp"], "rw,mode=1777");
        assert_eq!(tmpfs["/home/node"], "rw,nosuid,mode=0700,U");
    }

    #[test]
    fn network_without_isolate_option_is_not_isolated() {
        let plain: LibpodNetwork = serde_json::from_str(r#"{"name":"n","options":{}}"#).unwrap();
        assert!(!plain.isolated());
        let isolated: LibpodNetwork =
            serde_json::from_str(r#"{"options":{"isolate":"true"}}"#).unwrap();
        assert!(isolated.isolated());
    }
}
