//! A table column for the admin commands (`rewrap`, `retire`, `migrate`): the
//! database URL and its SQL dialect, the column and its key, how its values are bound
//! (row or column binding), and the helpers they share.

use std::time::Duration;

use clap::Args;
use encrypted_attr::KeyName;
use sqlx::{AnyConnection, Connection};

use super::secret::SecretArg;
use crate::error::CliError;

/// The column an admin command works on, and its key.
#[derive(Debug, Args)]
pub(crate) struct TableArgs {
    /// Database URL: postgres://…, mysql://… or sqlite://path.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub(super) database_url: SecretArg,
    /// The table.
    #[arg(long)]
    pub(super) table: String,
    /// The ciphertext column.
    #[arg(long)]
    pub(super) column: String,
    /// Transit key of the column (the derive's default is `<table>_<field>`).
    #[arg(long)]
    pub(super) key: String,
}

/// The checked names, the SQL dialect, and a connection on its own runtime.
pub(super) struct Target {
    pub(super) table: String,
    pub(super) column: String,
    pub(super) key: KeyName,
    pub(super) dialect: Dialect,
    pub(super) runtime: tokio::runtime::Runtime,
    pub(super) db: AnyConnection,
}

impl TableArgs {
    /// Checks the names (they are interpolated into SQL) and connects. Database
    /// calls run on the returned runtime one at a time, never around an engine call
    /// (a remote engine is blocking).
    pub(super) fn open(&self) -> Result<Target, CliError> {
        let table = identifier(&self.table, "table")?;
        let column = identifier(&self.column, "column")?;
        let key = KeyName::new(&self.key)?;
        let url = self.database_url.expose();
        let dialect = Dialect::of(url)?;
        let runtime = super::command_runtime()?;
        sqlx::any::install_default_drivers();
        let db = runtime.block_on(connect(url)).map_err(db_error)?;
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

/// Connects, and fixes the session settings the commands read values through: on
/// PostgreSQL, dates in ISO order whatever the server's `DateStyle`.
pub(super) async fn connect(url: &str) -> Result<AnyConnection, sqlx::Error> {
    let mut db = AnyConnection::connect(url).await?;
    if matches!(Dialect::of(url), Ok(Dialect::Postgres)) {
        sqlx::query("SET DateStyle = 'ISO, YMD'").execute(&mut db).await?;
    }
    Ok(db)
}

/// How the column's ciphertexts are bound to their row (`docs/derive.md`): the
/// flags `rewrap` and `migrate` share.
#[derive(Debug, Args)]
pub(super) struct BindingArgs {
    /// Row identity column (the derive's `id`).
    #[arg(long, default_value = "id")]
    pub(super) id_column: String,
    /// Table name bound into the ciphertexts, if the model's `table` differs.
    #[arg(long)]
    pub(super) binding_table: Option<String>,
    /// Column name bound into the ciphertexts (the model's field column), if it
    /// differs from `--column`.
    #[arg(long)]
    pub(super) binding_column: Option<String>,
    /// The model has no `id`: ciphertexts are bound to table and column only.
    #[arg(long)]
    pub(super) no_row_binding: bool,
}

impl BindingArgs {
    /// The id column, checked for interpolation into SQL.
    pub(super) fn id_column(&self) -> Result<String, CliError> {
        identifier(&self.id_column, "id column")
    }

    /// The table and column names bound into ciphertexts.
    pub(super) fn names(&self, table: &str, column: &str) -> (String, String) {
        (
            self.binding_table.clone().unwrap_or_else(|| table.to_owned()),
            self.binding_column.clone().unwrap_or_else(|| column.to_owned()),
        )
    }

    /// The row id bound into a ciphertext, unless the model has none.
    pub(super) fn row_id<'a>(&self, row_id: &'a str) -> Option<&'a str> {
        (!self.no_row_binding).then_some(row_id)
    }
}

pub(super) fn identifier(name: &str, what: &str) -> Result<String, CliError> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(CliError::Usage(format!(
            "{what} {name:?} is not a plain SQL identifier"
        )))
    }
}

/// How long a column command took and its rate, for its summary line:
/// `in 12.3 s (8,130 rows/s)`.
pub(super) fn timing(started: std::time::Instant, rows: u64) -> String {
    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 { rows as f64 / seconds } else { 0.0 };
    format!("in {seconds:.1} s ({} rows/s)", group_thousands(rate.round() as u64))
}

/// `8130` as `8,130`.
fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A progress bar over `total` rows (drawn on stderr only when it is a terminal).
pub(super) fn progress_bar(total: i64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(u64::try_from(total).unwrap_or(0));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

#[derive(Clone, Copy)]
pub(super) enum Dialect {
    Postgres,
    MySql,
    Sqlite,
}

impl Dialect {
    pub(super) fn of(url: &str) -> Result<Self, CliError> {
        match url.split(':').next() {
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            Some("mysql" | "mariadb") => Ok(Self::MySql),
            Some("sqlite") => Ok(Self::Sqlite),
            _ => Err(CliError::Usage(
                "the database URL must start with postgres://, mysql:// or sqlite://".into(),
            )),
        }
    }

    pub(super) fn param(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::MySql | Self::Sqlite => "?".into(),
        }
    }

    /// The id as text, under its own alias: PostgreSQL resolves `ORDER BY id` to an
    /// output column named `id` first, and an unaliased `CAST(id AS TEXT)` is named
    /// `id` — which would sort the ids as text and break the pagination.
    pub(super) fn id_as_text(self, id: &str) -> String {
        match self {
            Self::MySql => format!("CAST({id} AS CHAR) AS ea_row_id"),
            Self::Postgres | Self::Sqlite => format!("CAST({id} AS TEXT) AS ea_row_id"),
        }
    }
}

pub(super) fn db_error(e: sqlx::Error) -> CliError {
    // Never the URL or values: the kind of failure only.
    CliError::Database(match e {
        sqlx::Error::Database(db) => format!("database error: {}", db.message()),
        other => format!(
            "database error: {}",
            other.to_string().lines().next().unwrap_or("unknown")
        ),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn summary_numbers_are_grouped_by_thousands() {
        assert_eq!(super::group_thousands(0), "0");
        assert_eq!(super::group_thousands(999), "999");
        assert_eq!(super::group_thousands(8130), "8,130");
        assert_eq!(super::group_thousands(1_234_567), "1,234,567");
    }
}
