//! Choosing a gateway port on the host's loopback interface.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, TcpListener};

/// The lowest port in `start..start + len` that is neither in `assigned` nor in use on
/// 127.0.0.1 (checked by binding it for a moment), or `None` when every one is taken.
///
/// The check is a snapshot: another process can take the port before the container binds
/// it, in which case the container fails to start and the deploy fails at `starting`.
pub fn allocate(start: u16, len: u16, assigned: &BTreeSet<u16>) -> Option<u16> {
    let end = start.saturating_add(len);
    (start..end)
        .filter(|port| *port != 0 && !assigned.contains(port))
        .find(|port| is_free(*port))
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
        let got = allocate(start, 3, &assigned);
        assert!(got.is_none() || got == Some(busy + 1), "{got:?}");
        assert_eq!(allocate(busy, 1, &BTreeSet::new()), None);
    }
}
