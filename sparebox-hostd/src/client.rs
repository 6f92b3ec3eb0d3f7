//! Talking to the Sparebox server: heartbeats, deploy bundles, commands fetched again.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;
use sparebox_core::crypto::bundle::MAX_BUNDLE_BYTES;
use sparebox_core::{AgentId, CommandId, Secret};
use sparebox_protocol::{Command, DeployBundle, HeartbeatRequest, HeartbeatResponse};

/// Errors from a call to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused the host key (401 or 403). Retrying will not help.
    #[error("server refused the host key ({status}): {message}")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The server answered with another error status.
    #[error("server answered {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The server's message, or the start of the body when it had none.
        message: String,
    },
    /// The server is busy or rate-limiting this host (429 or 503) and said when to retry.
    #[error("server answered {status} (retry in {} s): {message}", retry_after.as_secs())]
    RetryLater {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
        /// How long the server asked the daemon to wait (its `Retry-After`, in whole
        /// seconds).
        retry_after: Duration,
    },
    /// The server could not be reached, or the connection broke.
    #[error("server unreachable: {0}")]
    Network(String),
    /// The server's answer was not what the protocol says.
    #[error("unreadable answer from server: {0}")]
    Decode(String),
}

impl ClientError {
    /// Whether retrying later may succeed (network trouble, 5xx, 429).
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Network(_) | ClientError::RetryLater { .. } => true,
            ClientError::Status { status, .. } => *status >= 500 || *status == 429,
            ClientError::Unauthorized { .. } | ClientError::Decode(_) => false,
        }
    }
}

/// The two calls the daemon makes to the server. [`HttpServerApi`] is the real one; tests
/// may pass their own.
#[async_trait]
pub trait ServerApi: Send + Sync + 'static {
    /// Posts one heartbeat.
    async fn heartbeat(&self, request: &HeartbeatRequest)
        -> Result<HeartbeatResponse, ClientError>;

    /// Fetches the deploy bundle of `agent` for `command`.
    async fn deploy_bundle(
        &self,
        agent: AgentId,
        command: CommandId,
    ) -> Result<DeployBundle, ClientError>;

    /// Fetches again a command the server delivered to this host and has not had an answer
    /// for, with its session key: a daemon restarted in the middle of a deploy needs the key
    /// to open the deploy bundle, and never writes it to disk. The server answers 409 once
    /// the command is no longer waiting (acked, failed, expired, superseded).
    async fn command(&self, command: CommandId) -> Result<Command, ClientError>;

    /// Uploads the redacted output of the `logs` command `command` (`truncated` when older
    /// lines were cut to fit its cap). The default refuses, for test servers that take no
    /// logs.
    async fn upload_logs(
        &self,
        command: CommandId,
        text: Vec<u8>,
        truncated: bool,
    ) -> Result<(), ClientError> {
        let _ = (text, truncated);
        Err(ClientError::Status {
            status: 404,
            message: format!("this server takes no logs for command {command}"),
        })
    }

    /// Uploads the sealed archive of backup command `command`. The default refuses, for
    /// test servers that take no backups.
    async fn upload_backup(&self, command: CommandId, sealed: Vec<u8>) -> Result<(), ClientError> {
        let _ = sealed;
        Err(ClientError::Status {
            status: 404,
            message: format!("this server takes no backup for command {command}"),
        })
    }

    /// Downloads the sealed archive that restore command `command` names, refusing more
    /// than `limit` bytes. The default refuses, as [`ServerApi::upload_backup`] does.
    async fn download_backup(
        &self,
        command: CommandId,
        limit: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let _ = limit;
        Err(ClientError::Status {
            status: 404,
            message: format!("this server serves no backup for command {command}"),
        })
    }
}

/// How long one backup upload or download may take.
const BACKUP_TRANSFER_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// [`ServerApi`] over HTTP with the host key as a bearer token.
#[derive(Debug, Clone)]
pub struct HttpServerApi {
    http: reqwest::Client,
    base_url: String,
    host_key: Secret,
    timeout: Duration,
}

impl HttpServerApi {
    /// A client for the server at `base_url` (no trailing slash needed).
    pub fn new(http: reqwest::Client, base_url: &str, host_key: Secret, timeout: Duration) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            host_key,
            timeout,
        }
    }

    /// Sends a backup transfer (allowed [`BACKUP_TRANSFER_TIMEOUT`]) and returns the
    /// response when it succeeded, or the server's error.
    async fn transfer(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        self.checked(request, BACKUP_TRANSFER_TIMEOUT).await
    }

    /// Sends `request` (allowed `timeout`) and returns the response when it succeeded, or
    /// the server's error.
    async fn checked(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .bearer_auth(self.host_key.expose())
            .timeout(timeout)
            .send()
            .await
            .map_err(|err| ClientError::Network(without_url(err)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = retry_after(&response);
        let body = read_capped(response, MAX_COMMAND_BYTES).await?;
        Err(status_error(status, retry_after, &body))
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        timeout: Duration,
        limit: usize,
    ) -> Result<T, ClientError> {
        let response = request
            .bearer_auth(self.host_key.expose())
            .timeout(timeout)
            .send()
            .await
            .map_err(|err| ClientError::Network(without_url(err)))?;
        let status = response.status();
        let retry_after = retry_after(&response);
        let body = read_capped(response, limit).await?;
        if status.is_success() {
            return serde_json::from_slice(&body)
                .map_err(|err| ClientError::Decode(err.to_string()));
        }
        Err(status_error(status, retry_after, &body))
    }
}

/// A response's `Retry-After` in whole seconds; the HTTP-date form, which the Sparebox
/// server never sends, is ignored.
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get(reqwest::header::RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The error for a non-success `status` with its `Retry-After` and `body`.
fn status_error(status: StatusCode, retry_after: Option<Duration>, body: &[u8]) -> ClientError {
    let message = error_message(body);
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return ClientError::Unauthorized {
            status: status.as_u16(),
            message,
        };
    }
    if let (StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE, Some(retry_after)) =
        (status, retry_after)
    {
        return ClientError::RetryLater {
            status: status.as_u16(),
            message,
            retry_after,
        };
    }
    ClientError::Status {
        status: status.as_u16(),
        message,
    }
}

#[async_trait]
impl ServerApi for HttpServerApi {
    async fn heartbeat(
        &self,
        request: &HeartbeatRequest,
    ) -> Result<HeartbeatResponse, ClientError> {
        let url = format!("{}/api/v1/hosts/heartbeat", self.base_url);
        // A long-polled heartbeat may be held by the server for `wait_seconds`.
        let held = Duration::from_secs(request.wait_seconds.map_or(0, u64::from));
        let request = self.http.post(url).json(request);
        self.send(request, self.timeout + held, MAX_RESPONSE_BYTES)
            .await
    }

    async fn deploy_bundle(
        &self,
        agent: AgentId,
        command: CommandId,
    ) -> Result<DeployBundle, ClientError> {
        let url = format!(
            "{}/api/v1/agents/{agent}/deploy-config?commandId={command}",
            self.base_url
        );
        self.send(self.http.get(url), self.timeout, MAX_BUNDLE_BYTES)
            .await
    }

    async fn command(&self, command: CommandId) -> Result<Command, ClientError> {
        let url = format!("{}/api/v1/hosts/commands/{command}", self.base_url);
        self.send(self.http.get(url), self.timeout, MAX_COMMAND_BYTES)
            .await
    }

    async fn upload_logs(
        &self,
        command: CommandId,
        text: Vec<u8>,
        truncated: bool,
    ) -> Result<(), ClientError> {
        let url = format!(
            "{}/api/v1/hosts/commands/{command}/logs?truncated={truncated}",
            self.base_url
        );
        let request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(text);
        self.checked(request, self.timeout).await.map(drop)
    }

    async fn upload_backup(&self, command: CommandId, sealed: Vec<u8>) -> Result<(), ClientError> {
        let url = format!("{}/api/v1/hosts/commands/{command}/backup", self.base_url);
        let request = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(sealed);
        self.transfer(request).await.map(drop)
    }

    async fn download_backup(
        &self,
        command: CommandId,
        limit: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}/api/v1/hosts/commands/{command}/backup", self.base_url);
        let response = self.transfer(self.http.get(url)).await?;
        read_capped(response, limit).await
    }
}

/// The largest single command read, in bytes.
const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// The largest heartbeat response read, in bytes.
const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Reads a response body, refusing one larger than `limit` without buffering it all.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ClientError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ClientError::Decode(format!(
            "response larger than {limit} bytes"
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| ClientError::Network(without_url(err)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(ClientError::Decode(format!(
                "response larger than {limit} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: String,
    message: String,
}

/// The message of the server's `{"error":{"code","message"}}` body, or the start of the body.
fn error_message(body: &[u8]) -> String {
    if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
        return format!("{}: {}", parsed.error.code, parsed.error.message);
    }
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().filter(|c| !c.is_control()).take(200).collect();
    if text.is_empty() {
        "no message".to_owned()
    } else {
        text
    }
}

/// A reqwest error without the URL, which may carry query parameters worth keeping out of
/// logs; the caller knows which endpoint it called.
fn without_url(err: reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut message = kind.to_owned();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_body_becomes_code_and_message() {
        let body = br#"{"error":{"code":"unauthorized","message":"unknown host key"}}"#;
        assert_eq!(error_message(body), "unauthorized: unknown host key");
        assert_eq!(error_message(b""), "no message");
        assert_eq!(error_message(b"bad\ngateway"), "badgateway");
    }

    #[test]
    fn only_network_trouble_and_server_errors_are_transient() {
        assert!(ClientError::Network("reset".into()).is_transient());
        let status = |status| ClientError::Status {
            status,
            message: String::new(),
        };
        assert!(status(503).is_transient());
        assert!(ClientError::RetryLater {
            status: 503,
            message: String::new(),
            retry_after: Duration::from_secs(10),
        }
        .is_transient());
        assert!(!status(404).is_transient());
        let unauthorized = ClientError::Unauthorized {
            status: 401,
            message: String::new(),
        };
        assert!(!unauthorized.is_transient());
    }
}
