//! `ProfileRuntime` with a small shell script standing in for OpenClaw: process groups,
//! environment and files, crash backoff and the crash loop, the memory watchdog, and
//! finding agents again after a daemon restart. Needs only `/bin/sh` and coreutils. A real
//! OpenClaw in profile mode is booted by `tests/openclaw.rs`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use sparebox_core::{AgentId, Secret, Tier};
use sparebox_protocol::IsolationMode;
use sparebox_runtime::profile::{ProfileConfig, ProfileRuntime, PROFILE_PORT_SPACING};
use sparebox_runtime::{
    agent_container_name, AgentSpec, ContainerState, Runtime, RuntimeEvent, RuntimeEventKind,
    RuntimeResult,
};
use tempfile::TempDir;

const EVENT_DEADLINE: Duration = Duration::from_secs(60);
const GRACE: Duration = Duration::from_secs(5);
const SECRET: &str = "profile-secret-not-for-disk";

/// The stand-in for `openclaw`: records its arguments and environment names, then behaves
/// as `FAKE_MODE` says: `serve` sleeps with a child in its group, `crash` exits 3 at once,
/// `hog` starts a child that holds about 1.3 GB.
const FAKE_OPENCLAW: &str = r#"#!/bin/sh
state="$OPENCLAW_STATE_DIR"
echo "$@" >"$state/args"
env | cut -d= -f1 | sort >"$state/env-names"
echo "HOME=$HOME" >"$state/paths"
echo "CONFIG=$OPENCLAW_CONFIG_PATH" >>"$state/paths"
echo "CACHE=$XDG_CACHE_HOME" >>"$state/paths"
echo "NODE_OPTIONS=$NODE_OPTIONS" >>"$state/paths"
[ -n "$OPENCLAW_GATEWAY_TOKEN" ] && echo "token present" >>"$state/paths"
echo "fake gateway starting in mode $FAKE_MODE"
case "$FAKE_MODE" in
    crash) echo "fake gateway crashing" >&2; exit 3 ;;
    hog) { head -c 1300M /dev/zero; sleep 3600; } | tail >/dev/null & ;;
    *) sleep 3600 & ;;
esac
echo $! >"$state/child"
exec sleep 3600
"#;

struct Fixture {
    dir: TempDir,
    bin: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("fake-openclaw");
        std::fs::write(&bin, FAKE_OPENCLAW).expect("write fake openclaw");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::create_dir(dir.path().join("states")).expect("states dir");
        Self { dir, bin }
    }

    fn base(&self) -> PathBuf {
        self.dir.path().join("agents")
    }

    async fn runtime(&self, config: ProfileConfig) -> ProfileRuntime {
        ProfileRuntime::new(self.bin.clone(), self.base(), config)
            .await
            .expect("profile runtime")
    }

    fn spec(&self, mode: &str, port: u16, secret: bool) -> AgentSpec {
        let agent = AgentId::new_random();
        let state = self.dir.path().join("states").join(agent.short());
        std::fs::create_dir(&state).expect("state dir");
        AgentSpec {
            agent,
            tier: Tier::Lite,
            image: "ignored".to_owned(),
            gateway_port: port,
            state_dir: state,
            env: BTreeMap::from([("FAKE_MODE".to_owned(), mode.to_owned())]),
            secret_env: if secret {
                BTreeMap::from([("OPENCLAW_GATEWAY_TOKEN".to_owned(), Secret::new(SECRET))])
            } else {
                BTreeMap::new()
            },
        }
    }
}

fn fast_config() -> ProfileConfig {
    ProfileConfig {
        memory_window: Duration::from_secs(1),
        watchdog_interval: Duration::from_millis(200),
        backoff_initial: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        quick_failure: Duration::from_secs(30),
        crash_loop_failures: 3,
        remove_grace: Duration::from_secs(2),
    }
}

async fn wait_for_file(path: &Path) -> String {
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return text;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn expect_event(
    events: &mut BoxStream<'static, RuntimeResult<RuntimeEvent>>,
    agent: AgentId,
    wanted: impl Fn(&RuntimeEventKind) -> bool,
) -> RuntimeEventKind {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
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

fn process_exists(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next());
            !matches!(state, Some(Some('Z' | 'X')))
        })
        .unwrap_or(false)
}

/// Whether `pid` is gone within the deadline (a killed process takes a moment to exit,
/// longer when it frees a lot of memory).
async fn gone(pid: u32) -> bool {
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    while process_exists(pid) {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_containing(&path, needle));
        } else if std::fs::read(&path)
            .map(|b| String::from_utf8_lossy(&b).contains(needle))
            .unwrap_or(false)
        {
            found.push(path);
        }
    }
    found
}

#[tokio::test]
async fn profile_agent_runs_in_its_own_group_with_its_own_home_state_and_log() {
    let fixture = Fixture::new();
    let runtime = fixture.runtime(fast_config()).await;
    let spec = fixture.spec("serve", 41000, true);
    let agent = spec.agent;
    let mut events = runtime.events();

    let info = runtime.create_and_start(&spec).await.expect("create");
    assert_eq!(runtime.isolation(), IsolationMode::Profile);
    assert_eq!(info.state, ContainerState::Running);
    assert!(!info.isolation.verified);
    assert!(
        info.isolation.mismatches[0].contains("no resource or filesystem isolation"),
        "{:?}",
        info.isolation.mismatches
    );
    assert_eq!(info.memory_limit_bytes, Some(1024 * 1024 * 1024));
    expect_event(&mut events, agent, |k| *k == RuntimeEventKind::Started).await;

    let args = wait_for_file(&spec.state_dir.join("args")).await;
    let name = agent_container_name(agent);
    assert_eq!(
        args.trim(),
        format!("--profile {name} gateway --port 41000 --bind loopback")
    );
    let child: u32 = wait_for_file(&spec.state_dir.join("child"))
        .await
        .trim()
        .parse()
        .unwrap();
    let paths = std::fs::read_to_string(spec.state_dir.join("paths")).unwrap();
    let agent_dir = fixture.base().join(&name);
    assert!(paths.contains(&format!("HOME={}", agent_dir.join("home").display())));
    let state = spec.state_dir.display();
    assert!(
        paths.contains(&format!("CONFIG={state}/openclaw.json")),
        "{paths}"
    );
    assert!(paths.contains(&format!("CACHE={state}/.cache")), "{paths}");
    assert!(
        paths.contains("NODE_OPTIONS=--max-old-space-size=640"),
        "{paths}"
    );
    assert!(paths.contains("token present"), "{paths}");
    let log = wait_for_file(&runtime.log_path(agent)).await;
    assert!(log.contains("fake gateway starting in mode serve"), "{log}");

    let stats = runtime.stats(agent).await.expect("stats");
    assert!(stats.memory_bytes > 0, "{stats:?}");
    assert_eq!(stats.memory_limit_bytes, 1024 * 1024 * 1024);
    assert!(stats.cpu_percent.is_finite() && stats.cpu_percent >= 0.0);

    // The secret reached the process but no file.
    assert!(files_containing(fixture.dir.path(), SECRET).is_empty());

    runtime.stop(agent, GRACE).await.expect("stop");
    let died = expect_event(&mut events, agent, |k| {
        matches!(k, RuntimeEventKind::Died { .. })
    })
    .await;
    assert!(
        matches!(
            died,
            RuntimeEventKind::Died {
                oom_killed: false,
                ..
            }
        ),
        "{died:?}"
    );
    assert!(
        gone(child).await,
        "child {child} of the group survived stop"
    );
    let stopped = runtime.inspect(agent).await.unwrap().expect("known");
    assert_eq!(stopped.state, ContainerState::Exited);

    runtime.start(agent).await.expect("start again");
    expect_event(&mut events, agent, |k| *k == RuntimeEventKind::Started).await;
    runtime.remove(agent).await.expect("remove");
    assert_eq!(runtime.inspect(agent).await.unwrap(), None);
    assert!(!agent_dir.exists());
    runtime.remove(agent).await.expect("removing twice is fine");
}

#[tokio::test]
async fn crashing_agent_restarts_with_backoff_then_stops_in_a_crash_loop() {
    let fixture = Fixture::new();
    let runtime = fixture.runtime(fast_config()).await;
    let spec = fixture.spec("crash", 41100, false);
    let agent = spec.agent;
    let mut events = runtime.events();

    runtime.create_and_start(&spec).await.expect("create");
    expect_event(&mut events, agent, |k| *k == RuntimeEventKind::Started).await;
    let died = expect_event(&mut events, agent, |k| {
        matches!(k, RuntimeEventKind::Died { .. })
    })
    .await;
    assert_eq!(
        died,
        RuntimeEventKind::Died {
            exit_code: Some(3),
            oom_killed: false
        }
    );
    for count in 1..=2 {
        let restarted = expect_event(&mut events, agent, |k| {
            matches!(k, RuntimeEventKind::Restarted { .. })
        })
        .await;
        assert_eq!(
            restarted,
            RuntimeEventKind::Restarted {
                restart_count: count
            }
        );
    }
    let looped = expect_event(&mut events, agent, |k| {
        matches!(k, RuntimeEventKind::CrashLoop { .. })
    })
    .await;
    assert_eq!(looped, RuntimeEventKind::CrashLoop { failures: 3 });
    assert!(runtime.is_crash_looping(agent));
    let info = runtime.inspect(agent).await.unwrap().expect("known");
    assert_eq!(info.state, ContainerState::Exited);
    assert_eq!(info.exit_code, Some(3));
    assert_eq!(info.restart_count, 2);

    // A requested start clears the crash loop and tries again.
    runtime.start(agent).await.expect("start");
    assert!(!runtime.is_crash_looping(agent));
    expect_event(&mut events, agent, |k| *k == RuntimeEventKind::Started).await;
    runtime.remove(agent).await.expect("remove");
}

#[tokio::test]
async fn watchdog_kills_a_process_tree_that_stays_above_the_tier_memory() {
    let fixture = Fixture::new();
    let runtime = fixture.runtime(fast_config()).await;
    let spec = fixture.spec("hog", 41200, false);
    let agent = spec.agent;
    let mut events = runtime.events();

    runtime.create_and_start(&spec).await.expect("create");
    expect_event(&mut events, agent, |k| *k == RuntimeEventKind::OomKilled).await;
    let died = expect_event(&mut events, agent, |k| {
        matches!(k, RuntimeEventKind::Died { .. })
    })
    .await;
    assert!(
        matches!(
            died,
            RuntimeEventKind::Died {
                oom_killed: true,
                ..
            }
        ),
        "{died:?}"
    );
    let child: u32 = std::fs::read_to_string(spec.state_dir.join("child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(gone(child).await, "the hog {child} survived the watchdog");
    runtime.remove(agent).await.expect("remove");
}

#[tokio::test]
async fn agents_are_found_again_after_a_daemon_restart() {
    let fixture = Fixture::new();
    let spec = fixture.spec("serve", 41300, false);
    let with_secret = fixture.spec("crash", 41400, true);
    let agent = spec.agent;
    let pid = {
        let runtime = fixture.runtime(ProfileConfig::default()).await;
        runtime.create_and_start(&spec).await.expect("create");
        wait_for_file(&spec.state_dir.join("child")).await;
        let mut config = fast_config();
        config.crash_loop_failures = 1;
        let crashing = fixture.runtime(config).await;
        crashing
            .create_and_start(&with_secret)
            .await
            .expect("create");
        let mut events = crashing.events();
        expect_event(&mut events, with_secret.agent, |k| {
            matches!(k, RuntimeEventKind::CrashLoop { .. })
        })
        .await;
        let record: serde_json::Value = serde_json::from_slice(
            &std::fs::read(
                fixture
                    .base()
                    .join(agent_container_name(agent))
                    .join("agent.json"),
            )
            .unwrap(),
        )
        .unwrap();
        record["process"]["pid"].as_u64().unwrap() as u32
        // Both runtimes are dropped here, as when the daemon exits; the agent keeps running.
    };
    assert!(process_exists(pid));

    let runtime = fixture.runtime(fast_config()).await;
    let listed = runtime.list().await.expect("list");
    let found = listed
        .iter()
        .find(|i| i.agent == agent)
        .expect("found again");
    assert_eq!(found.state, ContainerState::Running);
    let stats = runtime
        .stats(agent)
        .await
        .expect("stats of an adopted agent");
    assert!(stats.memory_bytes > 0);

    // The agent started with a secret is known but cannot be restarted from disk.
    let exited = listed
        .iter()
        .find(|i| i.agent == with_secret.agent)
        .expect("found again");
    assert_eq!(exited.state, ContainerState::Exited);
    let err = runtime.start(with_secret.agent).await.unwrap_err();
    assert!(err.to_string().contains("create it again"), "{err}");

    runtime
        .stop(agent, GRACE)
        .await
        .expect("stop adopted agent");
    assert!(gone(pid).await, "adopted agent {pid} survived stop");
    runtime.remove(agent).await.expect("remove");
    runtime.remove(with_secret.agent).await.expect("remove");
}

#[tokio::test]
async fn a_reused_pid_is_not_mistaken_for_the_agent() {
    let fixture = Fixture::new();
    let agent = AgentId::new_random();
    let dir = fixture.base().join(agent_container_name(agent));
    std::fs::create_dir_all(&dir).unwrap();
    // This test process is alive, but did not start at tick 1.
    let record = serde_json::json!({
        "agent": agent.to_string(),
        "tier": "lite",
        "gatewayPort": 41500,
        "stateDir": fixture.dir.path().display().to_string(),
        "env": {},
        "secretNames": [],
        "process": {"pid": std::process::id(), "startTicks": 1}
    });
    std::fs::write(dir.join("agent.json"), record.to_string()).unwrap();

    let runtime = fixture.runtime(fast_config()).await;
    let info = runtime.inspect(agent).await.unwrap().expect("found");
    assert_eq!(info.state, ContainerState::Exited);
    runtime.remove(agent).await.expect("remove");
    assert!(!dir.exists());
}

#[tokio::test]
async fn ports_closer_than_the_spacing_and_bad_specs_are_refused() {
    let fixture = Fixture::new();
    let runtime = fixture.runtime(fast_config()).await;
    let first = fixture.spec("serve", 42000, false);
    runtime.create_and_start(&first).await.expect("create");

    let near = fixture.spec("serve", 42000 + PROFILE_PORT_SPACING - 1, false);
    let err = runtime.create_and_start(&near).await.unwrap_err();
    assert!(err.to_string().contains("within 20"), "{err}");
    let far = fixture.spec("serve", 42000 + PROFILE_PORT_SPACING, false);
    runtime
        .create_and_start(&far)
        .await
        .expect("spaced port is fine");

    let err = runtime.create_and_start(&first).await.unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let mut relative = fixture.spec("serve", 43000, false);
    relative.state_dir = "relative/state".into();
    let err = runtime.create_and_start(&relative).await.unwrap_err();
    assert!(err.to_string().contains("absolute"), "{err}");
    assert!(runtime.inspect(relative.agent).await.unwrap().is_none());

    let missing = ProfileRuntime::new(
        fixture.dir.path().join("no-such-openclaw"),
        fixture.dir.path().join("other"),
        fast_config(),
    )
    .await
    .unwrap();
    assert!(missing.ensure_image("any").await.is_err());
    let spawn_fails = fixture.spec("serve", 44000, false);
    let err = missing.create_and_start(&spawn_fails).await.unwrap_err();
    assert!(err.to_string().contains("no-such-openclaw"), "{err}");
    assert!(missing.inspect(spawn_fails.agent).await.unwrap().is_none());

    runtime.remove(first.agent).await.expect("remove");
    runtime.remove(far.agent).await.expect("remove");
}
