//! Feeds arbitrary bytes to the host daemon's backup archive reader, as a restore would
//! after the archive verified: it must never panic, and every entry it accepts must have a
//! path that stays inside the state directory and is not platform-owned.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparebox_hostd::archive::{check_entry_path, unpack, ArchiveLimits};

const LIMITS: ArchiveLimits = ArchiveLimits {
    max_file_bytes: 64 * 1024,
    max_total_bytes: 256 * 1024,
    max_entries: 256,
};

fuzz_target!(|data: &[u8]| {
    let Ok(entries) = unpack(data, &LIMITS) else {
        return;
    };
    assert!(entries.len() <= LIMITS.max_entries);
    for entry in &entries {
        assert!(check_entry_path(&entry.path).is_ok(), "{:?}", entry.path);
        let joined = std::path::Path::new("/state").join(&entry.path);
        assert!(joined.starts_with("/state"));
        assert!(joined
            .components()
            .all(|c| c != std::path::Component::ParentDir));
    }
});
