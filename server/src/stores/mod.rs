//! What the server keeps sealed in storage: typed records under one path prefix
//! ([`SealedRecords`]), and the in-memory copy of a whole family of them that a
//! server re-reads to see what other servers sharing its storage changed
//! ([`Mirror`]). Tokens, policies and audit devices are kept this way.
//!
//! Every record goes through the barrier (sealed with a key derived from the root
//! key, its path as associated data). In dev mode the stores sit on an in-memory
//! storage behind a barrier of its own, so both modes run the same code.

pub(crate) mod lockout;
pub(crate) mod mounts;
pub(crate) mod policies;
pub(crate) mod prefixed;
pub(crate) mod tokens;
pub(crate) mod transit_mounts;

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use encrypted_attr::storage::{Barrier, MemoryStorage, Update};
use encrypted_attr::{Error, RootKey};

/// A barrier over fresh in-memory storage under a random root key: dev mode's
/// storage for everything but keys.
pub(crate) fn memory_barrier() -> Result<Arc<Barrier>, Error> {
    let root = RootKey::generate()?;
    Ok(Arc::new(Barrier::open(Arc::new(MemoryStorage::new()), &root)?))
}

/// How a record is written in storage.
pub(crate) trait Record: Sized {
    fn encode(&self) -> Result<Vec<u8>, Error>;
    /// The record in `bytes`; `None` when they are damaged, which each family
    /// treats as it must (a token as absent, an audit device as failing).
    fn decode(bytes: &[u8]) -> Option<Self>;
}

/// [`Record::encode`] for records stored as JSON.
pub(crate) fn encode_json(record: &impl serde::Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(record).map_err(|e| Error::Storage(Box::new(e)))
}

/// [`Record::decode`] for records stored as JSON.
pub(crate) fn decode_json<R: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<R> {
    serde_json::from_slice(bytes).ok()
}

/// What a change to one record does.
pub(crate) enum Change<R> {
    Keep,
    Put(R),
    Delete,
}

/// Present once [`move_names_to_canonical_form`] has run over this storage.
const NAMES_CANONICAL_PATH: &str = "sys/names-canonical";

/// Families whose names come from request paths: every mount's and auth method's
/// data (KV entries, users, roles), policies, and the mount tables.
const NAMED_FAMILIES: [&str; 4] = ["logical/", "sys/policy/", "sys/mounts/", "sys/auth-methods/"];

/// Once per storage: moves the records stored, before request paths were decoded,
/// under names not in [`storage_name`]'s form to that form (see
/// [`SealedRecords::move_to_canonical_names`]). Names escaped as Vault's clients
/// escape them (`team%20a`) are in that form already and stay where they are.
pub(crate) fn move_names_to_canonical_form(barrier: &Arc<Barrier>) -> Result<(), Error> {
    if barrier.get(NAMES_CANONICAL_PATH)?.is_some() {
        return Ok(());
    }
    let mut moved = 0;
    for prefix in NAMED_FAMILIES {
        moved += SealedRecords::<Opaque>::new(barrier.clone(), prefix).move_to_canonical_names()?;
    }
    if moved > 0 {
        tracing::info!(
            moved,
            "entries stored under escaped names were moved to their decoded names"
        );
    }
    barrier.update(NAMES_CANONICAL_PATH, &mut |_| Ok(Update::Put(b"1".to_vec())))
}

/// A record read as bytes and never parsed (moved as it is).
struct Opaque;

impl Record for Opaque {
    fn encode(&self) -> Result<Vec<u8>, Error> {
        Ok(Vec::new())
    }
    fn decode(_: &[u8]) -> Option<Self> {
        Some(Self)
    }
}

/// What [`storage_name`] escapes: everything but letters, digits, `-._~` and the
/// characters Go's `url.PathEscape` leaves as they are (`$&+,/:;=@`), so a name
/// stored before request paths were decoded, by a client that escaped as Vault's
/// own does, decodes to the name it was meant to be (`team%20a` is `team a`).
const ESCAPED_IN_STORAGE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b',')
    .remove(b'/')
    .remove(b':')
    .remove(b';')
    .remove(b'=')
    .remove(b'@');

/// How a record's name (a decoded request path below its mount: a KV entry, a
/// user, a role, a policy) is written in a storage path, which is ASCII: `%`,
/// spaces, controls and every non-ASCII byte escaped. Plain names are written as
/// they are.
pub(crate) fn storage_name(name: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::utf8_percent_encode(name, ESCAPED_IN_STORAGE).into()
}

/// The name a storage path segment holds ([`storage_name`] undone; an escape
/// that is not one is taken as written).
pub(crate) fn name_of(stored: &str) -> String {
    percent_encoding::percent_decode_str(stored)
        .decode_utf8_lossy()
        .into_owned()
}

/// The records of one family: `<prefix><name>` in the barrier (the name as
/// [`storage_name`] writes it), each a `R`.
pub(crate) struct SealedRecords<R> {
    barrier: Arc<Barrier>,
    prefix: std::borrow::Cow<'static, str>,
    record: PhantomData<fn() -> R>,
}

impl<R: Record> SealedRecords<R> {
    /// The records under `prefix`, which ends in `/`.
    pub(crate) fn new(barrier: Arc<Barrier>, prefix: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        let prefix = prefix.into();
        debug_assert!(prefix.ends_with('/'));
        Self {
            barrier,
            prefix,
            record: PhantomData,
        }
    }

    fn path(&self, name: &str) -> String {
        format!("{}{}", self.prefix, storage_name(name))
    }

    /// The record `name`; `None` if absent or damaged.
    pub(crate) fn get(&self, name: &str) -> Result<Option<R>, Error> {
        Ok(self.barrier.get(&self.path(name))?.and_then(|raw| R::decode(&raw)))
    }

    /// Whether storage holds anything under `name`, damaged or not.
    pub(crate) fn exists(&self, name: &str) -> Result<bool, Error> {
        Ok(self.barrier.get(&self.path(name))?.is_some())
    }

    pub(crate) fn put(&self, name: &str, record: &R) -> Result<(), Error> {
        let bytes = record.encode()?;
        self.barrier
            .update(&self.path(name), &mut |_| Ok(Update::Put(bytes.clone())))
    }

    pub(crate) fn delete(&self, name: &str) -> Result<(), Error> {
        self.barrier.update(&self.path(name), &mut |_| Ok(Update::Delete))
    }

    /// Changes record `name` atomically: `change` sees what is stored now (`None`
    /// if absent or damaged) and says what to do.
    pub(crate) fn update(&self, name: &str, change: &mut dyn FnMut(Option<R>) -> Change<R>) -> Result<(), Error> {
        self.barrier.update(
            &self.path(name),
            &mut |current| match change(current.and_then(R::decode)) {
                Change::Keep => Ok(Update::Keep),
                Change::Put(record) => record.encode().map(Update::Put),
                Change::Delete => Ok(Update::Delete),
            },
        )
    }

    /// Stores `record` under `name` only if storage holds something there
    /// (`present`) or nothing (`!present`), in one atomic update: whether it was
    /// stored.
    fn put_if(&self, name: &str, record: &R, present: bool) -> Result<bool, Error> {
        let bytes = record.encode()?;
        let mut stored = false;
        self.barrier.update(&self.path(name), &mut |current| {
            stored = current.is_some() == present;
            Ok(if stored {
                Update::Put(bytes.clone())
            } else {
                Update::Keep
            })
        })?;
        Ok(stored)
    }

    /// Stores `record` under `name` unless something is there already.
    pub(crate) fn put_if_absent(&self, name: &str, record: &R) -> Result<bool, Error> {
        self.put_if(name, record, false)
    }

    /// Replaces the record under `name`, only if there is one.
    pub(crate) fn put_if_present(&self, name: &str, record: &R) -> Result<bool, Error> {
        self.put_if(name, record, true)
    }

    /// Deletes every record of the family (a mount's data, when it goes).
    pub(crate) fn delete_all(&self) -> Result<(), Error> {
        for name in self.names_under("")? {
            self.delete(&name)?;
        }
        Ok(())
    }

    /// The names stored under `<prefix><under>` (whole names, `under` included).
    pub(crate) fn names_under(&self, under: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .stored_under(under)?
            .into_iter()
            .map(|path| name_of(&path[self.prefix.len()..]))
            .collect())
    }

    /// The storage paths under `<prefix><under>`.
    fn stored_under(&self, under: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .barrier
            .list(&self.path(under))?
            .into_iter()
            .filter(|path| path.starts_with(&*self.prefix))
            .collect())
    }

    /// Every record, by name: a damaged one as `None`.
    fn load_all(&self) -> Result<Vec<(String, Option<R>)>, Error> {
        let mut out = Vec::new();
        for path in self.stored_under("")? {
            let Some(raw) = self.barrier.get(&path)? else {
                continue;
            };
            out.push((name_of(&path[self.prefix.len()..]), R::decode(&raw)));
        }
        Ok(out)
    }

    /// Moves every record stored under a name not in [`storage_name`]'s form (an
    /// entry written before request paths were decoded, by a client that escaped
    /// a character that needs none, such as `%21` for `!`) to the name's form, so
    /// the name it is listed under reaches it. A record already there wins; the
    /// other is left where it is and reported. Returns how many moved.
    pub(crate) fn move_to_canonical_names(&self) -> Result<usize, Error> {
        let mut moved = 0;
        for path in self.stored_under("")? {
            let stored = &path[self.prefix.len()..];
            let name = name_of(stored);
            if storage_name(&name) == stored {
                continue;
            }
            let Some(bytes) = self.barrier.get(&path)? else {
                continue;
            };
            let target = self.path(&name);
            let mut placed = false;
            self.barrier.update(&target, &mut |current| {
                placed = current.is_none();
                Ok(if placed {
                    Update::Put(bytes.to_vec())
                } else {
                    Update::Keep
                })
            })?;
            if placed {
                self.barrier.update(&path, &mut |_| Ok(Update::Delete))?;
                moved += 1;
            } else {
                tracing::warn!(
                    family = %self.prefix,
                    "two stored entries have names that decode alike; the one under the escaped name was left as it is"
                );
            }
        }
        Ok(moved)
    }
}

/// What a [`Mirror`] keeps in memory for each record of its family.
pub(crate) trait Mirrored: Sized {
    type Record: Record + PartialEq;
    /// The entry for a stored record (`None`: damaged); `None` leaves it out.
    fn load(name: &str, record: Option<Self::Record>) -> Option<Self>;
    /// The record this entry was made from (an unchanged record keeps its entry
    /// across re-reads: a parsed policy, an open audit file).
    fn record(&self) -> &Self::Record;
}

/// A whole family of records in memory, with storage as the truth: every change
/// is stored first, and [`reload`](Mirror::reload) re-reads the family to see the
/// changes of other servers sharing the storage.
pub(crate) struct Mirror<E: Mirrored> {
    records: SealedRecords<E::Record>,
    entries: RwLock<BTreeMap<String, E>>,
    /// Held by every change and re-read from its storage access to its update of
    /// memory, so a re-read cannot replace memory with a view read before a local
    /// change (dropping what was just added, or reviving what was just removed).
    changes: Mutex<()>,
}

impl<E: Mirrored> Mirror<E> {
    /// Loads every record of the family.
    pub(crate) fn open(records: SealedRecords<E::Record>) -> Result<Self, Error> {
        let entries = records
            .load_all()?
            .into_iter()
            .filter_map(|(name, record)| E::load(&name, record).map(|entry| (name, entry)))
            .collect();
        Ok(Self {
            records,
            entries: RwLock::new(entries),
            changes: Mutex::new(()),
        })
    }

    /// The entries now.
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, E>> {
        self.entries.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Re-reads the family from storage; entries whose record is unchanged are
    /// kept as they are. On a storage error memory stays as it was.
    pub(crate) fn reload(&self) -> Result<(), Error> {
        let _changing = self.changing();
        let stored = self.records.load_all()?;
        let unchanged = {
            let current = self.read();
            stored.len() == current.len()
                && stored.iter().all(|(name, record)| {
                    current
                        .get(name)
                        .is_some_and(|entry| record.as_ref() == Some(entry.record()))
                })
        };
        if unchanged {
            return Ok(());
        }
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        let mut next = BTreeMap::new();
        for (name, record) in stored {
            let entry = match entries.remove(&name) {
                Some(entry) if record.as_ref() == Some(entry.record()) => Some(entry),
                _ => E::load(&name, record),
            };
            if let Some(entry) = entry {
                next.insert(name, entry);
            }
        }
        *entries = next;
        Ok(())
    }

    /// Starts a change: other changes and re-reads wait until it is dropped.
    pub(crate) fn change(&self) -> MirrorChange<'_, E> {
        MirrorChange {
            mirror: self,
            _changing: self.changing(),
        }
    }

    fn changing(&self) -> MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A change to a [`Mirror`] in progress: what it checks and stores cannot be
/// overtaken by another change or a re-read.
pub(crate) struct MirrorChange<'m, E: Mirrored> {
    mirror: &'m Mirror<E>,
    _changing: MutexGuard<'m, ()>,
}

impl<E: Mirrored> MirrorChange<'_, E> {
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.mirror.read().contains_key(name)
    }

    /// Stores `entry`'s record under `name`, then puts `entry` in memory.
    pub(crate) fn insert(&self, name: &str, entry: E) -> Result<(), Error> {
        self.mirror.records.put(name, entry.record())?;
        self.mirror
            .entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), entry);
        Ok(())
    }

    /// Stores `entry`'s record under `name` only if storage holds nothing there
    /// (another server may have just made one): `false`, and nothing changed,
    /// if it did.
    pub(crate) fn insert_new(&self, name: &str, entry: E) -> Result<bool, Error> {
        let created = self.mirror.records.put_if_absent(name, entry.record())?;
        if created {
            self.mirror
                .entries
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.to_owned(), entry);
        }
        Ok(created)
    }

    /// Stores `entry`'s record under `name` only if storage still holds one
    /// there: `false`, and nothing changed, if it does not.
    pub(crate) fn replace_existing(&self, name: &str, entry: E) -> Result<bool, Error> {
        let replaced = self.mirror.records.put_if_present(name, entry.record())?;
        let mut entries = self.mirror.entries.write().unwrap_or_else(PoisonError::into_inner);
        if replaced {
            entries.insert(name.to_owned(), entry);
        } else {
            entries.remove(name);
        }
        Ok(replaced)
    }

    /// Deletes record `name` from storage, then from memory.
    pub(crate) fn remove(&self, name: &str) -> Result<(), Error> {
        self.mirror.records.delete(name)?;
        self.mirror
            .entries
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        Ok(())
    }
}

/// A storage whose writes can be made to fail as an unreachable database's do.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use encrypted_attr::storage::{Barrier, MemoryStorage, Storage, UpdateFn};
    use encrypted_attr::{Error, RootKey};

    /// Memory storage with switches that make every read, or every write, fail.
    #[derive(Default)]
    pub(crate) struct Flaky {
        entries: MemoryStorage,
        pub(crate) reads_fail: AtomicBool,
        pub(crate) writes_fail: AtomicBool,
    }

    impl Storage for Flaky {
        fn get(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
            if self.reads_fail.load(Ordering::SeqCst) {
                return Err(Error::Storage("connection refused".into()));
            }
            self.entries.get(path)
        }
        fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
            self.entries.list(prefix)
        }
        fn update(&self, path: &str, change: &mut UpdateFn<'_>) -> Result<(), Error> {
            if self.writes_fail.load(Ordering::SeqCst) {
                return Err(Error::Storage("connection refused".into()));
            }
            self.entries.update(path, change)
        }
    }

    /// A barrier over a [`Flaky`] storage, and the storage's switch.
    pub(crate) fn flaky_barrier() -> (Arc<Barrier>, Arc<Flaky>) {
        let storage = Arc::new(Flaky::default());
        let root = RootKey::generate().expect("random");
        let barrier = Barrier::open(storage.clone(), &root).expect("barrier");
        (Arc::new(barrier), storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, PartialEq, Debug)]
    struct Text(String);

    impl Record for Text {
        fn encode(&self) -> Result<Vec<u8>, Error> {
            Ok(self.0.as_bytes().to_vec())
        }
        fn decode(bytes: &[u8]) -> Option<Self> {
            std::str::from_utf8(bytes).ok().map(|s| Text(s.to_owned()))
        }
    }

    /// An entry that counts how often it was built from its record.
    struct Parsed {
        text: Text,
        loads: usize,
    }

    static LOADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    impl Mirrored for Parsed {
        type Record = Text;
        fn load(_: &str, record: Option<Text>) -> Option<Self> {
            let text = record.filter(|t| !t.0.starts_with("bad"))?;
            let loads = LOADS.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            Some(Self { text, loads })
        }
        fn record(&self) -> &Text {
            &self.text
        }
    }

    #[test]
    fn names_are_escaped_in_storage_and_old_escaped_names_are_reached_or_moved() {
        let barrier = memory_barrier().expect("barrier");
        let records = SealedRecords::<Text>::new(barrier.clone(), "logical/m/secrets/");
        records.put("team a/café", &Text("new".into())).expect("put");
        assert!(
            barrier
                .get("logical/m/secrets/team%20a/caf%C3%A9")
                .expect("get")
                .is_some()
        );
        assert_eq!(records.names_under("").expect("list"), ["team a/café"]);
        // Written before paths were decoded: the raw request paths. Escaped as
        // Vault's CLI escapes, `x%20y` is where `x y` is stored already; `z!` (sent
        // unescaped, as Python's requests sends it) and `q%2a` (lowercase hex) are
        // moved.
        for (raw, text) in [("x%20y", "a"), ("z!", "b"), ("q%2a", "c"), ("team%20a/caf%C3%A9", "d")] {
            let path = format!("logical/m/secrets/{raw}");
            let bytes = Text(text.into()).encode().expect("encode");
            barrier
                .update(&path, &mut |_| Ok(Update::Put(bytes.clone())))
                .expect("put");
        }
        assert_eq!(records.get("x y").expect("get").map(|t| t.0), Some("a".into()));
        assert!(records.get("z!").expect("get").is_none());
        move_names_to_canonical_form(&barrier).expect("moved");
        assert_eq!(records.get("z!").expect("get").map(|t| t.0), Some("b".into()));
        assert_eq!(records.get("q*").expect("get").map(|t| t.0), Some("c".into()));
        assert_eq!(records.get("x y").expect("get").map(|t| t.0), Some("a".into()));
        let mut names = records.names_under("").expect("list");
        names.sort();
        assert_eq!(names, ["q*", "team a/café", "x y", "z!"]);
        assert!(barrier.get("logical/m/secrets/z!").expect("get").is_none());
        assert!(barrier.get("logical/m/secrets/z%21").expect("get").is_some());
        // Once per storage.
        barrier
            .update("logical/m/secrets/w!", &mut |_| {
                Ok(Update::Put(Text("e".into()).encode().expect("encode")))
            })
            .expect("put");
        move_names_to_canonical_form(&barrier).expect("runs");
        assert!(barrier.get("logical/m/secrets/w!").expect("get").is_some());
    }

    #[test]
    fn a_mirror_sees_other_writers_and_keeps_unchanged_entries() {
        let barrier = memory_barrier().expect("barrier");
        let ours = Mirror::<Parsed>::open(SealedRecords::new(barrier.clone(), "t/")).expect("opens");
        let theirs = SealedRecords::<Text>::new(barrier, "t/");
        ours.change()
            .insert("a", Parsed::load("a", Some(Text("one".into()))).expect("loads"))
            .expect("stored");
        let loads_of_a = ours.read()["a"].loads;
        theirs.put("b", &Text("two".into())).expect("put");
        theirs.put("c", &Text("bad".into())).expect("put");
        assert!(!ours.read().contains_key("b"), "not seen before a re-read");
        ours.reload().expect("reloads");
        let entries = ours.read();
        assert_eq!(entries["b"].text, Text("two".into()));
        assert!(!entries.contains_key("c"), "a record the family refuses is left out");
        assert_eq!(entries["a"].loads, loads_of_a, "an unchanged record keeps its entry");
        drop(entries);
        theirs.delete("a").expect("delete");
        ours.reload().expect("reloads");
        assert!(!ours.read().contains_key("a"));
        ours.change().remove("b").expect("removed");
        assert_eq!(theirs.get("b").expect("reads"), None);
    }
}
