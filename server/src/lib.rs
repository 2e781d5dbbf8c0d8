//! The `encrypted-attr` companion server: HashiCorp Vault's transit HTTP API over the
//! in-process engine, so the application never holds a key; and the admin CLI.
//!
//! A library with a thin `main`: [`app`] builds the router, [`run`] serves it with
//! graceful shutdown, [`cli::main`] is the command line.

mod app;
mod audit;
mod authorize;
pub mod cli;
mod encoding;
mod engines;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod limits;
mod listener;
mod metrics;
mod monitored;
mod params;
mod pg_storage;
mod policy;
mod request;
mod routes;
mod seal;
mod shamir;
mod sharing;
mod stores;
mod ui;

pub use app::{
    AppState, Limits, MAX_REQUEST_BYTES, REQUEST_LOG_TARGET, REQUEST_TIMEOUT, RootToken, VERSION, app, run, run_tls,
};
pub use error::StartError;
pub use pg_storage::PostgresStorage;
