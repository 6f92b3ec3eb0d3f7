//! CPU and memory figures from the engine's one-shot stats, computed the same way on cgroup
//! v1, cgroup v2 and Podman, whose stats omit different fields.

use bollard::models::{ContainerCpuStats, ContainerMemoryStats, ContainerStatsResponse};

use crate::AgentStats;

/// The agent's usage from one stats sample. Absent fields count as zero rather than failing:
/// a container that has just started has no previous CPU sample, and Podman reports no
/// detailed memory map.
pub(crate) fn agent_stats(sample: &ContainerStatsResponse) -> AgentStats {
    let memory = sample.memory_stats.as_ref();
    AgentStats {
        cpu_percent: cpu_percent(sample.cpu_stats.as_ref(), sample.precpu_stats.as_ref()),
        memory_bytes: memory.map_or(0, working_set_bytes),
        memory_limit_bytes: memory.and_then(|m| m.limit).unwrap_or(0),
    }
}

/// CPU use between the previous and the current sample, in percent of one core: the
/// container's share of the whole machine's CPU time, times the number of online CPUs. It
/// exceeds 100 when the container uses more than one core.
pub(crate) fn cpu_percent(
    current: Option<&ContainerCpuStats>,
    previous: Option<&ContainerCpuStats>,
) -> f64 {
    let Some(current) = current else {
        return 0.0;
    };
    let total = |stats: Option<&ContainerCpuStats>| {
        stats
            .and_then(|s| s.cpu_usage.as_ref())
            .and_then(|u| u.total_usage)
            .unwrap_or(0)
    };
    let system = |stats: Option<&ContainerCpuStats>| stats.and_then(|s| s.system_cpu_usage);

    let container_delta = total(Some(current)).saturating_sub(total(previous));
    let (Some(system_now), Some(system_before)) = (system(Some(current)), system(previous)) else {
        return 0.0;
    };
    let system_delta = system_now.saturating_sub(system_before);
    if system_delta == 0 || container_delta == 0 {
        return 0.0;
    }

    let cpus = online_cpus(current);
    container_delta as f64 / system_delta as f64 * cpus as f64 * 100.0
}

/// The number of CPUs the sample was taken over: `online_cpus` when the engine reports it,
/// else the length of the per-CPU usage list (older cgroup v1 engines), else one.
fn online_cpus(stats: &ContainerCpuStats) -> u32 {
    stats
        .online_cpus
        .filter(|&n| n > 0)
        .or_else(|| {
            let per_cpu = stats.cpu_usage.as_ref()?.percpu_usage.as_ref()?;
            u32::try_from(per_cpu.len()).ok().filter(|&n| n > 0)
        })
        .unwrap_or(1)
}

/// The working set: usage minus inactive file pages (page cache the kernel can drop), the
/// figure the OOM killer effectively compares against the limit. cgroup v1 names the
/// inactive pages `total_inactive_file`, cgroup v2 `inactive_file`; without either (Podman)
/// it is the plain usage.
pub(crate) fn working_set_bytes(memory: &ContainerMemoryStats) -> u64 {
    let usage = memory.usage.unwrap_or(0);
    let inactive = memory.stats.as_ref().and_then(|stats| {
        stats
            .get("total_inactive_file")
            .or_else(|| stats.get("inactive_file"))
            .copied()
    });
    match inactive {
        Some(inactive) if inactive < usage => usage - inactive,
        Some(_) => 0,
        None => usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(json: serde_json::Value) -> ContainerStatsResponse {
        serde_json::from_value(json).expect("recorded stats parse")
    }

    /// Shape recorded from Docker 20.10 on cgroup v1 (trimmed).
    fn cgroup_v1_sample() -> ContainerStatsResponse {
        sample(serde_json::json!({
            "read": "2026-12-03T13:20:01.5Z",
            "preread": "2026-12-03T13:20:00.5Z",
            "cpu_stats": {
                "cpu_usage": {
                    "total_usage": 1_300_000_000u64,
                    "percpu_usage": [700_000_000u64, 600_000_000u64],
                    "usage_in_kernelmode": 100_000_000u64,
                    "usage_in_usermode": 1_100_000_000u64
                },
                "system_cpu_usage": 20_000_000_000u64,
                "online_cpus": 2,
                "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}
            },
            "precpu_stats": {
                "cpu_usage": {"total_usage": 1_000_000_000u64},
                "system_cpu_usage": 18_000_000_000u64,
                "online_cpus": 2
            },
            "memory_stats": {
                "usage": 150_000_000u64,
                "max_usage": 160_000_000u64,
                "limit": 2_147_483_648u64,
                "stats": {
                    "total_inactive_file": 50_000_000u64,
                    "total_rss": 90_000_000u64,
                    "cache": 60_000_000u64
                }
            }
        }))
    }

    #[test]
    fn cgroup_v1_cpu_is_share_of_machine_times_online_cpus() {
        let stats = agent_stats(&cgroup_v1_sample());
        // 0.3 s of container time over 2 s of machine time on 2 CPUs = 30 % of one core.
        assert!(
            (stats.cpu_percent - 30.0).abs() < 1e-9,
            "{}",
            stats.cpu_percent
        );
    }

    #[test]
    fn cgroup_v1_working_set_subtracts_total_inactive_file() {
        let stats = agent_stats(&cgroup_v1_sample());
        assert_eq!(stats.memory_bytes, 100_000_000);
        assert_eq!(stats.memory_limit_bytes, 2_147_483_648);
    }

    #[test]
    fn cgroup_v2_working_set_subtracts_inactive_file() {
        let stats = agent_stats(&sample(serde_json::json!({
            "cpu_stats": {
                "cpu_usage": {"total_usage": 5_000_000_000u64},
                "system_cpu_usage": 100_000_000_000u64,
                "online_cpus": 4
            },
            "precpu_stats": {
                "cpu_usage": {"total_usage": 3_000_000_000u64},
                "system_cpu_usage": 96_000_000_000u64,
                "online_cpus": 4
            },
            "memory_stats": {
                "usage": 800_000_000u64,
                "limit": 1_073_741_824u64,
                "stats": {"inactive_file": 300_000_000u64, "anon": 450_000_000u64, "file": 340_000_000u64}
            }
        })));
        assert_eq!(stats.memory_bytes, 500_000_000);
        // 2 s of container time over 4 s of machine time on 4 CPUs: two full cores.
        assert!(
            (stats.cpu_percent - 200.0).abs() < 1e-9,
            "{}",
            stats.cpu_percent
        );
    }

    #[test]
    fn podman_without_memory_map_reports_plain_usage() {
        let stats = agent_stats(&sample(serde_json::json!({
            "cpu_stats": {
                "cpu_usage": {"total_usage": 2_000_000_000u64, "percpu_usage": [2_000_000_000u64]},
                "system_cpu_usage": 50_000_000_000u64,
                "online_cpus": 2
            },
            "precpu_stats": {
                "cpu_usage": {"total_usage": 1_000_000_000u64},
                "system_cpu_usage": 40_000_000_000u64
            },
            "memory_stats": {"usage": 42_000_000u64, "limit": 2_147_483_648u64}
        })));
        assert_eq!(stats.memory_bytes, 42_000_000);
        assert_eq!(stats.memory_limit_bytes, 2_147_483_648);
        assert!(
            (stats.cpu_percent - 20.0).abs() < 1e-9,
            "{}",
            stats.cpu_percent
        );
    }

    #[test]
    fn missing_online_cpus_falls_back_to_per_cpu_list_length() {
        let current: ContainerCpuStats = serde_json::from_value(serde_json::json!({
            "cpu_usage": {"total_usage": 400u64, "percpu_usage": [100u64, 100u64, 100u64, 100u64]},
            "system_cpu_usage": 1_000u64
        }))
        .unwrap();
        let previous: ContainerCpuStats = serde_json::from_value(serde_json::json!({
            "cpu_usage": {"total_usage": 0u64},
            "system_cpu_usage": 0u64
        }))
        .unwrap();
        let percent = cpu_percent(Some(&current), Some(&previous));
        assert!((percent - 160.0).abs() < 1e-9, "{percent}");
    }

    #[test]
    fn missing_online_cpus_and_per_cpu_list_counts_one_cpu() {
        let current: ContainerCpuStats = serde_json::from_value(serde_json::json!({
            "cpu_usage": {"total_usage": 250u64},
            "system_cpu_usage": 1_000u64
        }))
        .unwrap();
        let previous = ContainerCpuStats {
            system_cpu_usage: Some(0),
            ..Default::default()
        };
        let percent = cpu_percent(Some(&current), Some(&previous));
        assert!((percent - 25.0).abs() < 1e-9, "{percent}");
    }

    #[test]
    fn first_sample_without_previous_cpu_reads_zero() {
        let stats = agent_stats(&sample(serde_json::json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 5u64}, "system_cpu_usage": 10u64, "online_cpus": 1},
            "precpu_stats": {"cpu_usage": {"total_usage": 0u64}},
            "memory_stats": {}
        })));
        assert_eq!(stats.cpu_percent, 0.0);
        assert_eq!(stats.memory_bytes, 0);
        assert_eq!(stats.memory_limit_bytes, 0);
    }

    #[test]
    fn inactive_file_above_usage_clamps_to_zero() {
        let memory = ContainerMemoryStats {
            usage: Some(10),
            stats: Some(
                [("total_inactive_file".to_owned(), 20)]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        };
        assert_eq!(working_set_bytes(&memory), 0);
    }
}
