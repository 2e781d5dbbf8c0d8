//! Mount tables: which secrets engine serves which path (`sys/mounts`, stored
//! sealed under `sys/mounts/<path>`; `sys/` and `transit/` built in, transit at its
//! usual path being the server's own engine), and which auth method serves which
//! path below `auth/` (`sys/auth`, under `sys/auth-methods/<path>`; `token/` built
//! in).

use std::collections::BTreeMap;
use std::sync::Arc;

use encrypted_attr::storage::Barrier;
use serde::{Deserialize, Serialize};

use super::{Mirror, Mirrored, Record, SealedRecords, decode_json, encode_json};

const MOUNTS_PREFIX: &str = "sys/mounts/";
const AUTH_METHODS_PREFIX: &str = "sys/auth-methods/";

/// The path of the built-in transit mount.
pub(crate) const TRANSIT_PATH: &str = "transit";

/// A mount's lease settings (seconds; 0 means the system's).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MountConfig {
    pub(crate) default_lease_ttl: u64,
    pub(crate) max_lease_ttl: u64,
    pub(crate) force_no_cache: bool,
}

/// One mount, as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MountEntry {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) description: String,
    pub(crate) accessor: String,
    /// Names the mount's storage (`logical/<uuid>/`), so a path can be reused.
    pub(crate) uuid: String,
    pub(crate) options: Option<BTreeMap<String, String>>,
    pub(crate) config: MountConfig,
    pub(crate) local: bool,
    pub(crate) seal_wrap: bool,
}

impl MountEntry {
    /// A new mount of `kind` with fresh identifiers.
    pub(crate) fn new(kind: &str, description: String, options: Option<BTreeMap<String, String>>) -> Self {
        let uuid = uuid::Uuid::new_v4();
        let accessor = format!("{kind}_{}", &uuid.simple().to_string()[..8]);
        Self {
            kind: kind.to_owned(),
            description,
            accessor,
            uuid: uuid::Uuid::new_v4().to_string(),
            options,
            config: MountConfig::default(),
            local: false,
            seal_wrap: false,
        }
    }

    /// The KV version of a `kv` mount: `options.version`, 1 when absent.
    pub(crate) fn kv_version(&self) -> u32 {
        self.options
            .as_ref()
            .and_then(|o| o.get("version"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }

    /// Where the mount's data lives in the barrier.
    pub(crate) fn storage_prefix(&self) -> String {
        format!("logical/{}/", self.uuid)
    }
}

/// Anything a mount keeps in the barrier, read as bytes: enough to delete it.
struct MountData;

impl Record for MountData {
    fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
        Ok(Vec::new())
    }
    fn decode(_: &[u8]) -> Option<Self> {
        Some(Self)
    }
}

/// Deletes everything `mount` keeps in the barrier (`logical/<uuid>/…`): its
/// data goes with it, so a later mount at the same path starts empty.
pub(crate) fn delete_data(barrier: &Arc<Barrier>, mount: &MountEntry) -> Result<(), encrypted_attr::Error> {
    SealedRecords::<MountData>::new(barrier.clone(), mount.storage_prefix()).delete_all()
}

impl Record for MountEntry {
    fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
        encode_json(self)
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        decode_json(bytes)
    }
}

impl Mirrored for MountEntry {
    type Record = MountEntry;
    /// A damaged entry is left out: its path answers "unsupported path", and its
    /// data stays in storage untouched.
    fn load(_name: &str, record: Option<MountEntry>) -> Option<Self> {
        record
    }
    fn record(&self) -> &MountEntry {
        self
    }
}

/// Why a mount could not be enabled or disabled.
#[derive(Debug)]
pub(crate) enum MountError {
    /// The caller's mistake (a 400).
    Invalid(String),
    /// Storage failed.
    Storage(encrypted_attr::Error),
}

impl From<encrypted_attr::Error> for MountError {
    fn from(error: encrypted_attr::Error) -> Self {
        Self::Storage(error)
    }
}

/// Secret mount paths no mount may take, or start with.
const PROTECTED: [&str; 5] = ["audit/", "auth/", "sys/", "cubbyhole/", "identity/"];

/// The mounts of one table: the operator's, and the built-in ones.
pub(crate) struct MountTable {
    stored: Mirror<MountEntry>,
    /// Built in, by path (no trailing `/`): never stored, never disabled.
    builtins: Vec<(&'static str, MountEntry)>,
    /// Paths no mount may take or start with (with their trailing `/`).
    protected: &'static [&'static str],
}

fn builtin(kind: &str, description: &str, accessor: &str) -> MountEntry {
    MountEntry {
        kind: kind.to_owned(),
        description: description.to_owned(),
        accessor: accessor.to_owned(),
        uuid: String::new(),
        options: None,
        config: MountConfig::default(),
        local: false,
        seal_wrap: false,
    }
}

impl MountTable {
    /// The secrets engines (`sys/mounts`).
    pub(crate) fn secrets(barrier: Arc<Barrier>) -> Result<Self, encrypted_attr::Error> {
        let system = builtin(
            "system",
            "system endpoints used for control, policy and debugging",
            "system_builtin",
        );
        Ok(Self {
            stored: Mirror::open(SealedRecords::new(barrier, MOUNTS_PREFIX))?,
            builtins: vec![
                ("sys", system),
                (
                    TRANSIT_PATH,
                    builtin("transit", "the transit engine", "transit_builtin"),
                ),
            ],
            protected: &PROTECTED,
        })
    }

    /// The auth methods (`sys/auth`), by path relative to `auth/`.
    pub(crate) fn auth_methods(barrier: Arc<Barrier>) -> Result<Self, encrypted_attr::Error> {
        Ok(Self {
            stored: Mirror::open(SealedRecords::new(barrier, AUTH_METHODS_PREFIX))?,
            builtins: vec![(
                "token",
                builtin("token", "token based credentials", "auth_token_builtin"),
            )],
            protected: &[],
        })
    }

    /// Re-reads the table, to see mounts made by other servers sharing storage.
    pub(crate) fn reload(&self) {
        if let Err(e) = self.stored.reload() {
            tracing::error!(error = %e, "mounts could not be re-read; keeping the current ones");
        }
    }

    /// Every mount, by path with its trailing `/`.
    pub(crate) fn list(&self) -> Vec<(String, MountEntry)> {
        let mut all: Vec<(String, MountEntry)> = self
            .builtins
            .iter()
            .map(|(path, entry)| (format!("{path}/"), entry.clone()))
            .collect();
        all.extend(
            self.stored
                .read()
                .iter()
                .map(|(path, entry)| (format!("{path}/"), entry.clone())),
        );
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// The operator's mount serving `path` (the longest mount path it starts with,
    /// on a segment boundary): the mount path without its `/`, and the entry.
    pub(crate) fn find(&self, path: &str) -> Option<(String, MountEntry)> {
        let stored = self.stored.read();
        let mut candidate = path.trim_end_matches('/');
        loop {
            if let Some(entry) = stored.get(candidate) {
                return Some((candidate.to_owned(), entry.clone()));
            }
            candidate = &candidate[..candidate.rfind('/')?];
        }
    }

    /// The entry mounted exactly at `path` (built-ins included).
    pub(crate) fn get(&self, path: &str) -> Option<MountEntry> {
        let path = path.trim_end_matches('/');
        match self.builtins.iter().find(|(builtin, _)| *builtin == path) {
            Some((_, entry)) => Some(entry.clone()),
            None => self.stored.read().get(path).cloned(),
        }
    }

    /// Mounts `entry` at `path` (no trailing `/`).
    pub(crate) fn enable(&self, path: &str, entry: MountEntry) -> Result<(), MountError> {
        let with_slash = format!("{path}/");
        if self.protected.iter().any(|p| with_slash.starts_with(p)) {
            return Err(MountError::Invalid(format!("cannot mount {with_slash:?}")));
        }
        if path.is_empty()
            || path
                .split('/')
                .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(MountError::Invalid(format!("invalid mount path {with_slash:?}")));
        }
        let change = self.stored.change();
        // A mount may not sit inside another, nor hold one inside it.
        let conflict = self
            .list()
            .into_iter()
            .map(|(existing, _)| existing)
            .find(|existing| with_slash.starts_with(existing.as_str()) || existing.starts_with(&with_slash));
        if let Some(existing) = conflict {
            return Err(MountError::Invalid(format!("path is already in use at {existing}")));
        }
        // Another server sharing storage may have mounted the same path since
        // this table was last re-read: only an absent entry is written.
        if !change.insert_new(path, entry)? {
            return Err(MountError::Invalid(format!("path is already in use at {with_slash}")));
        }
        Ok(())
    }

    /// Changes the settings of the operator's mount at `path` (built-in mounts
    /// cannot be tuned).
    pub(crate) fn tune(
        &self,
        path: &str,
        change: impl FnOnce(&mut MountEntry) -> Result<(), MountError>,
    ) -> Result<(), MountError> {
        let guard = self.stored.change();
        let missing = || {
            MountError::Invalid(format!(
                "cannot tune {:?}: no such mount, or built in",
                format!("{path}/")
            ))
        };
        let Some(mut entry) = self.stored.read().get(path).cloned() else {
            return Err(missing());
        };
        change(&mut entry)?;
        // Written only over the record still stored: a mount another server
        // disabled meanwhile is not brought back.
        if !guard.replace_existing(path, entry)? {
            return Err(missing());
        }
        Ok(())
    }

    /// Unmounts `path`; nothing happens if nothing is mounted there (as in Vault,
    /// which does not say whether a mount existed). Returns the entry removed, so
    /// its data can be deleted.
    pub(crate) fn disable(&self, path: &str) -> Result<Option<MountEntry>, MountError> {
        let with_slash = format!("{path}/");
        if self.protected.iter().any(|p| with_slash.starts_with(p))
            || self.builtins.iter().any(|(builtin, _)| *builtin == path)
        {
            return Err(MountError::Invalid(format!("cannot unmount {with_slash:?}")));
        }
        let change = self.stored.change();
        let Some(entry) = self.stored.read().get(path).cloned() else {
            return Ok(None);
        };
        change.remove(path)?;
        Ok(Some(entry))
    }
}
