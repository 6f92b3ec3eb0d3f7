//! Checks on what the runtime is asked to run, before the engine sees it.

use sparebox_core::AgentId;

use crate::{AgentSpec, RuntimeError, RuntimeResult};

/// A create refused by the runtime itself, reported as [`RuntimeError::Engine`] for `create`
/// so callers handle it like an engine refusal.
pub(crate) fn invalid_spec(agent: AgentId, message: String) -> RuntimeError {
    RuntimeError::Engine {
        operation: "create",
        agent,
        message,
    }
}

/// Rejects a spec the engine would misread: a missing or relative state directory (the
/// engine would create it as root), port 0, an empty image, malformed variable names.
pub(crate) async fn check_spec(spec: &AgentSpec) -> RuntimeResult<()> {
    let agent = spec.agent;
    if spec.image.trim().is_empty() {
        return Err(invalid_spec(agent, "image reference is empty".to_owned()));
    }
    if spec.gateway_port == 0 {
        return Err(invalid_spec(
            agent,
            "gateway port 0 is not a port".to_owned(),
        ));
    }
    let state_dir = &spec.state_dir;
    if !state_dir.is_absolute() || state_dir.to_string_lossy().contains(':') {
        return Err(invalid_spec(
            agent,
            format!(
                "state directory {} must be an absolute path without ':'",
                state_dir.display()
            ),
        ));
    }
    match tokio::fs::metadata(state_dir).await {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(invalid_spec(
                agent,
                format!("state directory {} is not a directory", state_dir.display()),
            ))
        }
        Err(err) => {
            return Err(invalid_spec(
                agent,
                format!("state directory {}: {err}", state_dir.display()),
            ))
        }
    }
    let names = spec.env.keys().chain(spec.secret_env.keys());
    for name in names {
        let valid = !name.is_empty() && !name.contains(['=', '\0']);
        if !valid {
            return Err(invalid_spec(
                agent,
                format!("invalid environment variable name {name:?}"),
            ));
        }
    }
    Ok(())
}

/// `image` with `:latest` added when it names neither a tag nor a digest: the engine pulls
/// every tag of an untagged name.
pub(crate) fn pull_reference(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_pull_reference_gets_latest() {
        assert_eq!(pull_reference("busybox"), "busybox:latest");
        assert_eq!(
            pull_reference("localhost:5000/agent"),
            "localhost:5000/agent:latest"
        );
        assert_eq!(
            pull_reference("ghcr.io/openclaw/openclaw:2026.9.6"),
            "ghcr.io/openclaw/openclaw:2026.9.6"
        );
        assert_eq!(pull_reference("agent@sha256:abc"), "agent@sha256:abc");
    }
}
