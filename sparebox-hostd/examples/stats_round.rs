//! Times rounds of the daemon's per-heartbeat status collection against a real engine.
//!
//! Each round does for every given agent what the daemon does when it builds a heartbeat's
//! agent reports: inspect the agent's container through the [`Runtime`] and, when it is
//! running, sample its stats. The daemon observes all agents at once (one future per agent,
//! joined); this example does the same in the default mode, and can also observe them one
//! after the other, or with at most N in flight, for comparison.
//!
//! ```text
//! cargo run --release -p sparebox-hostd --example stats_round -- \
//!     [--rounds 20] [--mode all|sequential|bounded:N] AGENT_ID...
//! ```
//!
//! The agents' containers must exist (named and labelled as the runtime names them); the
//! engine is found like the daemon finds it (`DOCKER_HOST`, else the default socket).
//! `scripts/bench-stats.sh` creates them and runs this. Prints one summary line per mode:
//! round times (p50, p99, max, min) and the slowest single inspect and stats call.

use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use sparebox_core::AgentId;
use sparebox_runtime::docker::DockerRuntime;
use sparebox_runtime::{ContainerState, Runtime};

/// How the agents of one round are observed.
#[derive(Clone, Copy, Debug)]
enum Mode {
    /// All at once, as the daemon does.
    All,
    /// One after the other.
    Sequential,
    /// At most this many at once.
    Bounded(usize),
}

impl Mode {
    fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "all" => Ok(Self::All),
            "sequential" => Ok(Self::Sequential),
            _ => raw
                .strip_prefix("bounded:")
                .and_then(|n| n.parse().ok())
                .filter(|n: &usize| *n > 0)
                .map(Self::Bounded)
                .ok_or_else(|| format!("unknown mode {raw:?} (all, sequential, bounded:N)")),
        }
    }

    fn name(self) -> String {
        match self {
            Self::All => "all".to_owned(),
            Self::Sequential => "sequential".to_owned(),
            Self::Bounded(n) => format!("bounded:{n}"),
        }
    }
}

/// What observing one agent took, and whether it yielded stats.
#[derive(Clone, Copy, Debug, Default)]
struct Observation {
    inspect: Duration,
    stats: Option<Duration>,
    failed: bool,
}

/// The daemon's observation of one agent: inspect, then stats when running.
async fn observe(runtime: &dyn Runtime, agent: AgentId) -> Observation {
    let started = Instant::now();
    let container = runtime.inspect(agent).await;
    let inspect = started.elapsed();
    let Ok(Some(container)) = container else {
        return Observation {
            inspect,
            stats: None,
            failed: true,
        };
    };
    if container.state != ContainerState::Running {
        return Observation {
            inspect,
            stats: None,
            failed: true,
        };
    }
    let started = Instant::now();
    let stats = runtime.stats(agent).await;
    Observation {
        inspect,
        stats: Some(started.elapsed()),
        failed: stats.is_err(),
    }
}

async fn round(runtime: &dyn Runtime, agents: &[AgentId], mode: Mode) -> Vec<Observation> {
    match mode {
        Mode::All => {
            futures::future::join_all(agents.iter().map(|agent| observe(runtime, *agent))).await
        }
        Mode::Sequential => {
            let mut all = Vec::with_capacity(agents.len());
            for agent in agents {
                all.push(observe(runtime, *agent).await);
            }
            all
        }
        Mode::Bounded(limit) => {
            stream::iter(agents.iter().map(|agent| observe(runtime, *agent)))
                .buffered(limit)
                .collect()
                .await
        }
    }
}

/// The value at quantile `q` (0 to 1) of `sorted`, nearest rank.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank: the smallest value with at least q of the values at or below it.
    let rank = (q * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn ms(duration: Duration) -> String {
    format!("{:.0}", duration.as_secs_f64() * 1000.0)
}

struct Args {
    rounds: usize,
    modes: Vec<Mode>,
    agents: Vec<AgentId>,
}

fn parse_args() -> Result<Args, String> {
    let mut rounds = 20;
    let mut modes = Vec::new();
    let mut agents = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => {
                rounds = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or("--rounds needs a positive number")?;
            }
            "--mode" => modes.push(Mode::parse(&args.next().ok_or("--mode needs a value")?)?),
            other => agents.push(
                other
                    .parse()
                    .map_err(|err| format!("agent id {other:?}: {err}"))?,
            ),
        }
    }
    if modes.is_empty() {
        modes.push(Mode::All);
    }
    if agents.is_empty() {
        return Err("no agent ids given".to_owned());
    }
    Ok(Args {
        rounds,
        modes,
        agents,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    let runtime = DockerRuntime::connect(None).await?;
    for mode in args.modes {
        // One round first, unmeasured, so connections are open as in a running daemon.
        round(&runtime, &args.agents, mode).await;
        let mut times = Vec::with_capacity(args.rounds);
        let mut slowest_inspect = Duration::ZERO;
        let mut slowest_stats = Duration::ZERO;
        let mut failures = 0;
        for _ in 0..args.rounds {
            let started = Instant::now();
            let observations = round(&runtime, &args.agents, mode).await;
            times.push(started.elapsed());
            for observation in observations {
                slowest_inspect = slowest_inspect.max(observation.inspect);
                slowest_stats = slowest_stats.max(observation.stats.unwrap_or_default());
                failures += usize::from(observation.failed);
            }
        }
        times.sort();
        println!(
            "agents={} mode={} rounds={} p50_ms={} p99_ms={} max_ms={} min_ms={} \
             slowest_inspect_ms={} slowest_stats_ms={} failures={}",
            args.agents.len(),
            mode.name(),
            args.rounds,
            ms(quantile(&times, 0.5)),
            ms(quantile(&times, 0.99)),
            ms(times[times.len() - 1]),
            ms(times[0]),
            ms(slowest_inspect),
            ms(slowest_stats),
            failures,
        );
    }
    Ok(())
}
