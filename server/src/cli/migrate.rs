//! `encrypted-attr migrate`: encrypts an existing plaintext column into its
//! ciphertext column, in batches, resumably; never drops the plaintext column.

use clap::Args;
use encrypted_attr::model::row_binding;
use encrypted_attr::{Ciphertext, SecretBytes};
use sqlx::Row;

use super::batch_write::{BatchWrite, Guard, IdType, RowWrite};
use super::engine::EngineArgs;
use super::field_type::FieldType;
use super::pages::{PageQueries, PageReader};
use super::table::{BindingArgs, TableArgs, Target, db_error, identifier, progress_bar, timing};
use super::write_behind::WriteBehind;
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
    /// The model field's Rust type: the value is read from the plaintext column and
    /// encrypted as the bytes the derive's codec makes of that type.
    #[arg(long, value_enum, default_value = "string")]
    field_type: FieldType,
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
        let id_type = runtime.block_on(IdType::of(&mut db, dialect, &table, &id))?;
        // Keyset pagination: each page starts after the last id of the one before,
        // so a page costs the same at the end of the table as at its start.
        // A row without an id cannot be bound or written back: not pending.
        let pending = format!("{column} IS NULL AND {plain} IS NOT NULL AND {table}.{id} IS NOT NULL");
        // Batches are written on a connection of their own while the engine works
        // on the next one.
        let mut writes = WriteBehind::start(
            self.target.database_url.expose(),
            BatchWrite::new(dialect, &table, &column, &id, id_type.clone(), Guard::StillNull),
        )?;
        let count = format!("SELECT COUNT(*) FROM {table} WHERE {pending}");
        let total: i64 = runtime
            .block_on(sqlx::query(sqlx::AssertSqlSafe(count.as_str())).fetch_one(&mut db))
            .and_then(|row| row.try_get(0))
            .map_err(db_error)?;
        let bar = progress_bar(total);
        let started = std::time::Instant::now();
        let mut skipped = 0u64;
        // The next page is read (and its values encoded) on the reader's own
        // connection while this one is encrypted and written.
        let field_type = self.field_type;
        let pages = PageReader::start(
            self.target.database_url.expose(),
            PageQueries::keyset(
                dialect,
                &table,
                (&id, id_type),
                &self.field_type.select(dialect, &plain),
                &pending,
                None,
                self.batch,
            ),
            // A value the field's type cannot hold is reported (never shown) and
            // left: one bad row must not stop the column's migration.
            move |row| {
                field_type
                    .encode(row, 1)
                    .map_err(|problem| format!("{problem}; skipped"))
            },
        )?;
        for page in pages {
            let page = page?;
            let read = page.len() as u64;
            let mut ids = Vec::with_capacity(page.len());
            let mut items = Vec::with_capacity(page.len());
            for (row_id, value) in page {
                match value {
                    Ok(plaintext) => {
                        items.push(encrypted_attr::EncryptItem::new(plaintext).associated_data(binding(&row_id)));
                        ids.push(row_id);
                    }
                    Err(problem) => {
                        skipped += 1;
                        bar.suspend(|| eprintln!("row {row_id}: {problem}"));
                    }
                }
            }
            let sealed = engine.encrypt_batch(&key, items)?;
            let sealed: Vec<String> = sealed
                .into_iter()
                .map(|r| r.map(Ciphertext::into_string))
                .collect::<Result<_, _>>()?;
            let updates: Vec<RowWrite> = ids
                .into_iter()
                .zip(sealed)
                .map(|(id, new)| RowWrite { id, old: None, new })
                .collect();
            writes.write(updates)?;
            bar.inc(read);
        }
        // A row whose ciphertext column someone else filled meanwhile is left.
        let written = writes.finish()?;
        let (migrated, changed_meanwhile) = (written.changed, written.changed_meanwhile());
        bar.finish_and_clear();
        println!(
            "{table}.{plain} → {column}: {migrated} rows encrypted with {key}, {skipped} skipped (reported above), {changed_meanwhile} changed by someone else meanwhile (left as they were), {}",
            timing(started, migrated + skipped + changed_meanwhile)
        );
        let mut verified_ok = true;
        if let Some(sample) = self.verify {
            let check = format!(
                "SELECT {}, {}, {column} FROM {table} WHERE {column} IS NOT NULL ORDER BY {table}.{id} LIMIT {}",
                dialect.id_as_text(&id),
                self.field_type.select(dialect, &plain),
                sample.max(1)
            );
            let rows = runtime
                .block_on(sqlx::query(sqlx::AssertSqlSafe(check.as_str())).fetch_all(&mut db))
                .map_err(db_error)?;
            let mut expected = Vec::with_capacity(rows.len());
            let mut items = Vec::with_capacity(rows.len());
            for row in &rows {
                let row_id: String = row.try_get(0).map_err(db_error)?;
                // A plaintext cell that is NULL now, or no longer the field's type,
                // counts as a mismatch.
                let value = self.field_type.encode(row, 1).ok();
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
                    Ok(p) => value.as_ref().map(SecretBytes::expose_secret) != Some(p.expose_secret()),
                    Err(_) => true,
                })
                .count();
            verified_ok = mismatches == 0;
            println!("verified {} rows: {mismatches} mismatches", expected.len());
        }
        if !verified_ok {
            return Err(CliError::VerificationFailed);
        }
        if skipped > 0 {
            return Err(CliError::RowsLeft);
        }
        // Rows inserted (or emptied) since the pages went past them are still plain
        // only: never suggest dropping the column while any is left.
        let left: i64 = runtime
            .block_on(sqlx::query(sqlx::AssertSqlSafe(count.as_str())).fetch_one(&mut db))
            .and_then(|row| row.try_get(0))
            .map_err(db_error)?;
        if left > 0 {
            println!(
                "{left} rows still have {plain} but no {column} (written meanwhile without it): run migrate again"
            );
            return Err(CliError::RowsLeft);
        }
        println!(
            "the plaintext column is still there; once the application reads {column}, drop it with:\n  ALTER TABLE {table} DROP COLUMN {plain};"
        );
        Ok(())
    }
}
