//! The `encrypted-attr` command line: one module per subcommand (`serve`, `keys`,
//! `rewrap`, `retire`, `migrate`), what they share (`engine`: where the keys are;
//! `table`: a database column to walk; `secret`), and the dispatch here.

mod batch_write;
mod config;
mod engine;
mod field_type;
mod keys;
mod migrate;
mod operator;
mod pages;
mod retire;
mod rewrap;
mod secret;
mod serve;
mod table;
mod vault_config;
mod write_behind;

use clap::{Parser, Subcommand};

pub(crate) use secret::SecretArg;
use serve::ServerArgs;

use crate::error::CliError;

/// encrypted-attr: companion transit server (Vault's transit API) and admin commands.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log line format on stderr: `text` for people, `json` (one object per line)
    /// for log collectors. The level filter is `ENCRYPTED_ATTR_LOG` (default
    /// `info`); `encrypted_attr::request=debug` adds one line per request.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "ENCRYPTED_ATTR_LOG_FORMAT")]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the transit server.
    ///
    /// Example: `encrypted-attr server --dev --listen 127.0.0.1:8200`
    /// then `VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=<printed token> vault write -f transit/keys/users_ssn`.
    Server(ServerArgs),
    /// Create, list, show, rotate, configure, trim and delete keys, on a server
    /// (`--address`, `--token`) or in a local keyring file (`--keyring`).
    ///
    /// Example: `VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=… encrypted-attr keys rotate users_ssn`
    Keys(keys::KeysArgs),
    /// Rewrap a table column to the key's latest version, in batches, resumably;
    /// the plaintext never leaves the engine (server-side when remote).
    ///
    /// Example: `encrypted-attr rewrap --keyring keys.json --root-key-file root.key
    /// --database-url sqlite://app.db --table users --column ssn --key users_ssn`
    Rewrap(rewrap::RewrapArgs),
    /// Retire old key versions of a column: refuses while any row still holds a
    /// version below `--below`, otherwise raises `min_decryption_version`.
    ///
    /// Example: `encrypted-attr retire --keyring keys.json --root-key-file root.key
    /// --database-url sqlite://app.db --table users --column ssn --key users_ssn --below 3`
    Retire(retire::RetireArgs),
    /// Encrypt an existing plaintext column into its ciphertext column, in batches,
    /// resumably (rows whose ciphertext column is still NULL); `--verify N` decrypts
    /// a sample and compares. Never drops the plaintext column: prints the SQL to.
    ///
    /// Example: `encrypted-attr migrate --keyring keys.json --root-key-file root.key
    /// --database-url sqlite://app.db --table users --plaintext-column ssn_plain
    /// --column ssn --key users_ssn --verify 100`
    Migrate(migrate::MigrateArgs),
    /// Initialise, unseal, seal and inspect a server, as `bao operator` does
    /// (Vault's single-dash flags such as `-key-shares=5` are accepted).
    ///
    /// Example: `encrypted-attr operator init -key-shares=5 -key-threshold=3`,
    /// then `encrypted-attr operator unseal` three times with three shares.
    Operator(operator::OperatorArgs),
}

/// A current-thread runtime for a command's own I/O (database, HTTP).
pub(super) fn command_runtime() -> Result<tokio::runtime::Runtime, crate::error::StartError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| crate::error::StartError::Io {
            doing: "cannot start the runtime".into(),
            source,
        })
}

/// Runs the command line; returns the process exit code.
#[must_use]
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse_from(operator::vault_style_flags(std::env::args().collect()));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ENCRYPTED_ATTR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let mut sealed = false;
    let outcome: Result<(), CliError> = match &cli.command {
        Command::Server(args) => args
            .settings()
            .and_then(|settings| serve::serve(settings, args.dev_root_token_id.as_ref().map(SecretArg::expose)))
            .map_err(CliError::from),
        Command::Keys(args) => args.run(),
        Command::Rewrap(args) => args.run(),
        Command::Migrate(args) => args.run(),
        Command::Retire(args) => args.run(),
        Command::Operator(args) => args.run().map(|outcome| {
            sealed = matches!(outcome, operator::Outcome::Sealed);
        }),
    };
    match outcome {
        // `status` of a sealed server exits 2, as `vault status` does.
        Ok(()) if sealed => std::process::ExitCode::from(2),
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("encrypted-attr: {error}");
            std::process::ExitCode::from(1)
        }
    }
}
