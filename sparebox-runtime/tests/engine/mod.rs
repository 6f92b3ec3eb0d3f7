//! The behavioural suite every container engine must pass, shared by `tests/docker.rs` and
//! `tests/podman.rs`: each instantiates [`engine_suite!`] with its [`Engine`].
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig};
use bollard::query_parameters::{CreateContainerOptions, InspectContainerOptions};
use futures::stream::BoxStream;
use futures::StreamExt;
use sparebox_core::{AgentId, Secret, Tier};
use sparebox_protocol::IsolationMode;
use sparebox_runtime::docker::podman::agent_network_name;
use sparebox_runtime::docker::{DockerRuntime, AGENT_NETWORK};
use sparebox_runtime::{
    agent_container_name, AgentSpec, ContainerState, Runtime, RuntimeError, RuntimeEvent,
    RuntimeEventKind, RuntimeResult, AGENT_LABEL, TIER_LABEL,
};
use tempfile::TempDir;

const DEFAULT_TEST_IMAGE: &str = "sparebox-agent-test:local";
const GIB: i64 = 1024 * 1024 * 1024;
const HEALTH_DEADLINE: Duration = Duration::from_secs(60);
const EVENT_DEADLINE: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(5);

/// The environment variable naming Podman's socket for the Podman instance of the suite.
pub const PODMAN_SOCKET_ENV: &str = "SPAREBOX_TEST_PODMAN_SOCKET";

/// The default Podman socket, where `scripts/ensure-podman.sh` starts the API service.
pub const DEFAULT_PODMAN_SOCKET: &str = "/run/podman/podman.sock";

pub fn test_image() -> String {
    std::env::var("SPAREBOX_TEST_AGENT_IMAGE").unwrap_or_else(|_| DEFAULT_TEST_IMAGE.to_owned())
}

/// A container engine the suite runs against.
#[derive(Clone, Debug)]
pub struct Engine {
    /// The socket, or `None` for `DOCKER_HOST` / the default Docker socket.
    pub socket: Option<String>,
    /// The isolation mode the engine must report.
    pub mode: IsolationMode,
    /// What to run when the engine or the image is missing.
    pub advice: &'static str,
}

impl Engine {
    /// Docker at `DOCKER_HOST` or `/var/run/docker.sock`.
    pub fn docker() -> Self {
        Self {
            socket: None,
            mode: IsolationMode::Docker,
            advice:
                "run `scripts/ensure-docker.sh && scripts/build-agent-image.sh` (as root) first",
        }
    }

    /// Podman's Docker-compatible socket at `SPAREBOX_TEST_PODMAN_SOCKET`, by default
    /// `/run/podman/podman.sock`.
    pub fn podman() -> Self {
        let socket = std::env::var(PODMAN_SOCKET_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_PODMAN_SOCKET.to_owned());
        Self {
            socket: Some(socket),
            mode: IsolationMode::Podman,
            advice: "run `scripts/ensure-docker.sh && scripts/ensure-podman.sh` (as root) first",
        }
    }

    async fn connect(&self) -> RuntimeResult<DockerRuntime> {
        DockerRuntime::connect(self.socket.as_deref()).await
    }

    /// The runtime, failing loudly when the engine or the test image is missing. On Podman
    /// the session also holds a lock that runs the Podman cases one at a time, across test
    /// processes too: netavark 1.4 drops the isolation jump of every network when any
    /// isolated network is torn down (see `sparebox_runtime::docker::podman`), so
    /// concurrent cases would break each other's isolation checks.
    pub async fn runtime(&self) -> Session {
        let serial = match self.mode {
            IsolationMode::Podman => Some(SerialGuard::acquire().await),
            _ => None,
        };
        Session {
            runtime: self.connect_checked().await,
            _serial: serial,
        }
    }

    async fn connect_checked(&self) -> DockerRuntime {
        let advice = self.advice;
        let runtime = match self.connect().await {
            Ok(runtime) => runtime,
            Err(err) => panic!("no container engine ({err}): {advice}"),
        };
        assert_eq!(
            runtime.isolation(),
            self.mode,
            "the engine at {:?} is not {}: {advice}",
            self.socket,
            self.mode.as_str()
        );
        let image = test_image();
        if let Err(err) = runtime.client().inspect_image(&image).await {
            panic!("test image {image} missing ({err}): {advice}");
        }
        runtime
    }

    /// The only network an agent's container may be on.
    pub fn agent_network(&self, agent: AgentId) -> String {
        match self.mode {
            IsolationMode::Podman => agent_network_name(agent),
            _ => AGENT_NETWORK.to_owned(),
        }
    }
}

/// A connected runtime, plus the Podman serialisation lock when there is one.
pub struct Session {
    runtime: DockerRuntime,
    _serial: Option<SerialGuard>,
}

impl std::ops::Deref for Session {
    type Target = DockerRuntime;

    fn deref(&self) -> &DockerRuntime {
        &self.runtime
    }
}

/// Held while a Podman case runs: an in-process lock (cargo test runs cases on threads)
/// and an exclusive `flock` (cargo nextest runs each case in its own process).
pub struct SerialGuard {
    _in_process: tokio::sync::OwnedMutexGuard<()>,
    _file: std::fs::File,
}

impl SerialGuard {
    const LOCK_FILE: &'static str = "/tmp/sparebox-podman-suite.lock";

    async fn acquire() -> Self {
        static IN_PROCESS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Mutex<()>>> =
            std::sync::OnceLock::new();
        let mutex = IN_PROCESS.get_or_init(Default::default).clone();
        let in_process = mutex.lock_owned().await;
        let file = tokio::task::spawn_blocking(|| {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(Self::LOCK_FILE)
                .expect("open podman suite lock file");
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
                .expect("lock podman suite lock file");
            file
        })
        .await
        .expect("lock task");
        Self {
            _in_process: in_process,
            _file: file,
        }
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

/// An agent whose container is removed when the test ends, even when it fails.
pub struct TestAgent {
    pub spec: AgentSpec,
    engine: Engine,
    _state: TempDir,
}

impl TestAgent {
    pub fn new(engine: &Engine, tier: Tier) -> Self {
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
            engine: engine.clone(),
            _state: state,
        }
    }

    pub fn id(&self) -> AgentId {
        self.spec.agent
    }

    pub fn state_dir(&self) -> &Path {
        &self.spec.state_dir
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let agent = self.spec.agent;
        let engine = self.engine.clone();
        // Drop cannot await; remove the container from a short-lived runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            rt.block_on(async {
                if let Ok(runtime) = engine.connect().await {
                    if let Err(err) = runtime.remove(agent).await {
                        eprintln!("cleanup of agent {agent} failed: {err}");
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

pub async fn engine_inspect(runtime: &DockerRuntime, agent: AgentId) -> ContainerInspectResponse {
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
pub async fn wait_healthy(address: &str) -> serde_json::Value {
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
pub async fn exec<S: AsRef<str>>(
    runtime: &DockerRuntime,
    agent: AgentId,
    cmd: &[S],
) -> (i64, String) {
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

/// Runs `killall httpd` inside the agent's container without waiting for its result.
async fn kill_gateway(runtime: &DockerRuntime, agent: AgentId) {
    let docker = runtime.client();
    let options = CreateExecOptions {
        cmd: Some(vec!["killall".to_owned(), "httpd".to_owned()]),
        ..Default::default()
    };
    let exec = docker
        .create_exec(&agent_container_name(agent), options)
        .await
        .expect("create exec");
    let detached = bollard::exec::StartExecOptions {
        detach: true,
        ..Default::default()
    };
    let _ = docker
        .start_exec(&exec.id, Some(detached))
        .await
        .expect("start exec");
}

pub async fn standard_agent_runs_hardened_with_tier_limits(engine: &Engine) {
    let runtime = engine.runtime().await;
    let agent = TestAgent::new(engine, Tier::Standard);

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
    if engine.mode == IsolationMode::Docker {
        // Podman lists the dropped capabilities one by one instead; the process status
        // below is what counts on both.
        assert_eq!(host.cap_drop, Some(vec!["ALL".to_owned()]));
    }
    let (code, status) = exec(&runtime, agent.id(), &["cat", "/proc/self/status"]).await;
    assert_eq!(code, 0, "{status}");
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        let line = status
            .lines()
            .find(|l| l.starts_with(set))
            .unwrap_or_else(|| panic!("no {set} in {status}"));
        assert!(line.ends_with("0000000000000000"), "{line}");
    }
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

pub async fn agent_has_read_only_root_writable_home_and_runs_as_node(engine: &Engine) {
    let runtime = engine.runtime().await;
    let agent = TestAgent::new(engine, Tier::Lite);
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

pub async fn stats_report_plausible_usage(engine: &Engine) {
    let runtime = engine.runtime().await;
    let agent = TestAgent::new(engine, Tier::Lite);
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

pub async fn logs_and_secret_values_are_read_back_from_the_engine(engine: &Engine) {
    let runtime = engine.runtime().await;
    let agent = TestAgent::new(engine, Tier::Lite);
    runtime.create_and_start(&agent.spec).await.expect("create");
    wait_healthy(&format!("127.0.0.1:{}", agent.spec.gateway_port)).await;

    let query = sparebox_runtime::LogQuery {
        tail_lines: 1,
        since: Some(Duration::from_secs(600)),
    };
    let logs = runtime.logs(agent.id(), query).await.expect("logs");
    let text = String::from_utf8_lossy(&logs);
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(text.starts_with("gateway: listening"), "{text:?}");

    let mut found: Vec<String> = runtime
        .secret_values(agent.id())
        .await
        .expect("secret values")
        .iter()
        .map(|s| s.expose().to_owned())
        .collect();
    let mut given: Vec<String> = agent
        .spec
        .secret_env
        .values()
        .map(|s| s.expose().to_owned())
        .collect();
    found.sort();
    given.sort();
    assert!(!given.is_empty());
    assert_eq!(
        found, given,
        "exactly the spec's secrets, no plain variable"
    );

    let unknown = AgentId::new_random();
    let missing = runtime.logs(unknown, query).await.unwrap_err();
    assert!(matches!(missing, RuntimeError::NotFound(_)), "{missing}");
}

pub async fn stop_start_restart_and_remove_follow_the_lifecycle(engine: &Engine) {
    let runtime = engine.runtime().await;
    let agent = TestAgent::new(engine, Tier::Lite);
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

pub async fn container_with_weaker_limits_than_its_tier_is_not_verified(engine: &Engine) {
    let runtime = engine.runtime().await;
    let agent = TestAgent::new(engine, Tier::Standard);
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

pub async fn oom_kill_is_taken_from_the_engine_not_the_exit_code(engine: &Engine) {
    let runtime = engine.runtime().await;
    let agent = TestAgent::new(engine, Tier::Lite);
    let mut events = runtime.events();
    runtime.create_and_start(&agent.spec).await.expect("create");
    expect_event(&mut events, agent.id(), |k| *k == RuntimeEventKind::Started).await;

    // A process inside touches more than the tier's 1 GiB and is killed by the kernel.
    let (code, _) = exec(
        &runtime,
        agent.id(),
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=1100M", "count=1"],
    )
    .await;
    assert_eq!(code, 137, "the memory hog was not killed");

    if engine.mode == IsolationMode::Docker {
        // Docker reports the kill as an `oom` event of the container...
        expect_event(&mut events, agent.id(), |k| {
            *k == RuntimeEventKind::OomKilled
        })
        .await;
    }

    // The gateway itself exits normally on SIGTERM: the exit code says nothing about OOM,
    // the engine's flag does.
    runtime.stop(agent.id(), GRACE).await.expect("stop");
    let stopped = runtime.inspect(agent.id()).await.unwrap().expect("exists");
    assert_ne!(stopped.exit_code, Some(137), "{stopped:?}");
    match engine.mode {
        // ...and sets OOMKilled.
        IsolationMode::Docker => assert!(stopped.oom_killed, "{stopped:?}"),
        // Podman 4.3 on cgroup v1 reports neither (measured here, also for an OOM-killed
        // main process, which exits 137): the runtime then says "not OOM" rather than
        // guessing from the exit code.
        _ => assert!(!stopped.oom_killed, "{stopped:?}"),
    }
}

pub async fn operations_on_an_agent_without_container_report_not_found(engine: &Engine) {
    let runtime = engine.runtime().await;
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

pub async fn missing_image_is_reported_unavailable_by_name(engine: &Engine) {
    let runtime = engine.runtime().await;
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

/// The image a container runs is reported by id with the OpenClaw version its labels name,
/// and once the container's image reference moves to a newer image (here a commit of the
/// running agent with a version label, as a pull or a local build would do) the runtime
/// shows the reference's new id while the container keeps the old one; a pull from an
/// unreachable registry is an error naming the image.
pub async fn image_identity_and_version_follow_a_moved_reference(engine: &Engine) {
    use bollard::query_parameters::{CommitContainerOptions, RemoveImageOptions, TagImageOptions};
    let runtime = engine.runtime().await;
    let repo = format!("sparebox-image-check-{}", AgentId::new_random().short());
    let reference = format!("{repo}:stable");
    runtime
        .client()
        .tag_image(
            &test_image(),
            Some(TagImageOptions {
                repo: Some(repo.clone()),
                tag: Some("stable".to_owned()),
            }),
        )
        .await
        .expect("tag the test image");
    let original = runtime
        .image_info(&reference)
        .await
        .unwrap()
        .expect("the tagged image is present");
    let test = runtime.image_info(&test_image()).await.unwrap().unwrap();
    assert_eq!(original.id, test.id, "a tag names the same image");
    assert_eq!(
        original.openclaw_version, None,
        "the test image names no version"
    );

    let mut agent = TestAgent::new(engine, Tier::Lite);
    agent.spec.image = reference.clone();
    let created = runtime.create_and_start(&agent.spec).await.expect("create");
    // Podman reports the reference fully qualified (`docker.io/library/…`).
    assert!(created.image.ends_with(&reference), "{}", created.image);
    assert_eq!(created.image_id.as_deref(), Some(original.id.as_str()));

    runtime
        .client()
        .commit_container(
            CommitContainerOptions {
                container: Some(agent_container_name(agent.id())),
                repo: Some(repo.clone()),
                tag: Some("stable".to_owned()),
                changes: Some("LABEL dev.sparebox.openclaw-version=2026.12.1".to_owned()),
                pause: false,
                ..Default::default()
            },
            bollard::models::ContainerConfig::default(),
        )
        .await
        .expect("commit a newer image under the same reference");
    let newer = runtime.image_info(&reference).await.unwrap().unwrap();
    assert_ne!(newer.id, original.id, "the reference moved");
    assert_eq!(newer.openclaw_version.as_deref(), Some("2026.12.1"));
    let running = runtime.inspect(agent.id()).await.unwrap().unwrap();
    assert_eq!(
        running.image_id.as_deref(),
        Some(original.id.as_str()),
        "the container keeps running the image it was created from"
    );

    let err = runtime.refresh_image(&reference).await.unwrap_err();
    assert!(
        matches!(&err, RuntimeError::ImageUnavailable { image, .. } if image == &reference),
        "{err:?}"
    );

    runtime.remove(agent.id()).await.expect("remove");
    let remove = Some(RemoveImageOptions {
        force: true,
        ..Default::default()
    });
    let _ = runtime
        .client()
        .remove_image(&reference, remove.clone(), None)
        .await;
    let _ = runtime.client().remove_image(&newer.id, remove, None).await;
}

pub async fn creating_an_agent_twice_fails_clearly(engine: &Engine) {
    let runtime = engine.runtime().await;
    let agent = TestAgent::new(engine, Tier::Lite);
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

pub async fn invalid_spec_is_refused_before_anything_is_created(engine: &Engine) {
    let runtime = engine.runtime().await;
    let mut agent = TestAgent::new(engine, Tier::Lite);

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
pub fn probe(ip: &str) -> Vec<String> {
    let url = format!("http://{ip}:18789/healthz");
    ["timeout", "5", "wget", "-q", "-O", "-", &url]
        .map(str::to_owned)
        .to_vec()
}

pub async fn agents_cannot_reach_each_other_on_the_agent_network(engine: &Engine) {
    let runtime = engine.runtime().await;
    let (a, b) = (
        TestAgent::new(engine, Tier::Lite),
        TestAgent::new(engine, Tier::Lite),
    );
    runtime.create_and_start(&a.spec).await.expect("create a");
    runtime.create_and_start(&b.spec).await.expect("create b");

    let container = engine_inspect(&runtime, b.id()).await;
    let networks = container
        .network_settings
        .and_then(|s| s.networks)
        .expect("networks");
    let network = engine.agent_network(b.id());
    assert_eq!(networks.keys().collect::<Vec<_>>(), vec![&network]);
    let b_ip = networks[&network]
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

pub async fn fingerprint_reports_engine_and_cgroup_version(engine: &Engine) {
    let runtime = engine.runtime().await;
    let fingerprint = runtime.fingerprint().await.expect("fingerprint");
    assert_eq!(fingerprint.engine, runtime.isolation().as_str());
    assert!(!fingerprint.version.is_empty());
    assert!(
        matches!(fingerprint.cgroup_version, Some(1 | 2)),
        "{fingerprint:?}"
    );
}

/// Waits for the next event of `agent` matching `wanted`, skipping others; panics with what
/// it saw after [`EVENT_DEADLINE`].
pub async fn expect_event(
    events: &mut BoxStream<'static, RuntimeResult<RuntimeEvent>>,
    agent: AgentId,
    wanted: impl Fn(&RuntimeEventKind) -> bool,
) -> RuntimeEventKind {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    loop {
        let next = tokio::time::timeout_at(deadline, events.next()).await;
        match next {
            Ok(Some(Ok(event))) if event.agent == agent => {
                if wanted(&event.kind) {
                    return event.kind;
                }
                seen.push(event.kind);
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(err))) => panic!("event stream error: {err}; seen {seen:?}"),
            Ok(None) => panic!("event stream ended; seen {seen:?}"),
            Err(_) => panic!("no matching event within {EVENT_DEADLINE:?}; seen {seen:?}"),
        }
    }
}

pub async fn events_report_start_death_with_exit_code_and_engine_restart(engine: &Engine) {
    let runtime = engine.runtime().await;
    let agent = TestAgent::new(engine, Tier::Lite);
    let mut events = runtime.events();
    runtime.create_and_start(&agent.spec).await.expect("create");
    expect_event(&mut events, agent.id(), |k| *k == RuntimeEventKind::Started).await;

    // The gateway dies on its own (SIGTERM from inside); the restart policy brings it back.
    // The exec's own result is not checked: killing the main process stops the container,
    // and Podman may drop the exec session before it can be inspected. The died event
    // below is what proves the kill happened.
    kill_gateway(&runtime, agent.id()).await;
    let died = expect_event(&mut events, agent.id(), |k| {
        matches!(k, RuntimeEventKind::Died { .. })
    })
    .await;
    let RuntimeEventKind::Died {
        exit_code,
        oom_killed,
    } = died
    else {
        unreachable!()
    };
    assert!(
        matches!(exit_code, Some(code) if code != 0),
        "{exit_code:?}"
    );
    assert!(!oom_killed);
    let restarted = expect_event(&mut events, agent.id(), |k| {
        matches!(k, RuntimeEventKind::Restarted { .. })
    })
    .await;
    assert!(
        matches!(restarted, RuntimeEventKind::Restarted { restart_count } if restart_count >= 1),
        "{restarted:?}"
    );
    let info = runtime.inspect(agent.id()).await.unwrap().expect("exists");
    assert!(info.restart_count >= 1, "{info:?}");

    // A requested stop is a death too, with its exit code.
    runtime.stop(agent.id(), GRACE).await.expect("stop");
    let stopped = expect_event(&mut events, agent.id(), |k| {
        matches!(k, RuntimeEventKind::Died { .. })
    })
    .await;
    assert!(
        matches!(
            stopped,
            RuntimeEventKind::Died {
                exit_code: Some(_),
                oom_killed: false
            }
        ),
        "{stopped:?}"
    );

    // An explicit start is a start, not an engine restart.
    runtime.start(agent.id()).await.expect("start");
    expect_event(&mut events, agent.id(), |k| *k == RuntimeEventKind::Started).await;
}

pub async fn removing_an_agent_removes_what_the_runtime_created_for_it(engine: &Engine) {
    let runtime = engine.runtime().await;
    let agent = TestAgent::new(engine, Tier::Lite);
    runtime.create_and_start(&agent.spec).await.expect("create");
    let network = engine.agent_network(agent.id());
    let networks = || async {
        runtime
            .client()
            .list_networks(None::<bollard::query_parameters::ListNetworksOptions>)
            .await
            .expect("list networks")
            .into_iter()
            .filter_map(|n| n.name)
            .collect::<Vec<_>>()
    };
    assert!(networks().await.contains(&network));

    runtime.remove(agent.id()).await.expect("remove");
    let left = networks().await;
    match engine.mode {
        // The agent's own network goes with it.
        IsolationMode::Podman => assert!(!left.contains(&network), "{left:?}"),
        // The shared network stays for the other agents.
        _ => assert!(left.contains(&network), "{left:?}"),
    }
}

/// One `#[tokio::test]` per case of the suite, run against `$engine` (an [`Engine`]).
#[macro_export]
macro_rules! engine_suite {
    ($engine:expr) => {
        $crate::engine_suite!(@cases $engine;
            standard_agent_runs_hardened_with_tier_limits,
            agent_has_read_only_root_writable_home_and_runs_as_node,
            stats_report_plausible_usage,
            logs_and_secret_values_are_read_back_from_the_engine,
            stop_start_restart_and_remove_follow_the_lifecycle,
            container_with_weaker_limits_than_its_tier_is_not_verified,
            oom_kill_is_taken_from_the_engine_not_the_exit_code,
            operations_on_an_agent_without_container_report_not_found,
            missing_image_is_reported_unavailable_by_name,
            image_identity_and_version_follow_a_moved_reference,
            creating_an_agent_twice_fails_clearly,
            invalid_spec_is_refused_before_anything_is_created,
            agents_cannot_reach_each_other_on_the_agent_network,
            fingerprint_reports_engine_and_cgroup_version,
            events_report_start_death_with_exit_code_and_engine_restart,
            removing_an_agent_removes_what_the_runtime_created_for_it
        );
    };
    (@cases $engine:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                engine::$case(&$engine).await
            }
        )*
    };
}
