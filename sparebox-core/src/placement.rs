//! Placement: can this host take one more agent of a tier, and what is left afterwards?
//!
//! A [`SlotPlan`] combines a host's [`Hardware`], its [`HostPolicy`] (the tiers it
//! offers, an optional cap on its number of agents, and its [`Reserve`]) and the agents it
//! already runs, in any mix of tiers. From that it answers:
//!
//! - [`SlotPlan::table`]: free slots per tier. For each offered tier, the smallest of what
//!   the free RAM, CPU and disk allow, further limited by the agents the cap still
//!   permits. Tiers the host does not offer have zero slots.
//! - [`SlotPlan::placement`]: whether one more agent of a tier fits, and the slot table
//!   after it, or why not ([`Refusal`]).
//! - [`SlotPlan::place`] and [`SlotPlan::release`]: update the plan as agents come and go.
//!
//! Slots of different tiers share one pool: "3 Standard and 7 Lite" means either, not
//! both. Placing any agent never increases any tier's count.
//!
//! # Limits
//!
//! Hardware and reserve amounts are checked against [`crate::slots::MAX_RAM_MB`],
//! [`crate::slots::MAX_CPU_MILLICORES`] and [`crate::slots::MAX_DISK_GB`]; a cap and the
//! number of running agents may not exceed [`MAX_AGENTS_PER_HOST`], which also bounds
//! placement when a host sets no cap.
//!
//! A host whose running agents already use more than it has (its hardware shrank, or its
//! reserve grew) is accepted as it is: [`SlotPlan::is_overcommitted`] says so and every
//! tier has zero slots until agents leave.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::slots::{fits, Hardware, OutOfRange, Reserve, ResourceKind, SlotTable};
use crate::tier::{Resources, Tier};

/// The most agents one host may run, whatever its hardware or cap.
pub const MAX_AGENTS_PER_HOST: u32 = 10_000;

/// A host owner's choices: which tiers to offer, an optional cap on the number of agents,
/// and what to keep back for the host itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", try_from = "HostPolicyFields")]
pub struct HostPolicy {
    offered: BTreeSet<Tier>,
    max_agents: Option<u32>,
    reserve: Reserve,
}

/// The unchecked shape of a [`HostPolicy`], for deserialising.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HostPolicyFields {
    offered: BTreeSet<Tier>,
    #[serde(default)]
    max_agents: Option<u32>,
    #[serde(default)]
    reserve: Reserve,
}

impl TryFrom<HostPolicyFields> for HostPolicy {
    type Error = PlanError;

    fn try_from(fields: HostPolicyFields) -> Result<Self, Self::Error> {
        HostPolicy::new(fields.offered, fields.max_agents, fields.reserve)
    }
}

impl HostPolicy {
    /// A policy offering `offered` (may be empty: the host takes nothing), capped at
    /// `max_agents` agents in total when set (`Some(0)` pauses the host), keeping `reserve`.
    ///
    /// # Errors
    ///
    /// [`PlanError::CapTooLarge`] when `max_agents` exceeds [`MAX_AGENTS_PER_HOST`];
    /// [`PlanError::OutOfRange`] when the reserve exceeds the hardware limits.
    pub fn new(
        offered: impl IntoIterator<Item = Tier>,
        max_agents: Option<u32>,
        reserve: Reserve,
    ) -> Result<Self, PlanError> {
        if let Some(cap) = max_agents.filter(|cap| *cap > MAX_AGENTS_PER_HOST) {
            return Err(PlanError::CapTooLarge(cap));
        }
        reserve.validate()?;
        Ok(Self {
            offered: offered.into_iter().collect(),
            max_agents,
            reserve,
        })
    }

    /// Every tier, no cap, the default reserve.
    pub fn all_tiers() -> Self {
        Self {
            offered: Tier::ALL.into_iter().collect(),
            max_agents: None,
            reserve: Reserve::default(),
        }
    }

    /// The tiers offered.
    pub fn offered(&self) -> &BTreeSet<Tier> {
        &self.offered
    }

    /// Whether `tier` is offered.
    pub fn offers(&self, tier: Tier) -> bool {
        self.offered.contains(&tier)
    }

    /// The owner's cap on the number of agents, if any.
    pub fn max_agents(&self) -> Option<u32> {
        self.max_agents
    }

    /// What the host keeps for itself.
    pub fn reserve(&self) -> &Reserve {
        &self.reserve
    }

    /// The cap that applies: the owner's, bounded by [`MAX_AGENTS_PER_HOST`].
    pub fn effective_cap(&self) -> u32 {
        self.max_agents
            .unwrap_or(MAX_AGENTS_PER_HOST)
            .min(MAX_AGENTS_PER_HOST)
    }
}

impl Default for HostPolicy {
    /// Same as [`HostPolicy::all_tiers`].
    fn default() -> Self {
        Self::all_tiers()
    }
}

/// Invalid input to a [`HostPolicy`] or [`SlotPlan`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A hardware or reserve amount beyond the limits.
    #[error(transparent)]
    OutOfRange(#[from] OutOfRange),
    /// The owner's cap is above [`MAX_AGENTS_PER_HOST`].
    #[error("host policy max_agents: {0} exceeds the limit of {MAX_AGENTS_PER_HOST}")]
    CapTooLarge(u32),
    /// More running agents than [`MAX_AGENTS_PER_HOST`].
    #[error("slot plan running agents: {0} exceeds the limit of {MAX_AGENTS_PER_HOST}")]
    TooManyRunning(usize),
    /// [`SlotPlan::release`] for a tier with no agent on the host.
    #[error("slot plan release: no {0} agent runs on this host")]
    NotRunning(Tier),
}

/// Why a host cannot take one more agent of a tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The host does not offer this tier.
    #[error("tier {0} is not offered by this host")]
    NotOffered(Tier),
    /// The host already runs as many agents as its cap allows.
    #[error("host is at its cap of {max} agents")]
    AtCap {
        /// The cap that applies.
        max: u32,
    },
    /// Not enough of one resource is free.
    #[error("not enough {resource} for a {tier} agent: {free} free, {needed} needed")]
    Insufficient {
        /// The tier asked for.
        tier: Tier,
        /// The first resource (in RAM, CPU, disk order) that is short.
        resource: ResourceKind,
        /// How much of it is free.
        free: u64,
        /// How much the tier needs.
        needed: u64,
    },
}

/// The answer to "can this host take one more agent of this tier?".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// It fits; `remaining` is the slot table once it is placed.
    Accepted {
        /// Free slots per tier after placing the agent.
        remaining: SlotTable,
    },
    /// It does not fit.
    Refused(Refusal),
}

impl Placement {
    /// Whether the agent fits.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Placement::Accepted { .. })
    }
}

/// A host's capacity given its hardware, its policy and the agents it already runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotPlan {
    hardware: Hardware,
    policy: HostPolicy,
    running: [u32; 4],
    used: Resources,
}

impl SlotPlan {
    /// Plans a host with `hardware` and `policy` that already runs one agent per item of
    /// `running` (any mix of tiers, including tiers it no longer offers).
    ///
    /// # Errors
    ///
    /// [`PlanError::OutOfRange`] when the hardware or reserve exceeds the limits;
    /// [`PlanError::TooManyRunning`] when `running` has more than [`MAX_AGENTS_PER_HOST`]
    /// items.
    pub fn new(
        hardware: Hardware,
        policy: HostPolicy,
        running: impl IntoIterator<Item = Tier>,
    ) -> Result<Self, PlanError> {
        hardware.validate()?;
        policy.reserve.validate()?;
        let mut plan = Self {
            hardware,
            policy,
            running: [0; 4],
            used: Resources::default(),
        };
        let mut count = 0usize;
        for tier in running {
            count += 1;
            if count > MAX_AGENTS_PER_HOST as usize {
                return Err(PlanError::TooManyRunning(count));
            }
            plan.add(tier);
        }
        Ok(plan)
    }

    /// The host's hardware.
    pub fn hardware(&self) -> &Hardware {
        &self.hardware
    }

    /// The host's policy.
    pub fn policy(&self) -> &HostPolicy {
        &self.policy
    }

    /// What agents may use in total: hardware minus reserve, zero where the reserve is
    /// larger.
    pub fn capacity(&self) -> Resources {
        self.hardware.after_reserve(&self.policy.reserve)
    }

    /// What the running agents use together.
    pub fn used(&self) -> Resources {
        self.used
    }

    /// What is still free: capacity minus used, zero where used is larger.
    pub fn free(&self) -> Resources {
        let capacity = self.capacity();
        Resources {
            ram_mb: capacity.ram_mb.saturating_sub(self.used.ram_mb),
            cpu_millicores: capacity
                .cpu_millicores
                .saturating_sub(self.used.cpu_millicores),
            disk_gb: capacity.disk_gb.saturating_sub(self.used.disk_gb),
        }
    }

    /// How many agents of `tier` run on the host.
    pub fn running(&self, tier: Tier) -> u32 {
        self.running[tier_index(tier)]
    }

    /// How many agents run on the host in total.
    pub fn running_total(&self) -> u32 {
        self.running.iter().sum()
    }

    /// Whether the running agents use more than the capacity in some resource, or are more
    /// than the cap allows.
    pub fn is_overcommitted(&self) -> bool {
        let capacity = self.capacity();
        ResourceKind::ALL
            .into_iter()
            .any(|r| r.amount(&self.used) > r.amount(&capacity))
            || self.running_total() > self.policy.effective_cap()
    }

    /// Free slots for `tier`: zero when not offered, else the smallest of the RAM-, CPU-
    /// and disk-based counts and the agents the cap still allows.
    pub fn slots(&self, tier: Tier) -> u64 {
        if !self.policy.offers(tier) {
            return 0;
        }
        let by_cap = self
            .policy
            .effective_cap()
            .saturating_sub(self.running_total());
        fits(&self.free(), &tier.resources()).min(u64::from(by_cap))
    }

    /// Free slots for every tier.
    pub fn table(&self) -> SlotTable {
        Tier::ALL
            .into_iter()
            .map(|tier| (tier, self.slots(tier)))
            .collect()
    }

    /// Why one more agent of `tier` does not fit, or `None` when it does.
    pub fn refusal(&self, tier: Tier) -> Option<Refusal> {
        if !self.policy.offers(tier) {
            return Some(Refusal::NotOffered(tier));
        }
        let max = self.policy.effective_cap();
        if self.running_total() >= max {
            return Some(Refusal::AtCap { max });
        }
        let free = self.free();
        let need = tier.resources();
        ResourceKind::ALL
            .into_iter()
            .find(|r| r.amount(&free) < r.amount(&need))
            .map(|resource| Refusal::Insufficient {
                tier,
                resource,
                free: resource.amount(&free),
                needed: resource.amount(&need),
            })
    }

    /// Whether one more agent of `tier` fits, and the slot table after placing it.
    pub fn placement(&self, tier: Tier) -> Placement {
        match self.refusal(tier) {
            Some(refusal) => Placement::Refused(refusal),
            None => {
                let mut after = self.clone();
                after.add(tier);
                Placement::Accepted {
                    remaining: after.table(),
                }
            }
        }
    }

    /// Records one more agent of `tier` on the host.
    ///
    /// # Errors
    ///
    /// [`Refusal`] when it does not fit; the plan is then unchanged.
    pub fn place(&mut self, tier: Tier) -> Result<(), Refusal> {
        match self.refusal(tier) {
            Some(refusal) => Err(refusal),
            None => {
                self.add(tier);
                Ok(())
            }
        }
    }

    /// Records that one agent of `tier` left the host.
    ///
    /// # Errors
    ///
    /// [`PlanError::NotRunning`] when no agent of `tier` runs there.
    pub fn release(&mut self, tier: Tier) -> Result<(), PlanError> {
        let count = &mut self.running[tier_index(tier)];
        if *count == 0 {
            return Err(PlanError::NotRunning(tier));
        }
        *count -= 1;
        let need = tier.resources();
        self.used.ram_mb -= need.ram_mb;
        self.used.cpu_millicores -= need.cpu_millicores;
        self.used.disk_gb -= need.disk_gb;
        Ok(())
    }

    /// Adds an agent without checking capacity (for agents already on the host).
    fn add(&mut self, tier: Tier) {
        self.running[tier_index(tier)] += 1;
        let need = tier.resources();
        self.used.ram_mb += need.ram_mb;
        self.used.cpu_millicores += need.cpu_millicores;
        self.used.disk_gb += need.disk_gb;
    }
}

const fn tier_index(tier: Tier) -> usize {
    match tier {
        Tier::Lite => 0,
        Tier::Standard => 1,
        Tier::Pro => 2,
        Tier::Compute => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(ram_gb: u64, cores: u64) -> Hardware {
        Hardware::new(ram_gb * 1024, cores * 1000, 1000)
    }

    #[test]
    fn empty_host_with_every_tier_matches_the_brief_formula() {
        let plan = SlotPlan::new(host(32, 8), HostPolicy::all_tiers(), []).unwrap();
        assert_eq!(
            plan.table().to_string(),
            "lite 15, standard 7, pro 3, compute 1"
        );
        assert_eq!(
            plan.table(),
            SlotTable::for_empty_host(&host(32, 8), &Reserve::default())
        );
    }

    #[test]
    fn running_agents_of_mixed_tiers_reduce_every_tier() {
        let plan = SlotPlan::new(
            host(32, 8),
            HostPolicy::all_tiers(),
            [Tier::Pro, Tier::Lite, Tier::Lite],
        )
        .unwrap();
        // 31 GiB - 6 GiB = 25 GiB; 7.5 - 3 = 4.5 cores.
        assert_eq!(
            plan.table().to_string(),
            "lite 9, standard 4, pro 2, compute 1"
        );
    }

    #[test]
    fn cap_limits_every_tier_and_refuses_at_the_cap() {
        let policy = HostPolicy::new(Tier::ALL, Some(3), Reserve::default()).unwrap();
        let mut plan = SlotPlan::new(host(32, 8), policy, [Tier::Lite]).unwrap();
        assert_eq!(plan.slots(Tier::Lite), 2);
        plan.place(Tier::Standard).unwrap();
        plan.place(Tier::Standard).unwrap();
        assert_eq!(plan.place(Tier::Lite), Err(Refusal::AtCap { max: 3 }));
        assert_eq!(plan.running_total(), 3);
    }

    #[test]
    fn tier_not_offered_has_no_slots_and_is_refused() {
        let policy = HostPolicy::new([Tier::Standard], None, Reserve::default()).unwrap();
        let plan = SlotPlan::new(host(32, 8), policy, []).unwrap();
        assert_eq!(plan.slots(Tier::Lite), 0);
        assert_eq!(
            plan.placement(Tier::Pro),
            Placement::Refused(Refusal::NotOffered(Tier::Pro))
        );
        assert_eq!(
            plan.table().to_string(),
            "lite 0, standard 7, pro 0, compute 0"
        );
    }

    #[test]
    fn refusal_names_the_short_resource() {
        let plan = SlotPlan::new(host(32, 8), HostPolicy::all_tiers(), [Tier::Compute]).unwrap();
        assert_eq!(
            plan.placement(Tier::Compute),
            Placement::Refused(Refusal::Insufficient {
                tier: Tier::Compute,
                resource: ResourceKind::Cpu,
                free: 3500,
                needed: 4000,
            })
        );
        assert_eq!(
            plan.refusal(Tier::Compute).unwrap().to_string(),
            "not enough cpu_millicores for a compute agent: 3500 free, 4000 needed"
        );
    }

    #[test]
    fn overcommitted_host_is_accepted_and_offers_nothing() {
        let plan = SlotPlan::new(
            host(4, 2),
            HostPolicy::all_tiers(),
            [Tier::Compute, Tier::Pro],
        )
        .unwrap();
        assert!(plan.is_overcommitted());
        assert!(plan.table().is_full());
        assert_eq!((plan.free().ram_mb, plan.free().cpu_millicores), (0, 0));
    }

    #[test]
    fn release_frees_the_slot_and_rejects_unknown_tiers() {
        let mut plan = SlotPlan::new(host(8, 4), HostPolicy::all_tiers(), [Tier::Pro]).unwrap();
        assert_eq!(
            plan.release(Tier::Lite).unwrap_err().to_string(),
            "slot plan release: no lite agent runs on this host"
        );
        plan.release(Tier::Pro).unwrap();
        assert_eq!(
            plan.table(),
            SlotTable::for_empty_host(&host(8, 4), &Reserve::default())
        );
    }

    #[test]
    fn invalid_policies_and_plans_are_rejected_with_clear_errors() {
        assert_eq!(
            HostPolicy::new(Tier::ALL, Some(MAX_AGENTS_PER_HOST + 1), Reserve::default())
                .unwrap_err()
                .to_string(),
            "host policy max_agents: 10001 exceeds the limit of 10000"
        );
        let too_big = Hardware::new(crate::slots::MAX_RAM_MB + 1, 1000, 10);
        assert!(matches!(
            SlotPlan::new(too_big, HostPolicy::all_tiers(), []),
            Err(PlanError::OutOfRange(_))
        ));
        let many = std::iter::repeat_n(Tier::Lite, MAX_AGENTS_PER_HOST as usize + 1);
        assert_eq!(
            SlotPlan::new(host(8, 4), HostPolicy::all_tiers(), many),
            Err(PlanError::TooManyRunning(MAX_AGENTS_PER_HOST as usize + 1))
        );
    }

    #[test]
    fn host_policy_deserialises_with_validation() {
        let ok: HostPolicy =
            serde_json::from_str(r#"{"offered":["lite","pro"],"maxAgents":4}"#).unwrap();
        assert_eq!(ok.max_agents(), Some(4));
        assert_eq!(ok.reserve(), &Reserve::default());
        let err =
            serde_json::from_str::<HostPolicy>(r#"{"offered":[],"maxAgents":99999}"#).unwrap_err();
        assert!(
            err.to_string().contains("exceeds the limit of 10000"),
            "{err}"
        );
    }
}
