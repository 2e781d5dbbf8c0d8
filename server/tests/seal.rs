//! Init, unseal and seal over a storage file: sealed refuses work, wrong shares
//! fail, and keys and tokens survive a restart.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use encrypted_attr::storage::FileStorage;
use encrypted_attr_server::{AppState, app};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("X-Vault-Token", token);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        },
    )
}

fn server(path: &std::path::Path) -> axum::Router {
    let storage = FileStorage::open(path).unwrap();
    app(Arc::new(AppState::persistent(Arc::new(storage), "file").unwrap()))
}

#[tokio::test]
async fn init_unseal_restart_seal() {
    let dir = std::env::temp_dir().join(format!("ea-seal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.json");
    let _ = std::fs::remove_file(&path);
    let s = server(&path);

    let (status, body) = call(&s, "GET", "/v1/sys/health", None, Value::Null).await;
    assert_eq!(
        (status, body["initialized"].clone()),
        (StatusCode::NOT_IMPLEMENTED, json!(false))
    );
    let (status, body) = call(
        &s,
        "PUT",
        "/v1/sys/init",
        None,
        json!({"secret_shares": 3, "secret_threshold": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys: Vec<String> = serde_json::from_value(body["keys"].clone()).unwrap();
    let keys_b64: Vec<String> = serde_json::from_value(body["keys_base64"].clone()).unwrap();
    let root = body["root_token"].as_str().unwrap().to_owned();
    assert_eq!(keys.len(), 3);
    assert!(keys.iter().all(|k| k.len() == 66), "33-byte shares in hex");
    let (status, _) = call(
        &s,
        "PUT",
        "/v1/sys/init",
        None,
        json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "already initialised");

    // Sealed: work is refused with 503, status says so.
    let (status, body) = call(&s, "POST", "/v1/transit/keys/k", Some(&root), json!({})).await;
    assert_eq!(
        (status, body),
        (StatusCode::SERVICE_UNAVAILABLE, json!({"errors": ["Vault is sealed"]}))
    );
    let (_, status_body) = call(&s, "GET", "/v1/sys/seal-status", None, Value::Null).await;
    assert_eq!(
        (
            status_body["sealed"].clone(),
            status_body["t"].clone(),
            status_body["n"].clone()
        ),
        (json!(true), json!(2), json!(3))
    );

    // A forged share plus a real one: the root key does not open; progress resets.
    let mut forged = keys[0].clone();
    forged.replace_range(0..2, if &forged[0..2] == "00" { "01" } else { "00" });
    let (_, body) = call(&s, "PUT", "/v1/sys/unseal", None, json!({"key": forged})).await;
    assert_eq!(body["progress"], 1);
    let (status, _) = call(&s, "PUT", "/v1/sys/unseal", None, json!({"key": keys[1]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body) = call(&s, "GET", "/v1/sys/seal-status", None, Value::Null).await;
    assert_eq!(
        (body["sealed"].clone(), body["progress"].clone()),
        (json!(true), json!(0))
    );
    let (status, _) = call(&s, "PUT", "/v1/sys/unseal", None, json!({"key": "not hex!"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Two real shares (hex and base64) unseal.
    call(&s, "PUT", "/v1/sys/unseal", None, json!({"key": keys[2]})).await;
    let (status, body) = call(&s, "PUT", "/v1/sys/unseal", None, json!({"key": keys_b64[0]})).await;
    assert_eq!(
        (status, body["sealed"].clone()),
        (StatusCode::OK, json!(false)),
        "{body}"
    );
    let (status, body) = call(
        &s,
        "POST",
        "/v1/transit/encrypt/users_ssn",
        Some(&root),
        json!({"plaintext": "c2VjcmV0"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ct = body["data"]["ciphertext"].clone();
    // A KV mount and a secret in it: both kept sealed.
    let (status, _) = call(
        &s,
        "POST",
        "/v1/sys/mounts/team/kv",
        Some(&root),
        json!({"type": "kv", "description": "mount-description-sealed?"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &s,
        "POST",
        "/v1/team/kv/db",
        Some(&root),
        json!({"password": "kv-value-in-clear?"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Transit at another path: its own keys, kept across the restart below.
    let (status, _) = call(
        &s,
        "POST",
        "/v1/sys/mounts/payments/transit",
        Some(&root),
        json!({"type": "transit"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(
        &s,
        "POST",
        "/v1/payments/transit/encrypt/cards",
        Some(&root),
        json!({"plaintext": "c2VjcmV0"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mounted_ct = body["data"]["ciphertext"].clone();
    let (status, _) = call(&s, "GET", "/v1/transit/keys/cards", Some(&root), Value::Null).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "each mount has its own keys");
    let raw = std::fs::read_to_string(&path).unwrap();
    assert!(!raw.contains(&root), "tokens are stored hashed, sealed");
    assert!(!raw.contains("kv-value-in-clear?"), "KV values are stored sealed");
    // Paths name entries in clear (as a key's name does); what they hold is sealed.
    assert!(
        !raw.contains("mount-description-sealed?"),
        "mount entries are stored sealed"
    );

    // Restart: sealed again; unseal; the key, its ciphertext and the root token work.
    drop(s);
    let s = server(&path);
    let (status, _) = call(
        &s,
        "POST",
        "/v1/transit/decrypt/users_ssn",
        Some(&root),
        json!({"ciphertext": ct}),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    call(&s, "PUT", "/v1/sys/unseal", None, json!({"key": keys[1]})).await;
    call(&s, "PUT", "/v1/sys/unseal", None, json!({"key": keys[2]})).await;
    let (status, body) = call(
        &s,
        "POST",
        "/v1/transit/decrypt/users_ssn",
        Some(&root),
        json!({"ciphertext": ct}),
    )
    .await;
    assert_eq!(
        (status, body["data"]["plaintext"].clone()),
        (StatusCode::OK, json!("c2VjcmV0")),
        "{body}"
    );
    let (status, body) = call(
        &s,
        "POST",
        "/v1/payments/transit/decrypt/cards",
        Some(&root),
        json!({"ciphertext": mounted_ct}),
    )
    .await;
    assert_eq!(
        (status, body["data"]["plaintext"].clone()),
        (StatusCode::OK, json!("c2VjcmV0")),
        "a mounted transit engine's keys survive a restart: {body}"
    );
    let (status, body) = call(&s, "GET", "/v1/team/kv/db", Some(&root), Value::Null).await;
    assert_eq!(
        (status, body["data"]["password"].clone()),
        (StatusCode::OK, json!("kv-value-in-clear?")),
        "the mount and its data survive a restart"
    );

    // Seal needs a root token; then everything is refused again.
    let (_, made) = call(
        &s,
        "POST",
        "/v1/auth/token/create",
        Some(&root),
        json!({"policies": ["app"]}),
    )
    .await;
    let app_token = made["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, _) = call(&s, "PUT", "/v1/sys/seal", Some(&app_token), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&s, "PUT", "/v1/sys/seal", Some(&root), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&s, "GET", "/v1/transit/keys/users_ssn", Some(&root), Value::Null).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = call(&s, "GET", "/v1/sys/health", None, Value::Null).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A stored audit device whose file cannot be opened after a restart keeps the
/// server failing closed, and recovers once the file can be opened again.
#[tokio::test]
async fn unopenable_audit_device_after_restart_fails_closed() {
    let dir = std::env::temp_dir().join(format!("ea-audit-restart-{}", std::process::id()));
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let path = dir.join("server.json");
    let s = server(&path);
    let (_, body) = call(
        &s,
        "PUT",
        "/v1/sys/init",
        None,
        json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .await;
    let key = body["keys"][0].as_str().unwrap().to_owned();
    let root = body["root_token"].as_str().unwrap().to_owned();
    call(&s, "PUT", "/v1/sys/unseal", None, json!({ "key": key })).await;
    let (status, _) = call(
        &s,
        "PUT",
        "/v1/sys/audit/file",
        Some(&root),
        json!({"type": "file", "options": {"file_path": logs.join("audit.log")}}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    drop(s);

    std::fs::remove_dir_all(&logs).unwrap();
    let s = server(&path);
    call(&s, "PUT", "/v1/sys/unseal", None, json!({ "key": key })).await;
    let (status, _) = call(&s, "POST", "/v1/transit/keys/audited", Some(&root), json!({})).await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "unaudited work must be refused"
    );
    let (status, _) = call(&s, "GET", "/v1/transit/keys/audited", Some(&root), Value::Null).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);

    std::fs::create_dir_all(&logs).unwrap();
    let (status, _) = call(&s, "POST", "/v1/transit/keys/audited", Some(&root), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let text = std::fs::read_to_string(logs.join("audit.log")).unwrap();
    assert!(text.contains("transit/keys/audited"));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn database_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("{var} must be set under CI"),
        Err(_) => {
            eprintln!("SKIPPED: {var} is not set; the PostgreSQL storage test did not run");
            None
        }
    }
}

/// Two servers on one PostgreSQL database: one initialises, both unseal, both
/// rotate the same key at once; every rotation lands, none is lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_share_postgresql_and_rotate_concurrently() {
    let Some(url) = database_url("ENCRYPTED_ATTR_TEST_POSTGRES_URL") else {
        return;
    };
    let setup_url = url.clone();
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&setup_url, postgres::NoTls).unwrap();
        client
            .batch_execute("DROP TABLE IF EXISTS encrypted_attr_storage")
            .unwrap();
    })
    .await
    .unwrap();
    let open = |url: String| async move {
        let storage =
            tokio::task::spawn_blocking(move || encrypted_attr_server::PostgresStorage::connect(&url).unwrap())
                .await
                .unwrap();
        app(Arc::new(AppState::persistent(Arc::new(storage), "postgresql").unwrap()))
    };
    let a = open(url.clone()).await;
    let (status, body) = call(
        &a,
        "PUT",
        "/v1/sys/init",
        None,
        json!({"secret_shares": 3, "secret_threshold": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys: Vec<String> = serde_json::from_value(body["keys"].clone()).unwrap();
    let root = body["root_token"].as_str().unwrap().to_owned();
    let b = open(url.clone()).await;
    for server in [&a, &b] {
        call(server, "PUT", "/v1/sys/unseal", None, json!({"key": keys[0]})).await;
        let (_, status) = call(server, "PUT", "/v1/sys/unseal", None, json!({"key": keys[2]})).await;
        assert_eq!(status["sealed"], false);
    }
    let (status, _) = call(&a, "POST", "/v1/transit/keys/shared", Some(&root), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    // The key created on A is known to B (read from storage on first use).
    let (status, body) = call(
        &b,
        "POST",
        "/v1/transit/encrypt/shared",
        Some(&root),
        json!({"plaintext": "eA=="}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    shared_tokens_policies_and_audit(&a, &b, &root).await;
    shared_mounts_and_kv(&a, &b, &root).await;

    let rotations = 15;
    let rotate = |server: axum::Router, root: String| {
        tokio::spawn(async move {
            for _ in 0..rotations {
                let (status, body) = call(
                    &server,
                    "POST",
                    "/v1/transit/keys/shared/rotate",
                    Some(&root),
                    json!({}),
                )
                .await;
                assert_eq!(status, StatusCode::OK, "{body}");
            }
        })
    };
    let (ra, rb) = (rotate(a.clone(), root.clone()), rotate(b.clone(), root.clone()));
    ra.await.unwrap();
    rb.await.unwrap();

    // A third server reading the database sees every version exactly once.
    let c = open(url).await;
    call(&c, "PUT", "/v1/sys/unseal", None, json!({"key": keys[1]})).await;
    call(&c, "PUT", "/v1/sys/unseal", None, json!({"key": keys[2]})).await;
    let (status, body) = call(&c, "GET", "/v1/transit/keys/shared", Some(&root), Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["latest_version"], 1 + 2 * rotations);
    assert_eq!(
        body["data"]["keys"].as_object().unwrap().len(),
        1 + 2 * rotations as usize
    );
    // A ciphertext made on B at its latest version decrypts on A (A reloads the key
    // when it meets a version newer than it knows).
    let (_, body) = call(
        &b,
        "POST",
        "/v1/transit/encrypt/shared",
        Some(&root),
        json!({"plaintext": "eQ=="}),
    )
    .await;
    let ct = body["data"]["ciphertext"].clone();
    let (status, body) = call(
        &a,
        "POST",
        "/v1/transit/decrypt/shared",
        Some(&root),
        json!({"ciphertext": ct}),
    )
    .await;
    assert_eq!(
        (status, body["data"]["plaintext"].clone()),
        (StatusCode::OK, json!("eQ=="))
    );
}

/// Polls `check` every 100 ms for up to 6 s (servers re-read shared state every 2 s).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..60 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what}: not seen within 6 s");
}

/// What one server sharing PostgreSQL does, the other sees: a token made on A works
/// on B, a policy written on A applies on B, a token revoked on A stops working on
/// B, and an audit device enabled on A records B's requests.
/// A mount made on one server, and a value written through it, are seen by the
/// other within its re-read interval; so is the mount's removal.
async fn shared_mounts_and_kv(a: &axum::Router, b: &axum::Router, root: &str) {
    let (status, _) = call(a, "POST", "/v1/sys/mounts/shared-kv", Some(root), json!({"type": "kv"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(a, "POST", "/v1/shared-kv/app", Some(root), json!({"k": "v"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut seen = false;
    for _ in 0..40 {
        let (status, body) = call(b, "GET", "/v1/shared-kv/app", Some(root), Value::Null).await;
        if status == StatusCode::OK {
            assert_eq!(body["data"]["k"], "v");
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "the other server sees the mount and its value");
    let (status, _) = call(b, "DELETE", "/v1/sys/mounts/shared-kv", Some(root), Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let mut gone = false;
    for _ in 0..40 {
        let (status, _) = call(a, "GET", "/v1/shared-kv/app", Some(root), Value::Null).await;
        if status == StatusCode::NOT_FOUND {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(gone, "the other server sees the mount removed");

    // An auth method, a user and an AppRole secret ID made on one server log in
    // on the other.
    for (method, kind) in [("people", "userpass"), ("apps", "approle")] {
        let (status, _) = call(
            a,
            "POST",
            &format!("/v1/sys/auth/{method}"),
            Some(root),
            json!({"type": kind}),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (status, _) = call(
        a,
        "POST",
        "/v1/auth/people/users/dana",
        Some(root),
        json!({"password": "dana-pass"}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(a, "POST", "/v1/auth/apps/role/svc", Some(root), json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = call(a, "GET", "/v1/auth/apps/role/svc/role-id", Some(root), Value::Null).await;
    let role_id = body["data"]["role_id"].as_str().unwrap().to_owned();
    let (_, body) = call(a, "POST", "/v1/auth/apps/role/svc/secret-id", Some(root), json!({})).await;
    let secret_id = body["data"]["secret_id"].as_str().unwrap().to_owned();
    let mut logged_in = (false, false);
    for _ in 0..40 {
        if !logged_in.0 {
            let (status, _) = call(
                b,
                "POST",
                "/v1/auth/people/login/dana",
                None,
                json!({"password": "dana-pass"}),
            )
            .await;
            logged_in.0 = status == StatusCode::OK;
        }
        if !logged_in.1 {
            let (status, _) = call(
                b,
                "POST",
                "/v1/auth/apps/login",
                None,
                json!({"role_id": role_id, "secret_id": secret_id}),
            )
            .await;
            logged_in.1 = status == StatusCode::OK;
        }
        if logged_in == (true, true) {
            break;
        }
        // The other server sees new auth methods at its next re-read; requests
        // with a token trigger it.
        call(b, "GET", "/v1/auth/token/lookup-self", Some(root), Value::Null).await;
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        logged_in,
        (true, true),
        "userpass and AppRole logins on the other server"
    );
}

async fn shared_tokens_policies_and_audit(a: &axum::Router, b: &axum::Router, root: &str) {
    let policy = r#"path "transit/encrypt/shared" { capabilities = ["update"] }"#;
    let (status, _) = call(
        a,
        "PUT",
        "/v1/sys/policy/shared-app",
        Some(root),
        json!({ "policy": policy }),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(
        a,
        "POST",
        "/v1/auth/token/create",
        Some(root),
        json!({"policies": ["shared-app"], "ttl": "1h"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["auth"]["client_token"].as_str().unwrap().to_owned();
    let encrypt_on_b = || {
        let token = token.clone();
        async move {
            call(
                b,
                "POST",
                "/v1/transit/encrypt/shared",
                Some(&token),
                json!({"plaintext": "eA=="}),
            )
            .await
            .0
        }
    };
    eventually("a token and policy made on A, used on B", || async {
        encrypt_on_b().await == StatusCode::OK
    })
    .await;
    // The policy grants nothing else, on either server.
    let (status, _) = call(b, "GET", "/v1/transit/keys/shared", Some(&token), Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let dir = std::env::temp_dir().join(format!("ea-shared-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("audit.log");
    let (status, body) = call(
        a,
        "PUT",
        "/v1/sys/audit/shared",
        Some(root),
        json!({"type": "file", "options": {"file_path": log}}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    eventually("an audit device enabled on A, recording B's requests", || async {
        let (status, _) = call(b, "GET", "/v1/transit/keys/only-asked-of-b", Some(root), Value::Null).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        std::fs::read_to_string(&log).is_ok_and(|text| text.contains("transit/keys/only-asked-of-b"))
    })
    .await;
    let (status, _) = call(a, "DELETE", "/v1/sys/audit/shared", Some(root), Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let _ = std::fs::remove_dir_all(&dir);

    // B reads the token now, so its cached entry is fresh when A revokes it.
    assert_eq!(encrypt_on_b().await, StatusCode::OK);
    let (status, _) = call(
        a,
        "POST",
        "/v1/auth/token/revoke",
        Some(root),
        json!({ "token": token }),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // B may still hold the entry in its cache, but a renewal there works on the
    // stored entry, which is gone: it must not bring the token back.
    let (status, body) = call(b, "POST", "/v1/auth/token/renew-self", Some(&token), json!({})).await;
    assert_ne!(status, StatusCode::OK, "{body}");
    eventually("a token revoked on A, refused on B", || async {
        encrypt_on_b().await == StatusCode::FORBIDDEN
    })
    .await;
}
