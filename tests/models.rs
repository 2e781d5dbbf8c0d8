//! `#[derive(Encrypted)]` through diesel: every codec, NULLs, row and column
//! binding, batching, lookups across rotation — on SQLite always, and on PostgreSQL
//! and MariaDB when `ENCRYPTED_ATTR_TEST_POSTGRES_URL` / `ENCRYPTED_ATTR_TEST_MYSQL_URL`
//! are set (under `CI=true` they must be).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use diesel::prelude::*;
use encrypted_attr::{
    BatchResult, Ciphertext, DataKey, DataKeyRequest, DecryptItem, EncryptItem, Encrypted, EncryptedRunQueryDsl, Error,
    ExportKind, ExportedKey, HashAlgorithm, HmacItem, HmacTag, KeyConfig, KeyInfo, KeyName, KeyOptions, KeyVersion,
    LocalEngine, Plaintext, QueryError, RewrapItem, TransitEngine, VerifyHmacItem,
};
use serde::{Deserialize, Serialize};

mod schema {
    diesel::table! {
        people (id) {
            id -> BigInt,
            name -> Text,
            ssn -> Text,
            email -> Text,
            phone -> Nullable<Text>,
            phone_bidx -> Nullable<Text>,
            medical_ct -> Text,
        }
    }

    diesel::table! {
        everything (id) {
            id -> Text,
            text_val -> Text,
            empty_val -> Text,
            bytes_val -> Text,
            i8_val -> Text,
            i16_val -> Text,
            i32_val -> Text,
            i64_val -> Text,
            i128_val -> Text,
            u8_val -> Text,
            u16_val -> Text,
            u32_val -> Text,
            u64_val -> Text,
            u128_val -> Text,
            f32_val -> Text,
            f64_val -> Text,
            bool_val -> Text,
            date_val -> Text,
            datetime_val -> Text,
            utc_val -> Text,
            uuid_val -> Text,
            json_val -> Text,
            custom_val -> Text,
            opt_text -> Nullable<Text>,
            opt_int -> Nullable<Text>,
            opt_none -> Nullable<Text>,
        }
    }
}

use schema::{everything, people};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Medical {
    blood_type: String,
    allergies: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "people", id = "id")]
#[encrypted(record(name = "PersonRecord", derive(Debug, Clone, Queryable, Selectable, Insertable), attr(diesel(table_name = people))))]
struct Person {
    id: i64,
    name: String,
    #[encrypted]
    ssn: String,
    #[encrypted(convergent)]
    email: String,
    #[encrypted(blind_index = "phone_bidx", normalize = "digits")]
    phone: Option<String>,
    #[encrypted(json, column = "medical_ct")]
    medical: Medical,
}

#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "everything", id = "id")]
#[encrypted(record(name = "EverythingRecord", derive(Queryable, Selectable, Insertable), attr(diesel(table_name = everything))))]
struct Everything {
    id: String,
    #[encrypted]
    text_val: String,
    #[encrypted]
    empty_val: String,
    #[encrypted]
    bytes_val: Vec<u8>,
    #[encrypted]
    i8_val: i8,
    #[encrypted]
    i16_val: i16,
    #[encrypted]
    i32_val: i32,
    #[encrypted]
    i64_val: i64,
    #[encrypted]
    i128_val: i128,
    #[encrypted]
    u8_val: u8,
    #[encrypted]
    u16_val: u16,
    #[encrypted]
    u32_val: u32,
    #[encrypted]
    u64_val: u64,
    #[encrypted]
    u128_val: u128,
    #[encrypted]
    f32_val: f32,
    #[encrypted]
    f64_val: f64,
    #[encrypted]
    bool_val: bool,
    #[encrypted]
    date_val: NaiveDate,
    #[encrypted]
    datetime_val: NaiveDateTime,
    #[encrypted]
    utc_val: DateTime<Utc>,
    #[encrypted]
    uuid_val: uuid::Uuid,
    #[encrypted]
    json_val: serde_json::Value,
    #[encrypted(json)]
    custom_val: Medical,
    #[encrypted]
    opt_text: Option<String>,
    #[encrypted]
    opt_int: Option<i64>,
    #[encrypted]
    opt_none: Option<u32>,
}

fn person(id: i64, phone: Option<&str>) -> Person {
    Person {
        id,
        name: format!("person {id}"),
        ssn: format!("{id:03}-45-6789"),
        email: format!("user{}@example.com", id % 7),
        phone: phone.map(str::to_owned),
        medical: Medical {
            blood_type: "AB-".into(),
            allergies: vec![format!("allergen {id}")],
        },
    }
}

fn everything_sample() -> Everything {
    let moment = NaiveDate::from_ymd_opt(2024, 2, 29)
        .and_then(|d| d.and_hms_nano_opt(23, 59, 58, 123_456_789))
        .unwrap();
    Everything {
        id: uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0).to_string(),
        text_val: "héllo wörld".into(),
        empty_val: String::new(),
        bytes_val: vec![0, 1, 2, 255],
        i8_val: -128,
        i16_val: -2,
        i32_val: i32::MAX,
        i64_val: i64::MIN,
        i128_val: -170_141_183_460_469_231_731_687_303_715_884_105_728,
        u8_val: 255,
        u16_val: 65_535,
        u32_val: 7,
        u64_val: u64::MAX,
        u128_val: u128::MAX,
        f32_val: -1.5,
        f64_val: std::f64::consts::PI,
        bool_val: true,
        date_val: NaiveDate::from_ymd_opt(1969, 7, 20).unwrap(),
        datetime_val: moment,
        utc_val: moment.and_utc(),
        uuid_val: uuid::Uuid::from_u128(42),
        json_val: serde_json::json!({"nested": {"list": [1, 2, 3], "null": null}}),
        custom_val: Medical {
            blood_type: "O+".into(),
            allergies: vec![],
        },
        opt_text: Some("present".into()),
        opt_int: Some(-9),
        opt_none: None,
    }
}

/// A transit engine that counts the calls it forwards.
struct CountingEngine {
    inner: LocalEngine,
    calls: AtomicUsize,
    /// Answer `read_key` with a 403, as for a token without `read` on keys.
    refuse_key_reads: std::sync::atomic::AtomicBool,
}

impl CountingEngine {
    fn new() -> Self {
        Self {
            inner: LocalEngine::ephemeral().unwrap(),
            calls: AtomicUsize::new(0),
            refuse_key_reads: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn take_count(&self) -> usize {
        self.calls.swap(0, Ordering::SeqCst)
    }

    fn count(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
    }
}

impl TransitEngine for CountingEngine {
    fn encrypt_batch(&self, key: &KeyName, items: Vec<EncryptItem>) -> BatchResult<Ciphertext> {
        self.count();
        self.inner.encrypt_batch(key, items)
    }
    fn decrypt_batch(&self, key: &KeyName, items: Vec<DecryptItem>) -> BatchResult<Plaintext> {
        self.count();
        self.inner.decrypt_batch(key, items)
    }
    fn rewrap_batch(&self, key: &KeyName, items: Vec<RewrapItem>) -> BatchResult<Ciphertext> {
        self.count();
        self.inner.rewrap_batch(key, items)
    }
    fn hmac_batch(&self, key: &KeyName, algorithm: HashAlgorithm, items: Vec<HmacItem>) -> BatchResult<HmacTag> {
        self.count();
        self.inner.hmac_batch(key, algorithm, items)
    }
    fn verify_hmac_batch(
        &self,
        key: &KeyName,
        algorithm: HashAlgorithm,
        items: Vec<VerifyHmacItem>,
    ) -> BatchResult<bool> {
        self.count();
        self.inner.verify_hmac_batch(key, algorithm, items)
    }
    fn datakey(&self, key: &KeyName, request: DataKeyRequest) -> Result<DataKey, Error> {
        self.inner.datakey(key, request)
    }
    fn create_key(&self, key: &KeyName, options: KeyOptions) -> Result<KeyInfo, Error> {
        self.inner.create_key(key, options)
    }
    fn read_key(&self, key: &KeyName) -> Result<KeyInfo, Error> {
        if self.refuse_key_reads.load(Ordering::SeqCst) {
            return Err(Error::Remote {
                status: 403,
                errors: vec!["permission denied".into()],
            });
        }
        self.inner.read_key(key)
    }
    fn list_keys(&self) -> Result<Vec<KeyName>, Error> {
        self.inner.list_keys()
    }
    fn rotate_key(&self, key: &KeyName) -> Result<KeyInfo, Error> {
        self.inner.rotate_key(key)
    }
    fn configure_key(&self, key: &KeyName, config: KeyConfig) -> Result<KeyInfo, Error> {
        self.inner.configure_key(key, config)
    }
    fn trim_key(&self, key: &KeyName, min: KeyVersion) -> Result<KeyInfo, Error> {
        self.inner.trim_key(key, min)
    }
    fn delete_key(&self, key: &KeyName) -> Result<(), Error> {
        self.inner.delete_key(key)
    }
    fn export_key(&self, key: &KeyName, kind: ExportKind, version: Option<KeyVersion>) -> Result<ExportedKey, Error> {
        self.inner.export_key(key, kind, version)
    }
    fn random_bytes(&self, len: usize) -> Result<Vec<u8>, Error> {
        self.inner.random_bytes(len)
    }
    fn hash(&self, algorithm: HashAlgorithm, input: &[u8]) -> Result<Vec<u8>, Error> {
        self.inner.hash(algorithm, input)
    }
}

const PEOPLE_DDL: &str = "CREATE TABLE people (id BIGINT PRIMARY KEY, name TEXT NOT NULL, ssn TEXT NOT NULL, \
     email TEXT NOT NULL, phone TEXT, phone_bidx TEXT, medical_ct TEXT NOT NULL)";

fn everything_ddl() -> String {
    let cols = [
        "text_val",
        "empty_val",
        "bytes_val",
        "i8_val",
        "i16_val",
        "i32_val",
        "i64_val",
        "i128_val",
        "u8_val",
        "u16_val",
        "u32_val",
        "u64_val",
        "u128_val",
        "f32_val",
        "f64_val",
        "bool_val",
        "date_val",
        "datetime_val",
        "utc_val",
        "uuid_val",
        "json_val",
        "custom_val",
    ];
    let mut ddl = String::from("CREATE TABLE everything (id VARCHAR(36) PRIMARY KEY");
    for c in cols {
        ddl.push_str(&format!(", {c} TEXT NOT NULL"));
    }
    ddl.push_str(", opt_text TEXT, opt_int TEXT, opt_none TEXT)");
    ddl
}

/// The whole scenario, on one connection of any backend.
macro_rules! scenario {
    ($conn:expr) => {{
        let conn = $conn;
        let engine = CountingEngine::new();
        for table in ["people", "everything"] {
            diesel::sql_query(format!("DROP TABLE IF EXISTS {table}")).execute(conn).unwrap();
        }
        diesel::sql_query(PEOPLE_DDL).execute(conn).unwrap();
        diesel::sql_query(everything_ddl()).execute(conn).unwrap();
        Person::ensure_keys(&engine).unwrap();
        Everything::ensure_keys(&engine).unwrap();

        // Every codec and Option round-trips, and the stored columns hold ciphertext.
        let sample = everything_sample();
        let record = sample.encrypt(&engine).unwrap();
        diesel::insert_into(everything::table).values(&record).execute(conn).unwrap();
        let loaded: EverythingRecord = everything::table.select(EverythingRecord::as_select()).first(conn).unwrap();
        assert_eq!(loaded.decrypt(&engine).unwrap(), sample);
        let (raw_s, raw_empty, raw_nothing): (String, String, Option<String>) = everything::table
            .select((everything::text_val, everything::empty_val, everything::opt_none))
            .first(conn)
            .unwrap();
        assert!(raw_s.starts_with("vault:v1:") && !raw_s.contains("llo"), "{raw_s}");
        assert!(raw_empty.starts_with("vault:v1:"), "the empty string is encrypted: {raw_empty}");
        assert_eq!(raw_nothing, None, "NULL stays NULL");
        // Fixed width: every u64 ciphertext has the same length.
        let (ulong, uint): (String, String) =
            everything::table.select((everything::u64_val, everything::u32_val)).first(conn).unwrap();
        assert_eq!(ulong.len(), Ciphertext::from_parts(KeyVersion::FIRST, vec![0; 12 + 8 + 16]).as_str().len());
        assert!(uint.len() < ulong.len());

        // 1,000 rows with encrypted fields: one engine call per key each way.
        let people: Vec<Person> = (1..=1000).map(|i| person(i, if i % 3 == 0 { None } else { Some("+1 (555) 010-0000") })).collect();
        engine.take_count();
        let records = Person::encrypt_all(&people, &engine).unwrap();
        assert_eq!(engine.take_count(), 5, "ssn, email, phone, phone's blind index, medical");
        for chunk in records.chunks(200) {
            diesel::insert_into(people::table).values(chunk).execute(conn).unwrap();
        }
        let loaded: Vec<PersonRecord> =
            people::table.select(PersonRecord::as_select()).order(people::id).load(conn).unwrap();
        engine.take_count();
        let decrypted = PersonRecord::decrypt_all(loaded, &engine).unwrap();
        assert_eq!(engine.take_count(), 4, "ssn, email, phone, medical: one batch each for 1,000 rows");
        assert_eq!(decrypted, people);

        // One call to load and decrypt, with the same one engine call per key.
        engine.take_count();
        let again: Vec<Person> = people::table
            .select(PersonRecord::as_select())
            .order(people::id)
            .load_decrypted(conn, &engine)
            .unwrap();
        assert_eq!(engine.take_count(), 4, "ssn, email, phone, medical");
        assert_eq!(again, people);
        let ten: Person = people::table
            .find(10)
            .select(PersonRecord::as_select())
            .get_result_decrypted(conn, &engine)
            .unwrap();
        assert_eq!(ten, people[9]);
        let none = people::table
            .find(-1)
            .select(PersonRecord::as_select())
            .get_result_decrypted::<PersonRecord, _>(conn, &engine)
            .unwrap_err();
        assert!(matches!(none, QueryError::Database(diesel::result::Error::NotFound)), "{none}");

        // The raw column never holds the plaintext.
        let raw: Vec<(String, String, Option<String>)> =
            people::table.select((people::ssn, people::email, people::phone)).load(conn).unwrap();
        for (ssn, email, phone) in &raw {
            assert!(ssn.starts_with("vault:v1:") && !ssn.contains("45-6789"));
            assert!(email.starts_with("vault:v1:") && !email.contains("example"));
            assert!(phone.as_deref().map_or(true, |p| p.starts_with("vault:v1:")));
        }

        // Lookup by the convergent field and by the blind index.
        let wanted = Person::email_lookup(&engine, &"user3@example.com".to_owned()).unwrap();
        let hits: Vec<i64> = people::table.filter(people::email.eq_any(&wanted)).select(people::id).load(conn).unwrap();
        assert_eq!(hits.len(), people.iter().filter(|p| p.email == "user3@example.com").count());
        let by_phone = Person::phone_index(&engine, &"1-555-010-0000".to_owned()).unwrap();
        let phone_hits: i64 = people::table.filter(people::phone_bidx.eq_any(&by_phone)).count().get_result(conn).unwrap();
        assert_eq!(phone_hits as usize, people.iter().filter(|p| p.phone.is_some()).count());

        // After a rotation new rows use v2, and the lookup finds old and new rows.
        engine.rotate_key(&KeyName::new("people_email").unwrap()).unwrap();
        let newcomer = Person { email: "user3@example.com".into(), ..person(5000, None) };
        diesel::insert_into(people::table).values(&newcomer.encrypt(&engine).unwrap()).execute(conn).unwrap();
        let wanted = Person::email_lookup(&engine, &"user3@example.com".to_owned()).unwrap();
        assert_eq!(wanted.len(), 2);
        let after: Vec<i64> = people::table.filter(people::email.eq_any(&wanted)).select(people::id).load(conn).unwrap();
        assert_eq!(after.len(), hits.len() + 1);

        // Partial update of one field.
        let new_ssn = Person::encrypt_ssn(&engine, &7, &"999-99-9999".to_owned()).unwrap();
        diesel::update(people::table.find(7)).set(people::ssn.eq(&new_ssn)).execute(conn).unwrap();
        let seven: PersonRecord = people::table.find(7).select(PersonRecord::as_select()).first(conn).unwrap();
        assert_eq!(seven.decrypt(&engine).unwrap().ssn, "999-99-9999");

        // Swap two rows' ciphertexts in SQL: both fail to decrypt.
        let (ssn1, ssn2): (String, String) = (
            people::table.find(1).select(people::ssn).first(conn).unwrap(),
            people::table.find(2).select(people::ssn).first(conn).unwrap(),
        );
        diesel::update(people::table.find(1)).set(people::ssn.eq(&ssn2)).execute(conn).unwrap();
        diesel::update(people::table.find(2)).set(people::ssn.eq(&ssn1)).execute(conn).unwrap();
        for id in [1, 2] {
            let swapped: PersonRecord = people::table.find(id).select(PersonRecord::as_select()).first(conn).unwrap();
            let err = swapped.decrypt(&engine).unwrap_err();
            assert!(matches!(&err, Error::Field { column: "ssn", source, .. } if matches!(**source, Error::DecryptionFailed)), "{err}");
        }
        // Move a ciphertext to another column of the same row: fails too.
        let (ssn4, bidx4): (String, Option<String>) = people::table.find(4).select((people::ssn, people::phone_bidx)).first(conn).unwrap();
        diesel::update(people::table.find(4)).set(people::phone.eq(Some(&ssn4))).execute(conn).unwrap();
        let moved: PersonRecord = people::table.find(4).select(PersonRecord::as_select()).first(conn).unwrap();
        assert!(moved.decrypt(&engine).is_err());
        assert!(bidx4.is_some());

        // Plaintext planted in an encrypted column is an error when read, not data.
        diesel::update(people::table.find(5)).set(people::ssn.eq("123-45-6789")).execute(conn).unwrap();
        let planted: Result<PersonRecord, _> = people::table.find(5).select(PersonRecord::as_select()).first(conn);
        assert!(planted.is_err(), "a non-ciphertext value must not load");
    }};
}

#[test]
fn diesel_sqlite() {
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    scenario!(&mut conn);
}

/// The URL from `var`, or `None` (said aloud) when it is unset outside CI.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
fn database_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} must be set under CI")
        }
        Err(_) => {
            eprintln!("SKIPPED: {var} is not set; this database test did not run");
            None
        }
    }
}

#[cfg(feature = "postgres")]
#[test]
fn diesel_postgres() {
    let Some(url) = database_url("ENCRYPTED_ATTR_TEST_POSTGRES_URL") else {
        return;
    };
    let mut conn = PgConnection::establish(&url).unwrap();
    scenario!(&mut conn);
}

#[cfg(feature = "mysql")]
#[test]
fn diesel_mysql() {
    let Some(url) = database_url("ENCRYPTED_ATTR_TEST_MYSQL_URL") else {
        return;
    };
    let mut conn = MysqlConnection::establish(&url).unwrap();
    scenario!(&mut conn);
}

#[test]
fn async_face_of_the_derive() {
    let engine = LocalEngine::ephemeral().unwrap();
    Person::ensure_keys(&engine).unwrap();
    let people = vec![person(1, Some("1")), person(2, None)];
    let records = block_on(Person::encrypt_all_async(&people, &engine)).unwrap();
    let back = block_on(PersonRecord::decrypt_all_async(records, &engine)).unwrap();
    assert_eq!(back, people);
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// A model with per-tenant keys: every encrypted field's key is derived from the row's
/// `tenant_id`.
#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "tickets", id = "id", record(derive(Clone, Debug)))]
struct Ticket {
    id: i64,
    tenant_id: i64,
    #[encrypted(context = "tenant_id")]
    body: String,
    #[encrypted(convergent, context = "tenant_id")]
    email: String,
    #[encrypted(blind_index = "phone_bidx", normalize = "digits", context = "tenant_id")]
    phone: Option<String>,
}

fn ticket(id: i64, tenant_id: i64) -> Ticket {
    Ticket {
        id,
        tenant_id,
        body: format!("ticket {id}"),
        email: "same@example.com".into(),
        phone: Some("+1 555 0100".into()),
    }
}

#[test]
fn per_tenant_keys() {
    let engine = LocalEngine::ephemeral().unwrap();
    Ticket::ensure_keys(&engine).unwrap();
    for key in ["tickets_body", "tickets_email", "tickets_phone"] {
        assert!(engine.read_key(&KeyName::new(key).unwrap()).unwrap().derived, "{key}");
    }
    let tickets = vec![ticket(1, 10), ticket(2, 10), ticket(3, 20)];
    let records = Ticket::encrypt_all(&tickets, &engine).unwrap();
    assert_eq!(TicketRecord::decrypt_all(records.clone(), &engine).unwrap(), tickets);

    // Convergent within a tenant, different across tenants; the same for blind indexes.
    assert_eq!(records[0].email, records[1].email);
    assert_ne!(records[0].email, records[2].email);
    assert_eq!(records[0].phone_bidx, records[1].phone_bidx);
    assert_ne!(records[0].phone_bidx, records[2].phone_bidx);

    // Lookups are per tenant.
    let email = "same@example.com".to_owned();
    assert_eq!(
        Ticket::email_lookup(&engine, &10, &email).unwrap(),
        vec![records[0].email.clone()]
    );
    assert_eq!(
        Ticket::email_lookup(&engine, &20, &email).unwrap(),
        vec![records[2].email.clone()]
    );
    let index = Ticket::phone_index(&engine, &20, &"15550100".to_owned()).unwrap();
    assert_eq!(Some(&index[0]), records[2].phone_bidx.as_ref());

    // A row moved to another tenant (same id, same column) no longer decrypts.
    let mut moved = records[2].clone();
    moved.tenant_id = 10;
    let err = moved.decrypt(&engine).unwrap_err();
    assert!(
        matches!(&err, Error::Field { source, .. } if matches!(**source, Error::DecryptionFailed)),
        "{err}"
    );

    // Partial update of a per-tenant field takes the tenant.
    let mut updated = records[0].clone();
    updated.body = Ticket::encrypt_body(&engine, &1, &10, &"new body".to_owned()).unwrap();
    assert_eq!(updated.clone().decrypt(&engine).unwrap().body, "new body");
    updated.body = Ticket::encrypt_body(&engine, &1, &20, &"wrong tenant".to_owned()).unwrap();
    assert!(updated.decrypt(&engine).is_err());

    // An existing key of the wrong kind is refused by `ensure_keys`.
    let plain_engine = LocalEngine::ephemeral().unwrap();
    plain_engine
        .create_key(&KeyName::new("tickets_body").unwrap(), KeyOptions::default())
        .unwrap();
    let refused = Ticket::ensure_keys(&plain_engine).unwrap_err();
    assert!(refused.to_string().contains("not derived"), "{refused}");
}

mod accounts_schema {
    diesel::table! {
        accounts (id) {
            id -> BigInt,
            tenant -> Text,
            iban -> Text,
            email -> Text,
            note -> Nullable<Text>,
            phone -> Nullable<Text>,
            phone_bidx -> Nullable<Text>,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "accounts", id = "id")]
#[encrypted(record(
    name = "AccountRow",
    derive(Clone, diesel::Queryable, diesel::Selectable, diesel::Insertable),
    attr(diesel(table_name = accounts_schema::accounts))
))]
struct Account {
    id: i64,
    tenant: String,
    #[encrypted(context = "tenant")]
    iban: String,
    #[encrypted(convergent)]
    email: String,
    #[encrypted]
    note: Option<String>,
    #[encrypted(blind_index = "phone_bidx", normalize = "digits", context = "tenant")]
    phone: Option<String>,
}

/// Upgrade on read: loading reports values below the latest key version with their
/// rewrapped form; writing them back compare-and-swap finishes the rotation.
#[test]
fn upgrade_on_read() {
    use accounts_schema::accounts;
    let engine = LocalEngine::ephemeral().unwrap();
    Account::ensure_keys(&engine).unwrap();
    let mut conn = SqliteConnection::establish(":memory:").unwrap();
    diesel::sql_query(
        "CREATE TABLE accounts (id BIGINT PRIMARY KEY, tenant TEXT NOT NULL, iban TEXT NOT NULL, \
         email TEXT NOT NULL, note TEXT, phone TEXT, phone_bidx TEXT)",
    )
    .execute(&mut conn)
    .unwrap();
    let wanted: Vec<Account> = (1..=20)
        .map(|id| Account {
            id,
            tenant: format!("t{}", id % 3),
            iban: format!("DE{id:020}"),
            email: format!("a{id}@example.com"),
            note: (id % 2 == 0).then(|| format!("note {id}")),
            phone: (id % 4 != 0).then(|| format!("+49 30 {id:04}")),
        })
        .collect();
    let rows = Account::encrypt_all(&wanted, &engine).unwrap();
    diesel::insert_into(accounts::table)
        .values(&rows)
        .execute(&mut conn)
        .unwrap();
    let load = |conn: &mut SqliteConnection| -> Vec<AccountRow> {
        accounts::table
            .select(AccountRow::as_select())
            .order(accounts::id)
            .load(conn)
            .unwrap()
    };

    // Nothing to upgrade before a rotation.
    let fresh = AccountRow::decrypt_all_upgrading(load(&mut conn), &engine).unwrap();
    assert_eq!(fresh.models, wanted);
    assert!(fresh.upgrades.is_empty());
    assert_eq!(fresh.not_upgraded, 0);

    engine.rotate_key(&KeyName::new("accounts_iban").unwrap()).unwrap();
    engine.rotate_key(&KeyName::new("accounts_note").unwrap()).unwrap();
    engine.rotate_key(&KeyName::new("accounts_phone").unwrap()).unwrap();
    let loaded = AccountRow::decrypt_all_upgrading(load(&mut conn), &engine).unwrap();
    assert_eq!(loaded.models, wanted);
    // 15 phones: their ciphertexts are among the upgrades, their indexes recomputed.
    assert_eq!(loaded.index_upgrades.len(), 15);
    assert!(
        loaded
            .index_upgrades
            .iter()
            .all(|u| u.column == "phone_bidx" && u.value.starts_with("vault:v2:"))
    );
    for index in &loaded.index_upgrades {
        let id: i64 = index.row_id.as_deref().unwrap().parse().unwrap();
        let updated = diesel::update(
            accounts::table
                .find(id)
                .filter(accounts::phone_bidx.eq(&index.previous)),
        )
        .set(accounts::phone_bidx.eq(&index.value))
        .execute(&mut conn)
        .unwrap();
        assert_eq!(updated, 1);
    }
    assert_eq!(
        loaded.upgrades.len(),
        20 + 10 + 15,
        "every iban, every non-NULL note and phone; email was not rotated"
    );
    assert!(
        loaded
            .upgrades
            .iter()
            .all(|u| u.ciphertext.version().get() == 2 && u.previous.version().get() == 1)
    );

    // Someone changes row 4's iban between our read and our write: its upgrade must
    // not overwrite that change.
    let newer = Account::encrypt_iban(&engine, &4, &"t1".to_owned(), &"DE-CHANGED".to_owned()).unwrap();
    diesel::update(accounts::table.find(4))
        .set(accounts::iban.eq(&newer))
        .execute(&mut conn)
        .unwrap();

    let mut written = 0;
    for upgrade in &loaded.upgrades {
        let id: i64 = upgrade.row_id.as_deref().unwrap().parse().unwrap();
        let target = accounts::table.find(id);
        written += match upgrade.column {
            "iban" => diesel::update(target.filter(accounts::iban.eq(&upgrade.previous)))
                .set(accounts::iban.eq(&upgrade.ciphertext))
                .execute(&mut conn)
                .unwrap(),
            "note" => diesel::update(target.filter(accounts::note.eq(&upgrade.previous)))
                .set(accounts::note.eq(&upgrade.ciphertext))
                .execute(&mut conn)
                .unwrap(),
            "phone" => diesel::update(target.filter(accounts::phone.eq(&upgrade.previous)))
                .set(accounts::phone.eq(&upgrade.ciphertext))
                .execute(&mut conn)
                .unwrap(),
            other => panic!("unexpected column {other}"),
        };
    }
    assert_eq!(written, 44, "the row changed meanwhile was left alone");

    let after = AccountRow::decrypt_all_upgrading(load(&mut conn), &engine).unwrap();
    assert!(after.upgrades.is_empty(), "{:?}", after.upgrades);
    assert!(after.index_upgrades.is_empty(), "{:?}", after.index_upgrades);
    // With version 1 retired, lookups by phone still find every row: the indexes were
    // recomputed under version 2.
    engine
        .configure_key(
            &KeyName::new("accounts_phone").unwrap(),
            KeyConfig::default().min_decryption_version(2),
        )
        .unwrap();
    let wanted_index = Account::phone_index(&engine, &"t2".to_owned(), &"4930 0005".to_owned()).unwrap();
    assert_eq!(wanted_index.len(), 1);
    let found: Vec<i64> = accounts::table
        .filter(accounts::phone_bidx.eq_any(&wanted_index))
        .select(accounts::id)
        .load(&mut conn)
        .unwrap();
    assert_eq!(found, vec![5]);
    assert_eq!(after.models[3].iban, "DE-CHANGED");
    let mut expected = wanted.clone();
    expected[3].iban = "DE-CHANGED".into();
    assert_eq!(after.models, expected);
    let raw: Vec<String> = accounts::table.select(accounts::iban).load(&mut conn).unwrap();
    assert!(raw.iter().all(|c| c.starts_with("vault:v2:")));
}

/// Upgrading is best effort: a token that may decrypt but not read the keys loads
/// every row, without upgrades.
#[test]
fn upgrade_on_read_without_key_access_still_loads() {
    let engine = CountingEngine::new();
    Account::ensure_keys(&engine).unwrap();
    let wanted: Vec<Account> = (1..=6)
        .map(|id| Account {
            id,
            tenant: "t".into(),
            iban: format!("DE{id:020}"),
            email: format!("a{id}@example.com"),
            note: None,
            phone: Some(format!("+49 30 {id:04}")),
        })
        .collect();
    let rows = Account::encrypt_all(&wanted, &engine).unwrap();
    for key in ["accounts_iban", "accounts_phone"] {
        engine.rotate_key(&KeyName::new(key).unwrap()).unwrap();
    }
    engine.refuse_key_reads.store(true, Ordering::SeqCst);
    let loaded = AccountRow::decrypt_all_upgrading(rows.clone(), &engine).unwrap();
    assert_eq!(loaded.models, wanted);
    assert!(loaded.upgrades.is_empty() && loaded.index_upgrades.is_empty());
    engine.refuse_key_reads.store(false, Ordering::SeqCst);
    let loaded = AccountRow::decrypt_all_upgrading(rows, &engine).unwrap();
    assert_eq!((loaded.upgrades.len(), loaded.index_upgrades.len()), (12, 6));
}

/// A load writes each row's id into one reused buffer: the same text `row_id`
/// returns, for an integer id and a text id, and the buffer's old contents are gone.
#[test]
fn a_records_row_id_is_written_as_it_is_returned() {
    use encrypted_attr::EncryptedRecord;

    let engine = LocalEngine::ephemeral().unwrap();
    Person::ensure_keys(&engine).unwrap();
    Everything::ensure_keys(&engine).unwrap();
    let mut buffer = String::from("left over from another row");
    let person = Person::encrypt_all(&[person(-42, None)], &engine).unwrap().remove(0);
    assert!(person.write_row_id(&mut buffer));
    assert_eq!(Some(buffer.clone()), person.row_id());
    assert_eq!(buffer, "-42");
    let everything = Everything::encrypt_all(&[everything_sample()], &engine)
        .unwrap()
        .remove(0);
    assert!(everything.write_row_id(&mut buffer));
    assert_eq!(Some(buffer.clone()), everything.row_id());
}
