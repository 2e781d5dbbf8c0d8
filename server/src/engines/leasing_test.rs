//! An engine registered only in this crate's tests: it issues made-up
//! credentials with a lease, and records what the lease manager asks of it. It
//! is the whole of what a new engine costs (this file and a line in the
//! registry), and it drives the lease manager through the real pipeline.
//!
//! `creds/:name` issues a secret (a lease of 60 s, at most 300 s); a name
//! starting with `fixed` is not renewable; a name starting with `failing` cannot
//! be revoked (the "database" refuses).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use super::{Mounted, SecretsEngine};
use crate::http::{ApiError, ApiResult, Reply, SecretLease};
use crate::leases::LeaseRecord;
use crate::params::Params;
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::mounts::MountEntry;

pub(crate) struct LeasingTest;

/// The users revoked, and renewed, across every mount of this kind (tests use
/// names of their own).
pub(crate) static REVOKED: Mutex<Vec<String>> = Mutex::new(Vec::new());
pub(crate) static RENEWED: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());

pub(crate) fn revoked(user: &str) -> usize {
    REVOKED.lock().expect("lock").iter().filter(|u| *u == user).count()
}

fn user_of(lease: &LeaseRecord) -> String {
    lease.internal["username"].as_str().unwrap_or_default().to_owned()
}

impl SecretsEngine for LeasingTest {
    fn kind(&self) -> &'static str {
        "leasing-test"
    }

    fn enables(&self, asked: &str, _options: &mut Option<BTreeMap<String, String>>) -> Option<Result<(), ApiError>> {
        (asked == "leasing-test").then_some(Ok(()))
    }

    fn handle(
        &self,
        _state: &Unsealed,
        _at: &Mounted<'_>,
        op: Operation,
        rest: &str,
        _params: &Params<'_>,
    ) -> ApiResult {
        match (rest.split_once('/'), op) {
            (Some(("creds", name)), Operation::Read) if !name.is_empty() => {
                let username = format!("{name}-{}", crate::stores::tokens::random_base62(8));
                Ok(Reply::secret(
                    json!({ "username": username, "password": "not-a-real-password" }),
                    SecretLease {
                        ttl: Duration::from_secs(60),
                        max_ttl: Duration::from_secs(300),
                        renewable: !name.starts_with("fixed"),
                        internal: json!({ "username": username }),
                    },
                ))
            }
            _ => Err(ApiError::UnsupportedPath(rest.to_owned())),
        }
    }

    fn creates(&self, _state: &Unsealed, _at: &Mounted<'_>, _rest: &str) -> Result<bool, ApiError> {
        Ok(false)
    }

    fn family(&self, _rest: &str) -> &'static str {
        "leasing-test"
    }

    fn unmount(&self, _state: &Unsealed, _entry: &MountEntry) -> Result<(), ApiError> {
        Ok(())
    }

    fn revoke(&self, _state: &Unsealed, _at: &Mounted<'_>, lease: &LeaseRecord) -> Result<(), ApiError> {
        let user = user_of(lease);
        if user.starts_with("failing") {
            return Err(ApiError::BadRequest("the database refused to drop the user".into()));
        }
        REVOKED.lock().expect("lock").push(user);
        Ok(())
    }

    fn renew(&self, _state: &Unsealed, _at: &Mounted<'_>, lease: &LeaseRecord, ttl: Duration) -> Result<(), ApiError> {
        RENEWED.lock().expect("lock").push((user_of(lease), ttl.as_secs()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::StatusCode;
    use encrypted_attr::LocalEngine;
    use serde_json::{Value, json};
    use tower::ServiceExt as _;

    use super::{RENEWED, revoked};
    use crate::state::AppState;

    const ROOT: &str = "leasing-root";

    async fn call(router: &axum::Router, token: &str, method: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let request = axum::http::Request::builder()
            .method(method)
            .uri(format!("/v1/{path}"))
            .header("X-Vault-Token", token)
            .body(axum::body::Body::from(if body.is_null() {
                String::new()
            } else {
                body.to_string()
            }))
            .expect("a valid request");
        let response = router.clone().oneshot(request).await.expect("answered");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// A dev server with this engine mounted at `db/`, and its router.
    async fn mounted_at_db() -> (Arc<AppState>, axum::Router) {
        let engine = Arc::new(LocalEngine::ephemeral().expect("engine"));
        let (state, _) = AppState::new(engine, Some(ROOT)).expect("state");
        let state = Arc::new(state);
        let router = crate::pipeline::app(state.clone());
        let mount = json!({ "type": "leasing-test" });
        assert_eq!(
            call(&router, ROOT, "POST", "sys/mounts/db", mount).await.0,
            StatusCode::NO_CONTENT
        );
        (state, router)
    }

    /// A token of `policies`, made by root.
    async fn token_of(router: &axum::Router, policies: &[&str]) -> String {
        let (_, made) = call(
            router,
            ROOT,
            "POST",
            "auth/token/create",
            json!({ "policies": policies }),
        )
        .await;
        made["auth"]["client_token"].as_str().expect("token").to_owned()
    }

    fn user_of(secret: &Value) -> String {
        secret["data"]["username"].as_str().expect("a user").to_owned()
    }

    /// The lease manager's round, as the background task runs it.
    fn round(state: &AppState) {
        let open = state.seal.unsealed().expect("unsealed");
        let revoker = super::super::EngineRevoker { open: &open };
        open.leases.tick(&revoker, &open.tokens, std::time::SystemTime::now());
    }

    #[tokio::test]
    async fn a_leased_secret_is_looked_up_renewed_listed_and_revoked_through_sys_leases() {
        let (_, router) = mounted_at_db().await;

        let (status, secret) = call(&router, ROOT, "GET", "db/creds/app", Value::Null).await;
        assert_eq!(status, StatusCode::OK, "{secret}");
        let lease_id = secret["lease_id"].as_str().expect("a lease").to_owned();
        assert!(lease_id.starts_with("db/creds/app/"), "{lease_id}");
        assert_eq!(secret["renewable"], json!(true));
        assert_eq!(secret["lease_duration"], json!(60));

        let (status, found) = call(
            &router,
            ROOT,
            "PUT",
            "sys/leases/lookup",
            json!({ "lease_id": lease_id }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{found}");
        assert_eq!(found["data"]["id"], json!(lease_id));
        assert_eq!(found["data"]["path"], json!("db/creds/app"));
        assert_eq!(found["data"]["renewable"], json!(true));
        assert!(
            (59..=60).contains(&found["data"]["ttl"].as_u64().expect("ttl")),
            "{found}"
        );
        assert_eq!(found["data"]["last_renewal"], Value::Null);

        let unknown = call(
            &router,
            ROOT,
            "PUT",
            "sys/leases/lookup",
            json!({ "lease_id": "nope/x" }),
        )
        .await;
        assert_eq!(
            unknown,
            (StatusCode::BAD_REQUEST, json!({ "errors": ["invalid lease"] }))
        );
        let missing = call(&router, ROOT, "PUT", "sys/leases/lookup", json!({})).await;
        assert_eq!(
            missing,
            (
                StatusCode::BAD_REQUEST,
                json!({ "errors": ["lease_id must be specified"] })
            )
        );

        // Renewed in the path form, capped by the 300 s maximum.
        let (status, renewed) = call(
            &router,
            ROOT,
            "PUT",
            &format!("sys/leases/renew/{lease_id}"),
            json!({ "increment": "1h" }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{renewed}");
        assert_eq!(renewed["lease_id"], json!(lease_id));
        assert_eq!(renewed["data"], Value::Null);
        let granted = renewed["lease_duration"].as_u64().expect("duration");
        assert!((298..=300).contains(&granted), "{renewed}");
        assert!(
            renewed["warnings"][0]
                .as_str()
                .expect("warning")
                .contains("exceeded the effective max_ttl")
        );
        let user = user_of(&secret);
        assert!(RENEWED.lock().expect("lock").iter().any(|(u, _)| *u == user));
        let unknown = call(
            &router,
            ROOT,
            "PUT",
            "sys/renew",
            json!({ "lease_id": "db/creds/app/x" }),
        )
        .await;
        assert_eq!(
            unknown,
            (StatusCode::BAD_REQUEST, json!({ "errors": ["lease not found"] }))
        );

        let (status, listed) = call(&router, ROOT, "LIST", "sys/leases/lookup/db/creds/", Value::Null).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(listed["data"]["keys"], json!(["app/"]));

        // Listing needs sudo: a token with every other capability is refused.
        let policy = json!({ "policy": "path \"sys/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }" });
        assert_eq!(
            call(&router, ROOT, "PUT", "sys/policies/acl/leases", policy).await.0,
            StatusCode::NO_CONTENT
        );
        let operator = token_of(&router, &["leases"]).await;
        for (method, path) in [
            ("LIST", "sys/leases/lookup/db/"),
            ("PUT", "sys/leases/revoke-prefix/db"),
            ("PUT", "sys/leases/revoke-force/db"),
        ] {
            assert_eq!(
                call(&router, &operator, method, path, Value::Null).await.0,
                StatusCode::FORBIDDEN,
                "{path}"
            );
        }
        // Lookup and revoke need no sudo.
        let lookup = call(
            &router,
            &operator,
            "PUT",
            "sys/leases/lookup",
            json!({ "lease_id": lease_id }),
        )
        .await;
        assert_eq!(lookup.0, StatusCode::OK);

        let revoked_now = call(
            &router,
            &operator,
            "PUT",
            "sys/leases/revoke",
            json!({ "lease_id": lease_id }),
        )
        .await;
        assert_eq!(revoked_now.0, StatusCode::NO_CONTENT);
        assert_eq!(revoked(&user), 1);
        let gone = call(
            &router,
            ROOT,
            "PUT",
            "sys/leases/lookup",
            json!({ "lease_id": lease_id }),
        )
        .await;
        assert_eq!(gone.0, StatusCode::BAD_REQUEST);
        // Revoking what is gone is no error, as Vault.
        let again = call(
            &router,
            ROOT,
            "PUT",
            "sys/leases/revoke",
            json!({ "lease_id": lease_id }),
        )
        .await;
        assert_eq!(again.0, StatusCode::NO_CONTENT);
        assert_eq!(revoked(&user), 1);
    }

    #[tokio::test]
    async fn a_tokens_revocation_an_unmount_and_a_failing_revocation_reach_the_engine() {
        let (state, router) = mounted_at_db().await;

        // A token's secret goes with the token (at the next round).
        let app_token = token_of(&router, &["root"]).await;
        let (_, secret) = call(&router, &app_token, "GET", "db/creds/app", Value::Null).await;
        let user = user_of(&secret);
        let revoke = call(
            &router,
            ROOT,
            "POST",
            "auth/token/revoke",
            json!({ "token": app_token }),
        )
        .await;
        assert_eq!(revoke.0, StatusCode::NO_CONTENT);
        round(&state);
        assert_eq!(revoked(&user), 1);

        // A revocation the engine refuses answers 500 with its reason; the
        // lease stays, and revoke-force removes it.
        let (_, failing) = call(&router, ROOT, "GET", "db/creds/failing", Value::Null).await;
        let lease_id = failing["lease_id"].as_str().expect("lease").to_owned();
        let refused = call(
            &router,
            ROOT,
            "PUT",
            "sys/leases/revoke",
            json!({ "lease_id": lease_id }),
        )
        .await;
        assert_eq!(
            refused,
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "errors": ["failed to revoke entry: the database refused to drop the user"] })
            )
        );
        // An unmount that cannot revoke its secrets fails, and keeps the mount.
        let unmount = call(&router, ROOT, "DELETE", "sys/mounts/db", Value::Null).await;
        assert_eq!(unmount.0, StatusCode::BAD_REQUEST, "{unmount:?}");
        assert!(
            unmount.1["errors"][0]
                .as_str()
                .expect("error")
                .starts_with("failed to revoke \"db\": failed to revoke")
        );
        let forced = call(
            &router,
            ROOT,
            "PUT",
            "sys/leases/revoke-force/db/creds/failing",
            Value::Null,
        )
        .await;
        assert_eq!(forced.0, StatusCode::NO_CONTENT);
        let gone = call(
            &router,
            ROOT,
            "PUT",
            "sys/leases/lookup",
            json!({ "lease_id": lease_id }),
        )
        .await;
        assert_eq!(gone.0, StatusCode::BAD_REQUEST);

        // Unmounting revokes what the mount issued.
        let (_, secret) = call(&router, ROOT, "GET", "db/creds/other", Value::Null).await;
        let user = user_of(&secret);
        assert_eq!(
            call(&router, ROOT, "DELETE", "sys/mounts/db", Value::Null).await.0,
            StatusCode::NO_CONTENT
        );
        assert_eq!(revoked(&user), 1);

        // Without `sync`: 202, revoked by the round.
        assert_eq!(
            call(
                &router,
                ROOT,
                "POST",
                "sys/mounts/db",
                json!({ "type": "leasing-test" })
            )
            .await
            .0,
            StatusCode::NO_CONTENT
        );
        let (_, secret) = call(&router, ROOT, "GET", "db/creds/later", Value::Null).await;
        let user = user_of(&secret);
        let lazy = call(
            &router,
            ROOT,
            "PUT",
            "sys/leases/revoke-prefix/db",
            json!({ "sync": false }),
        )
        .await;
        assert_eq!(lazy.0, StatusCode::ACCEPTED);
        assert_eq!(revoked(&user), 0);
        round(&state);
        assert_eq!(revoked(&user), 1);
        // The older form Vault keeps.
        let (_, secret) = call(&router, ROOT, "GET", "db/creds/old", Value::Null).await;
        let user = user_of(&secret);
        let older = call(&router, ROOT, "PUT", "sys/revoke-prefix/db/creds", Value::Null).await;
        assert_eq!(older.0, StatusCode::NO_CONTENT);
        assert_eq!(revoked(&user), 1);
        let tidy = call(&router, ROOT, "PUT", "sys/leases/tidy", Value::Null).await;
        assert_eq!(tidy.0, StatusCode::ACCEPTED);
    }
}
