//! Reading an agent container's logs and the secret values it runs with.

use std::collections::VecDeque;

use bollard::query_parameters::LogsOptions;
use futures::StreamExt;
use sparebox_core::{AgentId, Secret};

use super::{engine_error, is_not_found, DockerRuntime};
use crate::{
    agent_container_name, secret_names, LogQuery, RuntimeError, RuntimeResult, MAX_RAW_LOG_BYTES,
    SECRET_ENV_LABEL,
};

/// Without [`SECRET_ENV_LABEL`] (a container made before the label existed), every
/// environment value at least this long counts as a secret: too much redaction is safe.
const UNLABELLED_SECRET_MIN_CHARS: usize = 8;

impl DockerRuntime {
    /// The engine's stored output of the agent's container, newest bytes kept when it is
    /// longer than [`MAX_RAW_LOG_BYTES`].
    pub(super) async fn read_logs(
        &self,
        agent: AgentId,
        query: LogQuery,
    ) -> RuntimeResult<Vec<u8>> {
        let since = query.since.map_or(0, |since| {
            let start = chrono::Utc::now().timestamp() - since.as_secs() as i64;
            i32::try_from(start.max(0)).unwrap_or(i32::MAX)
        });
        let options = LogsOptions {
            follow: false,
            stdout: true,
            stderr: true,
            since,
            until: 0,
            timestamps: false,
            tail: query.tail_lines.to_string(),
        };
        let name = agent_container_name(agent);
        let mut stream = self.docker.logs(&name, Some(options));
        let mut chunks = VecDeque::new();
        let mut held = 0;
        while let Some(item) = stream.next().await {
            let chunk = match item {
                Ok(output) => output.into_bytes(),
                Err(err) if is_not_found(&err) => return Err(RuntimeError::NotFound(agent)),
                Err(err) => return Err(engine_error("logs", agent, err)),
            };
            held += chunk.len();
            chunks.push_back(chunk);
            while held > MAX_RAW_LOG_BYTES {
                let oldest = chunks.pop_front().map_or(0, |c| c.len());
                held -= oldest;
            }
        }
        Ok(chunks.into_iter().flatten().collect())
    }

    /// The values of the variables [`SECRET_ENV_LABEL`] names, from the container's
    /// environment as the engine reports it.
    pub(super) async fn read_secret_values(&self, agent: AgentId) -> RuntimeResult<Vec<Secret>> {
        let container = self
            .inspect_by_name(agent)
            .await?
            .ok_or(RuntimeError::NotFound(agent))?;
        let config = container.config.unwrap_or_default();
        let label = config
            .labels
            .as_ref()
            .and_then(|labels| labels.get(SECRET_ENV_LABEL).cloned());
        let env = config.env.unwrap_or_default();
        Ok(secrets_in(&env, label.as_deref()))
    }
}

/// The values among `KEY=value` lines that are secret: those `label` names, or without a
/// label every value of at least [`UNLABELLED_SECRET_MIN_CHARS`] characters.
fn secrets_in(env: &[String], label: Option<&str>) -> Vec<Secret> {
    let names: Option<Vec<&str>> = label.map(|l| secret_names(l).collect());
    env.iter()
        .filter_map(|line| line.split_once('='))
        .filter(|(key, value)| match &names {
            Some(names) => names.contains(key) && !value.is_empty(),
            None => value.chars().count() >= UNLABELLED_SECRET_MIN_CHARS,
        })
        .map(|(_, value)| Secret::new(value))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<String> {
        [
            "ANTHROPIC_API_KEY=sk-ant-123456",
            "PATH=/usr/local/bin:/usr/bin",
            "EMPTY=",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    #[test]
    fn labelled_secret_values_are_found_by_name() {
        let found = secrets_in(&env(), Some("ANTHROPIC_API_KEY,EMPTY"));
        let values: Vec<_> = found.iter().map(|s| s.expose().to_owned()).collect();
        assert_eq!(values, ["sk-ant-123456"]);
    }

    #[test]
    fn without_a_label_every_long_value_counts_as_secret() {
        assert_eq!(secrets_in(&env(), None).len(), 2);
    }
}
