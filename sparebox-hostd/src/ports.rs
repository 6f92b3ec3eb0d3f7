//! Choosing a gateway port on the host's loopback interface.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};

/// The lowest port `start + k * spacing` below `start + len` that is at least `spacing`
/// away from every port in `assigned` and whose `spacing` ports from itself up are all
/// free on 127.0.0.1 (checked by binding each for a moment), or `None` when none is.
/// `spacing` is 1 for containers; plain OpenClaw processes also listen on ports above
/// their gateway's and need more room.
///
/// The check is a snapshot: another process can take the port before the agent binds it,
/// in which case the agent fails to start and the deploy fails at `starting`.
pub fn allocate(start: u16, len: u16, spacing: u16, assigned: &BTreeSet<u16>) -> Option<u16> {
    let spacing = spacing.max(1);
    let end = u32::from(start) + u32::from(len);
    (u32::from(start)..end)
        .step_by(usize::from(spacing))
        .filter_map(|port| u16::try_from(port).ok())
        .filter(|port| *port != 0)
        .filter(|port| assigned.iter().all(|a| a.abs_diff(*port) >= spacing))
        .find(|port| (0..spacing).all(|i| port.checked_add(i).is_some_and(is_free)))
}

fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_in_use_and_assigned_ports_are_skipped() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let busy = taken.local_addr().unwrap().port();
        let Some(start) = busy.checked_sub(1) else {
            return;
        };
        let assigned = BTreeSet::from([start]);
        let got = allocate(start, 3, 1, &assigned);
        assert!(got.is_none() || got == Some(busy + 1), "{got:?}");
        assert_eq!(allocate(busy, 1, 1, &BTreeSet::new()), None);
    }

    #[test]
    fn spaced_ports_keep_their_distance_from_assigned_and_busy_ones() {
        let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let busy = taken.local_addr().unwrap().port();
        let Some(start) = busy.checked_sub(25) else {
            return;
        };
        // start is assigned; start + 20 would cover the busy port; start + 40 is next.
        let got = allocate(start, 100, 20, &BTreeSet::from([start]));
        assert!(got.is_none() || got == Some(start + 40), "{got:?}");
        let near = allocate(start + 40, 100, 20, &BTreeSet::from([start + 45]));
        assert!(near.is_none() || near >= Some(start + 80), "{near:?}");
    }
}
