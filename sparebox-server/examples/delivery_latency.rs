//! Measures how long a deployer's command takes to reach a host daemon that long-polls.
//!
//! Simulates `--hosts` daemons, each holding a heartbeat open (`waitSeconds`), against a
//! running server (`--server`, e.g. the release binary started by
//! `scripts/bench-delivery.sh`). A deployer then queues `--commands` stop/start commands,
//! one every `--interval-ms`, on agents spread over the hosts, and the time from the start
//! of the deployer's API call to the moment a held heartbeat delivers that command is
//! recorded. Prints p50, p99 and max, and how many commands no daemon had received five
//! seconds after the last was queued. This is a benchmark, not a test: it asserts nothing.
//!
//! ```text
//! cargo run --release -p sparebox-server --example delivery_latency -- \
//!     --server http://127.0.0.1:8080 --hosts 10000 --agents 100 --commands 500
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Args {
    server: String,
    hosts: usize,
    agents: usize,
    commands: usize,
    interval: Duration,
    wait_seconds: u32,
}

fn parse_args() -> Args {
    let mut args = Args {
        server: "http://127.0.0.1:8080".into(),
        hosts: 1000,
        agents: 50,
        commands: 200,
        interval: Duration::from_millis(50),
        wait_seconds: 25,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => args.server = value,
            "--hosts" => args.hosts = value.parse().expect("--hosts is a number"),
            "--agents" => args.agents = value.parse().expect("--agents is a number"),
            "--commands" => args.commands = value.parse().expect("--commands is a number"),
            "--interval-ms" => {
                args.interval =
                    Duration::from_millis(value.parse().expect("--interval-ms is a number"))
            }
            "--wait-seconds" => {
                args.wait_seconds = value.parse().expect("--wait-seconds is a number")
            }
            other => panic!("unknown flag {other}"),
        }
    }
    args.agents = args.agents.min(args.hosts).max(1);
    args
}

fn heartbeat_body(acks: &[String], wait: Option<u32>) -> Value {
    json!({
        "protocolVersion": 1,
        "daemonVersion": "bench",
        "isolation": "docker",
        "hardware": { "ramMb": 16384, "cpuCores": 8, "diskGb": 200, "os": "linux", "arch": "x86_64", "gpu": null },
        "agentStatuses": [],
        "commandAcks": acks.iter().map(|id| json!({ "id": id, "status": "acked" })).collect::<Vec<_>>(),
        "waitSeconds": wait,
    })
}

async fn post(client: &reqwest::Client, url: String, token: &str, body: Value) -> Value {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("server reachable");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON answer");
    assert!(status.is_success(), "{status}: {body}");
    body
}

/// Command id → when a daemon received it. Daemons record every command they receive, so
/// a command delivered before the deployer has read its own API answer is still counted.
type Received = Arc<Mutex<HashMap<String, Instant>>>;

/// One simulated daemon: long-polls forever, acks what it receives, records when.
async fn daemon(
    client: reqwest::Client,
    base: String,
    key: String,
    wait: u32,
    received_log: Received,
) {
    let mut acks: Vec<String> = Vec::new();
    loop {
        let response = client
            .post(format!("{base}/api/v1/hosts/heartbeat"))
            .bearer_auth(&key)
            .json(&heartbeat_body(&acks, Some(wait)))
            .send()
            .await;
        let Ok(response) = response else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let Ok(body) = response.json::<Value>().await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let received = Instant::now();
        acks.clear();
        for command in body["commands"].as_array().into_iter().flatten() {
            let id = command["id"].as_str().unwrap_or_default().to_owned();
            received_log
                .lock()
                .unwrap()
                .entry(id.clone())
                .or_insert(received);
            acks.push(id);
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.hosts + 16)
        .build()
        .unwrap();
    let base = args.server.trim_end_matches('/').to_owned();
    let email = format!("bench-{}@example.com", std::process::id());
    let user = post(
        &client,
        format!("{base}/api/v1/users"),
        "",
        json!({ "email": email, "password": "benchmark password", "roles": ["host_owner", "deployer"] }),
    )
    .await;
    let token = user["apiToken"].as_str().unwrap().to_owned();

    eprintln!("registering {} hosts", args.hosts);
    let mut hosts = Vec::with_capacity(args.hosts);
    for i in 0..args.hosts {
        let host = post(
            &client,
            format!("{base}/api/v1/hosts"),
            &token,
            json!({ "name": format!("bench {i}") }),
        )
        .await;
        let id = host["host"]["id"].as_str().unwrap().to_owned();
        let key = host["hostKey"].as_str().unwrap().to_owned();
        post(
            &client,
            format!("{base}/api/v1/hosts/heartbeat"),
            &key,
            heartbeat_body(&[], None),
        )
        .await;
        hosts.push((id, key));
    }

    eprintln!(
        "creating {} agents and delivering their deploys",
        args.agents
    );
    let mut agents = Vec::with_capacity(args.agents);
    for (id, key) in hosts.iter().take(args.agents) {
        let created = post(
            &client,
            format!("{base}/api/v1/agents"),
            &token,
            json!({ "hostId": id, "tier": "lite", "name": "bench" }),
        )
        .await;
        let agent = created["agent"]["id"].as_str().unwrap().to_owned();
        let deploy = post(
            &client,
            format!("{base}/api/v1/hosts/heartbeat"),
            key,
            heartbeat_body(&[], None),
        )
        .await;
        let deploy_id = deploy["commands"][0]["id"].as_str().unwrap().to_owned();
        let running = json!([{ "agentId": agent, "status": "running" }]);
        let mut body = heartbeat_body(&[deploy_id], None);
        body["agentStatuses"] = running;
        post(&client, format!("{base}/api/v1/hosts/heartbeat"), key, body).await;
        agents.push(agent);
    }

    eprintln!("{} daemons long-polling", args.hosts);
    let received: Received = Arc::default();
    for (_, key) in &hosts {
        tokio::spawn(daemon(
            client.clone(),
            base.clone(),
            key.clone(),
            args.wait_seconds,
            received.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;

    eprintln!(
        "queueing {} commands, one every {:?}",
        args.commands, args.interval
    );
    // Command id and when the deployer's call started.
    let mut sent: Vec<(String, Instant)> = Vec::with_capacity(args.commands);
    for i in 0..args.commands {
        let agent = &agents[i % agents.len()];
        // Alternate per agent so consecutive commands never supersede each other.
        let kind = if (i / agents.len()) % 2 == 0 {
            "stop"
        } else {
            "start"
        };
        let issued = Instant::now();
        let response = client
            .post(format!("{base}/api/v1/agents/{agent}/commands"))
            .bearer_auth(&token)
            .json(&json!({ "type": kind }))
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        if let Some(id) = body["id"].as_str() {
            sent.push((id.to_owned(), issued));
        }
        tokio::time::sleep(args.interval).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;

    let received = received.lock().unwrap().clone();
    let mut measured: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, issued)| received.get(id).map(|at| at.duration_since(*issued)))
        .collect();
    measured.sort();
    let lost = sent.len() - measured.len();
    if measured.is_empty() {
        println!("no command was delivered");
        return;
    }
    println!(
        "hosts={} commands={} delivered={} undelivered_after_5s={} p50={:?} p99={:?} max={:?}",
        args.hosts,
        args.commands,
        measured.len(),
        lost,
        percentile(&measured, 0.50),
        percentile(&measured, 0.99),
        measured.last().unwrap(),
    );
}
