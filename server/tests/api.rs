//! The server's Vault-compatible HTTP API, driven through the router (`oneshot`)
//! and once over a real socket on 127.0.0.1:0.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use encrypted_attr::LocalEngine;
use encrypted_attr_server::{AppState, app};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

const ROOT: &str = "root-token-for-tests";

struct Server {
    router: axum::Router,
    engine: Arc<LocalEngine>,
}

impl Server {
    fn new() -> Self {
        let engine = Arc::new(LocalEngine::ephemeral().unwrap());
        let (state, _) = AppState::new(engine.clone(), Some(ROOT)).unwrap();
        Self {
            router: app(Arc::new(state)),
            engine,
        }
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.raw(request.body(body).unwrap()).await
    }

    async fn raw(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call("POST", path, Some(ROOT), Some(body)).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call("GET", path, Some(ROOT), None).await
    }
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn unb64(s: &str) -> String {
    use base64::Engine as _;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
}

#[tokio::test]
async fn envelope_auth_and_status_endpoints() {
    let s = Server::new();
    let (status, body) = s.call("GET", "/v1/sys/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
    for field in [
        "initialized",
        "sealed",
        "standby",
        "performance_standby",
        "replication_performance_mode",
        "replication_dr_mode",
        "server_time_utc",
        "version",
    ] {
        assert!(body.get(field).is_some(), "health lacks {field}");
    }
    let (status, body) = s.call("GET", "/v1/sys/seal-status", None, None).await;
    assert_eq!((status, body["sealed"].clone()), (StatusCode::OK, json!(false)));

    // No token, a wrong token: 403 with Vault's body.
    for token in [None, Some("nope")] {
        let (status, body) = s.call("POST", "/v1/transit/keys/k", token, Some(json!({}))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            body,
            json!({"errors": ["1 error occurred:\n\t* permission denied\n\n"]})
        );
    }
    // Bearer works as well as X-Vault-Token.
    let request = Request::builder()
        .method("GET")
        .uri("/v1/auth/token/lookup-self")
        .header("Authorization", format!("Bearer {ROOT}"))
        .body(Body::empty())
        .unwrap();
    let (status, body) = s.raw(request).await;
    assert_eq!(status, StatusCode::OK);
    for field in ["request_id", "lease_id", "lease_duration", "renewable"] {
        assert!(body.get(field).is_some(), "envelope lacks {field}");
    }
    assert_eq!(body["data"]["policies"], json!(["root"]));
}

#[tokio::test]
async fn key_lifecycle() {
    let s = Server::new();
    let (status, _) = s.call("LIST", "/v1/transit/keys", Some(ROOT), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "empty list is 404");
    let (status, body) = s
        .post(
            "/v1/transit/keys/orders",
            json!({"exportable": "true", "auto_rotate_period": "24h"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["type"], "aes256-gcm96");
    assert_eq!(body["data"]["exportable"], true);
    assert_eq!(body["data"]["auto_rotate_period"], 86_400);
    assert!(body["data"]["keys"]["1"].is_u64());
    let (status, body) = s.get("/v1/transit/keys?list=true").await;
    assert_eq!(
        (status, body["data"]["keys"].clone()),
        (StatusCode::OK, json!(["orders"]))
    );
    let (_, body) = s.post("/v1/transit/keys/orders/rotate", json!({})).await;
    assert_eq!(body["data"]["latest_version"], 2);
    let (status, body) = s
        .post("/v1/transit/keys/orders/config", json!({"min_decryption_version": 3}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = s
        .post(
            "/v1/transit/keys/orders/config",
            json!({"min_decryption_version": "2", "min_encryption_version": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s
        .post("/v1/transit/keys/orders/trim", json!({"min_available_version": 2}))
        .await;
    assert_eq!(
        (status, body["data"]["min_available_version"].clone()),
        (StatusCode::OK, json!(2)),
        "{body}"
    );
    let (status, body) = s.get("/v1/transit/export/encryption-key/orders/latest").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["keys"].as_object().map(|k| k.len()), Some(1));
    let (status, _) = s.get("/v1/transit/keys/missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = s.call("DELETE", "/v1/transit/keys/orders", Some(ROOT), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"][0].as_str().unwrap().contains("deletion is not allowed"));
    s.post("/v1/transit/keys/orders/config", json!({"deletion_allowed": true}))
        .await;
    let (status, _) = s.call("DELETE", "/v1/transit/keys/orders", Some(ROOT), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = s.post("/v1/transit/keys/bad", json!({"type": "rsa-9"})).await;
    assert_eq!(
        (status, body["errors"][0].clone()),
        (StatusCode::BAD_REQUEST, json!("unknown key type rsa-9"))
    );
}

#[tokio::test]
async fn encrypt_decrypt_single_and_batch() {
    let s = Server::new();
    // Encrypt upserts the key.
    let (status, body) = s
        .post(
            "/v1/transit/encrypt/users_ssn",
            json!({"plaintext": b64("123-45-6789"), "nonce": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ct = body["data"]["ciphertext"].as_str().unwrap().to_owned();
    assert!(ct.starts_with("vault:v1:"));
    assert_eq!(body["data"]["key_version"], 1);
    assert_eq!(
        body["warnings"],
        json!(["Endpoint ignored these unrecognized parameters: [nonce]"])
    );
    let (_, body) = s.post("/v1/transit/decrypt/users_ssn", json!({"ciphertext": ct})).await;
    assert_eq!(unb64(body["data"]["plaintext"].as_str().unwrap()), "123-45-6789");

    // A batch with a bad item: 400, the other items still processed.
    let (status, body) = s
        .post(
            "/v1/transit/encrypt/users_ssn",
            json!({"batch_input": [{"plaintext": b64("a"), "reference": "r1"}, {"plaintext": "ab*d", "reference": "r2"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let results = body["data"]["batch_results"].as_array().unwrap();
    assert!(results[0]["ciphertext"].is_string());
    assert_eq!(results[0]["reference"], "r1");
    assert_eq!(results[1]["error"], "illegal base64 data at input byte 2");
    let (status, _) = s
        .post(
            "/v1/transit/encrypt/users_ssn",
            json!({"partial_failure_response_code": 200, "batch_input": [{"plaintext": b64("a")}, {"plaintext": "!"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let good = results[0]["ciphertext"].clone();
    let (status, body) = s
        .post(
            "/v1/transit/decrypt/users_ssn",
            json!({"batch_input": [{"ciphertext": good}, {"ciphertext": "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, {"ciphertext": "nope"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let results = body["data"]["batch_results"].as_array().unwrap();
    assert_eq!(unb64(results[0]["plaintext"].as_str().unwrap()), "a");
    assert_eq!(results[1]["error"], "cipher: message authentication failed");
    assert_eq!(results[1]["plaintext"], "");
    assert_eq!(results[2]["error"], "invalid ciphertext: no prefix");

    // Errors of single requests.
    let (status, body) = s.post("/v1/transit/decrypt/nokey", json!({"ciphertext": ct})).await;
    assert_eq!(
        (status, body),
        (StatusCode::BAD_REQUEST, json!({"errors": ["encryption key not found"]}))
    );
    let (status, body) = s.post("/v1/transit/encrypt/users_ssn", json!({})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"errors": ["missing plaintext to encrypt"]})
        )
    );
    let (status, body) = s
        .post("/v1/transit/decrypt/users_ssn", json!({"ciphertext": "vault:v9:AAAA"}))
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"errors": ["invalid ciphertext: version is too new"]})
        )
    );
    let (status, _) = s
        .post("/v1/transit/encrypt/users_ssn", json!({"batch_input": []}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn derived_convergent_rewrap_datakey_hmac_random_hash() {
    let s = Server::new();
    let ctx = b64("tenant-1");
    s.post(
        "/v1/transit/keys/emails",
        json!({"derived": true, "convergent_encryption": true}),
    )
    .await;
    let enc = json!({"plaintext": b64("a@b.c"), "context": ctx});
    let (_, one) = s.post("/v1/transit/encrypt/emails", enc.clone()).await;
    let (_, two) = s.post("/v1/transit/encrypt/emails", enc).await;
    assert_eq!(one["data"]["ciphertext"], two["data"]["ciphertext"], "convergent");
    let (status, body) = s
        .post(
            "/v1/transit/decrypt/emails",
            json!({"ciphertext": one["data"]["ciphertext"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"][0].as_str().unwrap().starts_with("missing 'context'"));

    // Rewrap with associated data (our extension).
    let aad = b64("users/ssn/7");
    let (_, body) = s
        .post(
            "/v1/transit/encrypt/ssn",
            json!({"plaintext": b64("x"), "associated_data": aad}),
        )
        .await;
    let ct = body["data"]["ciphertext"].clone();
    s.post("/v1/transit/keys/ssn/rotate", json!({})).await;
    let (status, body) = s
        .post(
            "/v1/transit/rewrap/ssn",
            json!({"ciphertext": ct, "associated_data": aad}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["key_version"], 2);
    let (_, body) = s
        .post(
            "/v1/transit/decrypt/ssn",
            json!({"ciphertext": body["data"]["ciphertext"], "associated_data": aad}),
        )
        .await;
    assert_eq!(unb64(body["data"]["plaintext"].as_str().unwrap()), "x");

    // Data keys.
    let (status, body) = s.post("/v1/transit/datakey/plaintext/ssn", json!({"bits": 512})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let plaintext = body["data"]["plaintext"].as_str().unwrap().to_owned();
    let (_, opened) = s
        .post(
            "/v1/transit/decrypt/ssn",
            json!({"ciphertext": body["data"]["ciphertext"]}),
        )
        .await;
    assert_eq!(opened["data"]["plaintext"], plaintext);
    let (_, body) = s.post("/v1/transit/datakey/wrapped/ssn", json!({})).await;
    assert!(body["data"].get("plaintext").is_none());
    let (status, _) = s.post("/v1/transit/datakey/other/ssn", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s.post("/v1/transit/datakey/plaintext/ssn", json!({"bits": 64})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // HMAC and verify.
    let (_, body) = s
        .post("/v1/transit/hmac/ssn/sha2-512", json!({"input": b64("msg")}))
        .await;
    let tag = body["data"]["hmac"].clone();
    assert!(tag.as_str().unwrap().starts_with("vault:v2:"));
    let (_, body) = s
        .post(
            "/v1/transit/verify/ssn/sha2-512",
            json!({"input": b64("msg"), "hmac": tag}),
        )
        .await;
    assert_eq!(body["data"]["valid"], true);
    let (_, body) = s.post("/v1/transit/verify/ssn", json!({"batch_input": [{"input": b64("msg"), "hmac": tag}, {"input": b64("other"), "hmac": tag}], "hash_algorithm": "sha2-512"})).await;
    let results = body["data"]["batch_results"].as_array().unwrap();
    assert_eq!(results[0]["valid"], true);
    assert!(results[1].get("valid").is_none(), "false is omitted in HMAC batches");

    let (_, body) = s.post("/v1/transit/random/16", json!({"format": "hex"})).await;
    assert_eq!(body["data"]["random_bytes"].as_str().unwrap().len(), 32);
    let (status, _) = s.post("/v1/transit/random", json!({"bytes": 0})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body) = s.post("/v1/transit/hash", json!({"input": b64("abc")})).await;
    assert_eq!(
        body["data"]["sum"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[tokio::test]
async fn bad_input_is_a_4xx_never_a_5xx() {
    let s = Server::new();
    let request = |method: &str, path: &str, body: &'static str| {
        Request::builder()
            .method(method)
            .uri(path)
            .header("X-Vault-Token", ROOT)
            .body(Body::from(body))
            .unwrap()
    };
    let (status, body) = s
        .raw(request("POST", "/v1/transit/encrypt/k", "{\"plaintext\": "))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = s.raw(request("POST", "/v1/transit/encrypt/k", "[1,2]")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .raw(request("POST", "/v1/transit/encrypt/k", "{\"plaintext\": {\"a\": 1}}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s
        .raw(request("POST", "/v1/transit/keys/k", "{\"derived\": \"maybe\"}"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s.raw(request("GET", "/v1/transit/encrypt/k", "")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = s.raw(request("POST", "/v1/transit/nothing/here", "{}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s.raw(request("POST", "/v1/transit/keys/bad%20name!", "{}")).await;
    assert!(status.is_client_error());
    let huge = vec![b'a'; encrypted_attr_server::MAX_REQUEST_BYTES + 10];
    let request = Request::builder()
        .method("POST")
        .uri("/v1/transit/encrypt/k")
        .header("X-Vault-Token", ROOT)
        .body(Body::from(huge))
        .unwrap();
    let response = s.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn tokens_can_be_created_and_revoked() {
    let s = Server::new();
    let (status, body) = s
        .post("/v1/auth/token/create", json!({"policies": ["app"], "ttl": "1h"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["auth"]["client_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("hvs."));
    let (status, body) = s.call("GET", "/v1/auth/token/lookup-self", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["data"]["ttl"].as_u64().unwrap() > 3500);
    let (status, _) = s
        .call("POST", "/v1/auth/token/revoke-self", Some(&token), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.call("GET", "/v1/auth/token/lookup-self", Some(&token), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Tokens form a tree, as in Vault: a child dies with its parent (revoked or
/// expired), `revoke-orphan` keeps the children as orphans, tokens get the
/// default TTL, and `no_parent` and `revoke-orphan` take root or sudo.
#[tokio::test]
async fn tokens_form_a_tree() {
    let s = Server::new();
    let creator = r#"
        path "auth/token/create" { capabilities = ["update"] }
        path "auth/token/create-orphan" { capabilities = ["update"] }
        path "auth/token/revoke-orphan" { capabilities = ["update"] }
    "#;
    let (status, _) = s.post("/v1/sys/policy/creator", json!({ "policy": creator })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let token_of = |body: &Value| body["auth"]["client_token"].as_str().unwrap().to_owned();
    let s = &s;
    let lookup = |token: String| async move { s.call("GET", "/v1/auth/token/lookup-self", Some(&token), None).await };

    // A parent with a 2 s TTL; its child asks for nothing and gets the default TTL.
    let (_, body) = s
        .post("/v1/auth/token/create", json!({"policies": ["creator"], "ttl": "2s"}))
        .await;
    let parent = token_of(&body);
    let (status, body) = s
        .call("POST", "/v1/auth/token/create", Some(&parent), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["auth"]["lease_duration"], 768 * 3600);
    assert_eq!(body["auth"]["orphan"], false);
    let child = token_of(&body);
    let (_, looked) = lookup(child.clone()).await;
    assert_eq!(
        (looked["data"]["orphan"].clone(), looked["data"]["path"].clone()),
        (json!(false), json!("auth/token/create"))
    );
    // Without sudo: `no_parent` and `revoke-orphan` are refused, `create-orphan` is not.
    let (status, body) = s
        .call(
            "POST",
            "/v1/auth/token/create",
            Some(&parent),
            Some(json!({"no_parent": true})),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("root or sudo privileges required to create orphan token")
        )
    );
    let (status, body) = s
        .call("POST", "/v1/auth/token/create-orphan", Some(&parent), Some(json!({})))
        .await;
    assert_eq!((status, body["auth"]["orphan"].clone()), (StatusCode::OK, json!(true)));
    let orphan = token_of(&body);
    let (status, body) = s
        .call(
            "POST",
            "/v1/auth/token/revoke-orphan",
            Some(&parent),
            Some(json!({"token": child})),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("root or sudo privileges required to revoke and orphan")
        )
    );
    // The parent expires: its child goes with it, the orphan stays.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(lookup(parent.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(lookup(child.clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(lookup(orphan.clone()).await.0, StatusCode::OK);

    // Revoking a parent revokes its children; revoke-orphan keeps them as orphans.
    for (revoke, child_survives) in [("revoke", false), ("revoke-orphan", true)] {
        let (_, body) = s.post("/v1/auth/token/create", json!({"policies": ["creator"]})).await;
        assert_eq!(body["auth"]["lease_duration"], 768 * 3600, "default TTL");
        let parent = token_of(&body);
        let (_, body) = s
            .call("POST", "/v1/auth/token/create", Some(&parent), Some(json!({})))
            .await;
        let child = token_of(&body);
        let (status, _) = s
            .post(&format!("/v1/auth/token/{revoke}"), json!({"token": parent}))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(lookup(parent.clone()).await.0, StatusCode::FORBIDDEN);
        let (status, looked) = lookup(child.clone()).await;
        assert_eq!(status == StatusCode::OK, child_survives, "{revoke}: {looked}");
        if child_survives {
            assert_eq!(looked["data"]["orphan"], true);
        }
    }
    let (status, body) = s
        .post("/v1/auth/token/revoke-orphan", json!({"token": "hvs.unknown"}))
        .await;
    assert_eq!(
        (status, body["errors"][0].clone()),
        (StatusCode::BAD_REQUEST, json!("token to revoke not found"))
    );
    // Root-policy tokens made by root keep no TTL.
    let (_, body) = s.post("/v1/auth/token/create", json!({})).await;
    assert_eq!(body["auth"]["lease_duration"], 0);
}

#[tokio::test]
async fn tokens_renew_within_their_limits() {
    let s = Server::new();
    let (_, body) = s
        .post("/v1/auth/token/create", json!({"policies": ["default"], "ttl": "60s"}))
        .await;
    assert_eq!(body["auth"]["renewable"], true, "{body}");
    assert_eq!(body["auth"]["lease_duration"], 60);
    let token = body["auth"]["client_token"].as_str().unwrap().to_owned();

    let (status, body) = s
        .call(
            "POST",
            "/v1/auth/token/renew-self",
            Some(&token),
            Some(json!({"increment": "2h"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["auth"]["lease_duration"], 7200);
    assert_eq!(body["auth"]["client_token"], token.as_str());
    let (_, looked) = s.call("GET", "/v1/auth/token/lookup-self", Some(&token), None).await;
    assert!(looked["data"]["ttl"].as_u64().unwrap() > 7100, "{looked}");
    assert!(looked["data"]["last_renewal_time"].as_u64().is_some());

    // Past the 768 h maximum: capped, with Vault's warning.
    let (status, body) = s
        .call(
            "POST",
            "/v1/auth/token/renew-self",
            Some(&token),
            Some(json!({"increment": "2000h"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["auth"]["lease_duration"].as_u64().unwrap() <= 768 * 3600);
    assert!(body["warnings"][0].as_str().unwrap().contains("capped"), "{body}");

    // The root token renews another token by value.
    let (status, body) = s
        .post("/v1/auth/token/renew", json!({"token": token, "increment": 60}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["auth"]["lease_duration"], 60);

    // Not renewable: a token made so, and the root token (no TTL).
    let (_, body) = s
        .post("/v1/auth/token/create", json!({"ttl": "1h", "renewable": false}))
        .await;
    let fixed = body["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(body["auth"]["renewable"], false);
    for who in [fixed.as_str(), ROOT] {
        let (status, body) = s
            .call("POST", "/v1/auth/token/renew-self", Some(who), Some(json!({})))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"][0], "lease is not renewable");
    }
    let (status, body) = s.post("/v1/auth/token/renew", json!({"token": "hvs.nope"})).await;
    assert_eq!(
        (status, body["errors"][0].as_str()),
        (StatusCode::BAD_REQUEST, Some("token not found"))
    );
    let (status, _) = s
        .call(
            "POST",
            "/v1/auth/token/renew-self",
            Some(&token),
            Some(json!({"increment": "soon"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_a_real_socket_and_shuts_down() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let engine = Arc::new(LocalEngine::ephemeral().unwrap());
    let (state, _) = AppState::new(engine, Some(ROOT)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(encrypted_attr_server::run(listener, Arc::new(state), async {
        let _ = stopped.await;
    }));
    let body = json!({"plaintext": b64("over the wire")}).to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /v1/transit/encrypt/wire HTTP/1.1\r\nHost: {addr}\r\nX-Vault-Token: {ROOT}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.to_ascii_lowercase().contains("content-type: application/json"));
    assert!(response.contains("vault:v1:"));
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn policies_limit_what_a_token_can_do() {
    let s = Server::new();
    s.post("/v1/transit/keys/orders", json!({})).await;
    s.post("/v1/transit/keys/secrets", json!({})).await;
    let hcl = r#"
        path "transit/encrypt/orders" { capabilities = ["update"] }
        path "transit/decrypt/orders" { capabilities = ["update"] }
        path "transit/encrypt/new_*" { capabilities = ["create", "update"] }
        path "transit/keys" { capabilities = ["list"] }
        path "transit/keys/+/rotate" { capabilities = ["update"] }
        path "transit/keys/secrets/rotate" { capabilities = ["deny"] }
        path "auth/token/create" { capabilities = ["update"] }
    "#;
    let (status, body) = s
        .call("PUT", "/v1/sys/policy/app", Some(ROOT), Some(json!({"policy": hcl})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // The JSON form is accepted too (what hvac sends).
    let json_policy = json!({"path": {"transit/hmac/*": {"capabilities": ["update"]}}}).to_string();
    let (status, _) = s
        .call(
            "PUT",
            "/v1/sys/policies/acl/hmacs",
            Some(ROOT),
            Some(json!({"policy": json_policy})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s
        .call(
            "PUT",
            "/v1/sys/policy/bad",
            Some(ROOT),
            Some(json!({"policy": "path \"x\" { capabilities = [\"fly\"] }"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body) = s.get("/v1/sys/policy").await;
    assert!(
        body["policies"].as_array().unwrap().contains(&json!("app")),
        "sys paths copy data to the top: {body}"
    );
    let (_, body) = s.get("/v1/sys/policy/app").await;
    assert_eq!(body["data"]["rules"], hcl);

    let (_, made) = s
        .post("/v1/auth/token/create", json!({"policies": ["app", "hmacs"]}))
        .await;
    let app = made["auth"]["client_token"].as_str().unwrap().to_owned();
    let call = |method: &'static str, path: &'static str, body: Value| {
        let app = app.clone();
        let s = &s;
        async move { s.call(method, path, Some(&app), Some(body)).await.0 }
    };
    let pt = json!({"plaintext": b64("x")});
    assert_eq!(
        call("POST", "/v1/transit/encrypt/orders", pt.clone()).await,
        StatusCode::OK
    );
    assert_eq!(
        call("POST", "/v1/transit/encrypt/secrets", pt.clone()).await,
        StatusCode::FORBIDDEN
    );
    // Encrypting with a missing key would create it: `update` is not enough.
    assert_eq!(
        call("POST", "/v1/transit/encrypt/orderz", pt.clone()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call("POST", "/v1/transit/encrypt/new_key", pt.clone()).await,
        StatusCode::OK
    );
    assert_eq!(call("LIST", "/v1/transit/keys", Value::Null).await, StatusCode::OK);
    assert_eq!(
        call("GET", "/v1/transit/keys/orders", Value::Null).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call("POST", "/v1/transit/keys/orders/rotate", json!({})).await,
        StatusCode::OK
    );
    assert_eq!(
        call("POST", "/v1/transit/keys/secrets/rotate", json!({})).await,
        StatusCode::FORBIDDEN,
        "deny wins"
    );
    assert_eq!(
        call("POST", "/v1/transit/keys/orders/config", json!({"exportable": true})).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call("POST", "/v1/transit/hmac/orders", json!({"input": b64("m")})).await,
        StatusCode::OK
    );
    assert_eq!(
        call(
            "PUT",
            "/v1/sys/policy/app",
            json!({"policy": "path \"*\" { capabilities = [\"sudo\"] }"})
        )
        .await,
        StatusCode::FORBIDDEN
    );
    // A token cannot hand out policies it does not have.
    let (status, _) = s
        .call(
            "POST",
            "/v1/auth/token/create",
            Some(&app),
            Some(json!({"policies": ["root"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, body) = s
        .call(
            "POST",
            "/v1/sys/capabilities-self",
            Some(&app),
            Some(json!({"paths": ["transit/encrypt/orders"]})),
        )
        .await;
    assert_eq!(body["capabilities"], json!(["update"]));
    // Expired tokens are refused.
    let (_, made) = s
        .post("/v1/auth/token/create", json!({"policies": ["app"], "ttl": "1s"}))
        .await;
    let short = made["auth"]["client_token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, _) = s
        .call("POST", "/v1/transit/encrypt/orders", Some(&short), Some(pt))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn audit_log_hashes_secrets_and_fails_closed() {
    let s = Server::new();
    let dir = std::env::temp_dir().join(format!("ea-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("audit.log");
    let _ = std::fs::remove_file(&log);
    let (status, body) = s
        .call(
            "PUT",
            "/v1/sys/audit/file",
            Some(ROOT),
            Some(json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let secret = "TOP-SECRET-PLAINTEXT";
    let (status, body) = s
        .post("/v1/transit/encrypt/audited", json!({"plaintext": b64(secret)}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let ciphertext = body["data"]["ciphertext"].as_str().unwrap().to_owned();
    let response_id = body["request_id"].as_str().unwrap().to_owned();
    let (_, made) = s.post("/v1/auth/token/create", json!({"policies": ["x"]})).await;
    let new_token = made["auth"]["client_token"].as_str().unwrap().to_owned();

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.len() >= 5, "request and response lines: {}", lines.len());
    for needle in [
        b64(secret).as_str(),
        secret,
        ROOT,
        ciphertext.as_str(),
        new_token.as_str(),
    ] {
        assert!(!text.contains(needle), "audit log contains a secret: {needle}");
    }
    let encrypt_request = lines
        .iter()
        .find(|l| l["type"] == "request" && l["request"]["path"] == "transit/encrypt/audited")
        .unwrap();
    // The response envelope and the audit entries share the request id, as in Vault.
    assert_eq!(encrypt_request["request"]["id"], response_id.as_str());
    let hashed = encrypt_request["request"]["data"]["plaintext"].as_str().unwrap();
    assert!(hashed.starts_with("hmac-sha256:"));
    // sys/audit-hash gives the same hash, so an operator can look a value up.
    let (_, body) = s.post("/v1/sys/audit-hash/file", json!({"input": b64(secret)})).await;
    assert_eq!(body["hash"], hashed);
    let response = lines
        .iter()
        .find(|l| l["type"] == "response" && l["request"]["path"] == "transit/encrypt/audited")
        .unwrap();
    assert_eq!(response["response"]["data"]["key_version"], 1, "numbers are kept");
    assert!(
        response["response"]["data"]["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );

    // A device that cannot write (/dev/full), next to the working one: fine.
    let (status, body) = s
        .call(
            "PUT",
            "/v1/sys/audit/full",
            Some(ROOT),
            Some(json!({"type": "file", "options": {"file_path": "/dev/full"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = s.post("/v1/transit/keys/logged", json!({})).await;
    assert_eq!(status, StatusCode::OK, "one device wrote, that is enough");
    // Remove the working device: that request ran (the file device recorded it) but
    // its response cannot be recorded, so it is withheld.
    let (status, _) = s.call("DELETE", "/v1/sys/audit/file", Some(ROOT), None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    // From now on nothing can be recorded: requests are refused and do not run.
    let (status, body) = s.post("/v1/transit/keys/never_created", json!({})).await;
    assert_eq!(
        (status, body),
        (StatusCode::INTERNAL_SERVER_ERROR, json!({"errors": ["internal error"]}))
    );
    let name = encrypted_attr::KeyName::new("never_created").unwrap();
    assert!(matches!(
        encrypted_attr::TransitEngine::read_key(&*s.engine, &name),
        Err(encrypted_attr::Error::KeyNotFound { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Captures log output in memory.
#[derive(Clone, Default)]
struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn request_log_lines_carry_no_secrets() {
    let log = CapturedLog::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(format!("{}=debug", encrypted_attr_server::REQUEST_LOG_TARGET))
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let s = Server::new();
    let plaintext = "c2VjcmV0LXNzbi0xMjMtNDUtNjc4OQ=="; // "secret-ssn-123-45-6789"
    let (status, body) = s
        .post("/v1/transit/encrypt/logged", json!({ "plaintext": plaintext }))
        .await;
    assert_eq!(status, StatusCode::OK);
    let ciphertext = body["data"]["ciphertext"].as_str().unwrap().to_owned();
    let response_id = body["request_id"].as_str().unwrap().to_owned();
    let (status, _) = s
        .call(
            "GET",
            "/v1/transit/keys/logged?list=secret-query",
            Some("hvs.wrong-token"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    drop(guard);

    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0]["path"], "/v1/transit/encrypt/logged");
    assert_eq!(lines[0]["method"], "POST");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["request_id"], response_id.as_str());
    assert!(lines[0]["micros"].as_u64().is_some());
    assert_eq!(lines[1]["status"], 403);
    for secret in [
        plaintext,
        "secret-ssn",
        ROOT,
        "hvs.wrong-token",
        "secret-query",
        ciphertext.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} in the request log: {text}");
    }
}

/// Five wrong passwords lock a userpass user out (403, even with the right
/// password), as Vault 1.13+ does by default; other users are not affected; the
/// login is audited with the password and the new token HMAC'd.
#[tokio::test]
async fn userpass_logins_lock_out_after_repeated_failures() {
    let s = Server::new();
    let dir = std::env::temp_dir().join(format!("ea-userpass-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("audit.log");
    let (status, _) = s
        .call(
            "PUT",
            "/v1/sys/audit/file",
            Some(ROOT),
            Some(json!({"type": "file", "options": {"file_path": log.to_str().unwrap()}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.post("/v1/sys/auth/userpass", json!({"type": "userpass"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for user in ["locked", "other"] {
        let (status, _) = s
            .post(
                &format!("/v1/auth/userpass/users/{user}"),
                json!({"password": "right-password", "policies": "default"}),
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let login = |user: &'static str, password: &'static str| {
        let s = &s;
        async move {
            s.call(
                "POST",
                &format!("/v1/auth/userpass/login/{user}"),
                None,
                Some(json!({ "password": password })),
            )
            .await
        }
    };
    let (status, body) = login("locked", "right-password").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["auth"]["client_token"].as_str().unwrap().to_owned();
    assert_eq!(body["auth"]["metadata"]["username"], "locked");
    for _ in 0..5 {
        let (status, body) = login("locked", "wrong").await;
        assert_eq!(
            (status, body),
            (
                StatusCode::BAD_REQUEST,
                json!({"errors": ["invalid username or password"]})
            )
        );
    }
    let (status, _) = login("locked", "right-password").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "locked out");
    let (status, _) = login("other", "right-password").await;
    assert_eq!(status, StatusCode::OK, "only that user");
    let (status, _) = s.call("GET", "/v1/auth/token/lookup-self", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK, "the token from the login works");
    let audit = std::fs::read_to_string(&log).unwrap();
    assert!(audit.contains("auth/userpass/login/locked"));
    assert!(
        !audit.contains("right-password") && !audit.contains(&token),
        "secrets are HMAC'd"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What the review of the auth methods found, each pinned: no root tokens from
/// auth methods; a path with an empty segment never reaches an engine (policies
/// match paths as written); `sys/auth` needs sudo; a user named `login` is
/// administered, not logged in; revocation by path respects segments; a secret
/// ID cannot loosen its role's limits; disabling a method revokes its tokens.
#[tokio::test]
async fn auth_methods_hold_their_security_boundaries() {
    let s = Server::new();
    for (path, kind) in [
        ("userpass", "userpass"),
        ("userpass2", "userpass"),
        ("approle", "approle"),
    ] {
        let (status, _) = s.post(&format!("/v1/sys/auth/{path}"), json!({ "type": kind })).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let (status, body) = s
        .post(
            "/v1/auth/userpass/users/eve",
            json!({"password": "p", "token_policies": "root"}),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"errors": ["auth methods cannot create root tokens"]})
        )
    );
    let (status, _) = s
        .post("/v1/auth/approle/role/r", json!({"policies": ["default", "root"]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // `secret//data/x` is not `secret/data/x`.
    let (status, _) = s.post("/v1/secret//data/x", json!({"data": {"a": "b"}})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = s.post("/v1/secret/./data/x", json!({"data": {"a": "b"}})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"errors": ["relative paths not supported"]})
        )
    );

    // A token with `update` but not `sudo` on sys/auth cannot change auth methods.
    let (status, _) = s
        .call(
            "PUT",
            "/v1/sys/policy/auth-admin",
            Some(ROOT),
            Some(json!({"policy": "path \"sys/auth/*\" { capabilities = [\"create\", \"update\", \"delete\"] }"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, made) = s
        .post("/v1/auth/token/create", json!({"policies": ["auth-admin"]}))
        .await;
    let admin = made["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, _) = s.call("DELETE", "/v1/sys/auth/userpass", Some(&admin), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "sudo is needed");

    // A user named `login` is a user like any other.
    let (status, _) = s.post("/v1/auth/userpass/users/login", json!({"password": "pw"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = s.get("/v1/auth/userpass/users/login").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = s
        .call(
            "POST",
            "/v1/auth/userpass/users/login",
            None,
            Some(json!({"password": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "not taken for a login: it needs a token");

    // Revocation by path takes whole segments.
    let login = |mount: &'static str| {
        let s = &s;
        async move {
            let (status, _) = s
                .post(&format!("/v1/auth/{mount}/users/u"), json!({"password": "pw"}))
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            let (status, body) = s
                .call(
                    "POST",
                    &format!("/v1/auth/{mount}/login/u"),
                    None,
                    Some(json!({"password": "pw"})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["auth"]["client_token"].as_str().unwrap().to_owned()
        }
    };
    let (first, second) = (login("userpass").await, login("userpass2").await);
    let (status, _) = s
        .call(
            "PUT",
            "/v1/sys/leases/revoke-prefix/auth/userpass",
            Some(ROOT),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let lookup = |token: String| {
        let s = &s;
        async move { s.call("GET", "/v1/auth/token/lookup-self", Some(&token), None).await.0 }
    };
    assert_eq!(lookup(first).await, StatusCode::FORBIDDEN);
    assert_eq!(
        lookup(second.clone()).await,
        StatusCode::OK,
        "auth/userpass2 is another path"
    );

    // Disabling a method revokes the tokens it made.
    let (status, _) = s.call("DELETE", "/v1/sys/auth/userpass2", Some(ROOT), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(lookup(second).await, StatusCode::FORBIDDEN);

    // A secret ID can tighten its role's limits, not loosen them.
    let (status, _) = s
        .post(
            "/v1/auth/approle/role/r",
            json!({"secret_id_num_uses": 1, "secret_id_ttl": "10m"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Asking for more (or for none, under a limit) is refused, as in OpenBao, not
    // silently clamped.
    for (asked, error) in [
        (
            json!({"num_uses": 0}),
            "num_uses cannot be higher than the role's secret_id_num_uses",
        ),
        (
            json!({"num_uses": 2}),
            "num_uses cannot be higher than the role's secret_id_num_uses",
        ),
        (json!({"ttl": 0}), "ttl cannot be longer than the role's secret_id_ttl"),
        (
            json!({"ttl": "20m"}),
            "ttl cannot be longer than the role's secret_id_ttl",
        ),
    ] {
        let (status, body) = s.post("/v1/auth/approle/role/r/secret-id", asked.clone()).await;
        assert_eq!(
            (status, body),
            (StatusCode::BAD_REQUEST, json!({ "errors": [error] })),
            "{asked}"
        );
    }
    let (_, body) = s.post("/v1/auth/approle/role/r/secret-id", json!({"ttl": "5m"})).await;
    assert_eq!(body["data"]["secret_id_num_uses"], 1);
    assert_eq!(body["data"]["secret_id_ttl"], 300);
    let (_, body) = s.post("/v1/auth/approle/role/r/secret-id", json!({})).await;
    assert_eq!(body["data"]["secret_id_ttl"], 600);
}

/// A mount's tuned lease settings are what a KV version 1 read grants.
#[tokio::test]
async fn tuned_lease_settings_shape_kv_reads() {
    let s = Server::new();
    let (status, _) = s.post("/v1/sys/mounts/leased", json!({"type": "kv"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    s.post("/v1/leased/a", json!({"k": "v"})).await;
    s.post("/v1/leased/b", json!({"k": "v", "ttl": "5h"})).await;
    let (_, body) = s.get("/v1/leased/a").await;
    assert_eq!(body["lease_duration"], 768 * 3600);
    let (status, _) = s
        .post(
            "/v1/sys/mounts/leased/tune",
            json!({"default_lease_ttl": "1h", "max_lease_ttl": "2h"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = s.get("/v1/leased/a").await;
    assert_eq!(body["lease_duration"], 3600, "the mount's default");
    let (_, body) = s.get("/v1/leased/b").await;
    assert_eq!(
        body["lease_duration"], 7200,
        "the value's own, capped at the mount's maximum"
    );
    let (_, body) = s.get("/v1/sys/mounts/leased/tune").await;
    assert_eq!(body["data"]["default_lease_ttl"], 3600);
    let (status, _) = s
        .post("/v1/sys/mounts/transit/tune", json!({"default_lease_ttl": "1h"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "built-in mounts are not tuned");
    let (status, _) = s
        .post("/v1/sys/mounts/leased/tune", json!({"options": {"version": "2"}}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "options are refused, not ignored");
    let (status, _) = s
        .post("/v1/sys/mounts/leased/tune", json!({"default_lease_ttl": "3h"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "default above the maximum");
}

/// `sys/internal/ui/mounts/<mount>` (what the CLI asks with `-mount=`) answers a
/// token allowed anything below the mount, and refuses one allowed nothing there.
#[tokio::test]
async fn mount_preflight_follows_grants_below_the_mount() {
    let s = Server::new();
    let (status, _) = s
        .call(
            "PUT",
            "/v1/sys/policy/app-reader",
            Some(ROOT),
            Some(json!({"policy": "path \"secret/data/app/*\" { capabilities = [\"read\"] }"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let token = |policies: Value| {
        let s = &s;
        async move {
            let (_, made) = s.post("/v1/auth/token/create", json!({ "policies": policies })).await;
            made["auth"]["client_token"].as_str().unwrap().to_owned()
        }
    };
    let reader = token(json!(["app-reader"])).await;
    let nobody = token(json!(["default"])).await;
    for path in [
        "/v1/sys/internal/ui/mounts/secret",
        "/v1/sys/internal/ui/mounts/secret/app/x",
    ] {
        let (status, body) = s.call("GET", path, Some(&reader), None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["data"]["options"]["version"], "2");
        let (status, _) = s.call("GET", path, Some(&nobody), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
}

/// The raw answer to a `GET`: status, content type and body text.
async fn get_text(router: &axum::Router, path: &str, token: Option<&str>) -> (StatusCode, String, String) {
    let mut request = Request::builder().method("GET").uri(path);
    if let Some(token) = token {
        request = request.header("X-Vault-Token", token);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, content_type, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn metrics_count_requests_items_and_failures_in_prometheus_text() {
    let s = Server::new();
    s.post("/v1/transit/keys/metered", json!({})).await;
    let pt = b64("x");
    let (status, _) = s.post("/v1/transit/encrypt/metered", json!({"plaintext": pt})).await;
    assert_eq!(status, StatusCode::OK);
    let batch = json!({"batch_input": [{"plaintext": pt}, {"plaintext": pt}, {"plaintext": pt}]});
    let (status, _) = s.post("/v1/transit/encrypt/metered", batch).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.post("/v1/transit/encrypt/metered", json!({"plaintext": "!!"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, content_type, text) = get_text(&s.router, "/v1/sys/metrics?format=prometheus", Some(ROOT)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    for line in [
        "encrypted_attr_requests_total{family=\"transit/encrypt\",status=\"200\"} 2",
        "encrypted_attr_requests_total{family=\"transit/encrypt\",status=\"400\"} 1",
        "encrypted_attr_request_seconds_count{family=\"transit/encrypt\"} 3",
        // One item, then a batch of three; the refused request counts none.
        "encrypted_attr_transit_items_total{key=\"metered\",operation=\"encrypt\"} 4",
        "encrypted_attr_batch_items_count{operation=\"encrypt\"} 1",
        "encrypted_attr_batch_items_sum{operation=\"encrypt\"} 3",
        "encrypted_attr_sealed 0",
        "encrypted_attr_initialized 1",
        "encrypted_attr_audit_failures_total 0",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
    // A batch with a failed item answers 400: its items are not counted.
    let failing = json!({"batch_input": [{"plaintext": pt}, {"plaintext": "!!"}]});
    let (status, _) = s.post("/v1/transit/encrypt/metered", failing).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, _, text) = get_text(&s.router, "/v1/sys/metrics?format=prometheus", Some(ROOT)).await;
    assert!(text.contains("encrypted_attr_transit_items_total{key=\"metered\",operation=\"encrypt\"} 4"));
    // A deleted key's series go with it.
    s.post("/v1/transit/keys/metered/config", json!({"deletion_allowed": true}))
        .await;
    let (status, _) = s.call("DELETE", "/v1/transit/keys/metered", Some(ROOT), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, after) = get_text(&s.router, "/v1/sys/metrics?format=prometheus", Some(ROOT)).await;
    assert!(!after.contains("key=\"metered\""), "{after}");
    // Paths and plaintexts never become labels.
    assert!(!text.contains(&pt) && !text.contains("\"!!\""));

    // Vault's answers for other formats, as text.
    let (status, content_type, text) = get_text(&s.router, "/v1/sys/metrics?format=xml", Some(ROOT)).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::BAD_REQUEST, "text/plain"));
    assert_eq!(text, "metric response format \"xml\" unknown");

    // A token needs `read` on sys/metrics; none at all is refused.
    let (status, _, _) = get_text(&s.router, "/v1/sys/metrics?format=prometheus", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, made) = s.post("/v1/auth/token/create", json!({"policies": ["default"]})).await;
    let plain = made["auth"]["client_token"].as_str().unwrap();
    let (status, _, _) = get_text(&s.router, "/v1/sys/metrics?format=prometheus", Some(plain)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn metrics_can_leave_key_names_out() {
    let engine = Arc::new(LocalEngine::ephemeral().unwrap());
    let (state, _) = AppState::new(engine, Some(ROOT)).unwrap();
    let router = app(Arc::new(state.with_metrics_key_names(false)));
    let s = Server {
        router,
        engine: Arc::new(LocalEngine::ephemeral().unwrap()),
    };
    s.post("/v1/transit/keys/customer-email", json!({})).await;
    let (status, _) = s
        .post("/v1/transit/encrypt/customer-email", json!({"plaintext": b64("x")}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, text) = get_text(&s.router, "/v1/sys/metrics?format=prometheus", Some(ROOT)).await;
    assert!(!text.contains("customer-email"), "{text}");
    assert!(text.contains("encrypted_attr_transit_items_total{key=\"\",operation=\"encrypt\"} 1"));
}

#[tokio::test]
async fn kv_v2_patch_merges_into_the_latest_version_and_needs_patch() {
    // Dev mode mounts KV version 2 at `secret/`.
    let s = Server::new();
    s.post(
        "/v1/secret/data/app",
        json!({"data": {"a": 1, "b": {"x": 1}, "c": "keep"}}),
    )
    .await;
    let patch = |token: &str, body: Value, content_type: &str| {
        let request = Request::builder()
            .method("PATCH")
            .uri("/v1/secret/data/app")
            .header("X-Vault-Token", token)
            .header("Content-Type", content_type)
            .body(Body::from(body.to_string()))
            .unwrap();
        s.raw(request)
    };
    let merge = "application/merge-patch+json";
    let (status, body) = patch(ROOT, json!({"data": {"a": null, "b": {"y": 2}}}), merge).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["version"], 2);
    let (_, read) = s.get("/v1/secret/data/app").await;
    assert_eq!(read["data"]["data"], json!({"b": {"x": 1, "y": 2}, "c": "keep"}));

    // The media type counts, not its parameters or case (as Go's parser reads it).
    let (status, body) = patch(
        ROOT,
        json!({"data": {"c": "keep"}}),
        "Application/Merge-Patch+JSON; charset=utf-8",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = patch(ROOT, json!({"data": {"a": 2}}), "").await;
    assert_eq!(
        (status, body["errors"][0].as_str()),
        (StatusCode::BAD_REQUEST, Some("mime: no media type"))
    );
    let (status, body) = patch(ROOT, json!({"data": {"a": 2}}), "application/json").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        body["errors"][0],
        "PATCH requires Content-Type of application/merge-patch+json, provided application/json"
    );

    // `update` is not `patch`, as in Vault.
    let policy = r#"path "secret/data/*" { capabilities = ["read", "update"] }"#;
    s.call(
        "PUT",
        "/v1/sys/policies/acl/writer",
        Some(ROOT),
        Some(json!({"policy": policy})),
    )
    .await;
    let (_, made) = s.post("/v1/auth/token/create", json!({"policies": ["writer"]})).await;
    let writer = made["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, _) = patch(&writer, json!({"data": {"c": "changed"}}), merge).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let policy = r#"path "secret/data/*" { capabilities = ["patch"] }"#;
    s.call(
        "PUT",
        "/v1/sys/policies/acl/patcher",
        Some(ROOT),
        Some(json!({"policy": policy})),
    )
    .await;
    let (_, made) = s.post("/v1/auth/token/create", json!({"policies": ["patcher"]})).await;
    let patcher = made["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, body) = patch(&patcher, json!({"data": {"c": "changed"}}), merge).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, read) = s.get("/v1/secret/data/app").await;
    assert_eq!(read["data"]["data"]["c"], "changed");
}

/// Request paths are percent-decoded once, before anything else: a deny rule
/// naming the real path applies to its escaped form, listings show decoded names,
/// and escapes that decode to something no name may hold are refused.
#[tokio::test]
async fn escaped_paths_are_decoded_before_policies_and_storage() {
    let s = Server::new();
    let policy = r#"
        path "secret/data/*" { capabilities = ["read", "create", "update"] }
        path "secret/metadata/*" { capabilities = ["list"] }
        path "secret/data/team a/*" { capabilities = ["deny"] }
        path "secret/data/café" { capabilities = ["deny"] }
    "#;
    let (status, _) = s.post("/v1/sys/policy/escapes", json!({ "policy": policy })).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for path in ["team%20a/db", "caf%C3%A9", "open%20door"] {
        let (status, body) = s
            .post(&format!("/v1/secret/data/{path}"), json!({"data": {"v": "s"}}))
            .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (_, made) = s.post("/v1/auth/token/create", json!({"policies": ["escapes"]})).await;
    let token = made["auth"]["client_token"].as_str().unwrap().to_owned();
    for denied in ["team%20a/db", "caf%C3%A9", "caf%c3%a9", "team%20a%2fdb"] {
        let (status, _) = s
            .call("GET", &format!("/v1/secret/data/{denied}"), Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{denied}");
    }
    let (status, body) = s.call("GET", "/v1/secret/data/open%20door", Some(&token), None).await;
    assert_eq!((status, &body["data"]["data"]), (StatusCode::OK, &json!({"v": "s"})));
    // Listed by the names they have.
    let (_, listed) = s.call("LIST", "/v1/secret/metadata", Some(&token), None).await;
    assert_eq!(listed["data"]["keys"], json!(["café", "open door", "team a/"]));

    // An escape that is not one, `..` or `.` once decoded, NUL: 400, nothing stored.
    for (path, error) in [
        ("/v1/secret/data/x%", "invalid URL escape \"%\""),
        ("/v1/secret/data/x%zz", "invalid URL escape \"%zz\""),
        ("/v1/secret/data/%2e%2e/x", "relative paths not supported"),
        ("/v1/secret/data/a/%2E/b", "relative paths not supported"),
    ] {
        let (status, body) = s.post(path, json!({"data": {"a": "b"}})).await;
        assert_eq!(
            (status, body),
            (StatusCode::BAD_REQUEST, json!({ "errors": [error] })),
            "{path}"
        );
    }
    let (status, _) = s.post("/v1/secret/data/a%00b", json!({"data": {"a": "b"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A name ending in `/` is a folder: Vault's words, not the storage layout.
    let (status, body) = s.post("/v1/secret/data/x/", json!({"data": {"a": "b"}})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"errors": ["cannot write to a path ending in '/'"]})
        )
    );
    let (_, listed) = s.call("LIST", "/v1/secret/metadata", Some(ROOT), None).await;
    assert_eq!(listed["data"]["keys"], json!(["café", "open door", "team a/"]));

    // Users and policies with names that need escaping: decoded too.
    let (status, _) = s.post("/v1/sys/auth/userpass", json!({"type": "userpass"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.post("/v1/auth/userpass/users/a%20b", json!({"password": "pw"})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, users) = s.call("LIST", "/v1/auth/userpass/users", Some(ROOT), None).await;
    assert_eq!(users["data"]["keys"], json!(["a b"]));
    let (status, login) = s
        .call(
            "POST",
            "/v1/auth/userpass/login/a%20b",
            None,
            Some(json!({"password": "pw"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
}

fn client_token(made: &Value) -> String {
    made["auth"]["client_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token in {made}"))
        .to_owned()
}

/// Token restrictions asked for are enforced, as Vault enforces them, or refused
/// by name: never accepted and dropped.
#[tokio::test]
async fn token_restrictions_are_enforced_or_refused() {
    let s = Server::new();
    // `num_uses`: that many requests, then 403 — the last one sees -1, as in Vault.
    let (status, made) = s
        .post("/v1/auth/token/create", json!({"num_uses": 2, "policies": ["default"]}))
        .await;
    assert_eq!(
        (status, &made["auth"]["num_uses"]),
        (StatusCode::OK, &json!(2)),
        "{made}"
    );
    let limited = client_token(&made);
    let (status, first) = s.call("GET", "/v1/auth/token/lookup-self", Some(&limited), None).await;
    assert_eq!((status, &first["data"]["num_uses"]), (StatusCode::OK, &json!(1)));
    let (status, last) = s.call("GET", "/v1/auth/token/lookup-self", Some(&limited), None).await;
    assert_eq!((status, &last["data"]["num_uses"]), (StatusCode::OK, &json!(-1)));
    let (status, _) = s.call("GET", "/v1/auth/token/lookup-self", Some(&limited), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Revoked once spent: a lookup by value finds nothing.
    let (status, _) = s.post("/v1/auth/token/lookup", json!({ "token": limited })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Counted on the hot path too: an encrypt spends a use.
    s.post(
        "/v1/sys/policy/enc",
        json!({"policy": "path \"transit/*\" { capabilities = [\"create\", \"update\"] }"}),
    )
    .await;
    let (_, made) = s
        .post("/v1/auth/token/create", json!({"num_uses": 1, "policies": ["enc"]}))
        .await;
    let once = client_token(&made);
    let encrypt = json!({"plaintext": b64("x")});
    let (status, _) = s
        .call("POST", "/v1/transit/encrypt/k", Some(&once), Some(encrypt.clone()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .call("POST", "/v1/transit/encrypt/k", Some(&once), Some(encrypt))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = s.post("/v1/auth/token/create", json!({"num_uses": -1})).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"errors": ["number of uses cannot be negative"]})
        )
    );

    // `explicit_max_ttl` caps the TTL, with Vault's warning, and every renewal.
    let (_, made) = s
        .post(
            "/v1/auth/token/create",
            json!({"explicit_max_ttl": "2s", "ttl": "1h", "policies": ["default"]}),
        )
        .await;
    assert_eq!(made["auth"]["lease_duration"], json!(2));
    assert_eq!(
        made["warnings"],
        json!(["TTL of \"1h\" exceeded the effective max_ttl of \"2s\"; TTL value is capped accordingly"])
    );
    let capped = client_token(&made);
    let (_, renewed) = s
        .call(
            "POST",
            "/v1/auth/token/renew-self",
            Some(&capped),
            Some(json!({"increment": "1h"})),
        )
        .await;
    assert!(renewed["auth"]["lease_duration"].as_u64().unwrap() <= 2, "{renewed}");
    let (_, looked) = s.call("GET", "/v1/auth/token/lookup-self", Some(&capped), None).await;
    assert_eq!(looked["data"]["explicit_max_ttl"], json!(2));
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, _) = s.call("GET", "/v1/auth/token/lookup-self", Some(&capped), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // `period`: the TTL is the period, and a renewal sets it again whatever is asked.
    let (_, made) = s
        .post(
            "/v1/auth/token/create",
            json!({"period": "30m", "ttl": "1h", "policies": ["default"]}),
        )
        .await;
    assert_eq!(made["auth"]["lease_duration"], json!(1800));
    let periodic = client_token(&made);
    let (_, renewed) = s
        .call(
            "POST",
            "/v1/auth/token/renew-self",
            Some(&periodic),
            Some(json!({"increment": "5h"})),
        )
        .await;
    assert_eq!(renewed["auth"]["lease_duration"], json!(1800));
    let (_, looked) = s.call("GET", "/v1/auth/token/lookup-self", Some(&periodic), None).await;
    assert_eq!(looked["data"]["period"], json!(1800));
    // Only root or sudo makes periodic tokens.
    s.post(
        "/v1/sys/policy/creator",
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }"}),
    )
    .await;
    let (_, made) = s.post("/v1/auth/token/create", json!({"policies": ["creator"]})).await;
    let creator = client_token(&made);
    let (status, body) = s
        .call(
            "POST",
            "/v1/auth/token/create",
            Some(&creator),
            Some(json!({"period": "1h"})),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"errors": ["root or sudo privileges required to create periodic token"]})
        )
    );

    // `display_name` in Vault's form; unknown parameters named in the warning.
    let (_, made) = s
        .post(
            "/v1/auth/token/create",
            json!({"display_name": "My App!", "bogus_param": 1, "policies": ["default"]}),
        )
        .await;
    assert_eq!(
        made["warnings"],
        json!(["Endpoint ignored these unrecognized parameters: [bogus_param]"])
    );
    let (_, looked) = s
        .call("GET", "/v1/auth/token/lookup-self", Some(&client_token(&made)), None)
        .await;
    assert_eq!(looked["data"]["display_name"], json!("token-My-App"));

    // What this server does not make is refused by name.
    for (body, names) in [
        (json!({"type": "batch", "policies": ["default"]}), "batch tokens"),
        (json!({"role_name": "r"}), "token roles"),
        (json!({"id": "chosen"}), "tokens with a chosen value"),
    ] {
        let (status, answer) = s.post("/v1/auth/token/create", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer["errors"][0].as_str().unwrap().contains(names), "{answer}");
    }

    // userpass's token settings reach its logins' tokens.
    s.post("/v1/sys/auth/userpass", json!({"type": "userpass"})).await;
    let (status, _) = s
        .post(
            "/v1/auth/userpass/users/carl",
            json!({"password": "pw", "token_num_uses": 1, "token_period": "1h", "token_explicit_max_ttl": "2h"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, user) = s.get("/v1/auth/userpass/users/carl").await;
    for (field, value) in [
        ("token_num_uses", 1),
        ("token_period", 3600),
        ("token_explicit_max_ttl", 7200),
    ] {
        assert_eq!(user["data"][field], json!(value), "{field}: {user}");
    }
    let (_, login) = s
        .call(
            "POST",
            "/v1/auth/userpass/login/carl",
            None,
            Some(json!({"password": "pw"})),
        )
        .await;
    assert_eq!(login["auth"]["num_uses"], json!(1), "{login}");
    assert_eq!(login["auth"]["lease_duration"], json!(3600));
    let carl = client_token(&login);
    let (status, _) = s.call("GET", "/v1/auth/token/lookup-self", Some(&carl), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.call("GET", "/v1/auth/token/lookup-self", Some(&carl), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for (body, refused) in [
        (json!({"password": "pw", "token_type": "batch"}), "batch tokens"),
        (
            json!({"password": "pw", "token_strictly_bind_ip": true}),
            "token_strictly_bind_ip",
        ),
        (
            json!({"password": "pw", "token_bound_cidrs": "300.0.0.0/8"}),
            "invalid CIDR block",
        ),
    ] {
        let (status, answer) = s.post("/v1/auth/userpass/users/dan", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer["errors"][0].as_str().unwrap().contains(refused), "{answer}");
    }
    // A user bound to networks cannot log in from an address not known (no socket).
    s.post(
        "/v1/auth/userpass/users/erin",
        json!({"password": "pw", "token_bound_cidrs": "127.0.0.1/32"}),
    )
    .await;
    let (status, _) = s
        .call(
            "POST",
            "/v1/auth/userpass/login/erin",
            None,
            Some(json!({"password": "pw"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Settings Vault would take but this server cannot honour are refused by name,
/// and numbers Vault would wrap into others are refused rather than changed.
#[tokio::test]
async fn unsupported_or_out_of_range_settings_are_refused() {
    let s = Server::new();
    let (status, _) = s
        .post(
            "/v1/sys/mounts/tuned",
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for setting in [
        json!({"listing_visibility": "unauth"}),
        json!({"audit_non_hmac_request_keys": ["plaintext"]}),
        json!({"passthrough_request_headers": ["X-Custom"]}),
    ] {
        let (status, body) = s.post("/v1/sys/mounts/tuned/tune", setting.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{setting}");
        let name = setting.as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(
            body["errors"][0],
            format!("tuning {name} is not supported by this server")
        );
    }
    for duration in ["999999999h", "2562048h", "1y"] {
        let (status, body) = s
            .post("/v1/sys/mounts/tuned/tune", json!({"default_lease_ttl": duration}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{duration}");
        assert_eq!(body["errors"][0], format!("time: invalid duration {duration:?}"));
    }
    let (status, body) = s
        .post("/v1/sys/mounts/tuned/tune", json!({"max_lease_ttl": "2562047h"}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "the longest duration Go reads: {body}");
    for max in [json!(-1), json!(1_000_000_000_000_u64), json!(4_294_967_296_u64)] {
        let (status, body) = s.post("/v1/tuned/metadata/m", json!({"max_versions": max})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{max}");
        assert_eq!(body["errors"][0], "max_versions must be between 0 and 4294967295");
        let (status, _) = s.post("/v1/tuned/config", json!({"max_versions": max})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{max}");
    }
    let (status, _) = s
        .post("/v1/tuned/metadata/m", json!({"max_versions": 4_294_967_295_u64}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}
