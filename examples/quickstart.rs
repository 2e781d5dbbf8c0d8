//! Quickstart: encrypted fields in SQLite through diesel, with the in-process engine
//! and a keyring file. No service needed.
//!
//! Inserts users whose SSN, e-mail and phone are encrypted, finds one by e-mail and
//! by phone, prints what the database really holds, rotates the SSN key and rewraps
//! the column — then reads everything back.
//!
//! Run: `cargo run --example quickstart`

use diesel::prelude::*;
use encrypted_attr::model::row_binding;
use encrypted_attr::{Ciphertext, Encrypted, KeyName, LocalEngine, RewrapItem, RootKey, TransitEngine};

#[allow(missing_docs)]
mod schema {
    diesel::table! {
        users (id) {
            id -> BigInt,
            name -> Text,
            ssn -> Text,
            email -> Text,
            phone -> Nullable<Text>,
            phone_bidx -> Nullable<Text>,
        }
    }
}
use schema::users;

/// What the application works with: plain values.
#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "users", id = "id")]
#[encrypted(record(name = "UserRecord", derive(Debug, Queryable, Selectable, Insertable), attr(diesel(table_name = users))))]
struct User {
    id: i64,
    name: String,
    /// Random encryption, bound to this row: key `users_ssn`.
    #[encrypted]
    ssn: String,
    /// Deterministic, so it can be searched with `WHERE email IN (…)`.
    #[encrypted(convergent)]
    email: String,
    /// Random encryption plus a blind index (an HMAC of the digits) to search by.
    #[encrypted(blind_index = "phone_bidx", normalize = "digits")]
    phone: Option<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The keyring file, sealed by a root key. In production the root key comes from a
    // secret store: RootKey::from_env("ENCRYPTED_ATTR_ROOT_KEY")? or RootKey::from_file(..)?.
    // Here a fresh one, so every run starts clean.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/quickstart");
    std::fs::create_dir_all(&dir)?;
    let keyring_path = dir.join("keyring.json");
    let _ = std::fs::remove_file(&keyring_path);
    let engine = LocalEngine::open(&keyring_path, &RootKey::generate()?)?;
    User::ensure_keys(&engine)?; // users_ssn, users_email (convergent), users_phone

    let mut db = SqliteConnection::establish(":memory:")?;
    diesel::sql_query(
        "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT NOT NULL, ssn TEXT NOT NULL, \
         email TEXT NOT NULL, phone TEXT, phone_bidx TEXT)",
    )
    .execute(&mut db)?;

    let people = vec![
        User {
            id: 1,
            name: "Ada".into(),
            ssn: "123-45-6789".into(),
            email: "ada@example.com".into(),
            phone: Some("+1 555 0100".into()),
        },
        User {
            id: 2,
            name: "Grace".into(),
            ssn: "987-65-4321".into(),
            email: "grace@example.com".into(),
            phone: None,
        },
        User {
            id: 3,
            name: "Alan".into(),
            ssn: "555-12-3456".into(),
            email: "alan@example.com".into(),
            phone: Some("+44 20 7946 0958".into()),
        },
    ];
    // One engine call per key for all rows.
    let records = User::encrypt_all(&people, &engine)?;
    diesel::insert_into(users::table).values(&records).execute(&mut db)?;

    let (ssn, email, phone_bidx): (String, String, Option<String>) = users::table
        .find(1)
        .select((users::ssn, users::email, users::phone_bidx))
        .first(&mut db)?;
    println!("what the database holds for Ada:\n  ssn   = {ssn}\n  email = {email}\n  phone_bidx = {phone_bidx:?}");

    // Find by e-mail (convergent) and by phone (blind index).
    let candidates = User::email_lookup(&engine, &"grace@example.com".to_owned())?;
    let found: Vec<UserRecord> = users::table
        .filter(users::email.eq_any(&candidates))
        .select(UserRecord::as_select())
        .load(&mut db)?;
    let found = UserRecord::decrypt_all(found, &engine)?;
    println!("found by e-mail: {} (ssn {})", found[0].name, found[0].ssn);
    let candidates = User::phone_index(&engine, &"442079460958".to_owned())?;
    let found: UserRecord = users::table
        .filter(users::phone_bidx.eq_any(&candidates))
        .select(UserRecord::as_select())
        .first(&mut db)?;
    println!("found by phone: {}", found.decrypt(&engine)?.name);

    // A ciphertext pasted into another row does not decrypt.
    diesel::update(users::table.find(2))
        .set(users::ssn.eq(&ssn))
        .execute(&mut db)?;
    let tampered: UserRecord = users::table.find(2).select(UserRecord::as_select()).first(&mut db)?;
    println!(
        "Ada's SSN pasted into Grace's row: {}",
        tampered
            .decrypt(&engine)
            .map_or_else(|e| e.to_string(), |_| "decrypted?!".into())
    );
    let grace_ssn = User::encrypt_ssn(&engine, &2, &"987-65-4321".to_owned())?;
    diesel::update(users::table.find(2))
        .set(users::ssn.eq(&grace_ssn))
        .execute(&mut db)?;

    // Rotate the SSN key, then rewrap the column: every row moves to the new version,
    // each with its own row binding; the plaintext never leaves the engine.
    let ssn_key = KeyName::new("users_ssn")?;
    let info = engine.rotate_key(&ssn_key)?;
    println!("rotated users_ssn to v{}", info.latest_version);
    let rows: Vec<(i64, Ciphertext)> = users::table.select((users::id, users::ssn)).load(&mut db)?;
    let items = rows
        .iter()
        .map(|(id, ct)| RewrapItem::new(ct.clone()).associated_data(row_binding("users", "ssn", Some(&id.to_string()))))
        .collect();
    let rewrapped = engine.rewrap_batch(&ssn_key, items)?;
    db.transaction(|db| {
        for ((id, _), ct) in rows.iter().zip(rewrapped) {
            let ct = ct.map_err(|e| diesel::result::Error::QueryBuilderError(e.into()))?;
            diesel::update(users::table.find(id))
                .set(users::ssn.eq(ct))
                .execute(db)?;
        }
        diesel::QueryResult::Ok(())
    })?;
    let ssn: String = users::table.find(1).select(users::ssn).first(&mut db)?;
    println!("Ada's ssn after rewrap: {ssn}");

    let all: Vec<UserRecord> = users::table
        .select(UserRecord::as_select())
        .order(users::id)
        .load(&mut db)?;
    let all = UserRecord::decrypt_all(all, &engine)?;
    assert_eq!(all, people);
    println!("all {} users read back intact", all.len());
    Ok(())
}
