//! `encrypted-attr rewrap`: moves every ciphertext of a table column to the key's
//! latest version, in batches, without the plaintext leaving the engine.
//!
//! Resumable by construction: each batch selects rows whose ciphertext is not at the
//! latest version yet (keyset pagination by id), rewraps them in one engine call, and
//! writes them back in one set-based statement with a compare-and-swap on the old
//! value (a row the application changed meanwhile is left alone and counted). Killed at any point, a
//! batch is either written or not; running the command again finishes the job.
//! Rewrapping decrypts first, so nothing is ever encrypted twice.

use clap::Args;
use encrypted_attr::model::{column_binding, row_binding};
use encrypted_attr::{Ciphertext, RewrapItem};
use sqlx::Row;

use super::batch_write::{BatchWrite, Guard, IdType, RowWrite};
use super::engine::EngineArgs;
use super::pages::{PageQueries, PageReader};
use super::table::{BindingArgs, TableArgs, Target, db_error, progress_bar, timing};
use super::write_behind::WriteBehind;
use crate::error::CliError;

/// `rewrap` arguments.
#[derive(Debug, Args)]
pub(crate) struct RewrapArgs {
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    target: TableArgs,
    #[command(flatten)]
    binding: BindingArgs,
    /// The field is `convergent` (bound through the key-derivation context).
    #[arg(long)]
    convergent: bool,
    /// Rows per batch (one engine call and one transaction each).
    #[arg(long, default_value_t = 1000)]
    batch: u32,
    /// Count what would be rewrapped, change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl RewrapArgs {
    /// Runs the rewrap; [`CliError::RowsLeft`] when some rows did not end at the
    /// latest version.
    pub(crate) fn run(&self) -> Result<(), CliError> {
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
        let latest = engine.read_key(&key)?.latest_version;
        let current = format!("vault:v{latest}:%");
        let (binding_table, binding_column) = self.binding.names(&table, &column);

        // Table, column and id names are interpolated only after `identifier` checked
        // them (letters, digits, `_`); every value goes through a bind parameter.
        // A row without an id cannot be bound or written back: not pending.
        let pending_filter = format!(
            "{column} IS NOT NULL AND {column} NOT LIKE {} AND {table}.{id} IS NOT NULL",
            dialect.param(1)
        );
        let count_sql = format!("SELECT COUNT(*) FROM {table} WHERE {pending_filter}");
        let total: i64 = runtime
            .block_on(
                sqlx::query(sqlx::AssertSqlSafe(count_sql.as_str()))
                    .bind(current.clone())
                    .fetch_one(&mut db),
            )
            .and_then(|row| row.try_get(0))
            .map_err(db_error)?;
        if self.dry_run {
            println!("{total} rows of {table}.{column} are below {key} v{latest}; nothing changed (dry run)");
            return Ok(());
        }
        let bar = progress_bar(total);
        let started = std::time::Instant::now();

        let id_type = runtime.block_on(IdType::of(&mut db, dialect, &table, &id))?;
        // Batches are written on a connection of their own while the engine works
        // on the next one.
        let mut writes = WriteBehind::start(
            self.target.database_url.expose(),
            BatchWrite::new(dialect, &table, &column, &id, id_type.clone(), Guard::StillHolds),
        )?;
        let mut failed = 0u64;
        // The next page is read (and its ciphertexts parsed) on the reader's own
        // connection while this one is rewrapped and written.
        let cell = column.clone();
        let pages = PageReader::start(
            self.target.database_url.expose(),
            PageQueries::keyset(
                dialect,
                &table,
                (&id, id_type),
                &column,
                &pending_filter,
                Some(current),
                self.batch,
            ),
            move |row| {
                // A cell of another type (a BLOB in SQLite's dynamically typed TEXT
                // column) is reported and skipped: one bad row must not stop the
                // column's rewrap.
                let text: String = row
                    .try_get(1)
                    .map_err(|e| format!("the {cell} cell is not text ({}); skipped", db_error(e)))?;
                let ct = text
                    .parse::<Ciphertext>()
                    .map_err(|e| format!("not a ciphertext ({e}); skipped"))?;
                Ok((text, ct))
            },
        )?;
        for page in pages {
            let page = page?;
            let read = page.len() as u64;
            let mut batch = Vec::with_capacity(page.len());
            for (row_id, item) in page {
                match item {
                    Ok((text, ct)) => batch.push((row_id, text, ct)),
                    Err(problem) => {
                        failed += 1;
                        bar.suspend(|| eprintln!("row {row_id}: {problem}"));
                    }
                }
            }
            let items = batch
                .iter()
                .map(|(row_id, _, ct)| {
                    let item = RewrapItem::new(ct.clone());
                    if self.convergent {
                        item.context(column_binding(&binding_table, &binding_column))
                    } else {
                        let id_for_binding = self.binding.row_id(row_id.as_str());
                        item.associated_data(row_binding(&binding_table, &binding_column, id_for_binding))
                    }
                })
                .collect();
            let results = engine.rewrap_batch(&key, items)?;
            let updates: Vec<RowWrite> = batch
                .into_iter()
                .zip(results)
                .filter_map(|((id, old, _), result)| match result {
                    Ok(new) => Some(RowWrite {
                        id,
                        old: Some(old),
                        new: new.into_string(),
                    }),
                    Err(e) => {
                        failed += 1;
                        bar.suspend(|| eprintln!("row {id}: {e}"));
                        None
                    }
                })
                .collect();
            writes.write(updates)?;
            bar.inc(read);
        }
        let written = writes.finish()?;
        let (rewrapped, changed_meanwhile) = (written.changed, written.changed_meanwhile());
        bar.finish_and_clear();
        println!(
            "{table}.{column}: {rewrapped} rewrapped to {key} v{latest}, {failed} skipped (reported above), {changed_meanwhile} changed by someone else meanwhile (left as they were), {}",
            timing(started, rewrapped + failed + changed_meanwhile)
        );
        if failed == 0 { Ok(()) } else { Err(CliError::RowsLeft) }
    }
}
