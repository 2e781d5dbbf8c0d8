//! `sys/*`: seal and status (`seal`, answered without a token except `sys/seal`),
//! `health`, ACL policies (`policy`), audit devices and `audit-hash` (`audit`),
//! `capabilities-self` (`capabilities`), secrets engines (`mounts`), leases
//! (`leases`).

mod audit;
mod auth;
mod capabilities;
pub(crate) mod health;
mod leases;
mod mounts;
mod policy;
pub(crate) mod seal;

use crate::http::{ApiError, ApiResult};
use crate::params::Params;
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::tokens::TokenEntry;

/// Serves an authorised request for `path` below `sys/` (`rest` is the part after
/// it); `sys/seal` is served by the dispatcher, which holds the seal.
pub(super) fn route(
    state: &Unsealed,
    op: Operation,
    path: &str,
    rest: &[&str],
    params: &Params<'_>,
    entry: &TokenEntry,
) -> ApiResult {
    use Operation::{List, Read, Update};
    if let Some(answer) = leases::route(state, op, rest, params) {
        return answer;
    }
    match (rest, op) {
        (["policy"] | ["policies", "acl"], Read | List) => Ok(policy::names(state)),
        (["policy", name], _) => policy::policy(state, op, name, params, "rules"),
        (["policies", "acl", name], _) => policy::policy(state, op, name, params, "policy"),
        (["audit"], Read) => Ok(audit::devices(state)),
        (["audit", name], _) => audit::device(state, op, name, params),
        (["audit-hash", name], Update) => audit::hash(state, name, params),
        (["capabilities-self"], Update) => capabilities::capabilities_self(state, params, entry),
        (["mounts"], Read) => Ok(mounts::list(state)),
        (["auth"], Read) => Ok(auth::list(state)),
        (["auth", method @ ..], _) if !method.is_empty() => auth::method(state, op, &method.join("/"), params),
        (["internal", "ui", "mounts", mount @ ..], Read) if !mount.is_empty() => {
            mounts::ui_mount(state, &mount.join("/"))
        }
        (["mounts", .., "tune"], Read) => mounts::tune(state, &rest[1..rest.len() - 1].join("/")),
        (["mounts", .., "tune"], Update) if rest.len() > 2 => {
            mounts::write_tune(state, &rest[1..rest.len() - 1].join("/"), params)
        }
        (["mounts", mount @ ..], _) if !mount.is_empty() => mounts::mount(state, op, &mount.join("/"), params),
        _ => Err(ApiError::UnsupportedPath(path.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use crate::audit::Audit;
    use crate::http::ApiError;
    use crate::stores::policies::PolicyStore;
    use crate::stores::testing::flaky_barrier;

    #[test]
    fn policy_and_audit_writes_answer_503_when_storage_fails() {
        let (barrier, storage) = flaky_barrier();
        let policies = PolicyStore::open(barrier.clone()).expect("opens");
        let audit = Audit::open(barrier).expect("opens");
        storage.writes_fail.store(true, Ordering::SeqCst);
        let refused = policies
            .put("web", "path \"x\" { capabilities = [\"read\"] }")
            .unwrap_err();
        assert!(matches!(ApiError::from(refused), ApiError::StorageUnavailable));
        let file = std::env::temp_dir().join(format!("ea-audit-503-{}.log", std::process::id()));
        let refused = audit
            .enable("file", "file", String::new(), file.display().to_string())
            .unwrap_err();
        assert!(matches!(ApiError::from(refused), ApiError::StorageUnavailable));
        assert!(matches!(
            ApiError::from(
                audit
                    .enable("file", "socket", String::new(), String::new())
                    .unwrap_err()
            ),
            ApiError::BadRequest(_)
        ));
        for name in [".", ".."] {
            let refused = audit
                .enable(name, "file", String::new(), "/tmp/x.log".into())
                .unwrap_err();
            assert!(matches!(ApiError::from(refused), ApiError::BadRequest(_)), "{name}");
        }
        let _ = std::fs::remove_file(file);
    }
}
