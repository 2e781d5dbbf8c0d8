//! Keyring files (`FileStorage`): opening any file content and reading it never
//! panics; a keyring that opens can be listed and every listed entry read.
//!
//! Each input is written to a file in a per-process directory under the system temp
//! directory and opened there: the loader's only entry point is a path, and the
//! library keeps no parse function for the fuzzer alone. A mutated input almost
//! never keeps a valid SHA-256 checksum, which would stop every run at the checksum
//! check; so an input that is a JSON document with an `entries` map is also tried a
//! second time with its checksum recomputed, to reach what comes after it.

#![no_main]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use encrypted_attr::HashAlgorithm;
use encrypted_attr::storage::{FileStorage, Storage as _};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    open_and_read(data);
    if let Some(fixed) = with_valid_checksum(data) {
        open_and_read(&fixed);
    }
});

/// `<temp>/encrypted-attr-fuzz-<pid>/keyring.json`: one file per fuzzing process, so
/// that `-jobs`/`-fork` workers do not overwrite each other's input.
fn keyring_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("encrypted-attr-fuzz-{}", std::process::id()));
        if let Err(e) = fs::create_dir_all(&dir) {
            panic!("cannot create {}: {e}", dir.display());
        }
        dir.join("keyring.json")
    })
}

fn open_and_read(bytes: &[u8]) {
    let path = keyring_path();
    if let Err(e) = fs::write(path, bytes) {
        panic!("cannot write {}: {e}", path.display());
    }
    let Ok(storage) = FileStorage::open(path) else {
        return;
    };
    // Nothing changed the file since it opened: reading it again must succeed.
    let names = match storage.list("") {
        Ok(names) => names,
        Err(e) => panic!("a keyring that opened cannot be listed: {e}"),
    };
    for name in &names {
        assert!(
            matches!(storage.get(name), Ok(Some(_))),
            "listed entry {name:?} cannot be read"
        );
    }
    let _ = storage.list("keys/");
    let _ = storage.get("core/keyring");
}

/// The input with its `checksum` replaced by the right one, if it is a JSON object
/// whose `entries` is a map of strings and whose checksum is not already right.
fn with_valid_checksum(data: &[u8]) -> Option<Vec<u8>> {
    let mut document: Value = serde_json::from_slice(data).ok()?;
    let entries: BTreeMap<String, String> = serde_json::from_value(document.get("entries")?.clone()).ok()?;
    // As the loader computes it: hex SHA-256 of the compact JSON of the entries.
    let json = serde_json::to_vec(&entries).ok()?;
    let checksum: String = HashAlgorithm::Sha2_256
        .digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let object = document.as_object_mut()?;
    if object.get("checksum").and_then(Value::as_str) == Some(checksum.as_str()) {
        return None;
    }
    object.insert("checksum".to_owned(), Value::String(checksum));
    serde_json::to_vec(&document).ok()
}
