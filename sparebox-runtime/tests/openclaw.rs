//! SLOW GROUP: a REAL OpenClaw 2026.9.6, booted by the profile runtime (plain process) and
//! by the Docker runtime (hardened container, Standard and Lite tiers), judged healthy from
//! the JSON body of `GET /healthz`. Each case takes tens of seconds and about 1 GB of RAM;
//! they run one at a time (a file lock) so their start-up times are comparable.
//!
//! Setup on a fresh Debian 12 machine, as root (about 1.7 GB of disk, a few minutes):
//!
//! ```text
//! scripts/ensure-docker.sh
//! scripts/install-openclaw.sh               # Node 24 + openclaw@2026.9.6 from npm, /opt/sparebox-openclaw
//! scripts/build-openclaw-image.sh           # sparebox-openclaw:2026.9.6, no registry
//! ```
//!
//! `SPAREBOX_TEST_OPENCLAW_DIR` (default `/opt/sparebox-openclaw`) and
//! `SPAREBOX_TEST_OPENCLAW_IMAGE` (default `sparebox-openclaw:2026.9.6`) point elsewhere.
//! Without them the tests fail with that advice instead of being skipped. Every case prints
//! its measured create→healthy time and resident memory (`--nocapture` to see them).
#![cfg(feature = "docker")]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sparebox_core::{AgentId, Secret, Tier};
use sparebox_runtime::docker::DockerRuntime;
use sparebox_runtime::profile::{ProfileConfig, ProfileRuntime, PROFILE_PORT_SPACING};
use sparebox_runtime::{AgentSpec, ContainerState, Runtime};

const DEFAULT_DIR: &str = "/opt/sparebox-openclaw";
const DEFAULT_IMAGE: &str = "sparebox-openclaw:2026.9.6";
const ADVICE: &str = "run `scripts/ensure-docker.sh && scripts/install-openclaw.sh && scripts/build-openclaw-image.sh` (as root) first";
const HEALTH_DEADLINE: Duration = Duration::from_secs(300);
const LOCK_FILE: &str = "/tmp/sparebox-openclaw-suite.lock";
const TOKEN: &str = "openclaw-test-token-not-for-logs";

fn openclaw_bin() -> PathBuf {
    let dir =
        std::env::var("SPAREBOX_TEST_OPENCLAW_DIR").unwrap_or_else(|_| DEFAULT_DIR.to_owned());
    let bin = Path::new(&dir).join("node_modules/.bin/openclaw");
    assert!(bin.exists(), "no OpenClaw at {}: {ADVICE}", bin.display());
    bin
}

fn image() -> String {
    std::env::var("SPAREBOX_TEST_OPENCLAW_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_owned())
}

/// Runs the cases one at a time, across processes too.
fn serial() -> std::fs::File {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_FILE)
        .expect("open lock file");
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).expect("lock");
    file
}

/// A port with the whole profile range above it free right now.
fn free_port_range() -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind port 0")
            .local_addr()
            .expect("local addr")
            .port();
        if port > u16::MAX - PROFILE_PORT_SPACING {
            continue;
        }
        let free = (port..port + PROFILE_PORT_SPACING)
            .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return port;
        }
    }
}

/// The offline environment every case uses: no channels, no network discovery, no updates.
fn offline_env() -> BTreeMap<String, String> {
    [
        "OPENCLAW_SKIP_CHANNELS",
        "OPENCLAW_OFFLINE",
        "OPENCLAW_DISABLE_BONJOUR",
        "OPENCLAW_NO_AUTO_UPDATE",
    ]
    .into_iter()
    .map(|k| (k.to_owned(), "1".to_owned()))
    .collect()
}

/// A state directory holding the platform-owned gateway config, owned by `owner`.
fn state_dir(bind: &str, port: u16, owner: Option<u32>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("state dir");
    let config = serde_json::json!({
        "gateway": {"mode": "local", "bind": bind, "port": port, "auth": {"mode": "token"}}
    });
    let path = dir.path().join("openclaw.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).expect("write config");
    if let Some(uid) = owner {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid)).expect("chown state");
        std::os::unix::fs::chown(&path, Some(uid), Some(uid)).expect("chown config");
    }
    dir
}

fn spec(tier: Tier, image: String, port: u16, state: &Path) -> AgentSpec {
    AgentSpec {
        agent: AgentId::new_random(),
        tier,
        image,
        gateway_port: port,
        state_dir: state.to_owned(),
        env: offline_env(),
        secret_env: BTreeMap::from([("OPENCLAW_GATEWAY_TOKEN".to_owned(), Secret::new(TOKEN))]),
    }
}

/// Polls `/healthz` until its JSON body says `"ok": true`; the time it took.
async fn wait_healthy(
    port: u16,
    started: Instant,
    runtime: &impl Runtime,
    agent: AgentId,
) -> Duration {
    let url = format!("http://127.0.0.1:{port}/healthz");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("http client");
    loop {
        if let Ok(response) = client.get(&url).send().await {
            if let Ok(body) = response.json::<serde_json::Value>().await {
                if body["ok"] == true {
                    return started.elapsed();
                }
            }
        }
        let info = runtime.inspect(agent).await.ok().flatten();
        assert!(
            info.as_ref()
                .is_some_and(|i| i.state == ContainerState::Running),
            "the gateway is not running: {info:?}"
        );
        assert!(
            started.elapsed() < HEALTH_DEADLINE,
            "{url} not healthy within {HEALTH_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

const MIB: f64 = 1024.0 * 1024.0;

#[tokio::test]
async fn real_openclaw_becomes_healthy_as_a_profile_agent() {
    let _serial = serial();
    let base = tempfile::tempdir().expect("base dir");
    let runtime = ProfileRuntime::new(
        openclaw_bin(),
        base.path().to_owned(),
        ProfileConfig::default(),
    )
    .await
    .expect("profile runtime");
    runtime
        .ensure_image("openclaw")
        .await
        .expect("openclaw binary present");
    let fingerprint = runtime.fingerprint().await.expect("fingerprint");
    assert!(fingerprint.version.contains("2026.9.6"), "{fingerprint:?}");

    let port = free_port_range();
    let state = state_dir("loopback", port, None);
    let spec = spec(Tier::Standard, "openclaw".to_owned(), port, state.path());
    let agent = spec.agent;

    let started = Instant::now();
    let _kill = KillOnDrop(base.path().to_owned());
    let info = runtime.create_and_start(&spec).await.expect("create");
    assert_eq!(
        info.openclaw_version.as_deref(),
        Some("2026.9.6"),
        "the version comes from the binary"
    );
    let healthy = wait_healthy(port, started, &runtime, agent).await;
    let stats = runtime.stats(agent).await.expect("stats");
    eprintln!(
        "openclaw profile agent: create to healthy {:.1} s, RSS over its process tree {:.0} MiB, cpu {:.0} %",
        healthy.as_secs_f64(),
        stats.memory_bytes as f64 / MIB,
        stats.cpu_percent
    );
    assert!(stats.memory_bytes > 0);
    let log = std::fs::read_to_string(runtime.log_path(agent)).unwrap_or_default();
    assert!(!log.contains(TOKEN), "the gateway token reached the log");

    runtime.remove(agent).await.expect("remove");
}

/// Boots the real image on `tier`, checks it healthy, and watches it for `soak`.
async fn container_case(tier: Tier, soak: Duration) {
    let runtime = match DockerRuntime::connect(None).await {
        Ok(runtime) => runtime,
        Err(err) => panic!("no container engine ({err}): {ADVICE}"),
    };
    let image = image();
    if let Err(err) = runtime.client().inspect_image(&image).await {
        panic!("image {image} missing ({err}): {ADVICE}");
    }
    let port = free_port_range();
    let state = state_dir("lan", 18789, Some(1000));
    let spec = spec(tier, image, port, state.path());
    let agent = spec.agent;
    let cleanup = Cleanup(agent);

    let started = Instant::now();
    let info = runtime.create_and_start(&spec).await.expect("create");
    assert!(info.isolation.verified, "{:?}", info.isolation.mismatches);
    assert_eq!(
        info.openclaw_version.as_deref(),
        Some("2026.9.6"),
        "the version comes from the image's labels"
    );
    let healthy = wait_healthy(port, started, &runtime, agent).await;
    let at_healthy = runtime.stats(agent).await.expect("stats");
    tokio::time::sleep(soak).await;
    let after = runtime.inspect(agent).await.unwrap().expect("exists");
    let settled = runtime.stats(agent).await.expect("stats");
    let body: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .expect("health after soak")
        .json()
        .await
        .expect("health body");
    eprintln!(
        "openclaw container {}: create to healthy {:.1} s, working set {:.0} MiB at healthy, {:.0} MiB after {} s (limit {:.0} MiB), restarts {}, oom {}",
        tier.as_str(),
        healthy.as_secs_f64(),
        at_healthy.memory_bytes as f64 / MIB,
        settled.memory_bytes as f64 / MIB,
        soak.as_secs(),
        settled.memory_limit_bytes as f64 / MIB,
        after.restart_count,
        after.oom_killed
    );
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(after.state, ContainerState::Running);
    assert_eq!(after.restart_count, 0, "{after:?}");
    assert!(!after.oom_killed, "{after:?}");
    drop(cleanup);
}

#[tokio::test]
async fn real_openclaw_container_becomes_healthy_on_the_standard_tier() {
    let _serial = serial();
    container_case(Tier::Standard, Duration::from_secs(20)).await;
}

#[tokio::test]
async fn real_openclaw_container_stays_healthy_on_the_lite_tier() {
    let _serial = serial();
    container_case(Tier::Lite, Duration::from_secs(30)).await;
}

/// Kills every profile agent recorded under a base directory when a case ends, even when it
/// fails (the runtime leaves agents running when dropped, as a daemon restart needs).
struct KillOnDrop(PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(bytes) = std::fs::read(entry.path().join("agent.json")) else {
                continue;
            };
            let record: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let pid = record["process"]["pid"]
                .as_i64()
                .and_then(|p| i32::try_from(p).ok());
            if let Some(pid) = pid.and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

/// Removes the agent's container when the case ends, even when it fails.
struct Cleanup(AgentId);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let agent = self.0;
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async {
                if let Ok(runtime) = DockerRuntime::connect(None).await {
                    if let Err(err) = runtime.remove(agent).await {
                        eprintln!("cleanup of agent {agent} failed: {err}");
                    }
                }
            });
        })
        .join();
    }
}
