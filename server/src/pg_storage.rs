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
//!
//! The connection is an I/O dependency that fails: when it drops (database
//! restarted, backend terminated, network cut), the worker reconnects on the next
//! request, at most once per back-off period (100 ms doubling to 5 s), and answers
//! [`Error::Storage`] with the reason meanwhile — which the server turns into 503,
//! never into "permission denied". A request whose connection turns out to be dead
//! before anything was written is retried once on a new connection, since a
//! terminated backend is only discovered when used.

use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::time::{Duration, Instant};

use encrypted_attr::Error;
use encrypted_attr::storage::{Storage, Update, UpdateFn};
use zeroize::Zeroizing;

/// Serialised by a transaction-scoped advisory lock: servers started at the same
/// moment on a new database would otherwise race in `CREATE TABLE IF NOT EXISTS`
/// (one fails on PostgreSQL's catalog unique index).
const CREATE_TABLE: &str = "SELECT pg_advisory_xact_lock(hashtext('encrypted_attr_storage'));
     CREATE TABLE IF NOT EXISTS encrypted_attr_storage (path TEXT PRIMARY KEY, value BYTEA NOT NULL)";

/// Longest data sent to PostgreSQL may stay unacknowledged before the connection
/// is declared dead (Linux `TCP_USER_TIMEOUT`).
#[cfg(target_os = "linux")]
const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(10);
/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// First wait between reconnection attempts; doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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

/// Why a PostgreSQL call failed, for logs and error messages: the server's
/// severity, SQLSTATE and message, or the connection error. Never the URL (the
/// driver's messages do not include it) nor a row's detail (which could quote
/// stored paths).
fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        None => error.to_string(),
    }
}

/// The connection and its reconnection schedule; lives on the worker thread.
struct Connection {
    config: postgres::Config,
    client: Option<postgres::Client>,
    /// Earliest time of the next connection attempt after a failure.
    next_attempt: Instant,
    backoff: Duration,
    /// Why the last attempt failed (answered to callers until the next attempt).
    last_error: String,
}

impl Connection {
    fn open(config: postgres::Config) -> Result<Self, String> {
        let mut connection = Self {
            config,
            client: None,
            next_attempt: Instant::now(),
            backoff: FIRST_BACKOFF,
            last_error: String::new(),
        };
        connection.client = Some(connection.connect()?);
        Ok(connection)
    }

    fn connect(&self) -> Result<postgres::Client, String> {
        let mut client = self
            .config
            .connect(postgres::NoTls)
            .map_err(|e| format!("cannot connect to PostgreSQL: {}", describe(&e)))?;
        client
            .batch_execute(CREATE_TABLE)
            .map_err(|e| format!("cannot create the storage table: {}", describe(&e)))?;
        Ok(client)
    }

    /// The live connection, reconnecting if the last one dropped and the back-off
    /// allows an attempt now.
    fn client(&mut self) -> Result<&mut postgres::Client, String> {
        if self.client.as_ref().is_some_and(postgres::Client::is_closed) {
            self.client = None;
            self.last_error = "the connection to PostgreSQL was lost".into();
            tracing::warn!("PostgreSQL storage connection lost; reconnecting");
        }
        if self.client.is_none() {
            if Instant::now() < self.next_attempt {
                return Err(format!("PostgreSQL storage is unavailable: {}", self.last_error));
            }
            match self.connect() {
                Ok(client) => {
                    tracing::info!("PostgreSQL storage connection restored");
                    self.client = Some(client);
                    self.backoff = FIRST_BACKOFF;
                }
                Err(reason) => {
                    tracing::warn!(error = %reason, retry_in_ms = self.backoff.as_millis(), "PostgreSQL storage unreachable");
                    self.next_attempt = Instant::now() + self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                    self.last_error.clone_from(&reason);
                    return Err(format!("PostgreSQL storage is unavailable: {reason}"));
                }
            }
        }
        self.client
            .as_mut()
            .ok_or_else(|| "PostgreSQL storage is unavailable".to_owned())
    }

    /// Runs `call` on the connection; if it fails because the connection died, once
    /// more on a new connection (only for calls that wrote nothing before failing).
    fn run<T>(&mut self, mut call: impl FnMut(&mut postgres::Client) -> Result<T, Failure>) -> Result<T, String> {
        for attempt in 0..2 {
            let client = self.client()?;
            match call(client) {
                Ok(value) => return Ok(value),
                Err(Failure::BeforeWrite(e)) if attempt == 0 && client.is_closed() => {
                    // The backend was gone; the next `client()` reconnects at once.
                    tracing::warn!(error = %describe(&e), "PostgreSQL storage connection lost; retrying once");
                    self.client = None;
                    self.next_attempt = Instant::now();
                }
                Err(Failure::BeforeWrite(e) | Failure::Write(e)) => {
                    return Err(format!("PostgreSQL storage failed: {}", describe(&e)));
                }
                Err(Failure::Caller) => return Err("the storage caller went away".into()),
            }
        }
        Err("PostgreSQL storage failed twice in a row".into())
    }
}

/// How a storage call failed.
enum Failure {
    /// Before anything could have been written: safe to retry.
    BeforeWrite(postgres::Error),
    /// While writing or committing: the outcome is unknown, so never retried.
    Write(postgres::Error),
    /// The thread waiting for the answer is gone.
    Caller,
}

impl PostgresStorage {
    /// Connects to `url` (libpq-style or URL form) and creates the table if needed.
    ///
    /// # Errors
    /// [`Error::Storage`] with the reason if the database cannot be reached (wrong
    /// address, no such database, authentication refused).
    pub fn connect(url: &str) -> Result<Self, Error> {
        let url = Zeroizing::new(url.to_owned());
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| storage_error(format!("invalid PostgreSQL URL: {}", describe(&e))))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A database that stops answering (network cut, host gone) must fail the
        // call within seconds, not after TCP's retransmissions give up (~15 min).
        config.keepalives(true).keepalives_idle(Duration::from_secs(30));
        #[cfg(target_os = "linux")]
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(UNACKNOWLEDGED_LIMIT);
        }
        let connection = Connection::open(config).map_err(storage_error)?;
        let (sender, receiver) = channel::<Request>();
        std::thread::Builder::new()
            .name("encrypted-attr-postgres".into())
            .spawn(move || serve(connection, receiver))
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
fn serve(mut connection: Connection, requests: Receiver<Request>) {
    for request in requests {
        match request {
            Request::Get(path, reply) => {
                let result = connection.run(|client| {
                    client
                        .query_opt("SELECT value FROM encrypted_attr_storage WHERE path = $1", &[&path])
                        .map(|row| row.map(|r| r.get::<_, Vec<u8>>(0)))
                        .map_err(Failure::BeforeWrite)
                });
                let _ = reply.send(result);
            }
            Request::List(prefix, reply) => {
                let pattern = format!(
                    "{}%",
                    prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
                );
                let result = connection.run(|client| {
                    client
                        .query(
                            "SELECT path FROM encrypted_attr_storage WHERE path LIKE $1 ORDER BY path",
                            &[&pattern],
                        )
                        .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect())
                        .map_err(Failure::BeforeWrite)
                });
                let _ = reply.send(result);
            }
            Request::Update(path, current, decision, done) => {
                let mut current = Some(current);
                let result = connection.run(|client| update(client, &path, &mut current, &decision));
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

/// One locked read-decide-write of `path`. The current value goes to the caller
/// through `current` (taken once sent: a retry after that point is impossible, as
/// the caller has decided on what it saw).
fn update(
    client: &mut postgres::Client,
    path: &str,
    current: &mut Option<Reply<Option<Vec<u8>>>>,
    decision: &Receiver<Option<Update>>,
) -> Result<(), Failure> {
    let mut tx = client.transaction().map_err(Failure::BeforeWrite)?;
    tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&path])
        .map_err(Failure::BeforeWrite)?;
    let value = tx
        .query_opt("SELECT value FROM encrypted_attr_storage WHERE path = $1", &[&path])
        .map_err(Failure::BeforeWrite)?
        .map(|r| r.get::<_, Vec<u8>>(0));
    let Some(reply) = current.take() else {
        return Err(Failure::Caller);
    };
    reply.send(Ok(value)).map_err(|_| Failure::Caller)?;
    match decision.recv().map_err(|_| Failure::Caller)? {
        None | Some(Update::Keep) => Ok(()),
        Some(Update::Put(bytes)) => {
            tx.execute(
                "INSERT INTO encrypted_attr_storage (path, value) VALUES ($1, $2) \
                 ON CONFLICT (path) DO UPDATE SET value = EXCLUDED.value",
                &[&path, &bytes],
            )
            .map_err(Failure::Write)?;
            tx.commit().map_err(Failure::Write)
        }
        Some(Update::Delete) => {
            tx.execute("DELETE FROM encrypted_attr_storage WHERE path = $1", &[&path])
                .map_err(Failure::Write)?;
            tx.commit().map_err(Failure::Write)
        }
    }
}
