//! Slot planning for a large host that already runs 200 agents of mixed tiers.
//!
//! Run with `cargo bench -p sparebox-core`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use sparebox_core::placement::{HostPolicy, SlotPlan};
use sparebox_core::slots::{Hardware, Reserve};
use sparebox_core::tier::Tier;

/// 200 agents: 80 Lite, 70 Standard, 40 Pro, 10 Compute (460 GiB, 230 cores, 2300 GB).
fn running_agents() -> Vec<Tier> {
    let mix = [
        (Tier::Lite, 80),
        (Tier::Standard, 70),
        (Tier::Pro, 40),
        (Tier::Compute, 10),
    ];
    mix.into_iter()
        .flat_map(|(tier, n)| std::iter::repeat_n(tier, n))
        .collect()
}

fn slot_planning(c: &mut Criterion) {
    let hardware = Hardware::new(1024 * 1024, 512_000, 4000);
    let policy = HostPolicy::new(Tier::ALL, Some(400), Reserve::default()).expect("valid policy");
    let running = running_agents();
    assert_eq!(running.len(), 200);

    c.bench_function("plan_200_agents_and_table", |b| {
        b.iter(|| {
            let plan = SlotPlan::new(
                black_box(hardware),
                black_box(policy.clone()),
                running.iter().copied(),
            )
            .expect("valid plan");
            black_box(plan.table())
        })
    });

    let plan = SlotPlan::new(hardware, policy, running.iter().copied()).expect("valid plan");
    c.bench_function("placement_check_on_200_agents", |b| {
        b.iter(|| black_box(&plan).placement(black_box(Tier::Pro)))
    });
}

criterion_group!(benches, slot_planning);
criterion_main!(benches);
