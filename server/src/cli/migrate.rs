//! `encrypted-attr migrate`: encrypts an existing plaintext column into its
//! ciphertext column, in batches, resumably; never drops the plaintext column.

use clap::Args;
use encrypted_attr::Ciphertext;
use encrypted_attr::model::row_binding;
use sqlx::{Connection, Row};

use super::engine::EngineArgs;
use super::table::{BindingArgs, TableArgs, Target, bind_id, db_error, identifier, progress_bar, timing};
use crate::error::CliError;

/// `migrate` arguments: encrypt an existing plaintext column into its ciphertext
/// column.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    target: TableArgs,
    /// The existing plaintext column (read, never changed or dropped).
    #[arg(long)]
    plaintext_column: String,
    #[command(flatten)]
    binding: BindingArgs,
    /// Rows per batch.
    #[arg(long, default_value_t = 1000)]
    batch: u32,
    /// After migrating, decrypt this many rows and compare them with the plaintext.
    #[arg(long, value_name = "ROWS")]
    verify: Option<u32>,
}

impl MigrateArgs {
    /// Migrates (resumably: only rows whose ciphertext column is still NULL), then
    /// verifies a sample; [`CliError::VerificationFailed`] if a sample row does
    /// not match.
    pub(crate) fn run(&self) -> Result<(), CliError> {
        let plain = identifier(&self.plaintext_column, "plaintext column")?;
        let id = self.binding.id_column()?;
        let Target {
            table,
            column,
            key,
            dialect,
            runtime,
            mut db,
        } = self.target.open()?;
        let engine = self.engine.engine()?;
        engine.read_key(&key)?;
        let (binding_table, binding_column) = self.binding.names(&table, &column);
        let binding = |row_id: &str| row_binding(&binding_table, &binding_column, self.binding.row_id(row_id));
        let select = format!(
            "SELECT {}, {plain} FROM {table} WHERE {column} IS NULL AND {plain} IS NOT NULL ORDER BY {table}.{id} LIMIT {}",
            dialect.id_as_text(&id),
            self.batch.max(1)
        );
        let update = format!(
            "UPDATE {table} SET {column} = {} WHERE {id} = {} AND {column} IS NULL",
            dialect.param(1),
            dialect.param(2)
        );
        let count = format!("SELECT COUNT(*) FROM {table} WHERE {column} IS NULL AND {plain} IS NOT NULL");
        let total: i64 = runtime
            .block_on(sqlx::query(sqlx::AssertSqlSafe(count.as_str())).fetch_one(&mut db))
            .and_then(|row| row.try_get(0))
            .map_err(db_error)?;
        let bar = progress_bar(total);
        let started = std::time::Instant::now();
        let mut migrated = 0u64;
        let mut changed_meanwhile = 0u64;
        loop {
            let rows = runtime
                .block_on(sqlx::query(sqlx::AssertSqlSafe(select.as_str())).fetch_all(&mut db))
                .map_err(db_error)?;
            if rows.is_empty() {
                break;
            }
            let mut ids = Vec::with_capacity(rows.len());
            let mut items = Vec::with_capacity(rows.len());
            for row in &rows {
                let row_id: String = row.try_get(0).map_err(db_error)?;
                let value: String = row.try_get(1).map_err(db_error)?;
                items.push(encrypted_attr::EncryptItem::new(value).associated_data(binding(&row_id)));
                ids.push(row_id);
            }
            let sealed = engine.encrypt_batch(&key, items)?;
            let sealed: Vec<String> = sealed
                .into_iter()
                .map(|r| r.map(Ciphertext::into_string))
                .collect::<Result<_, _>>()?;
            let written = runtime
                .block_on(async {
                    let mut tx = db.begin().await?;
                    let mut written = 0u64;
                    for (row_id, ct) in ids.iter().zip(&sealed) {
                        let query = bind_id(
                            sqlx::query(sqlx::AssertSqlSafe(update.as_str())).bind(ct.clone()),
                            row_id,
                        );
                        written += query.execute(&mut *tx).await?.rows_affected();
                    }
                    tx.commit().await?;
                    Ok::<u64, sqlx::Error>(written)
                })
                .map_err(db_error)?;
            if written == 0 {
                return Err(CliError::Usage(
                    "no row could be written (are the ciphertext column and id right?)".into(),
                ));
            }
            migrated += written;
            // A row whose ciphertext column someone else filled meanwhile is left.
            changed_meanwhile += (ids.len() as u64).saturating_sub(written);
            bar.inc(written);
        }
        bar.finish_and_clear();
        println!(
            "{table}.{plain} → {column}: {migrated} rows encrypted with {key}, {changed_meanwhile} changed by someone else meanwhile (left as they were), {}",
            timing(started, migrated + changed_meanwhile)
        );
        let mut verified_ok = true;
        if let Some(sample) = self.verify {
            let check = format!(
                "SELECT {}, {plain}, {column} FROM {table} WHERE {column} IS NOT NULL ORDER BY {table}.{id} LIMIT {}",
                dialect.id_as_text(&id),
                sample.max(1)
            );
            let rows = runtime
                .block_on(sqlx::query(sqlx::AssertSqlSafe(check.as_str())).fetch_all(&mut db))
                .map_err(db_error)?;
            let mut expected = Vec::with_capacity(rows.len());
            let mut items = Vec::with_capacity(rows.len());
            for row in &rows {
                let row_id: String = row.try_get(0).map_err(db_error)?;
                let value: Option<String> = row.try_get(1).map_err(db_error)?;
                let text: String = row.try_get(2).map_err(db_error)?;
                let ct: Ciphertext = text.parse()?;
                items.push(encrypted_attr::DecryptItem::new(ct).associated_data(binding(&row_id)));
                expected.push((row_id, value));
            }
            let opened = engine.decrypt_batch(&key, items)?;
            let mismatches = expected
                .iter()
                .zip(opened)
                .filter(|((_, value), opened)| match opened {
                    Ok(p) => value.as_deref().map(str::as_bytes) != Some(p.expose_secret()),
                    Err(_) => true,
                })
                .count();
            verified_ok = mismatches == 0;
            println!("verified {} rows: {mismatches} mismatches", expected.len());
        }
        if !verified_ok {
            return Err(CliError::VerificationFailed);
        }
        println!(
            "the plaintext column is still there; once the application reads {column}, drop it with:\n  ALTER TABLE {table} DROP COLUMN {plain};"
        );
        Ok(())
    }
}
