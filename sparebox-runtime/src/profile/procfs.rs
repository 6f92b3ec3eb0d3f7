//! What the profile runtime reads from `/proc`: a process's parent, group and start time
//! (to find a process tree and to tell a pid from a reused one), its CPU time and its
//! resident memory.

use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The fields of `/proc/<pid>/stat` the runtime uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// The process id.
    pub pid: u32,
    /// Its parent.
    pub ppid: u32,
    /// Its process group.
    pub pgid: u32,
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// When it started, in clock ticks after boot: with the pid, identifies the process.
    pub start_ticks: u64,
    /// Resident set size in pages.
    pub rss_pages: u64,
}

/// Parses one `/proc/<pid>/stat` line. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub(crate) fn parse_stat(line: &str) -> Option<ProcStat> {
    let (head, rest) = line.rsplit_once(')')?;
    let pid = head.split_once('(')?.0.trim().parse().ok()?;
    // rest starts at field 3 (state); field n is at index n - 3.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
    Some(ProcStat {
        pid,
        ppid: u32::try_from(field(4)?).ok()?,
        pgid: u32::try_from(field(5)?).ok()?,
        cpu_ticks: field(14)?.saturating_add(field(15)?),
        start_ticks: field(22)?,
        rss_pages: field(24)?,
    })
}

/// The stat of one process, or `None` when it does not exist (any more).
pub(crate) fn stat(pid: u32) -> Option<ProcStat> {
    let line = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&line)
}

/// Whether `pid` is still the process that started at `start_ticks` (and not a zombie or a
/// new process that reused the number).
pub(crate) fn is_same_process(pid: u32, start_ticks: u64) -> bool {
    let Ok(line) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let zombie = line
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']));
    !zombie && parse_stat(&line).is_some_and(|s| s.start_ticks == start_ticks)
}

/// Every process on the machine, by pid.
fn all_processes() -> HashMap<u32, ProcStat> {
    let Ok(entries) = std::fs::read_dir(Path::new("/proc")) else {
        return HashMap::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .map(|s| (s.pid, s))
        .collect()
}

/// `root` and all its descendants, plus every process still in its process group (children
/// whose parent died are re-parented but keep the group).
pub(crate) fn process_tree(root: u32) -> Vec<ProcStat> {
    tree_of(root, &all_processes())
}

fn tree_of(root: u32, processes: &HashMap<u32, ProcStat>) -> Vec<ProcStat> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for process in processes.values() {
        children.entry(process.ppid).or_default().push(process.pid);
    }
    let mut seen = HashSet::new();
    let mut stack: Vec<u32> = processes
        .values()
        .filter(|p| p.pgid == root)
        .map(|p| p.pid)
        .collect();
    stack.push(root);
    while let Some(pid) = stack.pop() {
        if !processes.contains_key(&pid) || !seen.insert(pid) {
            continue;
        }
        stack.extend(children.get(&pid).into_iter().flatten());
    }
    let mut tree: Vec<ProcStat> = seen.into_iter().map(|pid| processes[&pid]).collect();
    tree.sort_by_key(|p| p.pid);
    tree
}

/// Resident memory summed over a process tree, in bytes.
pub(crate) fn tree_rss_bytes(tree: &[ProcStat]) -> u64 {
    let page = rustix::param::page_size() as u64;
    tree.iter()
        .map(|p| p.rss_pages.saturating_mul(page))
        .fold(0, u64::saturating_add)
}

/// CPU time summed over a process tree, in clock ticks.
pub(crate) fn tree_cpu_ticks(tree: &[ProcStat]) -> u64 {
    tree.iter()
        .map(|p| p.cpu_ticks)
        .fold(0, u64::saturating_add)
}

/// Clock ticks per second, the unit of CPU and start times in `/proc`.
pub(crate) fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_spaces_and_parentheses_in_name_parses() {
        let line = "4242 (node (gateway) x) S 4200 4242 4242 0 -1 4194560 100 0 0 0 \
                    150 50 0 0 20 0 11 0 987654 1000000000 25000 18446744073709551615";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.pid, 4242);
        assert_eq!(stat.ppid, 4200);
        assert_eq!(stat.pgid, 4242);
        assert_eq!(stat.cpu_ticks, 200);
        assert_eq!(stat.start_ticks, 987_654);
        assert_eq!(stat.rss_pages, 25_000);
    }

    #[test]
    fn malformed_stat_line_is_none_not_a_panic() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 (x) S 1"), None);
        assert_eq!(parse_stat("abc (x) S 1 2 3"), None);
    }

    #[test]
    fn tree_includes_descendants_and_orphans_still_in_the_group() {
        let p = |pid, ppid, pgid| ProcStat {
            pid,
            ppid,
            pgid,
            cpu_ticks: 1,
            start_ticks: 0,
            rss_pages: 1,
        };
        let processes: HashMap<u32, ProcStat> = [
            p(1, 0, 1),
            p(10, 1, 10),
            p(11, 10, 10),
            p(12, 11, 12),
            p(13, 1, 10),
            p(20, 1, 20),
        ]
        .into_iter()
        .map(|s| (s.pid, s))
        .collect();
        let pids: Vec<u32> = tree_of(10, &processes).iter().map(|s| s.pid).collect();
        assert_eq!(pids, vec![10, 11, 12, 13]);
    }

    #[test]
    fn own_process_is_found_and_not_mistaken_for_another_start_time() {
        let me = std::process::id();
        let stat = stat(me).unwrap();
        assert!(is_same_process(me, stat.start_ticks));
        assert!(!is_same_process(me, stat.start_ticks + 1));
        assert!(tree_rss_bytes(&process_tree(me)) > 0);
    }
}
