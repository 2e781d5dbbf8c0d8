//! The `encrypted-attr` companion server: HashiCorp Vault's transit HTTP API over the
//! in-process engine, so the application never holds a key; and the admin CLI.
//!
//! A library with a thin `main`: [`app`] builds the router, [`run`] serves it with
//! graceful shutdown, [`cli::main`] is the command line.

mod audit;
mod authorize;
pub mod cli;
mod encoding;
mod engines;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod leases;
mod limits;
mod listener;
mod metrics;
mod monitored;
mod params;
mod pg_storage;
mod pipeline;
mod policy;
mod request;
mod routes;
mod seal;
mod server;
mod shamir;
mod sharing;
mod state;
mod stores;
mod ui;

pub use crate::limits::{Limits, MAX_REQUEST_BYTES, REQUEST_TIMEOUT};
pub use crate::seal::RootToken;
pub use error::StartError;
pub use pg_storage::PostgresStorage;
pub use pipeline::{REQUEST_LOG_TARGET, app};
pub use server::{run, run_tls};
pub use state::{AppState, VERSION};
