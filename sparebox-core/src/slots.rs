//! How many agents of each tier a host can take.
//!
//! The empty-host rule: keep a reserve for the host's own system (1 GiB of RAM and half
//! a core by default), then for each tier the number of slots is the smaller of what the
//! remaining RAM and the remaining CPU allow. Everything is integer arithmetic, and
//! hardware smaller than the reserve gives zero slots rather than an underflow.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::tier::{Resources, Tier};

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
    pub const fn new(ram_mb: u64, cpu_millicores: u64, disk_gb: u64) -> Self {
        Self {
            ram_mb,
            cpu_millicores,
            disk_gb,
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

impl Default for Reserve {
    /// 1 GiB of RAM and half a core; no disk.
    fn default() -> Self {
        Self {
            ram_mb: 1024,
            cpu_millicores: 500,
            disk_gb: 0,
        }
    }
}

/// Free slots per tier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotTable(BTreeMap<Tier, u64>);

impl SlotTable {
    /// Slots on a host that runs no agents yet: per tier, the smaller of the RAM-based and
    /// CPU-based counts after the reserve. Disk counts too when the host reports any.
    pub fn for_empty_host(hardware: &Hardware, reserve: &Reserve) -> Self {
        let free = Resources {
            ram_mb: hardware.ram_mb.saturating_sub(reserve.ram_mb),
            cpu_millicores: hardware
                .cpu_millicores
                .saturating_sub(reserve.cpu_millicores),
            disk_gb: hardware.disk_gb.saturating_sub(reserve.disk_gb),
        };
        Self(
            Tier::ALL
                .into_iter()
                .map(|tier| (tier, fits(&free, &tier.resources())))
                .collect(),
        )
    }

    /// Free slots for `tier`.
    pub fn get(&self, tier: Tier) -> u64 {
        self.0.get(&tier).copied().unwrap_or(0)
    }

    /// Each tier with its free slots, smallest tier first.
    pub fn iter(&self) -> impl Iterator<Item = (Tier, u64)> + '_ {
        self.0.iter().map(|(tier, n)| (*tier, *n))
    }
}

/// How many allocations of `need` fit in `free`.
fn fits(free: &Resources, need: &Resources) -> u64 {
    let by_ram = free.ram_mb / need.ram_mb;
    let by_cpu = free.cpu_millicores / need.cpu_millicores;
    let by_disk = free.disk_gb / need.disk_gb;
    by_ram.min(by_cpu).min(by_disk)
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
    }

    #[test]
    fn hardware_below_reserve_gives_zero_slots() {
        let table = SlotTable::for_empty_host(&Hardware::new(512, 250, 1), &Reserve::default());
        assert!(table.iter().all(|(_, n)| n == 0));
    }
}

/// Whether a host with `hardware`, keeping `reserve`, and already running agents of the
/// tiers in `running`, can take one more agent of `tier`.
pub fn can_place(
    hardware: &Hardware,
    reserve: &Reserve,
    running: impl IntoIterator<Item = Tier>,
    tier: Tier,
) -> bool {
    let mut free = Resources {
        ram_mb: hardware.ram_mb.saturating_sub(reserve.ram_mb),
        cpu_millicores: hardware
            .cpu_millicores
            .saturating_sub(reserve.cpu_millicores),
        disk_gb: hardware.disk_gb.saturating_sub(reserve.disk_gb),
    };
    for used in running.into_iter().map(Tier::resources) {
        free.ram_mb = free.ram_mb.saturating_sub(used.ram_mb);
        free.cpu_millicores = free.cpu_millicores.saturating_sub(used.cpu_millicores);
        free.disk_gb = free.disk_gb.saturating_sub(used.disk_gb);
    }
    fits(&free, &tier.resources()) >= 1
}
