//! Whether a token's policies allow a request: the capability its operation needs
//! on its path, `create` versus `update` for an encrypt or a KV write, `sudo` on
//! root-protected paths.

use crate::http::ApiError;
use crate::policy::Capability;
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::tokens::TokenEntry;

/// Paths that need `sudo` as well below these (Vault's root-protected paths).
const ROOT_PROTECTED_BELOW: &[&str] = &[
    "sys/audit/",
    "sys/auth/",
    "sys/leases/revoke-prefix/",
    "sys/leases/revoke-force/",
    "sys/leases/lookup/",
    "sys/revoke-prefix/",
    "sys/revoke-force/",
];

/// Checks the token's policies for this request: the capability its operation
/// needs on its path (`create` rather than `update` for an encrypt that would
/// create its key; `sudo` as well on root-protected paths).
pub(crate) fn authorize(
    open: &Unsealed,
    op: Operation,
    path: &str,
    entry: &TokenEntry,
    resolved: Option<&crate::engines::Resolved>,
) -> Result<(), ApiError> {
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
        Operation::Update => {
            // `sys/` and `auth/` are no secrets engines: updates there never
            // create. Elsewhere the engine says (Vault's existence check).
            match resolved {
                Some(resolved)
                    if resolved
                        .engine
                        .creates(open, &resolved.mounted(), resolved.rest(path))? =>
                {
                    Capability::Create
                }
                _ => Capability::Update,
            }
        }
    };
    let caps = open.policies.check(&entry.policies, path);
    // For LIST, `transit/keys` and `transit/keys/` are the same path.
    let list_caps = (op == Operation::List).then(|| open.policies.check(&entry.policies, &format!("{path}/")));
    let allowed = caps.allows(needed) || list_caps.is_some_and(|c| c.allows(needed));
    let root_protected = path == "sys/seal"
        || path == "sys/audit"
        || ROOT_PROTECTED_BELOW.iter().any(|below| path.starts_with(below))
        // A LIST's path ends in `/` before it is trimmed: `leases/lookup/*`.
        || (op == Operation::List && path == "sys/leases/lookup");
    if allowed && (!root_protected || caps.allows(Capability::Sudo)) {
        Ok(())
    } else {
        Err(ApiError::PermissionDenied)
    }
}
