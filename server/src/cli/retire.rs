//! `encrypted-attr retire`: raises a key's minimum decryption version once no row of
//! the column still holds an older version.

use clap::Args;
use sqlx::Row;

use super::engine::EngineArgs;
use super::table::{TableArgs, Target, db_error};
use crate::error::CliError;

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
    /// `min_decryption_version`; refused is [`CliError::NothingRetired`].
    pub(crate) fn run(&self) -> Result<(), CliError> {
        if self.below < 2 {
            return Err(CliError::Usage(
                "--below must be at least 2 (version 1 is the first)".into(),
            ));
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
        let info = engine.read_key(&key)?;
        if self.below > info.latest_version.get() {
            return Err(CliError::Usage(format!(
                "{key} has no version {} yet (latest is {})",
                self.below, info.latest_version
            )));
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
                return Err(CliError::NothingRetired);
            }
        }
        let info = engine.configure_key(
            &key,
            encrypted_attr::KeyConfig::default().min_decryption_version(self.below),
        )?;
        println!(
            "{key}: versions below {} retired (min_decryption_version = {})",
            self.below, info.min_decryption_version
        );
        Ok(())
    }
}
