//! Pure logic shared by every part of Sparebox.
//!
//! `sparebox-core` is what an integrator embeds to get Sparebox's rules without any of
//! its I/O: it never touches the network, the disk or a clock, and needs no async
//! runtime. Callers pass "now" in where time matters.
//!
//! | module | what it owns |
//! |---|---|
//! | [`tier`] | the four resource tiers and their exact resources (integer MB and millicores) |
//! | [`slots`] | how many agents of each tier a host can take |
//! | [`command`] | command kinds, statuses and the transitions between them |
//! | [`agent`] | agent states as the platform sees them, and deploy stages |
//! | [`ids`] | typed identifiers for hosts, agents and commands |
//! | [`secret`] | a string type that is redacted when printed and zeroed when dropped |
//!
//! ```no_run
//! use sparebox_core::slots::{Hardware, Reserve, SlotTable};
//! use sparebox_core::tier::Tier;
//!
//! let host = Hardware::new(32 * 1024, 8_000, 500);
//! let table = SlotTable::for_empty_host(&host, &Reserve::default());
//! assert_eq!(table.get(Tier::Standard), 7);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod agent;
pub mod command;
pub mod ids;
pub mod secret;
pub mod slots;
pub mod tier;

pub use agent::{AgentState, DeployStage};
pub use command::{CommandKind, CommandStatus};
pub use ids::{AgentId, CommandId, HostId};
pub use secret::Secret;
pub use slots::{can_place, Hardware, Reserve, SlotTable};
pub use tier::{Resources, Tier};
