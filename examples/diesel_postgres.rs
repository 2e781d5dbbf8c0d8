//! diesel with PostgreSQL: a model with encrypted fields, batch insert and load, a
//! lookup by a convergent field.
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --example diesel_postgres --features postgres`
//! (the URL shown is the default).

use diesel::prelude::*;
use encrypted_attr::{Encrypted, LocalEngine};

#[allow(missing_docs)]
mod schema {
    diesel::table! {
        patients (id) {
            id -> BigInt,
            name -> Text,
            diagnosis -> Text,
            insurance_no -> Text,
        }
    }
}
use schema::patients;

#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "patients", id = "id")]
#[encrypted(record(name = "PatientRecord", derive(Queryable, Selectable, Insertable), attr(diesel(table_name = patients))))]
struct Patient {
    id: i64,
    name: String,
    #[encrypted]
    diagnosis: String,
    #[encrypted(convergent)]
    insurance_no: String,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut db = PgConnection::establish(&url)?;
    diesel::sql_query("DROP TABLE IF EXISTS patients").execute(&mut db)?;
    diesel::sql_query(
        "CREATE TABLE patients (id BIGINT PRIMARY KEY, name TEXT NOT NULL, diagnosis TEXT NOT NULL, insurance_no TEXT NOT NULL)",
    )
    .execute(&mut db)?;

    // For the example, keys live in memory; see the quickstart for a keyring file.
    let engine = LocalEngine::ephemeral()?;
    Patient::ensure_keys(&engine)?;

    let patients: Vec<Patient> = (1..=100)
        .map(|i| Patient {
            id: i,
            name: format!("patient {i}"),
            diagnosis: format!("diagnosis {i}"),
            insurance_no: format!("INS-{:04}", i % 10),
        })
        .collect();
    let records = Patient::encrypt_all(&patients, &engine)?;
    diesel::insert_into(patients::table).values(&records).execute(&mut db)?;

    let wanted = Patient::insurance_no_lookup(&engine, &"INS-0003".to_owned())?;
    let rows: Vec<PatientRecord> = patients::table
        .filter(patients::insurance_no.eq_any(&wanted))
        .select(PatientRecord::as_select())
        .load(&mut db)?;
    let found = PatientRecord::decrypt_all(rows, &engine)?;
    println!(
        "{} patients with INS-0003, e.g. {} ({})",
        found.len(),
        found[0].name,
        found[0].diagnosis
    );

    let raw: String = patients::table.find(1).select(patients::diagnosis).first(&mut db)?;
    println!("stored diagnosis of patient 1: {raw}");
    Ok(())
}
