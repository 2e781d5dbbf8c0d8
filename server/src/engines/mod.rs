//! Secrets engines behind one trait, and the one list of their kinds. The core
//! (routing, authorisation, metrics, `sys/mounts`) asks an engine what it needs
//! to know of a mount and never matches a kind's name itself: a new engine is a
//! folder here and a line in [`ENGINES`].

pub(crate) mod kv;
pub(crate) mod transit;

use std::collections::BTreeMap;

use crate::http::{ApiError, ApiResult};
use crate::params::Params;
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::mounts::{MountEntry, TRANSIT_PATH};

/// Every kind of secrets engine this server mounts.
static ENGINES: [&dyn SecretsEngine; 2] = [&transit::Transit, &kv::Kv];

/// What the core asks of a kind of secrets engine, for each of its mounts.
pub(crate) trait SecretsEngine: Sync {
    /// The kind's `type` in `sys/mounts`.
    fn kind(&self) -> &'static str;

    /// Whether `sys/mounts` may enable this kind under the name `asked` (its own
    /// or an alias such as `kv-v2`); if so, sets and checks the mount's options.
    fn enables(&self, asked: &str, options: &mut Option<BTreeMap<String, String>>) -> Option<Result<(), ApiError>>;

    /// Serves an authorised request for `rest`, the path below the mount.
    fn handle(&self, state: &Unsealed, at: &Mounted<'_>, op: Operation, rest: &str, params: &Params<'_>) -> ApiResult;

    /// Vault's existence check: whether an update of `rest` would create what it
    /// names (it then needs the `create` capability, not `update`). A storage
    /// failure is an error, never an answer.
    fn creates(&self, state: &Unsealed, at: &Mounted<'_>, rest: &str) -> Result<bool, ApiError>;

    /// The metric family of a request for `rest` (a fixed label).
    fn family(&self, rest: &str) -> &'static str;

    /// Deletes what an unmounted mount held: a later mount at the same path
    /// starts empty.
    fn unmount(&self, state: &Unsealed, entry: &MountEntry) -> Result<(), ApiError>;

    /// Whether an update of `rest` is microseconds of CPU with nothing to wait
    /// for (no storage, nothing due for a re-read), so the async worker answers it
    /// itself rather than a blocking thread (none by default).
    fn answers_inline(&self, _state: &Unsealed, _at: &Mounted<'_>, _rest: &str) -> bool {
        false
    }

    /// After a request for `rest` was answered with a success: counts what it did
    /// in the kind's own metrics (none by default).
    fn count(&self, _metrics: &crate::metrics::Metrics, _op: Operation, _rest: &str, _params: &Params<'_>) {}
}

/// A mount a request reached.
pub(crate) struct Mounted<'a> {
    /// Where it is mounted, without slashes (`transit`, `team/kv`).
    pub(crate) path: &'a str,
    /// Its entry in the mount table; `None` for the built-in `transit/`, which
    /// is served without a table lookup (it is the hot path).
    pub(crate) entry: Option<&'a MountEntry>,
}

/// The engine serving a mount of `kind`.
pub(crate) fn of_kind(kind: &str) -> Option<&'static dyn SecretsEngine> {
    ENGINES.iter().copied().find(|engine| engine.kind() == kind)
}

/// The engine `sys/mounts` enables for the type name `asked`, with the mount's
/// options set and checked for it; `None` for a name no engine takes.
pub(crate) fn for_type_name(
    asked: &str,
    options: &mut Option<BTreeMap<String, String>>,
) -> Option<Result<&'static dyn SecretsEngine, ApiError>> {
    ENGINES
        .iter()
        .copied()
        .find_map(|engine| engine.enables(asked, options).map(|checked| checked.map(|()| engine)))
}

/// Whether `kind` is one of this server's engines (what Vault calls a
/// "supported" built-in).
pub(crate) fn is_known(kind: &str) -> bool {
    of_kind(kind).is_some()
}

/// A request's path resolved to the engine and mount serving it.
pub(crate) struct Resolved {
    pub(crate) engine: &'static dyn SecretsEngine,
    pub(crate) mount_path: std::borrow::Cow<'static, str>,
    pub(crate) entry: Option<MountEntry>,
    /// Where the path below the mount starts in the request's path.
    below: usize,
}

impl Resolved {
    /// The mount, as the engine sees it.
    pub(crate) fn mounted(&self) -> Mounted<'_> {
        Mounted {
            path: &self.mount_path,
            entry: self.entry.as_ref(),
        }
    }

    /// The path below the mount in `path` (the request's path this was resolved
    /// from), without leading slashes.
    pub(crate) fn rest<'p>(&self, path: &'p str) -> &'p str {
        path.get(self.below..).unwrap_or_default().trim_start_matches('/')
    }
}

/// The engine and mount serving a request for `path`, or `None` for `sys/` and
/// `auth/` (no secrets engines) and for paths no mount serves. Resolved once per
/// request: authorisation, routing, audit and metrics all take this.
pub(crate) fn resolve_request(open: &Unsealed, path: &str) -> Option<Resolved> {
    if ["sys/", "auth/"].iter().any(|prefix| path.starts_with(prefix)) {
        return None;
    }
    resolve(open, path)
}

/// The engine and mount serving `path` (not `sys/` or `auth/`, which are not
/// secrets engines here): the built-in `transit/` without a lookup, any other
/// mount by the longest prefix in the table.
pub(crate) fn resolve(open: &Unsealed, path: &str) -> Option<Resolved> {
    if path.split('/').next() == Some(TRANSIT_PATH) {
        return Some(Resolved {
            engine: &transit::Transit,
            mount_path: TRANSIT_PATH.into(),
            entry: None,
            below: TRANSIT_PATH.len(),
        });
    }
    let (mount_path, entry) = open.mounts.find(path)?;
    let engine = of_kind(&entry.kind)?;
    Some(Resolved {
        engine,
        below: mount_path.len(),
        mount_path: mount_path.into(),
        entry: Some(entry),
    })
}
