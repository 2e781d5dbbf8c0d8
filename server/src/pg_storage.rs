//! PostgreSQL storage: sealed entries in one table, so several server processes can
//! share one keyring (replication, failover and backups are PostgreSQL's).
//!
//! Table `encrypted_attr_storage(path TEXT PRIMARY KEY, value BYTEA NOT NULL)`,
//! created if missing. `update` runs in a transaction that first takes a
//! transaction-scoped advisory lock on the path, then reads, decides and writes: two
//! servers rotating the same key apply their rotations one after the other and can
//! never produce two different "version 3"s.
//!
//! The `postgres` crate's client is blocking and runs its own runtime, which must not
//! be entered from an async task; so one dedicated thread owns the connection and
//! serves requests sent over a channel. Callers block briefly, as with the file
//! storage.

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use encrypted_attr::Error;
use encrypted_attr::storage::{Storage, Update, UpdateFn};

const CREATE_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS encrypted_attr_storage (path TEXT PRIMARY KEY, value BYTEA NOT NULL)";

type Reply<T> = SyncSender<Result<T, String>>;

enum Request {
    Get(String, Reply<Option<Vec<u8>>>),
    List(String, Reply<Vec<String>>),
    /// Begin an update of `path`: the worker locks it, reads the current value and
    /// sends it; then waits for the decision on the second channel.
    Update(String, Reply<Option<Vec<u8>>>, Receiver<Option<Update>>, Reply<()>),
}

/// Storage in a PostgreSQL table (see the module documentation).
pub struct PostgresStorage {
    requests: Mutex<Sender<Request>>,
}

impl std::fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never printed.
        f.write_str("PostgresStorage { .. }")
    }
}

fn storage_error(message: impl Into<String>) -> Error {
    Error::Storage(message.into().into())
}

impl PostgresStorage {
    /// Connects to `url` (libpq-style or URL form) and creates the table if needed.
    ///
    /// # Errors
    /// [`Error::Storage`] if the database cannot be reached.
    pub fn connect(url: &str) -> Result<Self, Error> {
        let mut client = postgres::Client::connect(url, postgres::NoTls).map_err(|e| {
            storage_error(format!(
                "cannot connect to PostgreSQL: {}",
                e.code().map_or("connection failed", |c| c.code())
            ))
        })?;
        client
            .batch_execute(CREATE_TABLE)
            .map_err(|_| storage_error("cannot create the storage table"))?;
        let (sender, receiver) = channel::<Request>();
        std::thread::Builder::new()
            .name("encrypted-attr-postgres".into())
            .spawn(move || serve(client, receiver))
            .map_err(|e| Error::Io {
                location: "postgres worker thread".into(),
                source: e,
            })?;
        Ok(Self {
            requests: Mutex::new(sender),
        })
    }

    fn send(&self, request: Request) -> Result<(), Error> {
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(request)
            .map_err(|_| storage_error("the PostgreSQL worker has stopped"))
    }
}

fn wait<T>(receiver: Receiver<Result<T, String>>) -> Result<T, Error> {
    receiver
        .recv()
        .map_err(|_| storage_error("the PostgreSQL worker has stopped"))?
        .map_err(storage_error)
}

impl Storage for PostgresStorage {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let (reply, answer) = sync_channel(1);
        self.send(Request::Get(path.to_owned(), reply))?;
        wait(answer)
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let (reply, answer) = sync_channel(1);
        self.send(Request::List(prefix.to_owned(), reply))?;
        wait(answer)
    }

    fn update(&self, path: &str, change: &mut UpdateFn<'_>) -> Result<(), Error> {
        let (current_tx, current_rx) = sync_channel(1);
        let (decision_tx, decision_rx) = sync_channel(1);
        let (done_tx, done_rx) = sync_channel(1);
        self.send(Request::Update(path.to_owned(), current_tx, decision_rx, done_tx))?;
        let current = wait(current_rx)?;
        match change(current.as_deref()) {
            Ok(decision) => {
                decision_tx
                    .send(Some(decision))
                    .map_err(|_| storage_error("the PostgreSQL worker has stopped"))?;
                wait(done_rx)
            }
            Err(error) => {
                // Roll back: nothing is written.
                let _ = decision_tx.send(None);
                let _ = wait(done_rx);
                Err(error)
            }
        }
    }
}

/// The worker: owns the connection, serves one request at a time.
fn serve(mut client: postgres::Client, requests: Receiver<Request>) {
    let failed = |e: postgres::Error| {
        format!(
            "PostgreSQL storage failed: {}",
            e.code().map_or("connection or protocol error", |c| c.code())
        )
    };
    for request in requests {
        match request {
            Request::Get(path, reply) => {
                let result = client
                    .query_opt("SELECT value FROM encrypted_attr_storage WHERE path = $1", &[&path])
                    .map(|row| row.map(|r| r.get::<_, Vec<u8>>(0)))
                    .map_err(failed);
                let _ = reply.send(result);
            }
            Request::List(prefix, reply) => {
                let pattern = format!(
                    "{}%",
                    prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
                );
                let result = client
                    .query(
                        "SELECT path FROM encrypted_attr_storage WHERE path LIKE $1 ORDER BY path",
                        &[&pattern],
                    )
                    .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
                    .map_err(failed);
                let _ = reply.send(result);
            }
            Request::Update(path, current, decision, done) => {
                let mut current = Some(current);
                let result = (|| -> Result<(), String> {
                    let mut tx = client.transaction().map_err(failed)?;
                    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&path])
                        .map_err(failed)?;
                    let value = tx
                        .query_opt("SELECT value FROM encrypted_attr_storage WHERE path = $1", &[&path])
                        .map_err(failed)?
                        .map(|r| r.get::<_, Vec<u8>>(0));
                    if let Some(current) = current.take() {
                        current.send(Ok(value)).map_err(|_| "caller gone".to_owned())?;
                    }
                    match decision.recv().map_err(|_| "caller gone".to_owned())? {
                        None | Some(Update::Keep) => Ok(()),
                        Some(Update::Put(bytes)) => {
                            tx.execute(
                                "INSERT INTO encrypted_attr_storage (path, value) VALUES ($1, $2) \
                                 ON CONFLICT (path) DO UPDATE SET value = EXCLUDED.value",
                                &[&path, &bytes],
                            )
                            .map_err(failed)?;
                            tx.commit().map_err(failed)
                        }
                        Some(Update::Delete) => {
                            tx.execute("DELETE FROM encrypted_attr_storage WHERE path = $1", &[&path])
                                .map_err(failed)?;
                            tx.commit().map_err(failed)
                        }
                    }
                })();
                // If it failed before the current value was sent, the caller is still
                // waiting for that value: give it the error there.
                if let (Err(error), Some(current)) = (&result, current.take()) {
                    let _ = current.send(Err(error.clone()));
                }
                let _ = done.send(result);
            }
        }
    }
}
