//! Quickstart: the in-process engine with a keyring file. No service needed.
//!
//! Encrypts a value, decrypts it, rotates the key and rewraps the old ciphertext,
//! then shows that equality lookups on a convergent key survive the rotation.
//!
//! Run: `cargo run --example quickstart`

use encrypted_attr::{
    Ciphertext, DecryptItem, EncryptItem, KeyName, KeyOptions, LocalEngine, RewrapItem, RootKey,
    TransitEngine,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A keyring file under target/, sealed by a root key. In production the root key
    // comes from a secret store: RootKey::from_env("ENCRYPTED_ATTR_ROOT_KEY") or
    // RootKey::from_file(...). Here we make a fresh one, so each run starts clean.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/quickstart");
    std::fs::create_dir_all(&dir)?;
    let keyring_path = dir.join("keyring.json");
    let _ = std::fs::remove_file(&keyring_path);
    let root_key = RootKey::generate()?;
    let engine = LocalEngine::open(&keyring_path, &root_key)?;
    println!("keyring file: {}", keyring_path.display());

    // One named key per column.
    let ssn_key = KeyName::new("users_ssn")?;
    engine.create_key(&ssn_key, KeyOptions::default())?;

    // Encrypt, binding the ciphertext to its table, column and row through
    // associated data: pasted into another row it would not decrypt.
    let binding = "users/ssn/42";
    let ciphertext = engine.encrypt(
        &ssn_key,
        EncryptItem::new("123-45-6789").associated_data(binding),
    )?;
    let stored = ciphertext.to_string();
    println!("stored in the database: {stored}");

    let read_back: Ciphertext = stored.parse()?;
    let plaintext = engine.decrypt(
        &ssn_key,
        DecryptItem::new(read_back.clone()).associated_data(binding),
    )?;
    println!(
        "decrypted: {}",
        String::from_utf8_lossy(plaintext.expose_secret())
    );
    let moved = engine.decrypt(
        &ssn_key,
        DecryptItem::new(read_back.clone()).associated_data("users/ssn/43"),
    );
    println!(
        "the same ciphertext in row 43: {}",
        moved.map_or_else(|e| e.to_string(), |_| "decrypted?!".into())
    );

    // Rotate: new writes use version 2; version 1 still decrypts until retired.
    let info = engine.rotate_key(&ssn_key)?;
    println!("rotated {} to v{}", info.name, info.latest_version);

    // Rewrap the old ciphertext to the latest version without exposing the plaintext.
    let rewrapped = engine.rewrap(
        &ssn_key,
        RewrapItem::new(read_back).associated_data(binding),
    )?;
    println!("rewrapped: {rewrapped}");
    let again = engine.decrypt(
        &ssn_key,
        DecryptItem::new(rewrapped).associated_data(binding),
    )?;
    assert_eq!(again.expose_secret(), b"123-45-6789");

    // Convergent encryption: equal values give equal ciphertexts, so a column can be
    // searched with WHERE email = $1. After a rotation, look up every version.
    let email_key = KeyName::new("users_email")?;
    engine.create_key(&email_key, KeyOptions::convergent())?;
    let context = "users.email";
    let before = engine.encrypt(
        &email_key,
        EncryptItem::new("ada@example.com").context(context),
    )?;
    let info = engine.rotate_key(&email_key)?;
    let lookup: Vec<String> = info
        .decryptable_versions()
        .map(|v| {
            engine.encrypt(
                &email_key,
                EncryptItem::new("ada@example.com")
                    .context(context)
                    .key_version(v),
            )
        })
        .map(|ct| ct.map(|c| c.to_string()))
        .collect::<Result<_, _>>()?;
    println!("lookup values for ada@example.com: {lookup:?}");
    assert!(lookup.contains(&before.to_string()));

    // Reopen the keyring as a restarted application would.
    drop(engine);
    let reopened = LocalEngine::open(&keyring_path, &root_key)?;
    println!("after restart, keys: {:?}", reopened.list_keys()?);
    Ok(())
}
