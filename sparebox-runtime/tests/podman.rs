//! `DockerRuntime` against a real Podman engine through its Docker-compatible socket: the
//! same behavioural suite as `tests/docker.rs` (`tests/engine/mod.rs`).
//!
//! The socket is `SPAREBOX_TEST_PODMAN_SOCKET`, by default `/run/podman/podman.sock`. On a
//! fresh Debian 12 machine run, as root:
//!
//! ```text
//! scripts/ensure-docker.sh && scripts/ensure-podman.sh
//! ```
//!
//! which installs Podman and catatonit, fixes its configuration (rlimits, events logger),
//! starts the API service and loads the test image into Podman's store. Without them the
//! tests fail with that advice instead of being skipped. Tested rootful only.
#![cfg(feature = "docker")]

mod engine;

engine_suite!(engine::Engine::podman());
