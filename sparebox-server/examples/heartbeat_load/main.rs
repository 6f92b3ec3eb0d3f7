//! Sustained heartbeat load: many simulated hosts heartbeating against a real server.
//!
//! Two steps, driven by `scripts/bench-load.sh`:
//!
//! - `seed` opens the server's database directly (SQLite file or PostgreSQL URL) before the
//!   server starts, and through [`sparebox_server::Platform`] (the same code the HTTP API
//!   calls) signs up one account, registers `--hosts` hosts, reports their hardware, creates
//!   `i % 9` agents on host `i` (0 to 8, alternating Lite and Standard), hands over their
//!   deploys and acknowledges them with running reports. It writes the host keys, agent ids
//!   and the deployer's API token to `--keys`. Secrets are sealed with
//!   `SPAREBOX_ENCRYPTION_KEY`, which the server must then be started with. With `--fast`
//!   only the first nine hosts (one per agent count) go through the platform; the others
//!   are copies of them written in one SQL transaction by `sqlite3` or `psql` (which must
//!   be installed), with their own ids, host keys, sealed secrets and names: the same
//!   rows at thousands of hosts a second instead of about a hundred.
//! - `run` reads that file and, for the first `--hosts` hosts, sends one heartbeat per host
//!   every `--interval-ms` (phases spread evenly over the interval) to a running server for
//!   `--duration-s`. Each heartbeat carries the host's hardware, a full status report with
//!   metrics for each of its agents, and the acks of the commands the previous answer
//!   carried. A deployer queues `--commands-per-s` stop/start commands on random agents
//!   through the API meanwhile, so acks and deliveries are part of the load. Latency is
//!   from sending the request to having read the whole answer. Prints one line of figures
//!   and exits non-zero when any heartbeat got anything but a 200.
//!
//! ```text
//! SPAREBOX_ENCRYPTION_KEY=... heartbeat_load seed --database data/sparebox.db --hosts 10000 --keys keys.txt
//! SPAREBOX_ENCRYPTION_KEY=... heartbeat_load seed --fast --database data/sparebox.db --hosts 100000 --keys keys.txt
//! heartbeat_load run --server http://127.0.0.1:8080 --keys keys.txt --hosts 10000 --interval-ms 6000
//! ```
//!
//! This is a benchmark, not a test: apart from the status check it asserts nothing.

mod fast;
mod payload;
mod run;
mod seed;

use std::collections::HashMap;

/// Flags as `--name value` pairs after the subcommand.
struct Flags(HashMap<String, String>);

impl Flags {
    /// A flag followed by another flag or by nothing is a switch, set to `true`.
    fn parse(args: impl Iterator<Item = String>) -> Self {
        let mut map = HashMap::new();
        let mut it = args.peekable();
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .unwrap_or_else(|| panic!("expected a --flag, got {flag}"));
            let value = match it.peek() {
                Some(next) if !next.starts_with("--") => it.next().expect("peeked"),
                _ => "true".to_owned(),
            };
            map.insert(name.to_owned(), value);
        }
        Self(map)
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.0
            .get(name)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    fn number(&self, name: &str, default: u64) -> u64 {
        self.0.get(name).map_or(default, |value| {
            value
                .parse()
                .unwrap_or_else(|_| panic!("--{name} is a number"))
        })
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let flags = Flags::parse(args);
    match command.as_str() {
        "seed" => seed::seed(&flags).await,
        "run" => {
            if !run::run(&flags).await {
                std::process::exit(1);
            }
        }
        other => {
            eprintln!("usage: heartbeat_load seed|run [--flag value]... (got {other:?})");
            std::process::exit(2);
        }
    }
}
