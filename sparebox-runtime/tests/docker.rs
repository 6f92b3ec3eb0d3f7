//! `DockerRuntime` against a real Docker engine and the local test agent image: the shared
//! behavioural suite in `tests/engine/mod.rs`, also run against Podman by `tests/podman.rs`.
//!
//! These tests need an engine and the image `sparebox-agent-test:local` (or the image named
//! by `SPAREBOX_TEST_AGENT_IMAGE`). On a fresh machine run, as root:
//!
//! ```text
//! scripts/ensure-docker.sh && scripts/build-agent-image.sh
//! ```
//!
//! Without them the tests fail with that advice instead of being skipped.
#![cfg(feature = "docker")]

mod engine;

engine_suite!(engine::Engine::docker());
