//! Feeds arbitrary text to the workspace path rules; every accepted path must be a plain
//! relative path that cannot leave the workspace directory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sparebox_core::workspace::{validate_workspace, WorkspacePath, MAX_DEPTH, MAX_PATH_BYTES};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(path) = WorkspacePath::parse(text) {
        let raw = path.as_str();
        assert!(!raw.is_empty() && raw.len() <= MAX_PATH_BYTES);
        assert!(!raw.starts_with('/') && !raw.contains('\\'));
        assert!(!raw.chars().any(char::is_control));
        assert!(path.segments().count() <= MAX_DEPTH);
        assert!(path
            .segments()
            .all(|s| !s.is_empty() && s != "." && s != ".."));
        let joined = std::path::Path::new("/workspace").join(raw);
        assert!(joined.starts_with("/workspace"));
        assert!(joined
            .components()
            .all(|c| c != std::path::Component::ParentDir));
    }

    let files: Vec<(&str, u64)> = text
        .split('\n')
        .map(|line| (line, line.len() as u64))
        .collect();
    if let Ok(paths) = validate_workspace(&files) {
        assert_eq!(paths.len(), files.len());
    }
});
