//! A keyring file: every sealed entry in one JSON document, replaced atomically.
//!
//! Why one file: a keyring is small (a few hundred bytes per key version), users
//! back up and move one file easily, and a single atomic rename keeps every entry
//! consistent with every other. Writes go to a temporary file in the same directory,
//! are fsynced, renamed over the keyring, and the directory is fsynced, so a crash
//! leaves either the old file or the new one, never a mix. Writers take an exclusive
//! lock on `<file>.lock` and re-read the file under it, so two processes sharing a
//! keyring apply their changes in turn. Readers need no lock (rename is atomic).
//!
//! A file that cannot be parsed, has the wrong format marker, or whose SHA-256
//! checksum does not match its entries is reported as [`Error::CorruptStorage`] and
//! is never overwritten.
//!
//! Reads are cached: the parsed entries are kept with the identity of the file
//! they came from (inode, size, modification and change times, taken from the
//! open file itself), and a read whose file has not changed costs one `stat`, not a
//! parse — a flood of lookups of unknown names or tokens no longer re-reads the
//! whole keyring each time. Temporary files left by a writer that crashed between
//! writing and renaming are removed when the storage is opened.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::{Storage, Update, UpdateFn};
use crate::cipher::HashAlgorithm;
use crate::error::{Error, Result};

/// The `format` marker of a keyring file.
const FILE_FORMAT: &str = "encrypted-attr-keyring";
/// The file layout version.
const FILE_VERSION: u32 = 1;
/// How long a writer waits for another process's lock before giving up.
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Sealed entries by path.
type Entries = BTreeMap<String, Vec<u8>>;

/// What identifies one version of the keyring file: every write renames a new
/// file into place, so its inode and change time differ from the last one's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    device: u64,
    inode: u64,
    len: u64,
    modified_ns: i128,
    changed_ns: i128,
}

impl FileStamp {
    fn of(metadata: &fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt as _;
            Self {
                device: metadata.dev(),
                inode: metadata.ino(),
                len: metadata.len(),
                modified_ns: i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec()),
                changed_ns: i128::from(metadata.ctime()) * 1_000_000_000 + i128::from(metadata.ctime_nsec()),
            }
        }
        #[cfg(not(unix))]
        {
            let modified_ns = metadata
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
            Self {
                device: 0,
                inode: 0,
                len: metadata.len(),
                modified_ns,
                changed_ns: 0,
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct KeyringFile {
    format: String,
    version: u32,
    /// Sealed entries by path, base64.
    entries: BTreeMap<String, String>,
    /// Hex SHA-256 of the JSON serialisation of `entries`.
    checksum: String,
}

/// Storage in a single keyring file (see the module documentation).
#[derive(Debug)]
pub struct FileStorage {
    path: PathBuf,
    lock_path: PathBuf,
    /// Serialises writers inside this process; the file lock covers other processes.
    writer: Mutex<()>,
    lock_timeout: Duration,
    /// The entries last read, the identity of that file, and the file itself, kept
    /// open so that its inode cannot be reused by a later file (which could then
    /// match the identity by chance).
    cache: Mutex<Option<(FileStamp, Arc<Entries>, File)>>,
}

impl FileStorage {
    /// Opens (or prepares to create) the keyring file at `path`. An existing file is
    /// read and verified now, so a damaged keyring is reported before any use.
    ///
    /// # Errors
    /// [`Error::CorruptStorage`] for a damaged file, [`Error::Io`] if it cannot be read.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        let mut lock_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        lock_name.push(".lock");
        let storage = Self {
            lock_path: path.with_file_name(lock_name),
            path,
            writer: Mutex::new(()),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            cache: Mutex::new(None),
        };
        storage.entries()?;
        storage.remove_stale_temporaries();
        Ok(storage)
    }

    /// Removes temporary files (`.<name>.tmp-<pid>`, sealed entries) that a writer
    /// killed between writing and renaming left behind. Only while holding the
    /// write lock — no writer can be using one then — and only if the lock is free
    /// now: otherwise a later open cleans up.
    fn remove_stale_temporaries(&self) {
        let Ok(lock) = private_file_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
        else {
            return;
        };
        if lock.try_lock().is_err() {
            return;
        }
        let prefix = format!(
            ".{}.tmp-",
            self.path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
        );
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if let Ok(listing) = fs::read_dir(&dir) {
            for entry in listing.flatten() {
                if entry.file_name().to_string_lossy().starts_with(&prefix) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        drop(lock.unlock());
    }

    /// The entries, from the cache while the file is the one they were read from.
    fn entries(&self) -> Result<Arc<Entries>> {
        let mut file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Arc::new(BTreeMap::new())),
            Err(e) => return Err(Error::io(self.location(), e)),
        };
        // The identity of the open file, not of the path: what is read below is
        // exactly that file, even if a writer renames another one into place now.
        let stamp = FileStamp::of(&file.metadata().map_err(|e| Error::io(self.location(), e))?);
        let mut cache = self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((cached, entries, _)) = &*cache
            && *cached == stamp
        {
            return Ok(entries.clone());
        }
        let entries = Arc::new(self.read_open_file(&mut file)?);
        *cache = Some((stamp, entries.clone(), file));
        Ok(entries)
    }

    /// The entries read from the file now, bypassing the cache (writers, under
    /// the lock: a write must build on exactly what is on disk).
    fn entries_uncached(&self) -> Result<Entries> {
        match File::open(&self.path) {
            Ok(mut file) => self.read_open_file(&mut file),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(Error::io(self.location(), e)),
        }
    }

    fn read_open_file(&self, file: &mut File) -> Result<Entries> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(file, &mut bytes).map_err(|e| Error::io(self.location(), e))?;
        self.parse(&bytes)
    }

    /// Sets how long a write waits for another process's lock (default 30 s).
    #[must_use]
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The keyring file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn corrupt(&self, reason: &'static str) -> Error {
        Error::CorruptStorage {
            location: self.location(),
            reason,
        }
    }

    fn parse(&self, bytes: &[u8]) -> Result<Entries> {
        if bytes.is_empty() {
            return Err(self.corrupt("the file is empty"));
        }
        let file: KeyringFile = serde_json::from_slice(bytes)
            .map_err(|_| self.corrupt("not a complete keyring document (truncated or not a keyring)"))?;
        if file.format != FILE_FORMAT {
            return Err(self.corrupt("not an encrypted-attr keyring file"));
        }
        if file.version != FILE_VERSION {
            return Err(self.corrupt("unsupported keyring file version"));
        }
        if checksum(&file.entries)? != file.checksum {
            return Err(self.corrupt("checksum mismatch (torn or edited file)"));
        }
        file.entries
            .into_iter()
            .map(|(path, sealed)| match BASE64.decode(sealed) {
                Ok(bytes) => Ok((path, bytes)),
                Err(_) => Err(self.corrupt("an entry is not base64")),
            })
            .collect()
    }

    fn write_entries(&self, entries: &BTreeMap<String, Vec<u8>>) -> Result<()> {
        let encoded: BTreeMap<String, String> = entries.iter().map(|(k, v)| (k.clone(), BASE64.encode(v))).collect();
        let file = KeyringFile {
            format: FILE_FORMAT.to_owned(),
            version: FILE_VERSION,
            checksum: checksum(&encoded)?,
            entries: encoded,
        };
        let json = serde_json::to_vec_pretty(&file).map_err(|e| Error::Storage(Box::new(e)))?;
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            self.path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            std::process::id()
        ));
        let io = |e| Error::io(tmp.display(), e);
        {
            let mut out = private_file_options()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&tmp)
                .map_err(io)?;
            out.write_all(&json).map_err(io)?;
            out.sync_all().map_err(io)?;
        }
        if let Err(e) = fs::rename(&tmp, &self.path) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(self.location(), e));
        }
        // Make the rename itself durable.
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir.display(), e))
    }

    /// Takes the cross-process write lock, waiting at most `lock_timeout`.
    fn lock_file(&self) -> Result<File> {
        let file = private_file_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| Error::io(self.lock_path.display(), e))?;
        let deadline = Instant::now() + self.lock_timeout;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Error::StorageLocked {
                        path: self.lock_path.clone(),
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io(self.lock_path.display(), e));
                }
            }
        }
    }
}

fn checksum(entries: &BTreeMap<String, String>) -> Result<String> {
    let json = serde_json::to_vec(entries).map_err(|e| Error::Storage(Box::new(e)))?;
    Ok(HashAlgorithm::Sha2_256
        .digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn private_file_options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options
}

impl Storage for FileStorage {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.entries()?.get(path).cloned())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .entries()?
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    fn update(&self, path: &str, change: &mut UpdateFn<'_>) -> Result<()> {
        let _in_process = self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let lock = self.lock_file()?;
        let mut entries = self.entries_uncached()?;
        let changed = match change(entries.get(path).map(Vec::as_slice))? {
            Update::Keep => false,
            Update::Put(bytes) => {
                entries.insert(path.to_owned(), bytes);
                true
            }
            Update::Delete => entries.remove(path).is_some(),
        };
        let written = if changed { self.write_entries(&entries) } else { Ok(()) };
        drop(lock.unlock());
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporary_files_are_removed_at_open_and_changes_elsewhere_are_seen() -> Result<()> {
        let dir = tempdir()?;
        let path = dir.join("keyring.json");
        let first = FileStorage::open(&path)?;
        first.update("keys/a", &mut |_| Ok(Update::Put(vec![1])))?;
        // What a writer killed between writing and renaming leaves.
        let stale = dir.join(".keyring.json.tmp-999999");
        fs::write(&stale, b"sealed leftovers").map_err(|e| Error::io("write", e))?;
        let second = FileStorage::open(&path)?;
        assert!(!stale.exists(), "stale temporary file removed at open");
        // A change made through one handle is seen by the other (cache keyed on
        // the file's identity, which every write changes).
        assert_eq!(first.get("keys/a")?, Some(vec![1]));
        second.update("keys/a", &mut |_| Ok(Update::Put(vec![2])))?;
        assert_eq!(first.get("keys/a")?, Some(vec![2]));
        assert_eq!(first.list("keys/")?, ["keys/a"]);
        Ok(())
    }

    #[test]
    fn damaged_files_are_reported_and_left_alone() -> Result<()> {
        let dir = tempdir()?;
        let path = dir.join("keyring.json");
        let storage = FileStorage::open(&path)?;
        storage.update("keys/a", &mut |_| Ok(Update::Put(vec![1, 2, 3])))?;
        let good = fs::read(&path).map_err(|e| Error::io("read", e))?;

        let cases: [(&str, Vec<u8>); 4] = [
            ("truncated", good[..good.len() / 2].to_vec()),
            ("empty", Vec::new()),
            (
                "edited",
                String::from_utf8_lossy(&good).replace("AQID", "AQIE").into_bytes(),
            ),
            ("foreign", br#"{"hello": "world"}"#.to_vec()),
        ];
        for (what, bytes) in cases {
            fs::write(&path, &bytes).map_err(|e| Error::io("write", e))?;
            let err = FileStorage::open(&path).err();
            assert!(matches!(err, Some(Error::CorruptStorage { .. })), "{what}: {err:?}");
            // A storage opened earlier also refuses to write over it.
            assert!(
                storage.update("keys/b", &mut |_| Ok(Update::Put(vec![9]))).is_err(),
                "{what}"
            );
            assert_eq!(
                fs::read(&path).map_err(|e| Error::io("read", e))?,
                bytes,
                "{what}: file was changed"
            );
        }
        fs::remove_dir_all(&dir).map_err(|e| Error::io("cleanup", e))
    }

    pub(crate) fn tempdir() -> Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!(
            "encrypted-attr-test-{}-{}",
            std::process::id(),
            crate::cipher::random_bytes(8)?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ));
        fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        Ok(dir)
    }
}
