//! Reading a column command's pending rows one page ahead, on a thread and a
//! database connection of its own, so the next page arrives while the engine works
//! on this one and the previous page is written.
//!
//! Pages follow the id (keyset pagination: each starts after the last id of the one
//! before), so reading ahead never depends on what the writer did. At most one page
//! waits in the channel and one is being read: memory stays bounded by the batch.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use sqlx::Row;
use sqlx::any::AnyRow;
use zeroize::Zeroizing;

use super::batch_write::IdType;
use super::table::{Dialect, db_error};
use crate::error::CliError;

/// One row read: its id (as text) and what the command's reader made of its cells,
/// or why it could not (reported and skipped by the command; never a value).
pub(super) type RowRead<T> = (String, Result<T, String>);

/// The statements a reader pages through: the first page, then the pages after an
/// id (the id is the last parameter), with `leading` bound first in both.
pub(super) struct PageQueries {
    pub(super) first: String,
    pub(super) after: String,
    pub(super) leading: Option<String>,
    pub(super) id_type: IdType,
}

impl PageQueries {
    /// Pages of `cells` (selected after the id column, as text) from the rows of `table`
    /// where `filter` holds, in id order, `limit` rows each. `leading` is bound first
    /// (as parameter 1 of `filter`, when given). The names must already be checked
    /// identifiers: they are interpolated.
    pub(super) fn keyset(
        dialect: Dialect,
        table: &str,
        (id, id_type): (&str, IdType),
        cells: &str,
        filter: &str,
        leading: Option<String>,
        limit: u32,
    ) -> Self {
        let select = format!("SELECT {}, {cells} FROM {table} WHERE {filter}", dialect.id_as_text(id));
        let after_param = id_type.param(dialect, if leading.is_some() { 2 } else { 1 });
        let limit = limit.max(1);
        Self {
            first: format!("{select} ORDER BY {table}.{id} LIMIT {limit}"),
            after: format!("{select} AND {table}.{id} > {after_param} ORDER BY {table}.{id} LIMIT {limit}"),
            leading,
            id_type,
        }
    }
}

/// The pages, in id order; the iterator ends after the last page or at the first
/// database error (yielded). The reader says when it has sent the last page (an
/// empty one): a reader that stops without saying so failed, and that is an error,
/// never a quiet end.
pub(super) struct PageReader<T> {
    pages: Receiver<Result<Vec<RowRead<T>>, CliError>>,
    finished: bool,
}

impl<T: Send + 'static> PageReader<T> {
    /// Connects to `url` on a new thread and starts reading; `read` turns a row's
    /// cells (after the id, column 0) into the command's item.
    pub(super) fn start(
        url: &str,
        queries: PageQueries,
        read: impl Fn(&AnyRow) -> Result<T, String> + Send + 'static,
    ) -> Result<Self, CliError> {
        let (sender, pages) = sync_channel(1);
        let url = Zeroizing::new(url.to_owned());
        std::thread::Builder::new()
            .name("page-reader".into())
            .spawn(move || {
                let runtime = match super::command_runtime() {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = sender.send(Err(e.into()));
                        return;
                    }
                };
                runtime.block_on(read_pages(&url, &queries, &read, &sender));
            })
            .map_err(|source| {
                CliError::Start(crate::error::StartError::Io {
                    doing: "cannot start the page reader".into(),
                    source,
                })
            })?;
        Ok(Self { pages, finished: false })
    }
}

impl<T> Iterator for PageReader<T> {
    type Item = Result<Vec<RowRead<T>>, CliError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.pages.recv() {
            Ok(Ok(page)) if page.is_empty() => {
                self.finished = true;
                None
            }
            Ok(Err(e)) => {
                self.finished = true;
                Some(Err(e))
            }
            Ok(page) => Some(page),
            Err(_) => {
                self.finished = true;
                Some(Err(CliError::Database(
                    "the page reader stopped before the last page".into(),
                )))
            }
        }
    }
}

async fn read_pages<T>(
    url: &str,
    queries: &PageQueries,
    read: &(impl Fn(&AnyRow) -> Result<T, String> + Send),
    sender: &SyncSender<Result<Vec<RowRead<T>>, CliError>>,
) {
    let mut db = match super::table::connect(url).await {
        Ok(db) => db,
        Err(e) => {
            let _ = sender.send(Err(db_error(e)));
            return;
        }
    };
    let mut last_id: Option<String> = None;
    loop {
        let mut query = match &last_id {
            None => sqlx::query(sqlx::AssertSqlSafe(queries.first.as_str())),
            Some(_) => sqlx::query(sqlx::AssertSqlSafe(queries.after.as_str())),
        };
        if let Some(leading) = &queries.leading {
            query = query.bind(leading.as_str());
        }
        if let Some(last) = &last_id {
            query = queries.id_type.bind(query, last);
        }
        let rows = match query.fetch_all(&mut db).await {
            Ok(rows) => rows,
            Err(e) => {
                let _ = sender.send(Err(db_error(e)));
                return;
            }
        };
        if rows.is_empty() {
            // The end, said explicitly.
            let _ = sender.send(Ok(Vec::new()));
            return;
        }
        let mut page = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = match row.try_get(0) {
                Ok(id) => id,
                Err(e) => {
                    let _ = sender.send(Err(db_error(e)));
                    return;
                }
            };
            let item = read(row);
            last_id = Some(id.clone());
            page.push((id, item));
        }
        drop(rows);
        if sender.send(Ok(page)).is_err() {
            // The command stopped reading (it failed): so does the reader.
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    use super::{PageQueries, PageReader};
    use crate::cli::batch_write::IdType;

    /// Every row once, in id order, pages of the asked size, a cell that cannot be
    /// read reported with its row; the reader ends after the last page.
    #[test]
    fn pages_cover_every_row_once_in_order() {
        sqlx::any::install_default_drivers();
        let dir = std::env::temp_dir().join(format!("ea-pages-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("pages.db").display());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            use sqlx::Connection;
            let mut db = sqlx::AnyConnection::connect(&url).await.unwrap();
            sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, cell TEXT)")
                .execute(&mut db)
                .await
                .unwrap();
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) INSERT INTO t SELECT i, 'v' || i FROM n",
            )
            .execute(&mut db)
            .await
            .unwrap();
            sqlx::query("UPDATE t SET cell = X'00' WHERE id = 500").execute(&mut db).await.unwrap();
        });
        let queries = PageQueries {
            first: "SELECT CAST(id AS TEXT), cell FROM t WHERE cell <> ? ORDER BY id LIMIT 64".into(),
            after: "SELECT CAST(id AS TEXT), cell FROM t WHERE cell <> ? AND id > ? ORDER BY id LIMIT 64".into(),
            leading: Some("v7".into()),
            id_type: IdType::Integer,
        };
        let reader = PageReader::start(&url, queries, |row| {
            row.try_get::<String, _>(1).map_err(|_| "not text".to_owned())
        })
        .unwrap();
        let pages: Vec<_> = reader.map(Result::unwrap).collect();
        assert!(pages.iter().all(|p| p.len() <= 64));
        let rows: Vec<_> = pages.into_iter().flatten().collect();
        assert_eq!(rows.len(), 999, "every row but the one filtered out");
        let ids: Vec<i64> = rows.iter().map(|(id, _)| id.parse().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order, once each");
        assert!(!ids.contains(&7));
        let bad = rows.iter().find(|(id, _)| id == "500").unwrap();
        assert_eq!(bad.1, Err("not text".to_owned()));
        assert_eq!(rows[0].1, Ok("v1".to_owned()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
