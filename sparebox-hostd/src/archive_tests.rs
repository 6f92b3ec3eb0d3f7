use std::os::unix::fs::PermissionsExt;

use proptest::prelude::*;

use super::*;

const SMALL: ArchiveLimits = ArchiveLimits {
    max_file_bytes: 1024,
    max_total_bytes: 4096,
    max_entries: 16,
};

/// A gzip-compressed tar with raw entries whose names are written byte for byte, so the
/// tar crate's own path checks cannot tidy up a hostile name.
fn raw_archive(entries: &[(&[u8], tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    for (name, kind, data) in entries {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_entry_type(*kind);
        header.set_mode(0o600);
        header.set_size(data.len() as u64);
        if *kind == tar::EntryType::Symlink || *kind == tar::EntryType::Link {
            header.set_size(0);
            header.as_old_mut().linkname[..6].copy_from_slice(b"/etc/x");
        }
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

fn refused(bytes: &[u8]) -> String {
    unpack(bytes, &SMALL)
        .expect_err("hostile archive accepted")
        .to_string()
}

fn file(path: &str, content: &[u8]) -> ArchiveEntry {
    ArchiveEntry {
        path: path.to_owned(),
        kind: EntryKind::File {
            content: content.to_vec(),
            executable: false,
        },
    }
}

#[test]
fn a_state_directory_survives_pack_unpack_and_write() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir_all(state.join("workspace/memory")).unwrap();
    fs::create_dir_all(state.join("agents/main/sessions")).unwrap();
    fs::create_dir_all(state.join(".cache/x")).unwrap();
    fs::write(state.join("workspace/SOUL.md"), "be brief").unwrap();
    fs::write(
        state.join("workspace/memory/2026-12-01.md"),
        [0u8, 1, 2, 255],
    )
    .unwrap();
    fs::write(state.join("agents/main/sessions/s.jsonl"), "{}\n").unwrap();
    fs::write(state.join("run.sh"), "#!/bin/sh").unwrap();
    fs::set_permissions(state.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(state.join("openclaw.json"), "{gateway: {}}").unwrap();
    fs::write(state.join("openclaw.json.bak"), "{}").unwrap();
    fs::write(state.join(".cache/x/blob"), "cache").unwrap();
    fs::write(dir.path().join("outside"), "host secret").unwrap();
    std::os::unix::fs::symlink(dir.path().join("outside"), state.join("workspace/link")).unwrap();

    let bytes = pack(&state, &ArchiveLimits::DEFAULT).unwrap();
    let entries = unpack(&bytes, &ArchiveLimits::DEFAULT).unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "agents",
            "agents/main",
            "agents/main/sessions",
            "agents/main/sessions/s.jsonl",
            "run.sh",
            "workspace",
            "workspace/SOUL.md",
            "workspace/memory",
            "workspace/memory/2026-12-01.md",
        ]
    );

    let restored = dir.path().join("restored");
    write_tree(&restored, &entries, None).unwrap();
    for path in [
        "workspace/memory/2026-12-01.md",
        "agents/main/sessions/s.jsonl",
    ] {
        assert_eq!(
            fs::read(restored.join(path)).unwrap(),
            fs::read(state.join(path)).unwrap()
        );
    }
    let mode = |p: &str| fs::metadata(restored.join(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("run.sh"), 0o700);
    assert_eq!(mode("workspace/SOUL.md"), 0o600);
    assert_eq!(mode("workspace/memory"), 0o700);
    assert!(!restored.join("workspace/link").exists());
    assert!(!restored.join("openclaw.json").exists());
}

#[test]
fn packing_the_same_directory_twice_gives_the_same_entries() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("b/c")).unwrap();
    fs::write(dir.path().join("b/c/d"), "x").unwrap();
    fs::write(dir.path().join("a"), "y").unwrap();
    let first = unpack(&pack(dir.path(), &SMALL).unwrap(), &SMALL).unwrap();
    let second = unpack(&pack(dir.path(), &SMALL).unwrap(), &SMALL).unwrap();
    assert_eq!(first, second);
}

#[test]
fn packing_refuses_state_over_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("big"), vec![7u8; 2048]).unwrap();
    let err = pack(dir.path(), &SMALL).unwrap_err();
    assert!(err.to_string().contains("over 1024 bytes"), "{err}");
}

#[test]
fn traversal_and_absolute_paths_are_refused() {
    use tar::EntryType::Regular;
    for name in [
        &b"../escape"[..],
        b"a/../../escape",
        b"/etc/passwd",
        b"./a",
        b"a//b",
        b"a\\b",
        b"a\x01b",
        b"openclaw.json",
        b"openclaw.json.tmp",
        b".cache/x",
    ] {
        let err = refused(&raw_archive(&[(name, Regular, b"x")]));
        assert!(
            err.contains("refused"),
            "{:?}: {err}",
            String::from_utf8_lossy(name)
        );
    }
}

#[test]
fn links_devices_and_fifos_are_refused() {
    use tar::EntryType::*;
    for (kind, word) in [
        (Symlink, "symlink"),
        (Link, "hard link"),
        (Char, "character device"),
        (Block, "block device"),
        (Fifo, "fifo"),
    ] {
        let err = refused(&raw_archive(&[(b"workspace", kind, b"")]));
        assert!(err.contains(word), "{err}");
    }
}

#[test]
fn a_symlink_then_a_file_through_it_is_refused() {
    use tar::EntryType::*;
    let bytes = raw_archive(&[(b"w", Symlink, b""), (b"w/passwd", Regular, b"x")]);
    assert!(refused(&bytes).contains("symlink"));
}

#[test]
fn oversized_files_totals_and_counts_are_refused() {
    use tar::EntryType::Regular;
    let big = vec![0u8; 1025];
    assert!(refused(&raw_archive(&[(b"a", Regular, &big)])).contains("over 1024 bytes"));

    let part = vec![0u8; 1000];
    let names: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
    let many: Vec<(&[u8], tar::EntryType, &[u8])> = names
        .iter()
        .map(|n| (n.as_bytes(), Regular, part.as_slice()))
        .collect();
    assert!(refused(&raw_archive(&many)).contains("over 4096 bytes"));

    let names: Vec<String> = (0..17).map(|i| format!("f{i}")).collect();
    let many: Vec<(&[u8], tar::EntryType, &[u8])> = names
        .iter()
        .map(|n| (n.as_bytes(), Regular, &b""[..]))
        .collect();
    assert!(refused(&raw_archive(&many)).contains("more than 16 entries"));
}

#[test]
fn a_compression_bomb_stops_at_the_decompressed_cap() {
    let limits = ArchiveLimits {
        max_file_bytes: u64::MAX,
        max_total_bytes: 1024,
        max_entries: 1,
    };
    let zeros = vec![0u8; 8 * 1024 * 1024];
    let bomb = GzEncoder::new(Vec::new(), Compression::best());
    let mut bomb = bomb;
    bomb.write_all(&zeros).unwrap();
    let bytes = bomb.finish().unwrap();
    assert!(bytes.len() < 64 * 1024);
    let err = unpack(&bytes, &limits).unwrap_err();
    assert!(matches!(err, ArchiveError::TooLarge(_)), "{err}");
}

#[test]
fn truncated_and_garbage_archives_are_refused() {
    use tar::EntryType::Regular;
    let good = raw_archive(&[(b"a", Regular, b"hello"), (b"b", Regular, b"world")]);
    unpack(&good, &SMALL).unwrap();
    for cut in [1, 10, good.len() / 2, good.len() - 1] {
        let err = refused(&good[..cut]);
        assert!(err.contains("malformed or truncated"), "cut {cut}: {err}");
    }
    assert!(refused(b"not an archive at all").contains("malformed"));
}

#[test]
fn duplicates_and_entries_below_files_are_refused() {
    use tar::EntryType::*;
    let twice = raw_archive(&[(b"a", Regular, b"1"), (b"a", Regular, b"2")]);
    assert!(refused(&twice).contains("appears twice"));
    let below = raw_archive(&[(b"a", Regular, b"1"), (b"a/b", Regular, b"2")]);
    assert!(refused(&below).contains("a is a file"));
}

#[test]
fn writing_into_an_existing_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_tree(dir.path(), &[file("a", b"x")], None).unwrap_err();
    assert!(err.to_string().contains("exists"), "{err}");
}

fn valid_archive() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("workspace/memory")).unwrap();
    fs::write(dir.path().join("workspace/memory/a.md"), "remember").unwrap();
    fs::write(dir.path().join("workspace/SOUL.md"), "soul").unwrap();
    pack(dir.path(), &SMALL).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = unpack(&bytes, &SMALL);
    }

    #[test]
    fn a_mutated_archive_is_refused_or_yields_only_checked_paths(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)
    ) {
        let mut bytes = valid_archive();
        for (index, value) in flips {
            let i = index.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok(entries) = unpack(&bytes, &SMALL) {
            for entry in entries {
                prop_assert!(check_entry_path(&entry.path).is_ok());
            }
        }
    }
}

#[test]
fn replacing_the_state_swaps_it_whole_and_keeps_the_platform_config() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    fs::create_dir_all(state.join("workspace")).unwrap();
    fs::write(state.join("openclaw.json"), "{gateway: {mode: 'local'}}").unwrap();
    fs::write(state.join("workspace/OLD.md"), "old").unwrap();
    fs::create_dir_all(dir.path().join("state.restoring/junk")).unwrap();

    let entries = vec![
        ArchiveEntry {
            path: "workspace".into(),
            kind: EntryKind::Dir,
        },
        file("workspace/NEW.md", b"new"),
    ];
    replace_state(dir.path(), &entries, None).unwrap();

    assert_eq!(fs::read(state.join("workspace/NEW.md")).unwrap(), b"new");
    assert!(!state.join("workspace/OLD.md").exists());
    assert_eq!(
        fs::read_to_string(state.join("openclaw.json")).unwrap(),
        "{gateway: {mode: 'local'}}"
    );
    assert!(!dir.path().join("state.restoring").exists());
}

#[test]
fn replacing_a_missing_state_creates_it_and_never_follows_a_config_symlink() {
    let dir = tempfile::tempdir().unwrap();
    replace_state(dir.path(), &[file("a", b"1")], None).unwrap();
    assert_eq!(fs::read(dir.path().join("state/a")).unwrap(), b"1");

    let outside = dir.path().join("outside.json");
    fs::write(&outside, "host file").unwrap();
    std::os::unix::fs::symlink(&outside, dir.path().join("state/openclaw.json")).unwrap();
    let err = replace_state(dir.path(), &[file("b", b"2")], None).unwrap_err();
    assert!(err.to_string().contains("openclaw.json"), "{err}");
    assert_eq!(fs::read(dir.path().join("state/a")).unwrap(), b"1");
}
