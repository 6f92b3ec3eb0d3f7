//! Waiting for a new agent to answer its health check.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

/// One health probe of an agent's gateway. [`HttpHealthProbe`] is the real one; tests may
/// pass their own.
#[async_trait]
pub trait HealthProbe: Send + Sync + 'static {
    /// Probes the gateway on `127.0.0.1:<port>` once: `Ok` when it reports itself healthy,
    /// otherwise why not.
    async fn probe(&self, port: u16) -> Result<(), String>;
}

/// Probes `GET http://127.0.0.1:<port>/healthz` and requires `"ok": true` in the JSON body;
/// the status code alone is not enough.
#[derive(Debug, Clone)]
pub struct HttpHealthProbe {
    http: reqwest::Client,
    timeout: Duration,
}

impl HttpHealthProbe {
    /// A probe whose single requests give up after `timeout`.
    pub fn new(http: reqwest::Client, timeout: Duration) -> Self {
        Self { http, timeout }
    }
}

#[derive(Deserialize)]
struct Healthz {
    ok: bool,
}

#[async_trait]
impl HealthProbe for HttpHealthProbe {
    async fn probe(&self, port: u16) -> Result<(), String> {
        let url = format!("http://127.0.0.1:{port}/healthz");
        let response = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|err| format!("no answer on port {port}: {}", err.without_url()))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|err| format!("reading answer: {}", err.without_url()))?;
        match serde_json::from_slice::<Healthz>(&body) {
            Ok(Healthz { ok: true }) if status.is_success() => Ok(()),
            Ok(_) => Err(format!("not healthy yet (status {status})")),
            Err(_) => Err(format!("unexpected answer (status {status})")),
        }
    }
}

/// Probes every `poll` until `probe` succeeds, giving up after `timeout`.
///
/// # Errors
///
/// A message naming the timeout and the last probe's failure.
pub async fn wait_healthy(
    probe: &dyn HealthProbe,
    port: u16,
    timeout: Duration,
    poll: Duration,
) -> Result<(), String> {
    let mut last = String::from("never probed");
    let attempts = async {
        loop {
            match probe.probe(port).await {
                Ok(()) => return,
                Err(reason) => last = reason,
            }
            tokio::time::sleep(poll).await;
        }
    };
    match tokio::time::timeout(timeout, attempts).await {
        Ok(()) => Ok(()),
        Err(_) => Err(format!("not healthy after {}s: {last}", timeout.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use axum::routing::get;
    use axum::Router;

    use super::*;

    struct HealthyAfter(u32, AtomicU32);

    #[async_trait]
    impl HealthProbe for HealthyAfter {
        async fn probe(&self, _port: u16) -> Result<(), String> {
            let n = self.1.fetch_add(1, Ordering::SeqCst);
            if n >= self.0 {
                Ok(())
            } else {
                Err("starting".into())
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_until_the_probe_succeeds() {
        let probe = HealthyAfter(5, AtomicU32::new(0));
        wait_healthy(&probe, 1, Duration::from_secs(180), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(probe.1.load(Ordering::SeqCst), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_timeout_with_the_last_reason() {
        let probe = HealthyAfter(u32::MAX, AtomicU32::new(0));
        let err = wait_healthy(&probe, 1, Duration::from_secs(30), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(err, "not healthy after 30s: starting");
    }

    async fn serve(body: &'static str) -> u16 {
        let app = Router::new().route("/healthz", get(move || async move { body }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        port
    }

    #[tokio::test]
    async fn http_probe_requires_ok_true_in_the_body() {
        let probe = HttpHealthProbe::new(reqwest::Client::new(), Duration::from_secs(5));
        let live = serve(r#"{"ok":true,"status":"live"}"#).await;
        probe.probe(live).await.unwrap();
        let not_ok = serve(r#"{"ok":false}"#).await;
        assert!(probe.probe(not_ok).await.is_err());
        let html = serve("<html>hello</html>").await;
        assert!(probe.probe(html).await.is_err());
    }
}
