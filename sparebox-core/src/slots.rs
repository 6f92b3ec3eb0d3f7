//! How many agents of each tier a host can take.
//!
//! The empty-host rule from the brief: keep a reserve for the host's own system (1 GiB
//! of RAM and half a core, plus 10 GB of disk for images and logs, by default), then for
//! each tier the number of slots is the smallest of what the remaining RAM, CPU and disk
//! allow. Everything is integer arithmetic, and hardware smaller than the reserve gives
//! zero slots rather than an underflow.
//!
//! A host that already runs agents, offers only some tiers or caps its agent count is
//! planned with [`crate::placement::SlotPlan`], which builds on the types here.
//!
//! # Limits
//!
//! Validated constructors ([`Hardware::try_new`], [`Reserve::new`] and
//! [`crate::placement::SlotPlan::new`]) accept at most [`MAX_RAM_MB`] of RAM,
//! [`MAX_CPU_MILLICORES`] of CPU and [`MAX_DISK_GB`] of disk. [`Hardware::new`] is `const`
//! and does not check; the slot maths never panics or overflows on any `u64` input.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::tier::{Resources, Tier};

/// The most RAM a host may declare: 16 TiB, in MiB.
pub const MAX_RAM_MB: u64 = 16 * 1024 * 1024;
/// The most CPU a host may declare: 1024 cores, in millicores.
pub const MAX_CPU_MILLICORES: u64 = 1024 * 1000;
/// The most disk a host may declare: 1 PB, in GB.
pub const MAX_DISK_GB: u64 = 1_000_000;

/// One of the three resources slots are counted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// RAM, counted in MiB.
    Ram,
    /// CPU, counted in millicores.
    Cpu,
    /// Disk, counted in GB.
    Disk,
}

impl ResourceKind {
    /// Every resource, in the order placement checks them.
    pub const ALL: [ResourceKind; 3] = [ResourceKind::Ram, ResourceKind::Cpu, ResourceKind::Disk];

    /// The field name with its unit (`"ram_mb"`), used in error messages.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Ram => "ram_mb",
            ResourceKind::Cpu => "cpu_millicores",
            ResourceKind::Disk => "disk_gb",
        }
    }

    /// This resource's amount in `resources`.
    pub const fn amount(self, resources: &Resources) -> u64 {
        match self {
            ResourceKind::Ram => resources.ram_mb,
            ResourceKind::Cpu => resources.cpu_millicores,
            ResourceKind::Disk => resources.disk_gb,
        }
    }

    /// The validated constructors' upper bound for this resource.
    pub const fn limit(self) -> u64 {
        match self {
            ResourceKind::Ram => MAX_RAM_MB,
            ResourceKind::Cpu => MAX_CPU_MILLICORES,
            ResourceKind::Disk => MAX_DISK_GB,
        }
    }
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A hardware or reserve amount outside the documented limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} {resource}: {value} exceeds the limit of {max}")]
pub struct OutOfRange {
    /// `"hardware"` or `"reserve"`.
    pub what: &'static str,
    /// The resource that is too large.
    pub resource: ResourceKind,
    /// The value given.
    pub value: u64,
    /// The largest value accepted.
    pub max: u64,
}

fn check_limits(what: &'static str, amounts: &Resources) -> Result<(), OutOfRange> {
    for resource in ResourceKind::ALL {
        let value = resource.amount(amounts);
        if value > resource.limit() {
            return Err(OutOfRange {
                what,
                resource,
                value,
                max: resource.limit(),
            });
        }
    }
    Ok(())
}

/// What a host machine has in total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hardware {
    /// Total RAM in MiB.
    pub ram_mb: u64,
    /// Total CPU in millicores (1000 per logical core).
    pub cpu_millicores: u64,
    /// Disk available to agents in GB.
    pub disk_gb: u64,
}

impl Hardware {
    /// Hardware with `ram_mb` MiB of RAM, `cpu_millicores` of CPU and `disk_gb` GB of disk.
    /// Not checked against the limits; see [`Hardware::try_new`].
    pub const fn new(ram_mb: u64, cpu_millicores: u64, disk_gb: u64) -> Self {
        Self {
            ram_mb,
            cpu_millicores,
            disk_gb,
        }
    }

    /// Like [`Hardware::new`], but checked against the limits.
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] when RAM exceeds [`MAX_RAM_MB`], CPU exceeds [`MAX_CPU_MILLICORES`]
    /// or disk exceeds [`MAX_DISK_GB`].
    pub fn try_new(ram_mb: u64, cpu_millicores: u64, disk_gb: u64) -> Result<Self, OutOfRange> {
        let hardware = Self::new(ram_mb, cpu_millicores, disk_gb);
        hardware.validate()?;
        Ok(hardware)
    }

    /// Checks this hardware against the limits.
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] as for [`Hardware::try_new`].
    pub fn validate(&self) -> Result<(), OutOfRange> {
        check_limits("hardware", &self.as_resources())
    }

    /// The same amounts as [`Resources`].
    pub const fn as_resources(&self) -> Resources {
        Resources {
            ram_mb: self.ram_mb,
            cpu_millicores: self.cpu_millicores,
            disk_gb: self.disk_gb,
        }
    }

    /// What is left for agents after `reserve`; zero where the reserve is larger.
    pub const fn after_reserve(&self, reserve: &Reserve) -> Resources {
        Resources {
            ram_mb: self.ram_mb.saturating_sub(reserve.ram_mb),
            cpu_millicores: self.cpu_millicores.saturating_sub(reserve.cpu_millicores),
            disk_gb: self.disk_gb.saturating_sub(reserve.disk_gb),
        }
    }
}

/// What a host keeps for itself before offering slots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reserve {
    /// RAM kept back, in MiB.
    pub ram_mb: u64,
    /// CPU kept back, in millicores.
    pub cpu_millicores: u64,
    /// Disk kept back, in GB.
    pub disk_gb: u64,
}

impl Reserve {
    /// A reserve of `ram_mb` MiB, `cpu_millicores` and `disk_gb` GB.
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] when an amount exceeds the hardware limit for its resource
    /// ([`MAX_RAM_MB`], [`MAX_CPU_MILLICORES`], [`MAX_DISK_GB`]).
    pub fn new(ram_mb: u64, cpu_millicores: u64, disk_gb: u64) -> Result<Self, OutOfRange> {
        let reserve = Self {
            ram_mb,
            cpu_millicores,
            disk_gb,
        };
        reserve.validate()?;
        Ok(reserve)
    }

    /// Checks this reserve against the limits.
    ///
    /// # Errors
    ///
    /// [`OutOfRange`] as for [`Reserve::new`].
    pub fn validate(&self) -> Result<(), OutOfRange> {
        check_limits(
            "reserve",
            &Resources {
                ram_mb: self.ram_mb,
                cpu_millicores: self.cpu_millicores,
                disk_gb: self.disk_gb,
            },
        )
    }
}

impl Default for Reserve {
    /// 1 GiB of RAM and half a core, as in the brief, and 10 GB of disk for the agent
    /// image, logs and the daemon's own state.
    fn default() -> Self {
        Self {
            ram_mb: 1024,
            cpu_millicores: 500,
            disk_gb: 10,
        }
    }
}

/// Free slots per tier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotTable(BTreeMap<Tier, u64>);

impl SlotTable {
    /// Slots on a host that runs no agents yet and offers every tier without a cap: per
    /// tier, the smallest of the RAM-, CPU- and disk-based counts after the reserve.
    pub fn for_empty_host(hardware: &Hardware, reserve: &Reserve) -> Self {
        let free = hardware.after_reserve(reserve);
        Tier::ALL
            .into_iter()
            .map(|tier| (tier, fits(&free, &tier.resources())))
            .collect()
    }

    /// Free slots for `tier`.
    pub fn get(&self, tier: Tier) -> u64 {
        self.0.get(&tier).copied().unwrap_or(0)
    }

    /// Each tier with its free slots, smallest tier first.
    pub fn iter(&self) -> impl Iterator<Item = (Tier, u64)> + '_ {
        self.0.iter().map(|(tier, n)| (*tier, *n))
    }

    /// Whether no tier has a free slot.
    pub fn is_full(&self) -> bool {
        self.0.values().all(|n| *n == 0)
    }
}

impl FromIterator<(Tier, u64)> for SlotTable {
    fn from_iter<I: IntoIterator<Item = (Tier, u64)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Display for SlotTable {
    /// `lite 15, standard 7, pro 3, compute 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (tier, n)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{tier} {n}")?;
        }
        Ok(())
    }
}

/// How many allocations of `need` fit in `free`. Tier resources are never zero, so the
/// divisions cannot fail.
pub(crate) fn fits(free: &Resources, need: &Resources) -> u64 {
    ResourceKind::ALL
        .into_iter()
        .map(|r| r.amount(free) / r.amount(need).max(1))
        .min()
        .unwrap_or(0)
}

/// Whether a host with `hardware`, keeping `reserve`, and already running agents of the
/// tiers in `running`, can take one more agent of `tier`. Offers every tier and has no
/// agent cap; use [`crate::placement::SlotPlan`] for a host policy.
pub fn can_place(
    hardware: &Hardware,
    reserve: &Reserve,
    running: impl IntoIterator<Item = Tier>,
    tier: Tier,
) -> bool {
    let mut free = hardware.after_reserve(reserve);
    for used in running.into_iter().map(Tier::resources) {
        free.ram_mb = free.ram_mb.saturating_sub(used.ram_mb);
        free.cpu_millicores = free.cpu_millicores.saturating_sub(used.cpu_millicores);
        free.disk_gb = free.disk_gb.saturating_sub(used.disk_gb);
    }
    fits(&free, &tier.resources()) >= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brief_example_32_gb_8_cores() {
        let table =
            SlotTable::for_empty_host(&Hardware::new(32 * 1024, 8000, 10_000), &Reserve::default());
        let got: Vec<_> = table.iter().map(|(_, n)| n).collect();
        assert_eq!(got, [15, 7, 3, 1]);
        assert_eq!(table.to_string(), "lite 15, standard 7, pro 3, compute 1");
    }

    #[test]
    fn hardware_below_reserve_gives_zero_slots() {
        let table = SlotTable::for_empty_host(&Hardware::new(512, 250, 1), &Reserve::default());
        assert!(table.is_full());
    }

    #[test]
    fn disk_limits_slots_when_it_is_the_scarcest_resource() {
        let table =
            SlotTable::for_empty_host(&Hardware::new(32 * 1024, 8000, 30), &Reserve::default());
        assert_eq!(table.get(Tier::Lite), 4);
        assert_eq!(table.get(Tier::Compute), 0);
    }

    #[test]
    fn huge_values_neither_panic_nor_overflow() {
        let table = SlotTable::for_empty_host(
            &Hardware::new(u64::MAX, u64::MAX, u64::MAX),
            &Reserve::default(),
        );
        assert!(table.get(Tier::Lite) > 0);
        let nothing = Reserve::new(0, 0, 0).unwrap();
        assert!(!can_place(
            &Hardware::new(0, 0, 0),
            &nothing,
            [],
            Tier::Lite
        ));
    }

    #[test]
    fn oversized_hardware_is_rejected_with_the_resource_named() {
        let err = Hardware::try_new(MAX_RAM_MB + 1, 1000, 10).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "hardware ram_mb: {} exceeds the limit of {MAX_RAM_MB}",
                MAX_RAM_MB + 1
            )
        );
        assert!(Reserve::new(0, MAX_CPU_MILLICORES + 1, 0).is_err());
    }
}
