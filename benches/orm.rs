//! Insert and load 10,000 rows with 2 encrypted fields through diesel on SQLite (and PostgreSQL),
//! against the same rows with plaintext columns, interleaved in rounds; medians and
//! ratios. Results in `BENCHMARKS.md`.
//!
//! Run: `cargo bench --bench orm` (SQLite in memory); with
//! `--features postgres` and `ENCRYPTED_ATTR_BENCH_POSTGRES_URL=postgres://…` also
//! PostgreSQL over loopback; `ENCRYPTED_ATTR_BENCH_SPLIT=off` keeps the engine's
//! batches on one thread.

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // benchmark harness

use std::time::Instant;

use diesel::prelude::*;
use encrypted_attr::{Encrypted, EngineOptions, LocalEngine};

mod schema {
    diesel::table! {
        plain_users (id) {
            id -> BigInt,
            name -> Text,
            ssn -> Text,
            email -> Text,
        }
    }
    diesel::table! {
        users (id) {
            id -> BigInt,
            name -> Text,
            ssn -> Text,
            email -> Text,
        }
    }
}
use schema::{plain_users, users};

const ROWS: i64 = 10_000;
const ROUNDS: usize = 11;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable)]
#[diesel(table_name = plain_users)]
struct PlainUser {
    id: i64,
    name: String,
    ssn: String,
    email: String,
}

#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "users", id = "id")]
#[encrypted(record(name = "UserRecord", derive(Queryable, Selectable, Insertable), attr(diesel(table_name = users))))]
struct User {
    id: i64,
    name: String,
    #[encrypted]
    ssn: String,
    #[encrypted]
    email: String,
}

fn millis(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Inserts and loads both tables on a fresh connection per round; medians per phase:
/// (insert plaintext, insert encrypted, load plaintext, load encrypted, of which
/// the query into records).
macro_rules! rounds {
    ($connect:expr, $users:expr, $plain:expr, $engine:expr) => {{
        let (users, plain, engine) = ($users, $plain, $engine);
        let (mut p_ins, mut e_ins, mut p_load, mut e_load, mut e_fetch) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            let mut db = $connect;
            for t in ["plain_users", "users"] {
                diesel::sql_query(format!("DROP TABLE IF EXISTS {t}")).execute(&mut db).unwrap();
                diesel::sql_query(format!(
                    "CREATE TABLE {t} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, ssn TEXT NOT NULL, email TEXT NOT NULL)"
                ))
                .execute(&mut db)
                .unwrap();
            }
            let start = Instant::now();
            db.transaction(|db| {
                for chunk in plain.chunks(1000) {
                    diesel::insert_into(plain_users::table).values(chunk).execute(db)?;
                }
                diesel::QueryResult::Ok(())
            })
            .unwrap();
            p_ins.push(millis(start));

            let start = Instant::now();
            let records = User::encrypt_all(users, engine).unwrap();
            db.transaction(|db| {
                for chunk in records.chunks(1000) {
                    diesel::insert_into(users::table).values(chunk).execute(db)?;
                }
                diesel::QueryResult::Ok(())
            })
            .unwrap();
            e_ins.push(millis(start));

            let start = Instant::now();
            let loaded: Vec<PlainUser> = plain_users::table.select(PlainUser::as_select()).load(&mut db).unwrap();
            p_load.push(millis(start));
            assert_eq!(loaded.len(), ROWS as usize);

            let start = Instant::now();
            let loaded: Vec<UserRecord> = users::table.select(UserRecord::as_select()).load(&mut db).unwrap();
            e_fetch.push(millis(start));
            let loaded = UserRecord::decrypt_all(loaded, engine).unwrap();
            e_load.push(millis(start));
            assert_eq!(loaded.len(), ROWS as usize);
        }
        (median(p_ins), median(e_ins), median(p_load), median(e_load), median(e_fetch))
    }};
}

fn main() {
    // `ENCRYPTED_ATTR_BENCH_SPLIT=off` keeps every batch on the calling thread.
    let options = match std::env::var("ENCRYPTED_ATTR_BENCH_SPLIT").as_deref() {
        Ok("off") => EngineOptions::default().parallel_batch_threshold(None),
        _ => EngineOptions::default(),
    };
    let engine = LocalEngine::ephemeral_with(options).unwrap();
    User::ensure_keys(&engine).unwrap();
    let users: Vec<User> = (0..ROWS)
        .map(|i| User {
            id: i,
            name: format!("user {i}"),
            ssn: format!("{:03}-45-{:04}", i % 1000, i % 10_000),
            email: format!("user{i}@example.com"),
        })
        .collect();
    let plain: Vec<PlainUser> = users
        .iter()
        .map(|u| PlainUser {
            id: u.id,
            name: u.name.clone(),
            ssn: u.ssn.clone(),
            email: u.email.clone(),
        })
        .collect();

    let mut results = vec![(
        "SQLite (memory)",
        rounds!(
            SqliteConnection::establish(":memory:").unwrap(),
            &users,
            &plain,
            &engine
        ),
    )];
    #[cfg(feature = "postgres")]
    match std::env::var("ENCRYPTED_ATTR_BENCH_POSTGRES_URL") {
        Ok(url) => results.push((
            "PostgreSQL (loopback)",
            rounds!(PgConnection::establish(&url).unwrap(), &users, &plain, &engine),
        )),
        Err(_) => eprintln!("ENCRYPTED_ATTR_BENCH_POSTGRES_URL is not set: PostgreSQL not measured"),
    }
    #[cfg(not(feature = "postgres"))]
    eprintln!("built without the `postgres` feature: PostgreSQL not measured");
    println!("| 10,000 rows, 2 encrypted fields | plaintext columns | encrypted | ratio |");
    println!("|---|---|---|---|");
    for (database, (p_ins, e_ins, p_load, e_load, e_fetch)) in results {
        for (what, p, e) in [("insert", p_ins, e_ins), ("load", p_load, e_load)] {
            println!("| {database}: {what} | {p:.1} ms | {e:.1} ms | {:.2}× |", e / p);
        }
        println!(
            "| {database}: — of which the query into records (ciphertexts parsed) | | {e_fetch:.1} ms | {:.2}× |",
            e_fetch / p_load
        );
    }
}
