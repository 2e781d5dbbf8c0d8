//! sqlx: a record deriving `sqlx::FromRow` with `Ciphertext` columns, written with
//! `query(…).bind(…)` and read with `query_as(…).fetch_*_decrypted(…)` — on SQLite
//! always, and on PostgreSQL and MariaDB when their URLs are set (required in CI).
//! Also diesel records through `diesel-async` on PostgreSQL.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use encrypted_attr::{Encrypted, EncryptedQueryAs, Error, LocalEngine, QueryError, TransitEngine};

#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "sqlx_patients", id = "id", record(derive(sqlx::FromRow, Debug)))]
struct Patient {
    id: i64,
    name: String,
    #[encrypted]
    ssn: String,
    #[encrypted(convergent)]
    email: String,
    #[encrypted(blind_index = "phone_bidx", normalize = "digits")]
    phone: Option<String>,
}

fn sample(id: i64) -> Patient {
    Patient {
        id,
        name: format!("patient {id}"),
        ssn: format!("{id:03}-12-3456"),
        email: format!("p{}@example.net", id % 4),
        phone: (id % 2 == 0).then(|| format!("+1 555 {id:04}")),
    }
}

/// Statements built from text: placeholders differ per database (`$1` or `?`).
fn sql(text: String) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(text)
}

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

/// The scenario on one database. `$p(n)` is its placeholder for parameter `n`.
macro_rules! scenario {
    ($pool:expr, $p:expr) => {{
        let pool = $pool;
        let p: fn(usize) -> String = $p;
        let engine = LocalEngine::ephemeral().unwrap();
        Patient::ensure_keys_async(&engine).await.unwrap();
        sqlx::query("DROP TABLE IF EXISTS sqlx_patients").execute(&pool).await.unwrap();
        sqlx::query(
            "CREATE TABLE sqlx_patients (id BIGINT PRIMARY KEY, name TEXT NOT NULL, ssn TEXT NOT NULL, \
             email TEXT NOT NULL, phone TEXT, phone_bidx TEXT)",
        )
        .execute(&pool)
        .await
        .unwrap();

        let patients: Vec<Patient> = (1..=40).map(sample).collect();
        let insert = format!(
            "INSERT INTO sqlx_patients (id, name, ssn, email, phone, phone_bidx) VALUES ({}, {}, {}, {}, {}, {})",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6)
        );
        for record in Patient::encrypt_all_async(&patients, &engine).await.unwrap() {
            sqlx::query(sql(insert.clone()))
                .bind(record.id)
                .bind(&record.name)
                .bind(&record.ssn)
                .bind(&record.email)
                .bind(&record.phone)
                .bind(&record.phone_bidx)
                .execute(&pool)
                .await
                .unwrap();
        }

        // One call: fetch and decrypt every row.
        let all: Vec<Patient> = sqlx::query_as::<_, PatientRecord>("SELECT * FROM sqlx_patients ORDER BY id")
            .fetch_all_decrypted(&pool, &engine)
            .await
            .unwrap();
        assert_eq!(all, patients);

        // The columns hold ciphertext only; NULL stays NULL.
        let (ssn, phone): (String, Option<String>) =
            sqlx::query_as(sql(format!("SELECT ssn, phone FROM sqlx_patients WHERE id = {}", p(1))))
                .bind(1_i64)
                .fetch_one(&pool)
                .await
                .unwrap();
        assert!(ssn.starts_with("vault:v1:") && !ssn.contains("12-3456"), "{ssn}");
        assert_eq!(phone, None);

        // Lookup by the convergent field and by the blind index, bound as parameters.
        let wanted = Patient::email_lookup_async(&engine, &"p3@example.net".to_owned()).await.unwrap();
        assert_eq!(wanted.len(), 1);
        let by_email: Vec<Patient> =
            sqlx::query_as::<_, PatientRecord>(sql(format!("SELECT * FROM sqlx_patients WHERE email = {} ORDER BY id", p(1))))
                .bind(&wanted[0])
                .fetch_all_decrypted(&pool, &engine)
                .await
                .unwrap();
        assert_eq!(by_email, patients.iter().filter(|x| x.id % 4 == 3).cloned().collect::<Vec<_>>());
        let index = Patient::phone_index_async(&engine, &"1-555-0012".to_owned()).await.unwrap();
        let twelve = sqlx::query_as::<_, PatientRecord>(sql(format!("SELECT * FROM sqlx_patients WHERE phone_bidx = {}", p(1))))
            .bind(&index[0])
            .fetch_one_decrypted(&pool, &engine)
            .await
            .unwrap();
        assert_eq!(twelve, sample(12));
        let nobody = sqlx::query_as::<_, PatientRecord>(sql(format!("SELECT * FROM sqlx_patients WHERE id = {}", p(1))))
            .bind(999_i64)
            .fetch_optional_decrypted(&pool, &engine)
            .await
            .unwrap();
        assert_eq!(nobody, None);
        let missing = sqlx::query_as::<_, PatientRecord>(sql(format!("SELECT * FROM sqlx_patients WHERE id = {}", p(1))))
            .bind(999_i64)
            .fetch_one_decrypted(&pool, &engine)
            .await
            .unwrap_err();
        assert!(matches!(missing, QueryError::Database(sqlx::Error::RowNotFound)), "{missing}");

        // A partial update with the per-field helper; a ciphertext moved to another
        // row fails to decrypt.
        let new_ssn = Patient::encrypt_ssn_async(&engine, &5, &"555-55-5555".to_owned()).await.unwrap();
        sqlx::query(sql(format!("UPDATE sqlx_patients SET ssn = {} WHERE id = {}", p(1), p(2))))
            .bind(&new_ssn)
            .bind(5_i64)
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(sql(format!("UPDATE sqlx_patients SET ssn = {} WHERE id = {}", p(1), p(2))))
            .bind(&new_ssn)
            .bind(6_i64)
            .execute(&pool)
            .await
            .unwrap();
        let five = sqlx::query_as::<_, PatientRecord>(sql(format!("SELECT * FROM sqlx_patients WHERE id = {}", p(1))))
            .bind(5_i64)
            .fetch_one_decrypted(&pool, &engine)
            .await
            .unwrap();
        assert_eq!(five.ssn, "555-55-5555");
        let six = sqlx::query_as::<_, PatientRecord>(sql(format!("SELECT * FROM sqlx_patients WHERE id = {}", p(1))))
            .bind(6_i64)
            .fetch_one_decrypted(&pool, &engine)
            .await
            .unwrap_err();
        assert!(
            matches!(&six, QueryError::Encryption(Error::Field { source, .. }) if matches!(**source, Error::DecryptionFailed)),
            "{six}"
        );

        // Plaintext planted in the column is an error when read, not data.
        sqlx::query("UPDATE sqlx_patients SET ssn = 'plain text' WHERE id = 7")
            .execute(&pool)
            .await
            .unwrap();
        let planted = sqlx::query_as::<_, PatientRecord>(sql(format!("SELECT * FROM sqlx_patients WHERE id = {}", p(1))))
            .bind(7_i64)
            .fetch_one_decrypted(&pool, &engine)
            .await
            .unwrap_err();
        assert!(planted.to_string().contains("does not hold a ciphertext"), "{planted}");
        engine.list_keys().unwrap();
    }};
}

#[tokio::test]
async fn sqlx_sqlite() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    scenario!(pool, |n| format!("${n}"));
}

#[tokio::test]
async fn sqlx_postgres() {
    let Some(url) = database_url("ENCRYPTED_ATTR_TEST_POSTGRES_URL") else {
        return;
    };
    scenario!(sqlx::PgPool::connect(&url).await.unwrap(), |n| format!("${n}"));
}

#[tokio::test]
async fn sqlx_mysql() {
    let Some(url) = database_url("ENCRYPTED_ATTR_TEST_MYSQL_URL") else {
        return;
    };
    scenario!(sqlx::MySqlPool::connect(&url).await.unwrap(), |_| "?".to_owned());
}

mod async_diesel {
    diesel::table! {
        async_diesel_notes (id) {
            id -> BigInt,
            body -> Text,
            author -> Nullable<Text>,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "async_diesel_notes", id = "id")]
#[encrypted(record(
    name = "NoteRow",
    derive(diesel::Queryable, diesel::Selectable, diesel::Insertable),
    attr(diesel(table_name = async_diesel::async_diesel_notes))
))]
struct Note {
    id: i64,
    #[encrypted]
    body: String,
    #[encrypted]
    author: Option<String>,
}

/// diesel's records work unchanged with `diesel-async` (PostgreSQL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diesel_async_postgres() {
    use async_diesel::async_diesel_notes as notes;
    use diesel::prelude::*;
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

    let Some(url) = database_url("ENCRYPTED_ATTR_TEST_POSTGRES_URL") else {
        return;
    };
    let engine = LocalEngine::ephemeral().unwrap();
    Note::ensure_keys_async(&engine).await.unwrap();
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    conn.batch_execute(
        "DROP TABLE IF EXISTS async_diesel_notes; \
         CREATE TABLE async_diesel_notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL, author TEXT)",
    )
    .await
    .unwrap();
    let wanted: Vec<Note> = (1..=25)
        .map(|id| Note {
            id,
            body: format!("note {id}"),
            author: (id % 2 == 1).then(|| format!("author {id}")),
        })
        .collect();
    let rows = Note::encrypt_all_async(&wanted, &engine).await.unwrap();
    diesel::insert_into(notes::table)
        .values(&rows)
        .execute(&mut conn)
        .await
        .unwrap();
    let loaded: Vec<NoteRow> = notes::table
        .select(NoteRow::as_select())
        .order(notes::id)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(NoteRow::decrypt_all_async(loaded, &engine).await.unwrap(), wanted);
    let raw: String = notes::table.find(3).select(notes::body).first(&mut conn).await.unwrap();
    assert!(raw.starts_with("vault:v1:") && !raw.contains("note"), "{raw}");
}
