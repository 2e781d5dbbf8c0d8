//! Named ACL policies, stored sealed as their source text under `sys/policy/` and
//! kept parsed in memory (the language itself is in `crate::policy`).

use std::sync::Arc;

use encrypted_attr::storage::Barrier;

use super::{Mirror, Mirrored, Record, SealedRecords};
use crate::policy::{ALL_CAPABILITIES, Capabilities, Policy, capabilities, parse};

/// Vault's stock `default` policy, reduced to the paths this server serves.
const DEFAULT_POLICY: &str = r#"
path "auth/token/lookup-self" {
    capabilities = ["read"]
}
path "auth/token/renew-self" {
    capabilities = ["update"]
}
path "auth/token/revoke-self" {
    capabilities = ["update"]
}
path "sys/capabilities-self" {
    capabilities = ["update"]
}
"#;

const POLICY_PREFIX: &str = "sys/policy/";

/// A policy's source text, as stored (plain UTF-8, not JSON).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PolicyText(String);

impl Record for PolicyText {
    fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
        Ok(self.0.as_bytes().to_vec())
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(Self(String::from_utf8_lossy(bytes).into_owned()))
    }
}

/// A stored policy, parsed.
struct Stored {
    text: PolicyText,
    policy: Policy,
}

impl Mirrored for Stored {
    type Record = PolicyText;
    /// A stored policy that no longer parses is left out: it grants nothing.
    fn load(_name: &str, record: Option<PolicyText>) -> Option<Self> {
        let text = record?;
        let policy = parse(&text.0).ok()?;
        Some(Self { text, policy })
    }
    fn record(&self) -> &PolicyText {
        &self.text
    }
}

/// Letters, digits, `-`, `_` and `.`, but not `.` or `..` alone (a storage path
/// segment cannot be either).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Why a policy could not be written or deleted.
#[derive(Debug)]
pub(crate) enum PolicyError {
    /// The caller's mistake (a 400): the name, the text, a built-in policy.
    Invalid(String),
    /// Storage failed: a 5xx, never the caller's fault.
    Storage(encrypted_attr::Error),
}

impl From<encrypted_attr::Error> for PolicyError {
    fn from(error: encrypted_attr::Error) -> Self {
        Self::Storage(error)
    }
}

/// Named policies: the stored ones, and the built-in `default` unless one is
/// stored under that name.
pub(crate) struct PolicyStore {
    stored: Mirror<Stored>,
    builtin_default: Option<Policy>,
}

impl PolicyStore {
    /// Loads the policies kept in `barrier`.
    pub(crate) fn open(barrier: Arc<Barrier>) -> Result<Self, encrypted_attr::Error> {
        Ok(Self {
            stored: Mirror::open(SealedRecords::new(barrier, POLICY_PREFIX))?,
            // Tested to parse; were it not to, `default` would grant nothing.
            builtin_default: parse(DEFAULT_POLICY).ok(),
        })
    }

    /// Re-reads every policy from storage, to see changes made by another server
    /// sharing it. If storage cannot be read, the current policies stay.
    pub(crate) fn reload(&self) {
        if let Err(e) = self.stored.reload() {
            tracing::error!(error = %e, "policies could not be re-read; keeping the current ones");
        }
    }

    /// Names, `default` and `root` included.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.stored.read().keys().cloned().collect();
        names.extend(["default".to_owned(), "root".to_owned()]);
        names.sort();
        names.dedup();
        names
    }

    /// The source text of policy `name`.
    pub(crate) fn text(&self, name: &str) -> Option<String> {
        match self.stored.read().get(name) {
            Some(stored) => Some(stored.text.0.clone()),
            None => (name == "default").then(|| DEFAULT_POLICY.to_owned()),
        }
    }

    /// Writes policy `name` from `text`.
    pub(crate) fn put(&self, name: &str, text: &str) -> Result<(), PolicyError> {
        if name == "root" {
            return Err(PolicyError::Invalid("cannot update \"root\" policy".into()));
        }
        if !valid_name(name) {
            return Err(PolicyError::Invalid("invalid policy name".into()));
        }
        let policy = parse(text).map_err(PolicyError::Invalid)?;
        let stored = Stored {
            text: PolicyText(text.to_owned()),
            policy,
        };
        self.stored.change().insert(name, stored)?;
        Ok(())
    }

    pub(crate) fn delete(&self, name: &str) -> Result<(), PolicyError> {
        if name == "root" || name == "default" {
            return Err(PolicyError::Invalid(format!("cannot delete {name:?} policy")));
        }
        if !valid_name(name) {
            return Err(PolicyError::Invalid("invalid policy name".into()));
        }
        self.stored.change().remove(name)?;
        Ok(())
    }

    /// `answer` asked of the policies named `names` (the built-in `default`
    /// unless one is stored under that name; unknown names grant nothing).
    fn with_policies<T>(&self, names: &[String], answer: impl FnOnce(&[&Policy]) -> T) -> T {
        let stored = self.stored.read();
        let policies: Vec<&Policy> = names
            .iter()
            .filter_map(|name| match stored.get(name) {
                Some(stored) => Some(&stored.policy),
                None if name == "default" => self.builtin_default.as_ref(),
                None => None,
            })
            .collect();
        answer(&policies)
    }

    /// The capabilities of a token with `names` on `path`; `root` allows everything.
    pub(crate) fn check(&self, names: &[String], path: &str) -> Capabilities {
        if names.iter().any(|n| n == "root") {
            return ALL_CAPABILITIES;
        }
        self.with_policies(names, |policies| capabilities(policies, path))
    }

    /// Whether a token with `names` may do something on `prefix` or below it.
    pub(crate) fn grants_under(&self, names: &[String], prefix: &str) -> bool {
        names.iter().any(|n| n == "root")
            || self.with_policies(names, |policies| crate::policy::grants_under(policies, prefix))
    }

    /// Capability names for `sys/capabilities-self`.
    pub(crate) fn names_of(&self, names: &[String], path: &str) -> Vec<&'static str> {
        if names.iter().any(|n| n == "root") {
            return vec!["root"];
        }
        let caps = self.check(names, path);
        if caps.is_empty() { vec!["deny"] } else { caps.names() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_default_policy_parses_and_grants_self_service() {
        let store = PolicyStore::open(super::super::memory_barrier().expect("barrier")).expect("opens");
        assert!(store.builtin_default.is_some());
        let granted = store.names_of(&["default".to_owned()], "auth/token/lookup-self");
        assert_eq!(granted, vec!["read"]);
        assert_eq!(store.names(), vec!["default".to_owned(), "root".to_owned()]);
    }

    #[test]
    fn a_storage_failure_is_not_reported_as_the_callers_mistake() {
        let (barrier, storage) = super::super::testing::flaky_barrier();
        let store = PolicyStore::open(barrier).expect("opens");
        storage.writes_fail.store(true, std::sync::atomic::Ordering::SeqCst);
        let text = "path \"transit/*\" { capabilities = [\"read\"] }";
        assert!(matches!(store.put("web", text), Err(PolicyError::Storage(_))));
        assert!(matches!(store.delete("web"), Err(PolicyError::Storage(_))));
        assert!(store.text("web").is_none(), "nothing kept that storage refused");
        assert!(matches!(store.put("web", "not hcl {"), Err(PolicyError::Invalid(_))));
    }

    #[test]
    fn names_that_cannot_be_a_path_segment_are_the_callers_mistake() {
        let store = PolicyStore::open(super::super::memory_barrier().expect("barrier")).expect("opens");
        let text = "path \"x\" { capabilities = [\"read\"] }";
        for name in [".", "..", "", "a/b"] {
            assert!(
                matches!(store.put(name, text), Err(PolicyError::Invalid(_))),
                "{name:?}"
            );
        }
        assert!(matches!(store.delete(".."), Err(PolicyError::Invalid(_))));
        assert!(store.put("a.b-c_d", text).is_ok());
    }
}
