//! Prometheus metrics, served at `/metrics` in the text exposition format.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::state::AppState;

/// Labels of a command counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabels {
    /// Command type.
    pub kind: String,
    /// What happened to it (`queued`, `acked`, `failed`, `expired`).
    pub status: String,
}

/// Labels of a request histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// HTTP method.
    pub method: String,
    /// The matched route pattern (never the raw path, so ids do not explode cardinality).
    pub route: String,
}

/// Every metric the server exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Heartbeats handled.
    pub heartbeats: Counter,
    /// Heartbeats refused because the server was too busy to take them in time.
    pub heartbeats_refused_busy: Counter,
    /// Commands by type and outcome.
    pub commands: Family<CommandLabels, Counter>,
    /// Hosts whose last heartbeat is recent.
    pub hosts_online: Gauge,
    /// Request latency in seconds by route.
    pub request_seconds: Family<RouteLabels, Histogram>,
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sparebox");
        let heartbeats = Counter::default();
        registry.register("heartbeats", "Heartbeats handled", heartbeats.clone());
        let heartbeats_refused_busy = Counter::default();
        registry.register(
            "heartbeats_refused_busy",
            "Heartbeats refused because the server was too busy to take them in time",
            heartbeats_refused_busy.clone(),
        );
        let commands = Family::<CommandLabels, Counter>::default();
        registry.register("commands", "Commands by type and outcome", commands.clone());
        let hosts_online = Gauge::default();
        registry.register(
            "hosts_online",
            "Hosts heard from recently",
            hosts_online.clone(),
        );
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            request_seconds.clone(),
        );
        Self {
            registry,
            heartbeats,
            heartbeats_refused_busy,
            commands,
            hosts_online,
            request_seconds,
        }
    }

    /// Counts one command event.
    pub fn command(&self, kind: &str, status: &str) {
        self.commands
            .get_or_create(&CommandLabels {
                kind: kind.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// `GET /metrics`.
pub async fn serve_metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Middleware recording each request's latency under its route pattern.
pub async fn track_latency(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request_seconds
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    response
}
