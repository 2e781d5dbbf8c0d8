//! `encrypted-attr rewrap`: moves every ciphertext of a table column to the key's
//! latest version, in batches, without the plaintext leaving the engine.
//!
//! Resumable by construction: each batch selects rows whose ciphertext is not at the
//! latest version yet (keyset pagination by id), rewraps them in one engine call, and
//! writes them back in one transaction with a compare-and-swap on the old value (a
//! row the application changed meanwhile is left alone). Killed at any point, a
//! batch is either written or not; running the command again finishes the job.
//! Rewrapping decrypts first, so nothing is ever encrypted twice.

use std::time::Duration;

use clap::Args;
use encrypted_attr::model::{column_binding, row_binding};
use encrypted_attr::{Ciphertext, KeyName, RewrapItem};
use sqlx::{AnyConnection, Connection, Row};

use crate::keys_cli::EngineArgs;

/// The column an admin command works on, and its key.
#[derive(Debug, Args)]
pub(crate) struct TableArgs {
    /// Database URL: postgres://…, mysql://… or sqlite://path.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: crate::cli::SecretArg,
    /// The table.
    #[arg(long)]
    table: String,
    /// The ciphertext column.
    #[arg(long)]
    column: String,
    /// Transit key of the column (the derive's default is `<table>_<field>`).
    #[arg(long)]
    key: String,
}

/// The checked names, the SQL dialect, and a connection on its own runtime.
struct Target {
    table: String,
    column: String,
    key: KeyName,
    dialect: Dialect,
    runtime: tokio::runtime::Runtime,
    db: AnyConnection,
}

impl TableArgs {
    /// Checks the names (they are interpolated into SQL) and connects. Database
    /// calls run on the returned runtime one at a time, never around an engine call
    /// (a remote engine is blocking).
    fn open(&self) -> Result<Target, String> {
        let table = identifier(&self.table, "table")?;
        let column = identifier(&self.column, "column")?;
        let key = KeyName::new(&self.key).map_err(|e| e.to_string())?;
        let url = self.database_url.expose();
        let dialect = Dialect::of(url)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        sqlx::any::install_default_drivers();
        let db = runtime.block_on(AnyConnection::connect(url)).map_err(db_error)?;
        Ok(Target {
            table,
            column,
            key,
            dialect,
            runtime,
            db,
        })
    }
}

/// How the column's ciphertexts are bound to their row (`docs/derive.md`): the
/// flags `rewrap` and `migrate` share.
#[derive(Debug, Args)]
struct BindingArgs {
    /// Row identity column (the derive's `id`).
    #[arg(long, default_value = "id")]
    id_column: String,
    /// Table name bound into the ciphertexts, if the model's `table` differs.
    #[arg(long)]
    binding_table: Option<String>,
    /// Column name bound into the ciphertexts (the model's field column), if it
    /// differs from `--column`.
    #[arg(long)]
    binding_column: Option<String>,
    /// The model has no `id`: ciphertexts are bound to table and column only.
    #[arg(long)]
    no_row_binding: bool,
}

impl BindingArgs {
    /// The id column, checked for interpolation into SQL.
    fn id_column(&self) -> Result<String, String> {
        identifier(&self.id_column, "id column")
    }

    /// The table and column names bound into ciphertexts.
    fn names(&self, table: &str, column: &str) -> (String, String) {
        (
            self.binding_table.clone().unwrap_or_else(|| table.to_owned()),
            self.binding_column.clone().unwrap_or_else(|| column.to_owned()),
        )
    }

    /// The row id bound into a ciphertext, unless the model has none.
    fn row_id<'a>(&self, row_id: &'a str) -> Option<&'a str> {
        (!self.no_row_binding).then_some(row_id)
    }
}

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

fn identifier(name: &str, what: &str) -> Result<String, String> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(format!("{what} {name:?} is not a plain SQL identifier"))
    }
}

/// A progress bar over `total` rows (drawn on stderr only when it is a terminal).
fn progress_bar(total: i64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[derive(Clone, Copy)]
enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

impl Dialect {
    fn of(url: &str) -> Result<Self, String> {
        match url.split(':').next() {
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            Some("mysql" | "mariadb") => Ok(Self::MySql),
            Some("sqlite") => Ok(Self::Sqlite),
            _ => Err("the database URL must start with postgres://, mysql:// or sqlite://".into()),
        }
    }

    fn param(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::MySql | Self::Sqlite => "?".into(),
        }
    }

    /// The id as text, under its own alias: PostgreSQL resolves `ORDER BY id` to an
    /// output column named `id` first, and an unaliased `CAST(id AS TEXT)` is named
    /// `id` — which would sort the ids as text and break the pagination.
    fn id_as_text(self, id: &str) -> String {
        match self {
            Self::MySql => format!("CAST({id} AS CHAR) AS ea_row_id"),
            Self::Postgres | Self::Sqlite => format!("CAST({id} AS TEXT) AS ea_row_id"),
        }
    }
}

/// Binds an id read as text back with its likely type: integers as integers.
fn bind_id<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    id: &str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    match id.parse::<i64>() {
        Ok(n) => query.bind(n),
        Err(_) => query.bind(id.to_owned()),
    }
}

fn db_error(e: sqlx::Error) -> String {
    // Never the URL or values: the kind of failure only.
    match e {
        sqlx::Error::Database(db) => format!("database error: {}", db.message()),
        other => format!(
            "database error: {}",
            other.to_string().lines().next().unwrap_or("unknown")
        ),
    }
}

impl RewrapArgs {
    /// Runs the rewrap; `Ok(true)` when every row ended at the latest version.
    pub(crate) fn run(&self) -> Result<bool, String> {
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
        let latest = engine.read_key(&key).map_err(|e| e.to_string())?.latest_version;
        let current = format!("vault:v{latest}:%");
        let (binding_table, binding_column) = self.binding.names(&table, &column);

        // Table, column and id names are interpolated only after `identifier` checked
        // them (letters, digits, `_`); every value goes through a bind parameter.
        let pending_filter = format!("{column} IS NOT NULL AND {column} NOT LIKE {}", dialect.param(1));
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
            return Ok(true);
        }
        let bar = progress_bar(total);

        let select_first = format!(
            "SELECT {}, {column} FROM {table} WHERE {pending_filter} ORDER BY {table}.{id} LIMIT {}",
            dialect.id_as_text(&id),
            self.batch.max(1)
        );
        let select_after = format!(
            "SELECT {}, {column} FROM {table} WHERE {pending_filter} AND {table}.{id} > {} ORDER BY {table}.{id} LIMIT {}",
            dialect.id_as_text(&id),
            dialect.param(2),
            self.batch.max(1)
        );
        let update = format!(
            "UPDATE {table} SET {column} = {} WHERE {id} = {} AND {column} = {}",
            dialect.param(1),
            dialect.param(2),
            dialect.param(3)
        );
        let (mut rewrapped, mut failed, mut changed_meanwhile) = (0u64, 0u64, 0u64);
        let mut last_id: Option<String> = None;
        loop {
            let query = match &last_id {
                None => sqlx::query(sqlx::AssertSqlSafe(select_first.as_str())).bind(current.clone()),
                Some(last) => bind_id(
                    sqlx::query(sqlx::AssertSqlSafe(select_after.as_str())).bind(current.clone()),
                    last,
                ),
            };
            let rows = runtime.block_on(query.fetch_all(&mut db)).map_err(db_error)?;
            if rows.is_empty() {
                break;
            }
            let mut batch = Vec::with_capacity(rows.len());
            for row in &rows {
                let row_id: String = row.try_get(0).map_err(db_error)?;
                last_id = Some(row_id.clone());
                // A cell of another type (a BLOB in SQLite's dynamically typed
                // TEXT column) is reported and skipped: one bad row must not stop
                // the column's rewrap.
                let text: String = match row.try_get(1) {
                    Ok(text) => text,
                    Err(e) => {
                        failed += 1;
                        bar.suspend(|| {
                            eprintln!("row {row_id}: the {column} cell is not text ({}); skipped", db_error(e))
                        });
                        continue;
                    }
                };
                match text.parse::<Ciphertext>() {
                    Ok(ct) => batch.push((row_id, text, ct)),
                    Err(e) => {
                        failed += 1;
                        bar.suspend(|| eprintln!("row {row_id}: not a ciphertext ({e})"));
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
            let results = engine.rewrap_batch(&key, items).map_err(|e| e.to_string())?;
            let updates: Vec<(String, String, String)> = batch
                .into_iter()
                .zip(results)
                .filter_map(|((row_id, old, _), result)| match result {
                    Ok(new) => Some((row_id, old, new.into_string())),
                    Err(e) => {
                        failed += 1;
                        bar.suspend(|| eprintln!("row {row_id}: {e}"));
                        None
                    }
                })
                .collect();
            let written = runtime
                .block_on(async {
                    let mut tx = db.begin().await?;
                    let mut written = 0u64;
                    for (row_id, old, new) in &updates {
                        let query = bind_id(
                            sqlx::query(sqlx::AssertSqlSafe(update.as_str())).bind(new.clone()),
                            row_id,
                        )
                        .bind(old.clone());
                        written += query.execute(&mut *tx).await?.rows_affected();
                    }
                    tx.commit().await?;
                    Ok::<u64, sqlx::Error>(written)
                })
                .map_err(db_error)?;
            rewrapped += written;
            changed_meanwhile += updates.len() as u64 - written.min(updates.len() as u64);
            bar.inc(rows.len() as u64);
        }
        bar.finish_and_clear();
        println!(
            "{table}.{column}: {rewrapped} rewrapped to {key} v{latest}, {failed} failed, {changed_meanwhile} changed by someone else meanwhile (left as they were)"
        );
        Ok(failed == 0)
    }
}

/// `retire` arguments: raise a key's minimum decryption version once no row of the
/// column still needs an older one.
#[derive(Debug, Args)]
pub(crate) struct RetireArgs {
    #[command(flatten)]
    engine: EngineArgs,
    #[command(flatten)]
    target: TableArgs,
    /// Versions below this one stop decrypting (`min_decryption_version` becomes it).
    #[arg(long)]
    below: u32,
}

impl RetireArgs {
    /// Refuses while rows still hold versions below `--below`; otherwise raises
    /// `min_decryption_version`. `Ok(false)` means refused.
    pub(crate) fn run(&self) -> Result<bool, String> {
        if self.below < 2 {
            return Err("--below must be at least 2 (version 1 is the first)".into());
        }
        let Target {
            table,
            column,
            key,
            dialect,
            runtime,
            mut db,
        } = self.target.open()?;
        let engine = self.engine.engine()?;
        let info = engine.read_key(&key).map_err(|e| e.to_string())?;
        if self.below > info.latest_version.get() {
            return Err(format!(
                "{key} has no version {} yet (latest is {})",
                self.below, info.latest_version
            ));
        }
        // Versions below `below` that may still be in rows: from the current minimum up.
        let old: Vec<String> = (info.min_decryption_version.get()..self.below)
            .map(|v| format!("vault:v{v}:%"))
            .collect();
        if !old.is_empty() {
            let conditions: Vec<String> = (1..=old.len())
                .map(|n| format!("{column} LIKE {}", dialect.param(n)))
                .collect();
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE {}", conditions.join(" OR "));
            let remaining: i64 = runtime
                .block_on(async {
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                    for pattern in &old {
                        query = query.bind(pattern.clone());
                    }
                    query.fetch_one(&mut db).await?.try_get(0)
                })
                .map_err(db_error)?;
            if remaining > 0 {
                println!(
                    "refused: {remaining} rows of {table}.{column} still hold versions below {}; run `encrypted-attr rewrap` first",
                    self.below
                );
                return Ok(false);
            }
        }
        let info = engine
            .configure_key(
                &key,
                encrypted_attr::KeyConfig::default().min_decryption_version(self.below),
            )
            .map_err(|e| e.to_string())?;
        println!(
            "{key}: versions below {} retired (min_decryption_version = {})",
            self.below, info.min_decryption_version
        );
        Ok(true)
    }
}

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
    /// verifies a sample; `Ok(false)` if a sample row does not match.
    pub(crate) fn run(&self) -> Result<bool, String> {
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
        engine.read_key(&key).map_err(|e| e.to_string())?;
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
        let mut migrated = 0u64;
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
            let sealed = engine.encrypt_batch(&key, items).map_err(|e| e.to_string())?;
            let sealed: Vec<String> = sealed
                .into_iter()
                .map(|r| r.map(Ciphertext::into_string))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
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
                return Err("no row could be written (are the ciphertext column and id right?)".into());
            }
            migrated += written;
            bar.inc(written);
        }
        bar.finish_and_clear();
        println!("{table}.{plain} → {column}: {migrated} rows encrypted with {key}");
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
                let ct: Ciphertext = text.parse().map_err(|e: encrypted_attr::Error| e.to_string())?;
                items.push(encrypted_attr::DecryptItem::new(ct).associated_data(binding(&row_id)));
                expected.push((row_id, value));
            }
            let opened = engine.decrypt_batch(&key, items).map_err(|e| e.to_string())?;
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
        if verified_ok {
            println!(
                "the plaintext column is still there; once the application reads {column}, drop it with:\n  ALTER TABLE {table} DROP COLUMN {plain};"
            );
        }
        Ok(verified_ok)
    }
}
