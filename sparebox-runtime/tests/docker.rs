//! `DockerRuntime` against a real Docker engine and the local test agent image.
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

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, InspectContainerOptions};
use futures::StreamExt;
use sparebox_core::{AgentId, Secret, Tier};
use sparebox_runtime::docker::{DockerRuntime, AGENT_NETWORK};
use sparebox_runtime::{
    agent_container_name, AgentSpec, ContainerState, Runtime, RuntimeError, AGENT_LABEL, TIER_LABEL,
};
use tempfile::TempDir;

const DEFAULT_TEST_IMAGE: &str = "sparebox-agent-test:local";
const SETUP_ADVICE: &str =
    "run `scripts/ensure-docker.sh && scripts/build-agent-image.sh` (as root) first";
const GIB: i64 = 1024 * 1024 * 1024;
const HEALTH_DEADLINE: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(5);

fn test_image() -> String {
    std::env::var("SPAREBOX_TEST_AGENT_IMAGE").unwrap_or_else(|_| DEFAULT_TEST_IMAGE.to_owned())
}

/// The runtime, failing loudly when the engine or the test image is missing.
async fn runtime() -> DockerRuntime {
    let runtime = match DockerRuntime::connect(None).await {
        Ok(runtime) => runtime,
        Err(err) => panic!("no container engine ({err}): {SETUP_ADVICE}"),
    };
    let image = test_image();
    if let Err(err) = runtime.client().inspect_image(&image).await {
        panic!("test image {image} missing ({err}): {SETUP_ADVICE}");
    }
    runtime
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// An agent whose container is removed when the test ends, even when it fails.
struct TestAgent {
    spec: AgentSpec,
    _state: TempDir,
}

impl TestAgent {
    fn new(tier: Tier) -> Self {
        let state = tempfile::tempdir().expect("state dir");
        // The agent runs as uid 1000 and must be able to write its state directory.
        std::os::unix::fs::chown(state.path(), Some(1000), Some(1000)).expect("chown state dir");
        let spec = AgentSpec {
            agent: AgentId::new_random(),
            tier,
            image: test_image(),
            gateway_port: free_port(),
            state_dir: state.path().to_owned(),
            env: BTreeMap::from([("OPENCLAW_SKIP_CHANNELS".to_owned(), "1".to_owned())]),
            secret_env: BTreeMap::from([(
                "OPENCLAW_GATEWAY_TOKEN".to_owned(),
                Secret::new("test-token-not-for-logs"),
            )]),
        };
        Self {
            spec,
            _state: state,
        }
    }

    fn id(&self) -> AgentId {
        self.spec.agent
    }

    fn state_dir(&self) -> &Path {
        &self.spec.state_dir
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let agent = self.spec.agent;
        // Drop cannot await; remove the container from a short-lived runtime of its own.
        let cleanup = std::thread::spawn(move || {
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
        });
        let _ = cleanup.join();
    }
}

async fn engine_inspect(runtime: &DockerRuntime, agent: AgentId) -> ContainerInspectResponse {
    runtime
        .client()
        .inspect_container(
            &agent_container_name(agent),
            None::<InspectContainerOptions>,
        )
        .await
        .expect("engine inspect")
}

/// Polls the gateway's health endpoint until it answers live; returns the JSON body.
async fn wait_healthy(address: &str) -> serde_json::Value {
    let url = format!("http://{address}/healthz");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("http client");
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(&url).send().await {
            if response.status().is_success() {
                if let Ok(body) = response.json::<serde_json::Value>().await {
                    return body;
                }
            }
        }
        assert!(
            started.elapsed() < HEALTH_DEADLINE,
            "{url} not healthy within {HEALTH_DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `cmd` inside the agent's container; returns its exit code and output.
async fn exec<S: AsRef<str>>(runtime: &DockerRuntime, agent: AgentId, cmd: &[S]) -> (i64, String) {
    let docker = runtime.client();
    let options = CreateExecOptions {
        cmd: Some(cmd.iter().map(|c| c.as_ref().to_owned()).collect()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let exec = docker
        .create_exec(&agent_container_name(agent), options)
        .await
        .expect("create exec");
    let mut output = String::new();
    if let StartExecResults::Attached {
        output: mut stream, ..
    } = docker.start_exec(&exec.id, None).await.expect("start exec")
    {
        while let Some(Ok(chunk)) = stream.next().await {
            output.push_str(&chunk.to_string());
        }
    }
    let inspected = docker.inspect_exec(&exec.id).await.expect("inspect exec");
    (inspected.exit_code.expect("exec exit code"), output)
}

#[tokio::test]
async fn standard_agent_runs_hardened_with_tier_limits() {
    let runtime = runtime().await;
    let agent = TestAgent::new(Tier::Standard);

    let started = Instant::now();
    let info = runtime.create_and_start(&agent.spec).await.expect("create");
    let body = wait_healthy(&format!("127.0.0.1:{}", agent.spec.gateway_port)).await;
    eprintln!("create to healthy: {:?}", started.elapsed());

    assert_eq!(body["ok"], true);
    assert_eq!(body["status"], "live");
    assert_eq!(info.agent, agent.id());
    assert_eq!(info.state, ContainerState::Running);
    assert_eq!(info.memory_limit_bytes, Some(2 * GIB as u64));
    assert!(info.isolation.verified, "{:?}", info.isolation.mismatches);
    assert!(!format!("{info:?} {:?}", agent.spec).contains("test-token-not-for-logs"));

    let container = engine_inspect(&runtime, agent.id()).await;
    let host = container.host_config.expect("host config");
    assert_eq!(host.memory, Some(2 * GIB));
    assert_eq!(host.memory_swap, Some(2 * GIB));
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    assert_eq!(host.pids_limit, Some(512));
    assert_eq!(host.readonly_rootfs, Some(true));
    assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    assert!(host
        .security_opt
        .unwrap_or_default()
        .contains(&"no-new-privileges".to_owned()));
    assert_eq!(host.privileged, Some(false));

    let ports = container
        .network_settings
        .and_then(|s| s.ports)
        .expect("published ports");
    let bindings = ports["18789/tcp"].clone().expect("gateway published");
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    assert_eq!(bindings[0].host_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        bindings[0].host_port.as_deref(),
        Some(agent.spec.gateway_port.to_string().as_str())
    );

    let config = container.config.expect("config");
    let labels = config.labels.expect("labels");
    assert_eq!(labels[AGENT_LABEL], agent.id().to_string());
    assert_eq!(labels[TIER_LABEL], "standard");
    assert_eq!(config.user.as_deref(), Some("1000:1000"));
    let env = config.env.unwrap_or_default();
    assert!(env.contains(&"NODE_OPTIONS=--max-old-space-size=1536".to_owned()));
    assert!(env.contains(&"HOME=/home/node".to_owned()));

    // The gateway wrote into the bind-mounted state directory as uid 1000.
    assert!(agent.state_dir().join(".gateway-started").exists());
}

#[tokio::test]
async fn agent_has_read_only_root_writable_home_and_runs_as_node() {
    let runtime = runtime().await;
    let agent = TestAgent::new(Tier::Lite);
    runtime.create_and_start(&agent.spec).await.expect("create");

    let (code, mounts) = exec(&runtime, agent.id(), &["cat", "/proc/mounts"]).await;
    assert_eq!(code, 0);
    let root = mounts
        .lines()
        .find(|line| line.split(' ').nth(1) == Some("/"))
        .expect("root mount");
    assert!(
        root.split(' ')
            .nth(3)
            .unwrap()
            .split(',')
            .any(|o| o == "ro"),
        "{root}"
    );
    let (code, output) = exec(&runtime, agent.id(), &["id", "-u"]).await;
    assert_eq!((code, output.trim()), (0, "1000"));
    let (code, _) = exec(&runtime, agent.id(), &["touch", "/home/node/probe"]).await;
    assert_eq!(code, 0, "home is not writable");
}

#[tokio::test]
async fn stats_report_plausible_usage() {
    let runtime = runtime().await;
    let agent = TestAgent::new(Tier::Lite);
    runtime.create_and_start(&agent.spec).await.expect("create");
    wait_healthy(&format!("127.0.0.1:{}", agent.spec.gateway_port)).await;

    let stats = runtime.stats(agent.id()).await.expect("stats");
    assert_eq!(stats.memory_limit_bytes, GIB as u64);
    assert!(stats.memory_bytes > 0, "{stats:?}");
    assert!(stats.memory_bytes < 256 * 1024 * 1024, "{stats:?}");
    assert!(
        stats.cpu_percent.is_finite() && stats.cpu_percent >= 0.0,
        "{stats:?}"
    );
    // Half a core at most, with some slack for sampling.
    assert!(stats.cpu_percent <= 100.0, "{stats:?}");
}

#[tokio::test]
async fn stop_start_restart_and_remove_follow_the_lifecycle() {
    let runtime = runtime().await;
    let agent = TestAgent::new(Tier::Lite);
    let created = runtime.create_and_start(&agent.spec).await.expect("create");
    let first_start = created.started_at.expect("started");

    runtime.stop(agent.id(), GRACE).await.expect("stop");
    let stopped = runtime.inspect(agent.id()).await.unwrap().expect("exists");
    assert_eq!(stopped.state, ContainerState::Exited);
    assert!(stopped.exit_code.is_some());
    assert!(!stopped.oom_killed);
    runtime
        .stop(agent.id(), GRACE)
        .await
        .expect("stopping twice is fine");

    runtime.start(agent.id()).await.expect("start");
    let running = runtime.inspect(agent.id()).await.unwrap().expect("exists");
    assert_eq!(running.state, ContainerState::Running);
    assert_eq!(running.exit_code, None);
    runtime
        .start(agent.id())
        .await
        .expect("starting twice is fine");

    runtime.restart(agent.id(), GRACE).await.expect("restart");
    let restarted = runtime.inspect(agent.id()).await.unwrap().expect("exists");
    assert_eq!(restarted.state, ContainerState::Running);
    let restarted_at = restarted.started_at.expect("started");
    assert!(restarted_at > running.started_at.unwrap());
    assert!(restarted_at > first_start);
    wait_healthy(&format!("127.0.0.1:{}", agent.spec.gateway_port)).await;

    let listed = runtime.list().await.expect("list");
    assert!(listed.iter().any(|c| c.agent == agent.id()));

    runtime.remove(agent.id()).await.expect("remove");
    assert_eq!(runtime.inspect(agent.id()).await.unwrap(), None);
    runtime
        .remove(agent.id())
        .await
        .expect("removing twice is fine");
    let listed = runtime.list().await.expect("list");
    assert!(!listed.iter().any(|c| c.agent == agent.id()));
}

#[tokio::test]
async fn container_with_weaker_limits_than_its_tier_is_not_verified() {
    let runtime = runtime().await;
    let agent = TestAgent::new(Tier::Standard);
    // Made behind the runtime's back, as an old daemon version or an operator might.
    let options = CreateContainerOptions {
        name: Some(agent_container_name(agent.id())),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(test_image()),
        labels: Some(HashMap::from([
            (AGENT_LABEL.to_owned(), agent.id().to_string()),
            (TIER_LABEL.to_owned(), "standard".to_owned()),
        ])),
        host_config: Some(HostConfig {
            memory: Some(GIB / 2),
            ..Default::default()
        }),
        ..Default::default()
    };
    runtime
        .client()
        .create_container(Some(options), body)
        .await
        .expect("create behind the runtime's back");

    let info = runtime.inspect(agent.id()).await.unwrap().expect("exists");
    assert!(!info.isolation.verified);
    let mismatches = &info.isolation.mismatches;
    assert!(
        mismatches.contains(&"memory: 536870912 != 2147483648".to_owned()),
        "{mismatches:?}"
    );
    for property in [
        "memory_swap",
        "nano_cpus",
        "readonly_rootfs",
        "pids_limit",
        "cap_drop",
        "security_opt",
        "gateway port",
        "networks",
    ] {
        assert!(
            mismatches.iter().any(|m| m.starts_with(property)),
            "{property} not reported: {mismatches:?}"
        );
    }
    let listed = runtime.list().await.expect("list");
    let adopted = listed
        .iter()
        .find(|c| c.agent == agent.id())
        .expect("listed");
    assert_eq!(adopted.state, ContainerState::Created);
    assert!(!adopted.isolation.verified);
}

#[tokio::test]
async fn oom_kill_is_taken_from_the_engine_not_the_exit_code() {
    let runtime = runtime().await;
    let agent = TestAgent::new(Tier::Lite);
    runtime.create_and_start(&agent.spec).await.expect("create");

    // A process inside touches more than the tier's 1 GiB and is killed by the kernel.
    let (code, _) = exec(
        &runtime,
        agent.id(),
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=1100M", "count=1"],
    )
    .await;
    assert_eq!(code, 137, "the memory hog was not killed");

    // The gateway itself exits normally on SIGTERM: the exit code says nothing about OOM,
    // the engine's flag does.
    runtime.stop(agent.id(), GRACE).await.expect("stop");
    let stopped = runtime.inspect(agent.id()).await.unwrap().expect("exists");
    assert!(stopped.oom_killed, "{stopped:?}");
    assert_ne!(stopped.exit_code, Some(137), "{stopped:?}");
}

#[tokio::test]
async fn operations_on_an_agent_without_container_report_not_found() {
    let runtime = runtime().await;
    let agent = AgentId::new_random();
    assert_eq!(runtime.inspect(agent).await.unwrap(), None);
    assert!(matches!(runtime.start(agent).await, Err(RuntimeError::NotFound(a)) if a == agent));
    assert!(matches!(
        runtime.stop(agent, GRACE).await,
        Err(RuntimeError::NotFound(_))
    ));
    assert!(matches!(
        runtime.stats(agent).await,
        Err(RuntimeError::NotFound(_))
    ));
    runtime
        .remove(agent)
        .await
        .expect("removing nothing is fine");
}

#[tokio::test]
async fn missing_image_is_reported_unavailable_by_name() {
    let runtime = runtime().await;
    runtime
        .ensure_image(&test_image())
        .await
        .expect("local image is present");

    let missing = format!("sparebox-missing-{}:none", AgentId::new_random().short());
    let err = runtime.ensure_image(&missing).await.unwrap_err();
    match &err {
        RuntimeError::ImageUnavailable { image, reason } => {
            assert_eq!(image, &missing);
            assert!(!reason.is_empty());
        }
        other => panic!("expected ImageUnavailable, got {other:?}"),
    }
    assert!(err.to_string().contains(&missing), "{err}");
}

#[tokio::test]
async fn creating_an_agent_twice_fails_clearly() {
    let runtime = runtime().await;
    let agent = TestAgent::new(Tier::Lite);
    runtime.create_and_start(&agent.spec).await.expect("create");

    let err = runtime.create_and_start(&agent.spec).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("already exists"), "{message}");
    assert!(
        message.contains(&agent_container_name(agent.id())),
        "{message}"
    );
    let still = runtime.inspect(agent.id()).await.unwrap().expect("exists");
    assert_eq!(still.state, ContainerState::Running);
}

#[tokio::test]
async fn invalid_spec_is_refused_before_anything_is_created() {
    let runtime = runtime().await;
    let mut agent = TestAgent::new(Tier::Lite);

    agent.spec.state_dir = "relative/state".into();
    let err = runtime.create_and_start(&agent.spec).await.unwrap_err();
    assert!(err.to_string().contains("absolute"), "{err}");

    agent.spec.state_dir = "/nonexistent/sparebox/state".into();
    let err = runtime.create_and_start(&agent.spec).await.unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/sparebox/state"),
        "{err}"
    );

    assert_eq!(runtime.inspect(agent.id()).await.unwrap(), None);
}

/// A command fetching the gateway health at `ip` from inside a container, bounded in time.
/// (busybox's own `wget -T` crashes in Debian's static build, so `timeout` bounds it.)
fn probe(ip: &str) -> Vec<String> {
    let url = format!("http://{ip}:18789/healthz");
    ["timeout", "5", "wget", "-q", "-O", "-", &url]
        .map(str::to_owned)
        .to_vec()
}

#[tokio::test]
async fn agents_cannot_reach_each_other_on_the_agent_network() {
    let runtime = runtime().await;
    let (a, b) = (TestAgent::new(Tier::Lite), TestAgent::new(Tier::Lite));
    runtime.create_and_start(&a.spec).await.expect("create a");
    runtime.create_and_start(&b.spec).await.expect("create b");

    let container = engine_inspect(&runtime, b.id()).await;
    let networks = container
        .network_settings
        .and_then(|s| s.networks)
        .expect("networks");
    assert_eq!(networks.keys().collect::<Vec<_>>(), vec![AGENT_NETWORK]);
    let b_ip = networks[AGENT_NETWORK]
        .ip_address
        .clone()
        .filter(|ip| !ip.is_empty())
        .expect("b has an address");

    // The host reaches b on that address, so the address is right...
    let body = wait_healthy(&format!("{b_ip}:18789")).await;
    assert_eq!(body["ok"], true);

    // ...and the probe inside a works (on its own gateway)...
    let (code, output) = exec(&runtime, a.id(), &probe("127.0.0.1")).await;
    assert_eq!(code, 0, "probe failed on a's own gateway: {output}");
    assert!(output.contains("live"), "{output}");

    // ...but a does not reach b.
    let (code, output) = exec(&runtime, a.id(), &probe(&b_ip)).await;
    assert_ne!(code, 0, "agent a reached agent b: {output}");
    assert!(!output.contains("live"), "{output}");
}

#[tokio::test]
async fn fingerprint_reports_engine_and_cgroup_version() {
    let runtime = runtime().await;
    let fingerprint = runtime.fingerprint().await.expect("fingerprint");
    assert_eq!(fingerprint.engine, runtime.isolation().as_str());
    assert!(!fingerprint.version.is_empty());
    assert!(
        matches!(fingerprint.cgroup_version, Some(1 | 2)),
        "{fingerprint:?}"
    );
}
