//! Snapshot tests of slot tables for common host shapes. Disk is plentiful here (ten times
//! the RAM in GB) so the tables show the brief's RAM and CPU formula; the mixed-host
//! snapshot shows disk, cap and offered tiers at work.

use std::fmt::Write as _;

use sparebox_core::placement::{HostPolicy, SlotPlan};
use sparebox_core::slots::{Hardware, Reserve, SlotTable};
use sparebox_core::tier::Tier;

fn describe(table: &SlotTable) -> String {
    let mut out = String::new();
    for (tier, slots) in table.iter() {
        let r = tier.resources();
        writeln!(
            out,
            "{:<8} {:>3} slots  ({} MB, {} mcpu, {} GB each)",
            tier.as_str(),
            slots,
            r.ram_mb,
            r.cpu_millicores,
            r.disk_gb
        )
        .unwrap();
    }
    out
}

fn empty_host(ram_gb: u64, cores: u64) -> String {
    let hw = Hardware::new(ram_gb * 1024, cores * 1000, ram_gb * 10);
    let r = Reserve::default();
    format!(
        "host {} MB, {} mcpu, {} GB; reserve {} MB, {} mcpu, {} GB\n{}",
        hw.ram_mb,
        hw.cpu_millicores,
        hw.disk_gb,
        r.ram_mb,
        r.cpu_millicores,
        r.disk_gb,
        describe(&SlotTable::for_empty_host(&hw, &r))
    )
}

#[test]
fn slot_table_4gb_2_cores() {
    insta::assert_snapshot!(empty_host(4, 2));
}

#[test]
fn slot_table_8gb_4_cores() {
    insta::assert_snapshot!(empty_host(8, 4));
}

#[test]
fn slot_table_16gb_8_cores() {
    insta::assert_snapshot!(empty_host(16, 8));
}

#[test]
fn slot_table_32gb_8_cores() {
    insta::assert_snapshot!(empty_host(32, 8));
}

#[test]
fn slot_table_64gb_16_cores() {
    insta::assert_snapshot!(empty_host(64, 16));
}

#[test]
fn slot_table_128gb_32_cores() {
    insta::assert_snapshot!(empty_host(128, 32));
}

#[test]
fn slot_table_64gb_16_cores_small_disk_capped_running_mixed_tiers() {
    let hw = Hardware::new(64 * 1024, 16_000, 200);
    let policy = HostPolicy::new(
        [Tier::Lite, Tier::Standard, Tier::Pro],
        Some(12),
        Reserve::default(),
    )
    .unwrap();
    let plan = SlotPlan::new(
        hw,
        policy,
        [Tier::Pro, Tier::Standard, Tier::Lite, Tier::Lite],
    )
    .unwrap();
    let mut out = describe(&plan.table());
    let free = plan.free();
    writeln!(
        out,
        "free: {} MB, {} mcpu, {} GB; running {} of cap 12",
        free.ram_mb,
        free.cpu_millicores,
        free.disk_gb,
        plan.running_total()
    )
    .unwrap();
    insta::assert_snapshot!(out);
}
