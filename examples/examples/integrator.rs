//! An integrator's platform in one file: `sparebox-core` for the rules, `sparebox-protocol`
//! for the wire types, and the integrator's own storage (here, maps in memory).
//!
//! It plans slots for three hosts, places agents, queues commands (a stop supersedes a
//! start that was never sent), answers heartbeats with a `HeartbeatResponse`, applies
//! acks and reports through the agent state machine, and shows a late ack after expiry.
//!
//! Run with `cargo run -p sparebox-examples --example integrator`.

use std::collections::BTreeMap;
use std::error::Error;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use sparebox_core::command::{ack_outcome, deliverable, expire, superseded_by};
use sparebox_core::lifecycle::{transition, AgentEvent, AgentLifecycle};
use sparebox_core::placement::{HostPolicy, Placement, SlotPlan};
use sparebox_core::slots::{Hardware, Reserve};
use sparebox_core::{
    AckEffect, AckResult, AgentId, CommandId, CommandKind, CommandStatus, DeployStage,
    ExpiryWindow, HostId, Tier,
};
use sparebox_protocol::{
    AckStatus, AgentStatusReport, Command, CommandAck, HeartbeatRequest, HeartbeatResponse,
    HostHardware, IsolationMode, RuntimeStatus, PROTOCOL_VERSION,
};

struct HostRow {
    name: &'static str,
    hardware: Hardware,
    policy: HostPolicy,
}

struct AgentRow {
    host: HostId,
    tier: Tier,
    state: AgentLifecycle,
}

struct CommandRow {
    id: CommandId,
    agent: AgentId,
    host: HostId,
    kind: CommandKind,
    status: CommandStatus,
    created_at: DateTime<Utc>,
    late_ack: bool,
}

/// The integrator's storage and platform logic; every rule comes from `sparebox-core`.
#[derive(Default)]
struct Platform {
    hosts: BTreeMap<HostId, HostRow>,
    agents: BTreeMap<AgentId, AgentRow>,
    commands: Vec<CommandRow>,
    expiry: ExpiryWindow,
}

impl Platform {
    fn add_host(&mut self, name: &'static str, hardware: Hardware, policy: HostPolicy) -> HostId {
        let id = HostId::new_random();
        self.hosts.insert(
            id,
            HostRow {
                name,
                hardware,
                policy,
            },
        );
        id
    }

    /// The host's slot plan: agents that still hold a slot count as running.
    fn plan(&self, host: HostId) -> Result<SlotPlan, Box<dyn Error>> {
        let row = &self.hosts[&host];
        let running = self
            .agents
            .values()
            .filter(|a| a.host == host && a.state.state().holds_slot())
            .map(|a| a.tier);
        Ok(SlotPlan::new(row.hardware, row.policy.clone(), running)?)
    }

    /// Creates an agent if the host takes it, and queues its deploy.
    fn create_agent(
        &mut self,
        host: HostId,
        tier: Tier,
        now: DateTime<Utc>,
    ) -> Result<AgentId, Box<dyn Error>> {
        if let Placement::Refused(why) = self.plan(host)?.placement(tier) {
            return Err(format!("host {}: {why}", self.hosts[&host].name).into());
        }
        let id = AgentId::new_random();
        let state = AgentLifecycle::PendingDeploy;
        self.agents.insert(id, AgentRow { host, tier, state });
        self.queue(id, CommandKind::Deploy, now)?;
        Ok(id)
    }

    /// Queues a command, first marking the pending ones it supersedes.
    fn queue(
        &mut self,
        agent: AgentId,
        kind: CommandKind,
        now: DateTime<Utc>,
    ) -> Result<CommandId, Box<dyn Error>> {
        let queued = self
            .commands
            .iter()
            .filter(|c| c.agent == agent)
            .map(|c| (c.id, c.kind, c.status));
        for old in superseded_by(kind, queued.collect::<Vec<_>>()) {
            let row = self
                .commands
                .iter_mut()
                .find(|c| c.id == old)
                .expect("listed above");
            row.status = row.status.transition(CommandStatus::Superseded)?;
            println!("  {} superseded by {kind}", row.kind);
        }
        if kind == CommandKind::Undeploy {
            self.apply(agent, &AgentEvent::UndeployRequested);
        }
        let id = CommandId::new_random();
        let host = self.agents[&agent].host;
        self.commands.push(CommandRow {
            id,
            agent,
            host,
            kind,
            status: CommandStatus::Pending,
            created_at: now,
            late_ack: false,
        });
        Ok(id)
    }

    /// Applies one event to an agent; an illegal one is reported and changes nothing.
    fn apply(&mut self, agent: AgentId, event: &AgentEvent) {
        let row = self.agents.get_mut(&agent).expect("known agent");
        match transition(&row.state, event) {
            Ok(next) => row.state = next,
            Err(illegal) => println!("  ignored: {illegal}"),
        }
    }

    /// Answers one heartbeat at `now` (the server's clock).
    fn heartbeat(
        &mut self,
        host: HostId,
        request: &HeartbeatRequest,
        now: DateTime<Utc>,
    ) -> HeartbeatResponse {
        self.expire_commands(host, now);
        let confirmed_acks = request
            .command_acks
            .iter()
            .map(|ack| self.apply_ack(host, ack))
            .collect();
        for report in &request.agent_statuses {
            if self
                .agents
                .get(&report.agent_id)
                .is_some_and(|a| a.host == host)
            {
                self.apply(report.agent_id, &AgentEvent::Reported(report.host_report()));
            }
        }
        HeartbeatResponse {
            commands: self.deliver(host, now),
            confirmed_acks,
            next_heartbeat_seconds: 60,
            server_time: now,
            desired_agents: None,
        }
    }

    fn expire_commands(&mut self, host: HostId, now: DateTime<Utc>) {
        let mut expired = Vec::new();
        for c in self.commands.iter_mut().filter(|c| c.host == host) {
            let next = expire(c.status, c.created_at, now, self.expiry);
            if next != c.status {
                c.status = next;
                expired.push((c.agent, c.kind));
            }
        }
        for (agent, kind) in expired {
            println!("  {kind} expired");
            self.apply(agent, &AgentEvent::CommandExpired { kind });
        }
    }

    /// Records an ack and returns its id, to confirm it to the daemon in every case.
    fn apply_ack(&mut self, host: HostId, ack: &CommandAck) -> CommandId {
        let result = match ack.status {
            AckStatus::Acked => AckResult::Acked,
            AckStatus::Failed => AckResult::Failed,
        };
        let Some(row) = self
            .commands
            .iter_mut()
            .find(|c| c.id == ack.id && c.host == host)
        else {
            println!("  ack for unknown command {}", ack.id);
            return ack.id;
        };
        let (agent, kind) = (row.agent, row.kind);
        match ack_outcome(row.status, result) {
            AckEffect::Applied(status) => {
                row.status = status;
                self.apply(
                    agent,
                    &AgentEvent::from_ack(kind, result, ack.error.as_deref()),
                );
            }
            AckEffect::Duplicate => println!("  duplicate ack for {kind}: no-op"),
            AckEffect::Late => {
                row.late_ack = true;
                println!(
                    "  late ack for {kind} ({}): recorded, agent unchanged",
                    row.status
                );
            }
        }
        ack.id
    }

    /// Hands every deliverable command to the daemon, oldest first, marking it sent.
    fn deliver(&mut self, host: HostId, now: DateTime<Utc>) -> Vec<Command> {
        let mut out = Vec::new();
        let mut sent = Vec::new();
        for c in self.commands.iter_mut().filter(|c| c.host == host) {
            if deliverable(c.status, c.created_at, now, self.expiry) {
                c.status = CommandStatus::Sent;
                sent.push((c.agent, c.kind));
                out.push(Command {
                    id: c.id,
                    agent_id: c.agent,
                    kind: c.kind,
                    tier: self.agents[&c.agent].tier,
                    created_at: c.created_at,
                    // A real platform derives a one-time key for bundle commands here
                    // (`Keyring::session_key`); this example serves no bundles.
                    session_key: None,
                    params: None,
                });
            }
        }
        for (agent, kind) in sent {
            self.apply(agent, &AgentEvent::CommandSent { kind });
        }
        out
    }

    fn show(&self) -> Result<(), Box<dyn Error>> {
        for (id, host) in &self.hosts {
            println!("  {:<8} slots: {}", host.name, self.plan(*id)?.table());
        }
        for (id, agent) in &self.agents {
            println!("  agent {} ({}): {}", id.short(), agent.tier, agent.state);
        }
        Ok(())
    }
}

fn heartbeat_request(statuses: Vec<AgentStatusReport>, acks: Vec<CommandAck>) -> HeartbeatRequest {
    HeartbeatRequest {
        protocol_version: PROTOCOL_VERSION,
        daemon_version: "0.1.0".into(),
        hardware: HostHardware {
            ram_mb: 32 * 1024,
            cpu_cores: 8,
            disk_gb: 500,
            os: "linux".into(),
            arch: "x86_64".into(),
            gpu: None,
        },
        isolation: IsolationMode::Docker,
        agent_statuses: statuses,
        command_acks: acks,
        wait_seconds: None,
        agent_events: Vec::new(),
        slots: None,
    }
}

fn ack(id: CommandId) -> CommandAck {
    CommandAck {
        id,
        status: AckStatus::Acked,
        error: None,
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let t0 = Utc
        .with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
        .single()
        .ok_or("bad start time")?;
    let mut platform = Platform::default();

    println!("1. plan slots for three hosts");
    let small = platform.add_host(
        "small",
        Hardware::try_new(8 * 1024, 4_000, 200)?,
        HostPolicy::all_tiers(),
    );
    let capped = HostPolicy::new([Tier::Lite, Tier::Standard], Some(3), Reserve::default())?;
    let big = platform.add_host("big", Hardware::try_new(32 * 1024, 8_000, 500)?, capped);
    platform.add_host(
        "tiny",
        Hardware::try_new(1024, 1_000, 50)?,
        HostPolicy::all_tiers(),
    );
    platform.show()?;

    println!("2. place agents");
    let a = platform.create_agent(big, Tier::Standard, t0)?;
    let b = platform.create_agent(big, Tier::Lite, t0)?;
    platform.create_agent(small, Tier::Pro, t0)?;
    if let Err(refused) = platform.create_agent(big, Tier::Pro, t0) {
        println!("  refused: {refused}");
    }

    println!("3. queue commands: start, then stop before the start was sent");
    platform.queue(b, CommandKind::Start, t0)?;
    platform.queue(b, CommandKind::Stop, t0)?;

    println!("4. first heartbeat from big: commands go out");
    let response = platform.heartbeat(
        big,
        &heartbeat_request(vec![], vec![]),
        t0 + TimeDelta::seconds(5),
    );
    println!("{}", serde_json::to_string_pretty(&response)?);
    let ids: Vec<CommandId> = response.commands.iter().map(|c| c.id).collect();

    println!(
        "5. second heartbeat: deploy of {} acked, {} still pulling",
        a.short(),
        b.short()
    );
    let mut pulling = AgentStatusReport::new(b, RuntimeStatus::Deploying);
    pulling.deploy_stage = Some(DeployStage::Pulling);
    let running = AgentStatusReport::new(a, RuntimeStatus::Running);
    let request = heartbeat_request(vec![running, pulling], vec![ack(ids[0])]);
    let response = platform.heartbeat(big, &request, t0 + TimeDelta::seconds(65));
    println!("  confirmed acks: {}", response.confirmed_acks.len());
    platform.show()?;

    println!("6. the same ack again, then six minutes later the rest arrive");
    platform.heartbeat(
        big,
        &heartbeat_request(vec![], vec![ack(ids[0])]),
        t0 + TimeDelta::seconds(125),
    );
    let late: Vec<CommandAck> = ids[1..].iter().copied().map(ack).collect();
    platform.heartbeat(
        big,
        &heartbeat_request(vec![], late),
        t0 + TimeDelta::minutes(6),
    );
    platform.show()?;
    let late_acks = platform.commands.iter().filter(|c| c.late_ack).count();
    println!("  late acks recorded: {late_acks}");
    Ok(())
}
