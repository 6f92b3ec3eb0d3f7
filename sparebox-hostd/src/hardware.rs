//! Measuring the host: RAM, cores, disk, OS, architecture and GPU.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use sparebox_protocol::HostHardware;

/// How long `nvidia-smi` may take before the host is reported without a GPU.
const GPU_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Measures the host now. `gpu` comes from [`probe_gpu`], which is slow enough to run once.
/// Values that cannot be read are reported as 0 rather than failing the heartbeat.
pub fn measure(data_dir: &Path, gpu: Option<String>) -> HostHardware {
    HostHardware {
        ram_mb: total_ram_mb().unwrap_or(0),
        cpu_cores: cpu_cores(),
        disk_gb: available_disk_gb(data_dir).unwrap_or(0),
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        gpu,
    }
}

/// Total RAM in MiB from `/proc/meminfo`.
fn total_ram_mb() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_total_kib(&meminfo).map(|kib| kib / 1024)
}

fn parse_mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

fn cpu_cores() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
        .unwrap_or(1)
}

/// Space available to unprivileged users on the file system holding `dir`, in GB (10^9).
fn available_disk_gb(dir: &Path) -> Option<u64> {
    let stat = rustix::fs::statvfs(dir).ok()?;
    Some(stat.f_bavail.saturating_mul(stat.f_frsize) / 1_000_000_000)
}

/// The GPU model from `nvidia-smi`, or `None` when that binary is missing, fails or finds
/// nothing. Several GPUs of one model are reported as that model; different models are
/// joined with `, `.
pub async fn probe_gpu() -> Option<String> {
    let output = tokio::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(GPU_PROBE_TIMEOUT, output)
        .await
        .ok()?
        .ok()?;
    if !output.status.success() {
        return None;
    }
    parse_gpu_names(&String::from_utf8_lossy(&output.stdout))
}

fn parse_gpu_names(stdout: &str) -> Option<String> {
    let mut names: Vec<&str> = Vec::new();
    for name in stdout.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    (!names.is_empty()).then(|| names.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_from_meminfo() {
        let meminfo = "MemTotal:       16318480 kB\nMemFree:         1234 kB\n";
        assert_eq!(parse_mem_total_kib(meminfo), Some(16318480));
        assert_eq!(parse_mem_total_kib("garbage"), None);
    }

    #[test]
    fn gpu_names_are_deduplicated_and_empty_output_means_none() {
        let two = "NVIDIA GeForce RTX 4090\nNVIDIA GeForce RTX 4090\n";
        assert_eq!(
            parse_gpu_names(two).as_deref(),
            Some("NVIDIA GeForce RTX 4090")
        );
        assert_eq!(parse_gpu_names("\n"), None);
    }

    #[test]
    fn measured_hardware_has_cores_and_this_platform() {
        let dir = tempfile::tempdir().unwrap();
        let hardware = measure(dir.path(), None);
        assert!(hardware.cpu_cores >= 1);
        assert_eq!(hardware.os, std::env::consts::OS);
        assert!(hardware.gpu.is_none());
    }
}
