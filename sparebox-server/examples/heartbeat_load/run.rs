//! Drives the seeded hosts' heartbeats against a running server and measures them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use sparebox_core::{AgentId, CommandId, CommandKind};
use sparebox_protocol::HeartbeatResponse;
use tokio::time::Instant;

use crate::payload::{self, SimAgent};
use crate::Flags;

/// One seeded host: its key and its agents.
struct SimHost {
    key: String,
    agents: Vec<SimAgent>,
}

/// What every host task shares.
struct Shared {
    client: reqwest::Client,
    url: String,
    interval: Duration,
    end: Instant,
    latencies_us: Mutex<Vec<u32>>,
    ok: AtomicU64,
    failed: AtomicU64,
    /// Failed heartbeats the server refused as too busy (503), counted in `failed` too.
    busy: AtomicU64,
    commands_received: AtomicU64,
    hosts_last_ok: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// Runs the load; returns whether every heartbeat got a 200.
pub async fn run(flags: &Flags) -> bool {
    let server = flags.text("server", "http://127.0.0.1:8080");
    let base = server.trim_end_matches('/').to_owned();
    let (token, mut hosts) = read_keys(&flags.text("keys", "keys.txt"));
    hosts.truncate(flags.number("hosts", hosts.len() as u64) as usize);
    let interval = Duration::from_millis(flags.number("interval-ms", 60_000));
    let duration = Duration::from_secs(flags.number("duration-s", 60));
    let commands_per_s = flags.number("commands-per-s", 5);

    let start = Instant::now() + Duration::from_millis(200);
    let shared = Arc::new(Shared {
        client: reqwest::Client::new(),
        url: format!("{base}/api/v1/hosts/heartbeat"),
        interval,
        end: start + duration,
        latencies_us: Mutex::new(Vec::new()),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        busy: AtomicU64::new(0),
        commands_received: AtomicU64::new(0),
        hosts_last_ok: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let agents: Vec<AgentId> = hosts
        .iter()
        .flat_map(|h| h.agents.iter().map(|a| a.id))
        .collect();
    let host_count = hosts.len();
    let mut tasks = Vec::with_capacity(host_count);
    for (i, host) in hosts.into_iter().enumerate() {
        let phase = interval.mul_f64(i as f64 / host_count.max(1) as f64);
        tasks.push(tokio::spawn(host_loop(shared.clone(), host, start + phase)));
    }
    let deployer = tokio::spawn(deployer(
        shared.client.clone(),
        base,
        token,
        agents.clone(),
        commands_per_s,
        // Stop queueing two intervals before the end, so every queued command can still
        // be delivered and counted.
        shared.end.checked_sub(interval * 2).unwrap_or(start),
    ));
    for task in tasks {
        task.await.expect("host task");
    }
    let (queued, refused) = deployer.await.expect("deployer task");
    // Until the last answer arrived: longer than the run when the server fell behind.
    let wall = start.elapsed();

    let mut latencies = std::mem::take(&mut *shared.latencies_us.lock().unwrap());
    latencies.sort_unstable();
    let ok = shared.ok.load(Ordering::Relaxed);
    let failed = shared.failed.load(Ordering::Relaxed);
    let busy = shared.busy.load(Ordering::Relaxed);
    println!(
        "hosts={host_count} agents={} interval={interval:?} duration={duration:?} heartbeats_ok={ok} \
         heartbeats_failed={failed} (busy={busy}) rate={:.0}/s p50={} p99={} max={} commands_queued={queued} \
         commands_refused={refused} commands_delivered={} hosts_last_heartbeat_ok={}/{host_count}",
        agents.len(),
        ok as f64 / wall.as_secs_f64(),
        millis(percentile(&latencies, 0.50)),
        millis(percentile(&latencies, 0.99)),
        millis(latencies.last().copied().unwrap_or(0)),
        shared.commands_received.load(Ordering::Relaxed),
        shared.hosts_last_ok.load(Ordering::Relaxed),
    );
    if let Some(error) = shared.first_error.lock().unwrap().as_ref() {
        println!("first failure: {error}");
    }
    failed == 0 && ok > 0
}

fn read_keys(path: &str) -> (String, Vec<SimHost>) {
    let text = std::fs::read_to_string(path).expect("read keys file");
    let mut lines = text.lines();
    let token = lines
        .next()
        .and_then(|line| line.strip_prefix("token "))
        .expect("keys file starts with the token")
        .to_owned();
    let hosts = lines
        .enumerate()
        .map(|(i, line)| {
            let (key, agents) = line.split_once(' ').expect("host line");
            let agents = agents
                .split(',')
                .filter(|id| !id.is_empty())
                .enumerate()
                .map(|(j, id)| SimAgent {
                    id: id.parse().expect("agent id"),
                    running: true,
                    started_at: Utc::now() - chrono::Duration::seconds(3600 + i as i64),
                    port: 18000 + j as u16,
                })
                .collect();
            SimHost {
                key: key.to_owned(),
                agents,
            }
        })
        .collect();
    (token, hosts)
}

/// One simulated host daemon: a heartbeat every interval until the end.
async fn host_loop(shared: Arc<Shared>, mut host: SimHost, first: Instant) {
    let mut next = first;
    let mut acks: Vec<CommandId> = Vec::new();
    let mut last_ok = false;
    while next < shared.end {
        tokio::time::sleep_until(next).await;
        next += shared.interval;
        let body = serde_json::to_vec(&payload::request(&host.agents, &acks, Utc::now()))
            .expect("heartbeat serialises");
        let sent = Instant::now();
        match heartbeat(&shared, &host.key, body).await {
            Ok(response) => {
                let elapsed = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                shared.latencies_us.lock().unwrap().push(elapsed);
                shared.ok.fetch_add(1, Ordering::Relaxed);
                acks = apply_commands(&shared, &mut host, &response);
                last_ok = true;
            }
            Err(error) => {
                last_ok = false;
                shared.failed.fetch_add(1, Ordering::Relaxed);
                if error.starts_with("503") {
                    shared.busy.fetch_add(1, Ordering::Relaxed);
                }
                shared.first_error.lock().unwrap().get_or_insert(error);
            }
        }
    }
    if last_ok {
        shared.hosts_last_ok.fetch_add(1, Ordering::Relaxed);
    }
}

async fn heartbeat(shared: &Shared, key: &str, body: Vec<u8>) -> Result<HeartbeatResponse, String> {
    let response = shared
        .client
        .post(&shared.url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|err| format!("send: {err}"))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|err| format!("read: {err}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("{status}: {}", String::from_utf8_lossy(&bytes)));
    }
    serde_json::from_slice(&bytes).map_err(|err| format!("decode: {err}"))
}

/// Carries out the answer's commands on the simulated agents; returns the acks to send.
fn apply_commands(
    shared: &Shared,
    host: &mut SimHost,
    response: &HeartbeatResponse,
) -> Vec<CommandId> {
    for command in &response.commands {
        shared.commands_received.fetch_add(1, Ordering::Relaxed);
        if let Some(agent) = host.agents.iter_mut().find(|a| a.id == command.agent_id) {
            match command.kind {
                CommandKind::Stop => agent.running = false,
                CommandKind::Start | CommandKind::Restart | CommandKind::Deploy => {
                    agent.running = true;
                    agent.started_at = Utc::now();
                }
                // Configuration, upgrades, logs and backups leave it as it runs.
                _ => {}
            }
        }
    }
    response.commands.iter().map(|c| c.id).collect()
}

/// Queues stop/start commands on random agents at `per_s` a second until `end`; returns
/// how many the API queued and how many it refused (a stop for an agent already stopping,
/// for example).
async fn deployer(
    client: reqwest::Client,
    base: String,
    token: String,
    agents: Vec<AgentId>,
    per_s: u64,
    end: Instant,
) -> (u64, u64) {
    let (mut queued, mut refused) = (0, 0);
    if per_s == 0 || agents.is_empty() {
        return (queued, refused);
    }
    let mut stopped = std::collections::HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_s as f64));
    while Instant::now() < end {
        tick.tick().await;
        let agent = agents[rand::thread_rng().gen_range(0..agents.len())];
        let kind = if stopped.remove(&agent) {
            "start"
        } else {
            stopped.insert(agent);
            "stop"
        };
        let response = client
            .post(format!("{base}/api/v1/agents/{agent}/commands"))
            .bearer_auth(&token)
            .json(&serde_json::json!({ "type": kind }))
            .send()
            .await;
        match response {
            Ok(r) if r.status().is_success() => queued += 1,
            _ => refused += 1,
        }
    }
    (queued, refused)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis(micros: u32) -> String {
    format!("{:.1}ms", f64::from(micros) / 1000.0)
}
