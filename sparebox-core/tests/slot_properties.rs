//! Properties of the slot maths: no overcommit, monotonicity, the cap, and agreement
//! between the reported slot counts and what placement actually accepts.

use proptest::prelude::*;
use sparebox_core::placement::{HostPolicy, Placement, SlotPlan};
use sparebox_core::slots::{can_place, Hardware, Reserve, SlotTable};
use sparebox_core::tier::{Resources, Tier};

/// Slot maths is cheap, so every property runs far more than proptest's default 256 cases.
const CASES: u32 = 4096;

fn tier() -> impl Strategy<Value = Tier> {
    prop::sample::select(Tier::ALL.to_vec())
}

/// Hosts from nothing up to 256 GiB, 64 cores and 2 TB of disk.
fn hardware() -> impl Strategy<Value = Hardware> {
    (0u64..=256 * 1024, 0u64..=64_000, 0u64..=2000)
        .prop_map(|(ram, cpu, disk)| Hardware::new(ram, cpu, disk))
}

fn reserve() -> impl Strategy<Value = Reserve> {
    (0u64..=4096, 0u64..=2000, 0u64..=50)
        .prop_map(|(ram, cpu, disk)| Reserve::new(ram, cpu, disk).expect("within limits"))
}

fn policy() -> impl Strategy<Value = HostPolicy> {
    (
        prop::collection::btree_set(tier(), 0..=4),
        prop::option::of(0u32..=40),
        reserve(),
    )
        .prop_map(|(offered, cap, reserve)| {
            HostPolicy::new(offered, cap, reserve).expect("valid policy")
        })
}

fn running() -> impl Strategy<Value = Vec<Tier>> {
    prop::collection::vec(tier(), 0..=40)
}

fn within(used: &Resources, capacity: &Resources) -> bool {
    used.ram_mb <= capacity.ram_mb
        && used.cpu_millicores <= capacity.cpu_millicores
        && used.disk_gb <= capacity.disk_gb
}

fn each_tier_at_most(smaller: &SlotTable, larger: &SlotTable) -> bool {
    Tier::ALL
        .into_iter()
        .all(|t| smaller.get(t) <= larger.get(t))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: CASES,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn placing_never_overcommits_ram_cpu_or_disk(
        hw in hardware(),
        policy in policy(),
        attempts in prop::collection::vec(tier(), 0..=80),
    ) {
        let mut plan = SlotPlan::new(hw, policy, []).unwrap();
        for tier in attempts {
            let _ = plan.place(tier);
            prop_assert!(within(&plan.used(), &plan.capacity()), "{:?}", plan);
            prop_assert!(!plan.is_overcommitted());
        }
    }

    #[test]
    fn slots_never_increase_when_an_agent_is_placed(
        hw in hardware(),
        policy in policy(),
        running in running(),
        tier in tier(),
    ) {
        let plan = SlotPlan::new(hw, policy, running).unwrap();
        let before = plan.table();
        if let Placement::Accepted { remaining } = plan.placement(tier) {
            prop_assert!(each_tier_at_most(&remaining, &before));
            prop_assert_eq!(remaining.get(tier) + 1, before.get(tier));
        }
    }

    #[test]
    fn more_hardware_never_gives_fewer_slots(
        hw in hardware(),
        extra in (0u64..=64 * 1024, 0u64..=16_000, 0u64..=500),
        policy in policy(),
        running in running(),
    ) {
        let bigger = Hardware::new(hw.ram_mb + extra.0, hw.cpu_millicores + extra.1, hw.disk_gb + extra.2);
        let small = SlotPlan::new(hw, policy.clone(), running.clone()).unwrap();
        let large = SlotPlan::new(bigger, policy, running).unwrap();
        prop_assert!(each_tier_at_most(&small.table(), &large.table()));
    }

    #[test]
    fn manual_cap_always_holds(
        hw in hardware(),
        policy in policy(),
        running in running(),
        attempts in prop::collection::vec(tier(), 0..=80),
    ) {
        let cap = policy.effective_cap();
        let mut plan = SlotPlan::new(hw, policy, running).unwrap();
        let start = plan.running_total();
        for tier in attempts {
            let before = plan.running_total();
            let placed = plan.place(tier).is_ok();
            prop_assert!(!placed || plan.running_total() <= cap);
            prop_assert!(plan.running_total() <= start.max(cap));
            prop_assert!(plan.slots(tier) <= u64::from(cap.saturating_sub(before)));
        }
    }

    #[test]
    fn placing_until_refused_matches_the_reported_slot_count(
        hw in hardware(),
        policy in policy(),
        running in running(),
        tier in tier(),
    ) {
        let mut plan = SlotPlan::new(hw, policy, running).unwrap();
        let reported = plan.slots(tier);
        let mut placed = 0u64;
        while plan.place(tier).is_ok() {
            placed += 1;
            prop_assert!(placed <= reported, "placed more than the {} slots reported", reported);
        }
        prop_assert_eq!(placed, reported);
        prop_assert_eq!(plan.slots(tier), 0);
    }

    #[test]
    fn placement_answer_matches_place_and_the_table_after_it(
        hw in hardware(),
        policy in policy(),
        running in running(),
        tier in tier(),
    ) {
        let plan = SlotPlan::new(hw, policy, running).unwrap();
        let mut placed = plan.clone();
        match plan.placement(tier) {
            Placement::Accepted { remaining } => {
                prop_assert!(placed.place(tier).is_ok());
                prop_assert_eq!(remaining, placed.table());
                prop_assert!(plan.slots(tier) >= 1);
            }
            Placement::Refused(refusal) => {
                prop_assert_eq!(placed.place(tier), Err(refusal));
                prop_assert_eq!(plan.slots(tier), 0);
            }
        }
    }

    #[test]
    fn open_policy_agrees_with_can_place_and_the_empty_host_table(
        hw in hardware(),
        reserve in reserve(),
        running in running(),
        tier in tier(),
    ) {
        let policy = HostPolicy::new(Tier::ALL, None, reserve).unwrap();
        let empty = SlotPlan::new(hw, policy.clone(), []).unwrap();
        prop_assert_eq!(empty.table(), SlotTable::for_empty_host(&hw, &reserve));
        let plan = SlotPlan::new(hw, policy, running.clone()).unwrap();
        prop_assert_eq!(plan.placement(tier).is_accepted(), can_place(&hw, &reserve, running, tier));
    }

    #[test]
    fn release_undoes_place(
        hw in hardware(),
        policy in policy(),
        running in running(),
        tier in tier(),
    ) {
        let plan = SlotPlan::new(hw, policy, running).unwrap();
        let mut changed = plan.clone();
        if changed.place(tier).is_ok() {
            changed.release(tier).unwrap();
            prop_assert_eq!(changed, plan);
        }
    }
}

#[test]
fn brief_example_32_gb_8_cores_gives_15_7_3_1() {
    let hw = Hardware::new(32 * 1024, 8000, 1000);
    let plan = SlotPlan::new(hw, HostPolicy::all_tiers(), []).unwrap();
    let got: Vec<u64> = Tier::ALL.into_iter().map(|t| plan.slots(t)).collect();
    assert_eq!(got, [15, 7, 3, 1]);
}

#[test]
fn hardware_not_covering_the_reserve_gives_zero_slots() {
    let reserve = Reserve::new(2048, 1000, 20).unwrap();
    for hw in [
        Hardware::new(0, 0, 0),
        Hardware::new(2047, 64_000, 2000),
        Hardware::new(256 * 1024, 999, 2000),
        Hardware::new(256 * 1024, 64_000, 19),
    ] {
        let policy = HostPolicy::new(Tier::ALL, None, reserve).unwrap();
        let plan = SlotPlan::new(hw, policy, []).unwrap();
        assert!(plan.table().is_full(), "{hw:?}");
    }
}
