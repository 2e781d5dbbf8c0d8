//! Integration tests of the in-process engine through the public API: error kinds,
//! batches, rotation, budgets, the keyring file across restarts and processes.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::path::PathBuf;
use std::sync::Arc;

use encrypted_attr::storage::{FileStorage, MemoryStorage};
use encrypted_attr::{
    AsyncTransitEngine, Bytes, Ciphertext, DataKeyBits, DataKeyRequest, DecryptItem, EncryptItem, EngineOptions, Error,
    ExportKind, HashAlgorithm, HmacItem, KeyConfig, KeyName, KeyOptions, KeyType, KeyVersion, LocalEngine, RewrapItem,
    RootKey, TransitEngine, VerifyHmacItem,
};
use proptest::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn name(s: &str) -> KeyName {
    KeyName::new(s).expect("valid test key name")
}

fn engine_with(key: &str, options: KeyOptions) -> (LocalEngine, KeyName) {
    let engine = LocalEngine::ephemeral().expect("ephemeral engine");
    let key = name(key);
    engine.create_key(&key, options).expect("create key");
    (engine, key)
}

fn v(n: u32) -> KeyVersion {
    KeyVersion::new(n).expect("non-zero version")
}

/// A fresh directory under the system temp dir, removed by the caller.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "encrypted-attr-{tag}-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

#[test]
fn round_trip_and_vault_envelope() -> TestResult {
    let (engine, key) = engine_with("users_ssn", KeyOptions::default());
    let ct = engine.encrypt(&key, EncryptItem::new("123-45-6789"))?;
    let text = ct.to_string();
    assert!(text.starts_with("vault:v1:"), "{text}");
    // 12-byte nonce + 11 bytes + 16-byte tag, standard base64 with padding.
    assert_eq!(ct.payload().len(), 12 + 11 + 16);
    let parsed: Ciphertext = text.parse()?;
    assert_eq!(
        engine.decrypt(&key, DecryptItem::new(parsed))?.expose_secret(),
        b"123-45-6789"
    );
    // Random nonces: the same plaintext never gives the same ciphertext.
    assert_ne!(engine.encrypt(&key, EncryptItem::new("123-45-6789"))?, ct);
    // The empty string is encrypted too.
    let empty = engine.encrypt(&key, EncryptItem::new(""))?;
    assert_eq!(empty.payload().len(), 28);
    assert!(engine.decrypt(&key, DecryptItem::new(empty))?.is_empty());
    Ok(())
}

#[test]
fn each_failure_has_its_own_error() -> TestResult {
    let (engine, key) = engine_with("k", KeyOptions::default());
    let ct = engine.encrypt(&key, EncryptItem::new("secret").associated_data("users/ssn/7"))?;

    // A flipped byte anywhere in the payload: one opaque failure.
    for i in [0, 12, ct.payload().len() - 1] {
        let mut payload = ct.payload();
        payload[i] ^= 0x01;
        let tampered = Ciphertext::from_parts(ct.version(), payload);
        let err = engine.decrypt(&key, DecryptItem::new(tampered).associated_data("users/ssn/7"));
        assert!(matches!(err, Err(Error::DecryptionFailed)), "byte {i}: {err:?}");
    }
    // Wrong or missing associated data.
    let err = engine.decrypt(&key, DecryptItem::new(ct.clone()).associated_data("users/ssn/8"));
    assert!(matches!(err, Err(Error::DecryptionFailed)), "{err:?}");
    let err = engine.decrypt(&key, DecryptItem::new(ct.clone()));
    assert!(matches!(err, Err(Error::DecryptionFailed)), "{err:?}");
    // Unknown key.
    let err = engine.decrypt(&name("nope"), DecryptItem::new(ct.clone()));
    assert!(matches!(err, Err(Error::KeyNotFound { .. })), "{err:?}");
    // A version the key does not have yet.
    let future = Ciphertext::from_parts(v(9), ct.payload());
    let err = engine.decrypt(&key, DecryptItem::new(future));
    assert!(matches!(err, Err(Error::VersionTooNew { .. })), "{err:?}");
    // A context on a key that is not derived would be silently ignored by Vault.
    let err = engine.encrypt(&key, EncryptItem::new("x").context("ctx"));
    assert!(matches!(err, Err(Error::ContextNotAllowed { .. })), "{err:?}");
    // A retired version.
    engine.rotate_key(&key)?;
    engine.configure_key(&key, KeyConfig::default().min_decryption_version(2))?;
    let err = engine.decrypt(&key, DecryptItem::new(ct).associated_data("users/ssn/7"));
    assert!(matches!(err, Err(Error::VersionRetired { .. })), "{err:?}");
    // Malformed envelopes are refused before any crypto.
    assert!(matches!(
        "vault:v1:!!".parse::<Ciphertext>(),
        Err(Error::MalformedCiphertext(_))
    ));
    let short = Ciphertext::from_parts(v(2), vec![0; 20]);
    let err = engine.decrypt(&key, DecryptItem::new(short));
    assert!(matches!(err, Err(Error::MalformedCiphertext(_))), "{err:?}");
    Ok(())
}

#[test]
fn derived_keys_need_the_right_context() -> TestResult {
    let (engine, key) = engine_with("derived", KeyOptions::default().derived(true));
    let ct = engine.encrypt(&key, EncryptItem::new("v").context("tenant-1"))?;
    assert_eq!(
        engine
            .decrypt(&key, DecryptItem::new(ct.clone()).context("tenant-1"))?
            .expose_secret(),
        b"v"
    );
    let err = engine.decrypt(&key, DecryptItem::new(ct.clone()).context("tenant-2"));
    assert!(matches!(err, Err(Error::DecryptionFailed)), "{err:?}");
    let err = engine.decrypt(&key, DecryptItem::new(ct));
    assert!(matches!(err, Err(Error::MissingContext)), "{err:?}");
    let err = engine.encrypt(&key, EncryptItem::new("v").context(""));
    assert!(matches!(err, Err(Error::MissingContext)), "{err:?}");
    Ok(())
}

#[test]
fn batch_reports_bad_items_and_processes_the_rest() -> TestResult {
    let (engine, key) = engine_with("batch", KeyOptions::default());
    let good = engine.encrypt(&key, EncryptItem::new("one"))?;
    let mut bad_payload = good.payload();
    bad_payload[15] ^= 0xff;
    let results = engine.decrypt_batch(
        &key,
        vec![
            DecryptItem::new(good.clone()),
            DecryptItem::new(Ciphertext::from_parts(good.version(), bad_payload)),
            DecryptItem::new(Ciphertext::from_parts(v(5), good.payload())),
            DecryptItem::new(good),
        ],
    )?;
    assert_eq!(results.len(), 4);
    assert_eq!(
        results[0].as_ref().map(|p| p.expose_secret().to_vec()).ok(),
        Some(b"one".to_vec())
    );
    assert!(matches!(results[1], Err(Error::DecryptionFailed)));
    assert!(matches!(results[2], Err(Error::VersionTooNew { .. })));
    assert!(results[3].is_ok());

    let results = engine.encrypt_batch(
        &key,
        vec![
            EncryptItem::new("a"),
            EncryptItem::new("b").key_version(v(7)),
            EncryptItem::new("c"),
        ],
    )?;
    assert!(results[0].is_ok() && results[1].is_err() && results[2].is_ok());
    Ok(())
}

#[test]
fn rotation_rewrap_and_key_version() -> TestResult {
    let (engine, key) = engine_with("rot", KeyOptions::default());
    let old = engine.encrypt(&key, EncryptItem::new("payload").associated_data("t/c/1"))?;
    let info = engine.rotate_key(&key)?;
    assert_eq!(info.latest_version, v(2));
    let new = engine.encrypt(&key, EncryptItem::new("payload"))?;
    assert_eq!(new.version(), v(2));
    // Old ciphertexts still decrypt.
    assert_eq!(
        engine
            .decrypt(&key, DecryptItem::new(old.clone()).associated_data("t/c/1"))?
            .expose_secret(),
        b"payload"
    );
    // Rewrap keeps associated data (which Vault cannot do).
    let rewrapped = engine.rewrap(&key, RewrapItem::new(old.clone()).associated_data("t/c/1"))?;
    assert_eq!(rewrapped.version(), v(2));
    assert_eq!(
        engine
            .decrypt(&key, DecryptItem::new(rewrapped.clone()).associated_data("t/c/1"))?
            .expose_secret(),
        b"payload"
    );
    assert!(engine.decrypt(&key, DecryptItem::new(rewrapped)).is_err());
    // Rewrap with the wrong associated data fails and produces nothing.
    assert!(
        engine
            .rewrap(&key, RewrapItem::new(old).associated_data("t/c/2"))
            .is_err()
    );
    // Encrypting with an older version on request, within min_encryption_version.
    assert_eq!(
        engine.encrypt(&key, EncryptItem::new("x").key_version(v(1)))?.version(),
        v(1)
    );
    engine.configure_key(&key, KeyConfig::default().min_encryption_version(2))?;
    assert!(engine.encrypt(&key, EncryptItem::new("x").key_version(v(1))).is_err());
    Ok(())
}

#[test]
fn convergent_encryption_is_deterministic_per_version_and_context() -> TestResult {
    let (engine, key) = engine_with("users_email", KeyOptions::convergent());
    let enc = |pt: &str, ctx: &str| engine.encrypt(&key, EncryptItem::new(pt).context(ctx));
    assert_eq!(enc("a@b.c", "users.email")?, enc("a@b.c", "users.email")?);
    assert_ne!(enc("a@b.c", "users.email")?, enc("a@b.d", "users.email")?);
    assert_ne!(enc("a@b.c", "users.email")?, enc("a@b.c", "users.other")?);
    // Associated data enters the nonce: the same plaintext under two AADs does not
    // reuse a (key, nonce) pair.
    let with = |aad: &str| {
        engine.encrypt(
            &key,
            EncryptItem::new("a@b.c").context("users.email").associated_data(aad),
        )
    };
    let (x, y) = (with("row-1")?, with("row-2")?);
    assert_ne!(x.payload()[..12], y.payload()[..12]);
    assert_eq!(with("row-1")?, x);

    // After a rotation, a lookup covers every decryptable version.
    let before = enc("a@b.c", "users.email")?;
    let info = engine.rotate_key(&key)?;
    let lookups: Vec<Ciphertext> = info
        .decryptable_versions()
        .map(|version| {
            engine.encrypt(
                &key,
                EncryptItem::new("a@b.c").context("users.email").key_version(version),
            )
        })
        .collect::<Result<_, _>>()?;
    assert_eq!(lookups.len(), 2);
    assert!(lookups.contains(&before));
    assert!(lookups.contains(&enc("a@b.c", "users.email")?));
    Ok(())
}

#[test]
fn other_key_types_work_end_to_end() -> TestResult {
    for key_type in [KeyType::ChaCha20Poly1305, KeyType::Aes128Gcm96] {
        let (engine, key) = engine_with("typed", KeyOptions::default().key_type(key_type));
        let ct = engine.encrypt(&key, EncryptItem::new("value"))?;
        assert_eq!(engine.decrypt(&key, DecryptItem::new(ct))?.expose_secret(), b"value");
        assert_eq!(engine.read_key(&key)?.key_type, key_type);
    }
    Ok(())
}

#[test]
fn datakeys_hmac_random_hash() -> TestResult {
    let (engine, key) = engine_with("dk", KeyOptions::default());
    for bits in [128, 256, 512] {
        let request = DataKeyRequest::new(DataKeyBits::from_bits(bits)?);
        let dk = engine.datakey(&key, request)?;
        let plaintext = dk.plaintext.expect("plaintext datakey");
        assert_eq!(plaintext.len() * 8, bits as usize);
        assert_eq!(engine.decrypt(&key, DecryptItem::new(dk.ciphertext))?, plaintext);
        assert!(!format!("{plaintext:?}").contains(&format!("{:?}", plaintext.expose_secret())));
    }
    assert!(DataKeyBits::from_bits(64).is_err());
    let wrapped = engine.datakey(&key, DataKeyRequest::default().wrapped_only())?;
    assert!(wrapped.plaintext.is_none());

    let tag = engine.hmac(&key, HashAlgorithm::Sha2_256, HmacItem::new("input"))?;
    assert!(tag.to_string().starts_with("vault:v1:"));
    assert!(engine.verify_hmac(&key, HashAlgorithm::Sha2_256, VerifyHmacItem::new("input", tag.clone()))?);
    assert!(!engine.verify_hmac(&key, HashAlgorithm::Sha2_256, VerifyHmacItem::new("other", tag.clone()))?);
    assert!(!engine.verify_hmac(&key, HashAlgorithm::Sha2_512, VerifyHmacItem::new("input", tag.clone()))?);
    for alg in [
        HashAlgorithm::Sha2_224,
        HashAlgorithm::Sha2_384,
        HashAlgorithm::Sha2_512,
    ] {
        let t = engine.hmac(&key, alg, HmacItem::new("input"))?;
        assert!(engine.verify_hmac(&key, alg, VerifyHmacItem::new("input", t))?);
    }
    engine.rotate_key(&key)?;
    let tag2 = engine.hmac(&key, HashAlgorithm::Sha2_256, HmacItem::new("input"))?;
    assert_eq!(tag2.version(), v(2));
    assert_ne!(tag2.tag(), tag.tag(), "each version has its own HMAC key");
    engine.configure_key(&key, KeyConfig::default().min_decryption_version(2))?;
    assert!(
        engine
            .verify_hmac(&key, HashAlgorithm::Sha2_256, VerifyHmacItem::new("input", tag))
            .is_err()
    );
    assert!("vault:v1".parse::<encrypted_attr::HmacTag>().is_err());

    assert_eq!(engine.random_bytes(64)?.len(), 64);
    assert!(engine.random_bytes(0).is_err() && engine.random_bytes(200_000).is_err());
    assert_eq!(
        engine.hash(HashAlgorithm::Sha2_256, b"abc")?[..4],
        [0xba, 0x78, 0x16, 0xbf],
        "SHA-256(abc) starts ba7816bf"
    );
    Ok(())
}

#[test]
fn key_lifecycle_follows_vault_rules() -> TestResult {
    let (engine, key) = engine_with("life", KeyOptions::default());
    // Create is an idempotent upsert.
    let again = engine.create_key(&key, KeyOptions::convergent())?;
    assert!(!again.derived, "existing key unchanged");
    assert!(
        engine
            .create_key(&name("bad"), KeyOptions::default().convergent_encryption(true))
            .is_err()
    );
    engine.create_key(&name("another"), KeyOptions::default())?;
    assert_eq!(engine.list_keys()?, vec![name("another"), name("life")]);
    assert!(matches!(
        engine.read_key(&name("missing")),
        Err(Error::KeyNotFound { .. })
    ));

    for _ in 0..3 {
        engine.rotate_key(&key)?;
    }
    assert!(
        engine
            .configure_key(&key, KeyConfig::default().min_decryption_version(9))
            .is_err()
    );
    assert!(
        engine.trim_key(&key, v(2)).is_err(),
        "min_encryption_version must be set first"
    );
    engine.configure_key(
        &key,
        KeyConfig::default().min_decryption_version(3).min_encryption_version(4),
    )?;
    let info = engine.trim_key(&key, v(3))?;
    assert_eq!(info.versions.keys().copied().collect::<Vec<_>>(), vec![v(3), v(4)]);
    assert_eq!(info.min_available_version, 3);

    // Export only when exportable; never lets a secret reach Debug.
    assert!(matches!(
        engine.export_key(&key, ExportKind::EncryptionKey, None),
        Err(Error::NotAllowed(_))
    ));
    engine.configure_key(&key, KeyConfig::default().exportable(true))?;
    let exported = engine.export_key(&key, ExportKind::EncryptionKey, None)?;
    assert_eq!(exported.keys.len(), 2);
    assert!(exported.keys.values().all(|k| k.len() == 32));
    assert!(!format!("{exported:?}").contains(&format!("{:?}", exported.keys[&v(3)].expose_secret())));
    let hmac_keys = engine.export_key(&key, ExportKind::HmacKey, Some(v(4)))?;
    assert_eq!(hmac_keys.keys.len(), 1);
    assert!(engine.export_key(&key, ExportKind::EncryptionKey, Some(v(2))).is_err());

    // Delete only when allowed.
    assert!(matches!(engine.delete_key(&key), Err(Error::NotAllowed(_))));
    engine.configure_key(&key, KeyConfig::default().deletion_allowed(true))?;
    engine.delete_key(&key)?;
    assert!(matches!(engine.read_key(&key), Err(Error::KeyNotFound { .. })));
    assert!(matches!(engine.delete_key(&key), Err(Error::KeyNotFound { .. })));
    Ok(())
}

#[test]
fn nonce_budget_rotates_before_the_bound() -> TestResult {
    let engine = LocalEngine::ephemeral_with(EngineOptions::default().nonce_budget(10))?;
    let key = name("budget");
    engine.create_key(&key, KeyOptions::default())?;
    let mut versions = Vec::new();
    for i in 0..35 {
        let ct = engine.encrypt(&key, EncryptItem::new(format!("value {i}")))?;
        versions.push(ct.version().get());
        // Every ciphertext made so far still decrypts.
        assert!(engine.decrypt(&key, DecryptItem::new(ct)).is_ok());
    }
    // No version sealed more than its budget of 10.
    for n in 1..=4 {
        assert!(versions.iter().filter(|x| **x == n).count() <= 10, "{versions:?}");
    }
    assert_eq!(engine.read_key(&key)?.latest_version, v(4), "{versions:?}");
    // Convergent encryption uses no random nonces, so it spends no budget.
    let conv = name("conv");
    engine.create_key(&conv, KeyOptions::convergent())?;
    for _ in 0..30 {
        engine.encrypt(&conv, EncryptItem::new("same").context("c"))?;
    }
    assert_eq!(engine.read_key(&conv)?.latest_version, v(1));
    assert!(LocalEngine::ephemeral_with(EngineOptions::default().nonce_budget(1 << 40)).is_err());
    Ok(())
}

#[test]
fn keyring_file_survives_restart_and_refuses_the_wrong_root_key() -> TestResult {
    let dir = temp_dir("restart");
    let path = dir.join("keyring.json");
    let root = RootKey::generate()?;
    let key = name("users_ssn");
    let ct = {
        let engine = LocalEngine::open(&path, &root)?;
        engine.create_key(&key, KeyOptions::default())?;
        engine.rotate_key(&key)?;
        engine.encrypt(&key, EncryptItem::new("persisted"))?
    };
    let raw = std::fs::read_to_string(&path)?;
    assert!(!raw.contains("persisted"));

    // Same root key (from its text form, as an operator would pass it): all there.
    let reopened = LocalEngine::open(&path, &RootKey::from_text(&root.expose_base64())?)?;
    assert_eq!(reopened.read_key(&key)?.latest_version, v(2));
    assert_eq!(
        reopened.decrypt(&key, DecryptItem::new(ct))?.expose_secret(),
        b"persisted"
    );
    drop(reopened);

    // Wrong root key: a clear error, and the file is untouched.
    let err = LocalEngine::open(&path, &RootKey::generate()?);
    assert!(matches!(err, Err(Error::WrongRootKey)), "{err:?}");
    assert_eq!(std::fs::read_to_string(&path)?, raw);

    // Truncated (a torn copy, a full disk): detected, not replaced.
    std::fs::write(&path, &raw[..raw.len() - 40])?;
    let err = LocalEngine::open(&path, &root);
    assert!(matches!(err, Err(Error::CorruptStorage { .. })), "{err:?}");
    assert_eq!(std::fs::read_to_string(&path)?, raw[..raw.len() - 40]);

    // Root key from a key file and from the environment.
    std::fs::write(&path, &raw)?;
    let key_file = dir.join("root.key");
    std::fs::write(&key_file, root.expose_base64().as_bytes())?;
    assert!(LocalEngine::open(&path, &RootKey::from_file(&key_file)?).is_ok());
    assert!(RootKey::from_env("ENCRYPTED_ATTR_TEST_SURELY_UNSET").is_err());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn budget_reservations_persist_across_restarts() -> TestResult {
    let dir = temp_dir("budget");
    let path = dir.join("keyring.json");
    let root = RootKey::generate()?;
    let key = name("k");
    let options = EngineOptions::default().nonce_budget(5000);
    let open = || {
        LocalEngine::with_storage(
            Arc::new(FileStorage::open(&path).expect("open file")),
            &root,
            options.clone(),
        )
    };
    open()?.create_key(&key, KeyOptions::default())?;
    // Each process start reserves a block (4096) in the file before encrypting: the
    // first takes 4096, the second the remaining 904, and the third finds version 1
    // spent and must rotate, although only two encryptions really happened.
    for expected in [1, 1, 2] {
        let engine = open()?;
        let ct = engine.encrypt(&key, EncryptItem::new("x"))?;
        assert_eq!(ct.version(), v(expected));
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// Run as a child process by `two_processes_rotating_at_once_keep_every_version`.
#[test]
fn child_rotates_keyring_file() -> TestResult {
    let (Ok(path), Ok(root)) = (std::env::var("EA_CHILD_KEYRING"), std::env::var("EA_CHILD_ROOT")) else {
        return Ok(()); // Not a child run: nothing to do.
    };
    let engine = LocalEngine::open(&path, &RootKey::from_text(&root)?)?;
    for _ in 0..20 {
        engine.rotate_key(&name("shared"))?;
        let ct = engine.encrypt(&name("shared"), EncryptItem::new("x"))?;
        assert!(engine.decrypt(&name("shared"), DecryptItem::new(ct)).is_ok());
    }
    Ok(())
}

#[test]
fn two_processes_rotating_at_once_keep_every_version() -> TestResult {
    let dir = temp_dir("procs");
    let path = dir.join("keyring.json");
    let root = RootKey::generate()?;
    LocalEngine::open(&path, &root)?.create_key(&name("shared"), KeyOptions::default())?;
    let exe = std::env::current_exe()?;
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--exact", "child_rotates_keyring_file", "--nocapture"])
                .env("EA_CHILD_KEYRING", &path)
                .env("EA_CHILD_ROOT", root.expose_base64().as_str())
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut child in children {
        assert!(child.wait()?.success(), "child failed");
    }
    let info = LocalEngine::open(&path, &root)?.read_key(&name("shared"))?;
    assert_eq!(info.latest_version, v(41), "40 rotations, none lost");
    assert_eq!(info.versions.len(), 41);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn a_second_engine_sees_rotations_made_by_the_first() -> TestResult {
    let storage = Arc::new(MemoryStorage::new());
    let root = RootKey::generate()?;
    let a = LocalEngine::with_storage(storage.clone(), &root, EngineOptions::default())?;
    let b = LocalEngine::with_storage(storage, &root, EngineOptions::default())?;
    let key = name("k");
    a.create_key(&key, KeyOptions::default())?;
    // b learns of the new key on first use.
    let old = b.encrypt(&key, EncryptItem::new("x"))?;
    a.rotate_key(&key)?;
    let new = a.encrypt(&key, EncryptItem::new("y"))?;
    // b meets a version newer than it knows and reloads the key.
    assert_eq!(b.decrypt(&key, DecryptItem::new(new))?.expose_secret(), b"y");
    assert_eq!(a.decrypt(&key, DecryptItem::new(old))?.expose_secret(), b"x");
    Ok(())
}

#[test]
fn debug_output_never_contains_secrets() -> TestResult {
    let root = RootKey::generate()?;
    let (engine, key) = engine_with("dbg", KeyOptions::default());
    let item = EncryptItem::new("TOP-SECRET-VALUE");
    let shown = format!("{root:?} {engine:?} {item:?}");
    assert!(
        !shown.contains("TOP-SECRET-VALUE") && !shown.contains(root.expose_base64().as_str()),
        "{shown}"
    );
    let pt = engine.decrypt(&key, DecryptItem::new(engine.encrypt(&key, item)?))?;
    assert!(!format!("{pt:?}").contains("TOP-SECRET"));
    let err = engine.decrypt(&key, DecryptItem::new(Ciphertext::from_parts(v(1), vec![0; 40])));
    assert!(!format!("{err:?}").contains("TOP-SECRET"));
    Ok(())
}

#[test]
fn async_face_matches_the_blocking_one() -> TestResult {
    let (engine, key) = engine_with("async", KeyOptions::default());
    let encrypted = block_on(engine.encrypt_batch_async(&key, vec![EncryptItem::new("a"), EncryptItem::new("b")]))?;
    let items = encrypted
        .into_iter()
        .map(|r| r.map(DecryptItem::new))
        .collect::<Result<Vec<_>, _>>()?;
    let decrypted = block_on(engine.decrypt_batch_async(&key, items))?;
    let values: Vec<Vec<u8>> = decrypted
        .into_iter()
        .map(|r| r.map(|p| p.expose_secret().to_vec()))
        .collect::<Result<_, _>>()?;
    assert_eq!(values, vec![b"a".to_vec(), b"b".to_vec()]);
    Ok(())
}

/// Polls a future that is ready at once (the in-process engine's async face).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn encrypt_decrypt_rewrap_round_trip(
        plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
        aad in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        convergent in any::<bool>(),
        context in proptest::collection::vec(any::<u8>(), 1..32),
    ) {
        let options = if convergent { KeyOptions::convergent() } else { KeyOptions::default() };
        let (engine, key) = engine_with("prop", options);
        let ctx = convergent.then(|| Bytes::from(context.clone()));
        let aad = aad.map(Bytes::from);
        let mut item = EncryptItem::new(plaintext.clone());
        item.context.clone_from(&ctx);
        item.associated_data.clone_from(&aad);
        let ct = engine.encrypt(&key, item).expect("encrypt");
        let reparsed: Ciphertext = ct.to_string().parse().expect("parse");
        prop_assert_eq!(&reparsed, &ct);
        let mut d = DecryptItem::new(reparsed.clone());
        d.context.clone_from(&ctx);
        d.associated_data.clone_from(&aad);
        let decrypted = engine.decrypt(&key, d).expect("decrypt");
        prop_assert_eq!(decrypted.expose_secret(), &plaintext[..]);

        engine.rotate_key(&key).expect("rotate");
        let mut r = RewrapItem::new(reparsed);
        r.context.clone_from(&ctx);
        r.associated_data.clone_from(&aad);
        let rewrapped = engine.rewrap(&key, r).expect("rewrap");
        prop_assert_eq!(rewrapped.version(), v(2));
        let mut d = DecryptItem::new(rewrapped);
        d.context = ctx;
        d.associated_data = aad;
        let decrypted = engine.decrypt(&key, d).expect("decrypt rewrapped");
        prop_assert_eq!(decrypted.expose_secret(), &plaintext[..]);
    }

    #[test]
    fn arbitrary_strings_never_panic_the_parsers(s in "\\PC*", t in "vault:v[0-9]{0,3}:[A-Za-z0-9+/=]{0,40}") {
        let _ = s.parse::<Ciphertext>();
        let _ = t.parse::<Ciphertext>();
        let _ = KeyName::new(&s);
        let _ = t.parse::<encrypted_attr::HmacTag>();
    }
}
