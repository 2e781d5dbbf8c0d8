//! Writing a column command's batches on a thread and a database connection of
//! their own, one batch behind the engine: while batch k is written, the engine
//! already works on batch k+1 (and the page reader reads batch k+2).
//!
//! One batch is written at a time and the next waits to be handed over, so memory
//! stays bounded; each batch is still its own transaction of compare-and-swap
//! statements, so a kill at any moment leaves every row either written or not.

use std::sync::mpsc::{SyncSender, sync_channel};
use std::thread::JoinHandle;

use zeroize::Zeroizing;

use super::batch_write::{BatchWrite, RowWrite};
use super::table::db_error;
use crate::error::CliError;

/// What the writer did: rows handed over, and rows that changed (the others had
/// changed since they were read and were left).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Written {
    pub(super) sent: u64,
    pub(super) changed: u64,
}

impl Written {
    /// Rows sent that had changed since they were read, so were left as they are.
    pub(super) fn changed_meanwhile(self) -> u64 {
        self.sent.saturating_sub(self.changed)
    }
}

/// The writer thread and the hand-over to it.
pub(super) struct WriteBehind {
    batches: Option<SyncSender<Vec<RowWrite>>>,
    thread: Option<JoinHandle<Result<Written, CliError>>>,
}

impl WriteBehind {
    /// Connects to `url` on a new thread that writes the batches it is handed with
    /// `writer`.
    pub(super) fn start(url: &str, mut writer: BatchWrite) -> Result<Self, CliError> {
        // A rendezvous: a batch is handed over only when the writer is free.
        let (batches, incoming) = sync_channel::<Vec<RowWrite>>(0);
        let url = Zeroizing::new(url.to_owned());
        let thread = std::thread::Builder::new()
            .name("batch-writer".into())
            .spawn(move || {
                let runtime = super::command_runtime()?;
                runtime.block_on(async {
                    let mut db = super::table::connect(&url).await.map_err(db_error)?;
                    writer.prepare(&mut db).await.map_err(db_error)?;
                    let mut done = Written::default();
                    // Ends when the command has handed over its last batch.
                    while let Ok(rows) = incoming.recv() {
                        done.changed += writer.write(&mut db, &rows).await.map_err(db_error)?;
                        done.sent += rows.len() as u64;
                    }
                    Ok(done)
                })
            })
            .map_err(|source| {
                CliError::Start(crate::error::StartError::Io {
                    doing: "cannot start the batch writer".into(),
                    source,
                })
            })?;
        Ok(Self {
            batches: Some(batches),
            thread: Some(thread),
        })
    }

    /// Hands a batch over, waiting while the previous one is being written. A
    /// writer that stopped on an error gives that error here.
    pub(super) fn write(&mut self, rows: Vec<RowWrite>) -> Result<(), CliError> {
        let handed = self.batches.as_ref().is_some_and(|batches| batches.send(rows).is_ok());
        if handed {
            Ok(())
        } else {
            // The writer is gone: its own error says why.
            self.finish()
                .and(Err(CliError::Database("the batch writer stopped".into())))
        }
    }

    /// Waits for the last batch to be written and says what was written.
    pub(super) fn finish(&mut self) -> Result<Written, CliError> {
        self.batches = None;
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(CliError::Database("the batch writer stopped unexpectedly".into()))),
            None => Err(CliError::Database("the batch writer has already finished".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, Row};

    use super::WriteBehind;
    use crate::cli::batch_write::{BatchWrite, Guard, IdType, RowWrite};
    use crate::cli::table::Dialect;

    fn write(id: i64, old: &str, new: &str) -> RowWrite {
        RowWrite {
            id: id.to_string(),
            old: Some(old.into()),
            new: new.into(),
        }
    }

    /// Batches handed over are all written, in order, and the totals count the
    /// rows that changed under the command; a writer whose statement fails gives
    /// its error, never a success.
    #[test]
    fn batches_are_written_behind_and_failures_surface() {
        sqlx::any::install_default_drivers();
        let dir = std::env::temp_dir().join(format!("ea-write-behind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("w.db").display());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut db = runtime.block_on(async {
            let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
            sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, cell TEXT)").execute(&mut db).await.unwrap();
            sqlx::query("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300) INSERT INTO t SELECT i, 'old' FROM n")
                .execute(&mut db)
                .await
                .unwrap();
            db
        });
        let writer = BatchWrite::new(Dialect::Sqlite, "t", "cell", "id", IdType::Integer, Guard::StillHolds);
        let mut writes = WriteBehind::start(&url, writer).unwrap();
        for batch in 0..3 {
            let rows = (1..=100)
                .map(|i| {
                    let id = batch * 100 + i;
                    // Row 150 changed since it was read.
                    write(id, if id == 150 { "other" } else { "old" }, "new")
                })
                .collect();
            writes.write(rows).unwrap();
        }
        let done = writes.finish().unwrap();
        assert_eq!((done.sent, done.changed), (300, 299));
        let left: i64 = runtime
            .block_on(sqlx::query("SELECT COUNT(*) FROM t WHERE cell = 'old'").fetch_one(&mut db))
            .unwrap()
            .try_get(0)
            .unwrap();
        assert_eq!(left, 1);

        let broken = BatchWrite::new(
            Dialect::Sqlite,
            "missing",
            "cell",
            "id",
            IdType::Integer,
            Guard::StillHolds,
        );
        let mut writes = WriteBehind::start(&url, broken).unwrap();
        let mut outcome = Ok(());
        for _ in 0..3 {
            outcome = outcome.and_then(|()| writes.write(vec![write(1, "old", "new")]));
        }
        let failed = outcome.and_then(|()| writes.finish().map(|_| ()));
        let message = failed.unwrap_err().to_string();
        assert!(message.contains("no such table"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
