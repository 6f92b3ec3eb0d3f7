//! The command state machine: expiry by the server's clock, acks, and supersession.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use proptest::prelude::*;
use sparebox_core::command::{
    ack_outcome, deliverable, expire, superseded_by, supersedes, AckEffect, AckResult, CommandKind,
    CommandStatus, ExpiryWindow,
};
use sparebox_core::CommandId;

use CommandKind::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

#[test]
fn sent_command_expires_only_after_five_minutes() {
    let w = ExpiryWindow::default();
    assert_eq!(w.as_duration(), Duration::from_secs(300));
    assert_eq!(
        expire(CommandStatus::Sent, t0(), t0() + secs(299), w),
        CommandStatus::Sent
    );
    assert_eq!(
        expire(CommandStatus::Sent, t0(), t0() + secs(300), w),
        CommandStatus::Sent
    );
    assert_eq!(
        expire(CommandStatus::Sent, t0(), t0() + secs(301), w),
        CommandStatus::Expired
    );
}

#[test]
fn pending_command_expires_too() {
    let w = ExpiryWindow::default();
    assert_eq!(
        expire(CommandStatus::Pending, t0(), t0() + secs(3600), w),
        CommandStatus::Expired
    );
}

#[test]
fn fresh_sent_command_is_not_expired() {
    let w = ExpiryWindow::default();
    assert_eq!(
        expire(CommandStatus::Sent, t0(), t0(), w),
        CommandStatus::Sent
    );
}

#[test]
fn command_from_the_future_is_not_expired() {
    let w = ExpiryWindow::default();
    assert_eq!(
        expire(CommandStatus::Sent, t0(), t0() - secs(3600), w),
        CommandStatus::Sent
    );
}

#[test]
fn expiry_window_is_configurable_within_bounds() {
    let w = ExpiryWindow::new(Duration::from_secs(30)).unwrap();
    assert_eq!(
        expire(CommandStatus::Sent, t0(), t0() + secs(31), w),
        CommandStatus::Expired
    );
    assert_eq!(
        ExpiryWindow::new(Duration::from_secs(1))
            .unwrap_err()
            .to_string(),
        "command expiry window: 1s is outside 10s..=24h"
    );
    assert!(ExpiryWindow::new(Duration::from_secs(25 * 3600)).is_err());
}

#[test]
fn expired_command_is_not_redelivered() {
    let w = ExpiryWindow::default();
    assert!(deliverable(
        CommandStatus::Pending,
        t0(),
        t0() + secs(10),
        w
    ));
    assert!(!deliverable(
        CommandStatus::Pending,
        t0(),
        t0() + secs(301),
        w
    ));
    assert!(!deliverable(CommandStatus::Sent, t0(), t0() + secs(10), w));
    assert!(!deliverable(CommandStatus::Superseded, t0(), t0(), w));
}

#[test]
fn ack_of_sent_command_is_applied() {
    assert_eq!(
        ack_outcome(CommandStatus::Sent, AckResult::Acked),
        AckEffect::Applied(CommandStatus::Acked)
    );
    assert_eq!(
        ack_outcome(CommandStatus::Sent, AckResult::Failed),
        AckEffect::Applied(CommandStatus::Failed)
    );
}

#[test]
fn duplicate_ack_is_a_no_op() {
    for current in [CommandStatus::Acked, CommandStatus::Failed] {
        for ack in [AckResult::Acked, AckResult::Failed] {
            let effect = ack_outcome(current, ack);
            assert_eq!(effect, AckEffect::Duplicate);
            assert!(!effect.changes_agent());
        }
    }
}

#[test]
fn late_ack_for_expired_command_changes_no_agent_state() {
    let effect = ack_outcome(CommandStatus::Expired, AckResult::Acked);
    assert_eq!(effect, AckEffect::Late);
    assert!(!effect.changes_agent());
    assert_eq!(
        ack_outcome(CommandStatus::Superseded, AckResult::Failed),
        AckEffect::Late
    );
}

#[test]
fn ack_for_command_still_recorded_pending_proves_delivery() {
    assert_eq!(
        ack_outcome(CommandStatus::Pending, AckResult::Acked),
        AckEffect::Applied(CommandStatus::Acked)
    );
}

#[test]
fn superseded_is_reachable_only_from_pending() {
    for from in CommandStatus::ALL {
        let ok = from.transition(CommandStatus::Superseded).is_ok();
        assert_eq!(ok, from == CommandStatus::Pending, "{from}");
    }
    assert!(CommandStatus::Superseded.is_terminal());
    assert_eq!(
        "superseded".parse::<CommandStatus>().unwrap(),
        CommandStatus::Superseded
    );
}

/// Every (newer, older) pair, against the table in the module docs.
#[test]
fn supersession_table_covers_every_pair() {
    let kinds = [Deploy, Start, Stop, Restart, Undeploy, UpdateConfig];
    // Rows: newer; columns: older, in the order of `kinds`.
    let table = [
        [false, false, false, false, false, false], // deploy
        [false, true, true, true, false, false],    // start
        [false, true, true, true, false, false],    // stop
        [false, true, true, true, false, false],    // restart
        [true, true, true, true, true, true],       // undeploy
        [false, false, false, false, false, true],  // update_config
    ];
    for (i, newer) in kinds.into_iter().enumerate() {
        for (j, older) in kinds.into_iter().enumerate() {
            assert_eq!(
                supersedes(newer, older),
                table[i][j],
                "{newer} over {older}"
            );
        }
    }
}

#[test]
fn stop_queued_after_start_cancels_the_start() {
    assert!(supersedes(Stop, Start));
}

#[test]
fn start_queued_after_stop_cancels_the_stop() {
    assert!(supersedes(Start, Stop));
}

#[test]
fn restart_replaces_a_queued_start_or_stop() {
    assert!(supersedes(Restart, Start) && supersedes(Restart, Stop));
}

#[test]
fn undeploy_cancels_everything_queued() {
    assert!(CommandKind::ALL
        .into_iter()
        .all(|older| supersedes(Undeploy, older)));
}

#[test]
fn deploy_is_never_dropped_except_by_undeploy() {
    for newer in CommandKind::ALL {
        assert_eq!(supersedes(newer, Deploy), newer == Undeploy, "{newer}");
    }
}

#[test]
fn config_update_survives_lifecycle_commands() {
    for newer in [Deploy, Start, Stop, Restart] {
        assert!(!supersedes(newer, UpdateConfig), "{newer}");
    }
    assert!(supersedes(UpdateConfig, UpdateConfig));
}

#[test]
fn newer_upgrade_replaces_a_queued_upgrade_and_reads_are_kept() {
    assert!(supersedes(Upgrade, Upgrade));
    for newer in CommandKind::ALL.into_iter().filter(|k| *k != Undeploy) {
        for older in [Logs, Backup, Restore] {
            assert!(!supersedes(newer, older), "{newer} over {older}");
        }
    }
}

#[test]
fn nothing_supersedes_a_queued_undeploy_but_another_undeploy() {
    for newer in CommandKind::ALL {
        assert_eq!(supersedes(newer, Undeploy), newer == Undeploy, "{newer}");
    }
}

#[test]
fn sent_commands_are_never_superseded() {
    let start_sent = CommandId::new_random();
    let start_pending = CommandId::new_random();
    let config_pending = CommandId::new_random();
    let got = superseded_by(
        Stop,
        [
            (start_sent, Start, CommandStatus::Sent),
            (start_pending, Start, CommandStatus::Pending),
            (config_pending, UpdateConfig, CommandStatus::Pending),
        ],
    );
    assert_eq!(got, [start_pending]);
}

fn status() -> impl Strategy<Value = CommandStatus> {
    prop::sample::select(CommandStatus::ALL.to_vec())
}

fn ack() -> impl Strategy<Value = AckResult> {
    prop::sample::select(vec![AckResult::Acked, AckResult::Failed])
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2048,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn terminal_statuses_never_change(
        s in status(),
        age in -100_000i64..100_000,
        window in 10u64..=86_400,
    ) {
        let w = ExpiryWindow::new(Duration::from_secs(window)).unwrap();
        if s.is_terminal() {
            prop_assert_eq!(expire(s, t0(), t0() + secs(age), w), s);
            prop_assert!(!matches!(ack_outcome(s, AckResult::Acked), AckEffect::Applied(_)));
            for next in CommandStatus::ALL {
                prop_assert!(s.transition(next).is_err());
            }
        }
    }

    #[test]
    fn expiry_is_monotonic_in_time(
        s in status(),
        a in -100_000i64..100_000,
        later in 0i64..100_000,
        window in 10u64..=86_400,
    ) {
        let w = ExpiryWindow::new(Duration::from_secs(window)).unwrap();
        let first = expire(s, t0(), t0() + secs(a), w);
        let second = expire(s, t0(), t0() + secs(a + later), w);
        if first == CommandStatus::Expired {
            prop_assert_eq!(second, CommandStatus::Expired);
        }
        prop_assert!(first == s || s.can_become(first));
    }

    #[test]
    fn an_ack_is_applied_at_most_once(s in status(), acks in prop::collection::vec(ack(), 1..6)) {
        let mut current = s;
        let mut applied = 0;
        for a in acks {
            if let AckEffect::Applied(next) = ack_outcome(current, a) {
                applied += 1;
                current = next;
            }
        }
        prop_assert!(applied <= 1);
    }
}
