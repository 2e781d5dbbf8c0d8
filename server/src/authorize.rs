//! Whether a token's policies allow a request: the capability its operation needs
//! on its path, `create` versus `update` for an encrypt or a KV write, `sudo` on
//! root-protected paths.

use crate::http::ApiError;
use crate::policy::Capability;
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::tokens::TokenEntry;

/// Checks the token's policies for this request: the capability its operation
/// needs on its path (`create` rather than `update` for an encrypt that would
/// create its key; `sudo` as well on root-protected paths).
pub(crate) fn authorize(open: &Unsealed, op: Operation, path: &str, entry: &TokenEntry) -> Result<(), ApiError> {
    let path = path.trim_end_matches('/');
    // Which engine serves a path, and its options, is told to a token that may do
    // something on that mount: it is how Vault's CLI finds a KV mount's version
    // before the request it makes.
    if op == Operation::Read
        && let Some(inner) = path.strip_prefix("sys/internal/ui/mounts/")
    {
        // As Vault: any grant on the mount, or below it, will do (the CLI asks
        // with the mount alone when given `-mount=`).
        let mount = open
            .mounts
            .find(inner)
            .map_or_else(|| inner.to_owned(), |(path, _)| path);
        let allowed = open.policies.grants_under(&entry.policies, &mount);
        return if allowed {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied)
        };
    }
    let needed = match op {
        Operation::Read => Capability::Read,
        Operation::List => Capability::List,
        Operation::Delete => Capability::Delete,
        Operation::Patch => Capability::Patch,
        Operation::Update => match path.strip_prefix("transit/encrypt/").map(encrypted_attr::KeyName::new) {
            // Only a key that does not exist needs `create`; a storage failure is a
            // 503, never a "permission denied".
            Some(Ok(name)) => match encrypted_attr::TransitEngine::read_key(&*open.engine, &name) {
                Ok(_) => Capability::Update,
                Err(encrypted_attr::Error::KeyNotFound { .. }) => Capability::Create,
                Err(error) => return Err(ApiError::from(error)),
            },
            // The built-in engines' paths need no mount lookup: it is the hot path.
            _ if ["transit/", "sys/", "auth/"].iter().any(|p| path.starts_with(p)) => Capability::Update,
            _ => match open.mounts.find(path) {
                // As on `transit/`: an encrypt that would create its key needs `create`.
                Some((mount_path, mount)) if mount.kind == "transit" => {
                    let rest = path.strip_prefix(mount_path.as_str()).unwrap_or_default();
                    match rest.strip_prefix("/encrypt/").map(encrypted_attr::KeyName::new) {
                        Some(Ok(name)) => {
                            let engine = open.transit_mounts.engine(&mount).map_err(ApiError::from)?;
                            match encrypted_attr::TransitEngine::read_key(&*engine, &name) {
                                Ok(_) => Capability::Update,
                                Err(encrypted_attr::Error::KeyNotFound { .. }) => Capability::Create,
                                Err(error) => return Err(ApiError::from(error)),
                            }
                        }
                        _ => Capability::Update,
                    }
                }
                // A write that creates a KV entry needs `create`, as in Vault.
                Some((mount_path, mount)) if mount.kind == "kv" => {
                    let rest = path.strip_prefix(mount_path.as_str()).unwrap_or_default();
                    if crate::routes::kv::write_creates(open, &mount, rest.trim_start_matches('/'))? {
                        Capability::Create
                    } else {
                        Capability::Update
                    }
                }
                _ => Capability::Update,
            },
        },
    };
    let caps = open.policies.check(&entry.policies, path);
    // For LIST, `transit/keys` and `transit/keys/` are the same path.
    let list_caps = (op == Operation::List).then(|| open.policies.check(&entry.policies, &format!("{path}/")));
    let allowed = caps.allows(needed) || list_caps.is_some_and(|c| c.allows(needed));
    let root_protected = path == "sys/seal"
        || path == "sys/audit"
        || path.starts_with("sys/audit/")
        || path.starts_with("sys/leases/revoke-prefix/")
        || path.starts_with("sys/auth/");
    if allowed && (!root_protected || caps.allows(Capability::Sudo)) {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied)
    }
}
