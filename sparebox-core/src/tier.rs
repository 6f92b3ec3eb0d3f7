//! Resource tiers: the standard allocations every agent runs in.
//!
//! | tier | RAM | CPU | disk |
//! |---|---|---|---|
//! | Lite | 1 GiB | 0.5 core | 5 GB |
//! | Standard | 2 GiB | 1 core | 10 GB |
//! | Pro | 4 GiB | 2 cores | 20 GB |
//! | Compute | 8 GiB | 4 cores | 40 GB |
//!
//! Quantities are integers: RAM in MiB ("MB" in the API, 1 GB = 1024 MB), CPU in
//! millicores (1000 = one core), disk in GB.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the four standard resource allocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// 1 GiB, half a core, 5 GB: webhook-only and low-traffic agents. OpenClaw fits, with
    /// little headroom.
    Lite,
    /// 2 GiB, one core, 10 GB: most agents. The default.
    Standard,
    /// 4 GiB, two cores, 20 GB: browser automation, coding agents.
    Pro,
    /// 8 GiB, four cores, 40 GB: local model inference, heavy automation.
    Compute,
}

/// An amount of RAM, CPU and disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// RAM in MiB.
    pub ram_mb: u64,
    /// CPU in millicores (1000 = one core).
    pub cpu_millicores: u64,
    /// Disk in GB.
    pub disk_gb: u64,
}

impl Tier {
    /// Every tier, smallest first.
    pub const ALL: [Tier; 4] = [Tier::Lite, Tier::Standard, Tier::Pro, Tier::Compute];

    /// The resources an agent of this tier is given (and limited to).
    pub const fn resources(self) -> Resources {
        match self {
            Tier::Lite => Resources {
                ram_mb: 1024,
                cpu_millicores: 500,
                disk_gb: 5,
            },
            Tier::Standard => Resources {
                ram_mb: 2048,
                cpu_millicores: 1000,
                disk_gb: 10,
            },
            Tier::Pro => Resources {
                ram_mb: 4096,
                cpu_millicores: 2000,
                disk_gb: 20,
            },
            Tier::Compute => Resources {
                ram_mb: 8192,
                cpu_millicores: 4000,
                disk_gb: 40,
            },
        }
    }

    /// The lowercase name used in the API and in configuration (`"standard"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Tier::Lite => "lite",
            Tier::Standard => "standard",
            Tier::Pro => "pro",
            Tier::Compute => "compute",
        }
    }

    /// The V8 old-space limit in MiB for OpenClaw in this tier: V8 aborts when its heap
    /// limit exceeds the container's memory limit, so this stays well below the tier's RAM.
    pub const fn node_heap_mb(self) -> u64 {
        match self {
            Tier::Lite => 640,
            Tier::Standard => 1536,
            Tier::Pro => 3072,
            Tier::Compute => 6144,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tier name that is not one of `lite`, `standard`, `pro`, `compute`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown tier {0:?}: expected one of lite, standard, pro, compute")]
pub struct UnknownTier(pub String);

impl FromStr for Tier {
    type Err = UnknownTier;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::ALL
            .into_iter()
            .find(|tier| tier.as_str() == s)
            .ok_or_else(|| UnknownTier(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_have_the_published_resources() {
        let got: Vec<_> = Tier::ALL
            .iter()
            .map(|t| {
                let r = t.resources();
                (r.ram_mb, r.cpu_millicores, r.disk_gb)
            })
            .collect();
        assert_eq!(
            got,
            [
                (1024, 500, 5),
                (2048, 1000, 10),
                (4096, 2000, 20),
                (8192, 4000, 40)
            ]
        );
    }

    #[test]
    fn tier_names_round_trip() {
        for tier in Tier::ALL {
            assert_eq!(tier.as_str().parse::<Tier>().unwrap(), tier);
        }
        assert_eq!(
            "huge".parse::<Tier>().unwrap_err().to_string(),
            "unknown tier \"huge\": expected one of lite, standard, pro, compute"
        );
    }

    #[test]
    fn node_heap_stays_below_tier_ram() {
        for tier in Tier::ALL {
            assert!(tier.node_heap_mb() < tier.resources().ram_mb);
        }
    }
}
