//! Pure logic shared by every part of Sparebox.
//!
//! `sparebox-core` is what an integrator embeds to get Sparebox's rules without any of
//! its I/O: it never touches the network, the disk or a clock, and needs no async
//! runtime. Callers pass "now" in where time matters.
//!
//! | module | what it owns |
//! |---|---|
//! | [`tier`] | the four resource tiers and their exact resources (integer MB and millicores) |
//! | [`slots`] | how many agents of each tier a host can take (the brief's empty-host formula, with disk) |
//! | [`placement`] | host policy (offered tiers, agent cap, reserve) and placement on a host already running agents |
//! | [`command`] | command kinds and statuses; expiry by the server's clock, ack handling, supersession |
//! | [`crypto`] | secrets at rest (keyring with key ids) and in transit (sealed, signed, time-limited bundles) |
//! | [`agent`] | agent states as the platform sees them, and deploy stages |
//! | [`lifecycle`] | the agent state machine: command results, host reports and host loss as checked transitions |
//! | [`ids`] | typed identifiers for hosts, agents and commands |
//! | [`openclaw_config`] | checks a deployer's `openclaw.json` (JSON5, platform-owned keys, OpenClaw's schema) and adds the platform's gateway keys |
//! | [`secret`] | a string type that is redacted when printed and zeroed when dropped |
//! | [`workspace`] | workspace file paths and upload limits, checked before any disk access |
//!
//! ## Slots
//!
//! ```no_run
//! use sparebox_core::slots::{Hardware, Reserve, SlotTable};
//! use sparebox_core::tier::Tier;
//!
//! // 32 GiB, 8 cores, 500 GB of disk; the default reserve is 1 GiB, half a core, 10 GB.
//! let host = Hardware::new(32 * 1024, 8_000, 500);
//! let table = SlotTable::for_empty_host(&host, &Reserve::default());
//! assert_eq!(table.get(Tier::Standard), 7);
//! ```
//!
//! ## Placement
//!
//! ```no_run
//! use sparebox_core::placement::{HostPolicy, Placement, SlotPlan};
//! use sparebox_core::slots::{Hardware, Reserve};
//! use sparebox_core::tier::Tier;
//!
//! // The owner offers Lite and Standard only, and at most 3 agents.
//! let policy = HostPolicy::new([Tier::Lite, Tier::Standard], Some(3), Reserve::default())?;
//! let hardware = Hardware::new(32 * 1024, 8_000, 500);
//! let mut plan = SlotPlan::new(hardware, policy, [Tier::Standard, Tier::Lite])?;
//! match plan.placement(Tier::Standard) {
//!     Placement::Accepted { remaining } => println!("fits; afterwards: {remaining}"),
//!     Placement::Refused(why) => println!("refused: {why}"),
//! }
//! plan.place(Tier::Standard)?;
//! assert!(plan.place(Tier::Lite).is_err()); // the cap of 3 is reached
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Commands
//!
//! ```no_run
//! use chrono::{TimeDelta, Utc};
//! use sparebox_core::command::{ack_outcome, expire, supersedes, AckEffect, AckResult};
//! use sparebox_core::{CommandKind, CommandStatus, ExpiryWindow};
//!
//! let created = Utc::now();
//! let now = created + TimeDelta::minutes(6); // the server's clock
//! let status = expire(CommandStatus::Sent, created, now, ExpiryWindow::default());
//! assert_eq!(status, CommandStatus::Expired);
//! // The ack arrives afterwards: recorded as late, no agent state changes.
//! assert_eq!(ack_outcome(status, AckResult::Acked), AckEffect::Late);
//! // A stop queued after a start that was not sent yet cancels the start.
//! assert!(supersedes(CommandKind::Stop, CommandKind::Start));
//! ```
//!
//! ## Agent states
//!
//! ```no_run
//! use sparebox_core::lifecycle::{transition, AgentEvent, AgentLifecycle, HostReport};
//! use sparebox_core::{CommandKind, DeployStage};
//!
//! let agent = AgentLifecycle::PendingDeploy;
//! let agent = transition(&agent, &AgentEvent::CommandSent { kind: CommandKind::Deploy })?;
//! let pulling = HostReport::Deploying { stage: DeployStage::Pulling };
//! let agent = transition(&agent, &AgentEvent::Reported(pulling))?;
//! assert_eq!(agent.progress_percent(), Some(25)); // not running yet
//! let agent = transition(&agent, &AgentEvent::CommandAcked { kind: CommandKind::Deploy })?;
//! assert_eq!(agent, AgentLifecycle::Running);
//! // Illegal events are errors, and the agent keeps its state.
//! assert!(transition(&AgentLifecycle::Undeployed, &AgentEvent::UndeployRequested).is_err());
//! # Ok::<(), sparebox_core::IllegalAgentTransition>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod command;
pub mod crypto;
pub mod ids;
pub mod lifecycle;
pub mod openclaw_config;
pub mod placement;
pub mod secret;
pub mod slots;
pub mod tier;
pub mod workspace;

pub use agent::{AgentState, DeployStage};
pub use command::{AckEffect, AckResult, CommandKind, CommandStatus, ExpiryWindow};
pub use ids::{AgentId, CommandId, HostId};
pub use lifecycle::{AgentEvent, AgentLifecycle, HostReport, IllegalAgentTransition};
pub use placement::{HostPolicy, Placement, PlanError, Refusal, SlotPlan};
pub use secret::Secret;
pub use slots::{can_place, Hardware, Reserve, SlotTable};
pub use tier::{Resources, Tier};
