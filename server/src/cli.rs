//! The `encrypted-attr` command line: `server --dev` for now.

use std::net::SocketAddr;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use encrypted_attr::LocalEngine;

use crate::app::{AppState, run};

/// encrypted-attr: companion transit server (Vault's transit API) and admin commands.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the transit server.
    ///
    /// Example: `encrypted-attr server --dev --listen 127.0.0.1:8200`
    /// then `VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=<printed token> vault write transit/keys/users_ssn -f`.
    Server {
        /// Development mode: keys in memory, unsealed, a root token printed at start.
        /// Nothing survives a restart.
        #[arg(long, conflicts_with = "storage_file")]
        dev: bool,
        /// Keep keys and tokens in this file, sealed under a root key that Shamir
        /// shares protect: initialise once with `PUT /v1/sys/init`, then unseal with
        /// `PUT /v1/sys/unseal` after every start (`vault operator init|unseal` work).
        #[arg(long, value_name = "PATH", conflicts_with = "storage_postgres")]
        storage_file: Option<std::path::PathBuf>,
        /// Keep keys and tokens in PostgreSQL (table `encrypted_attr_storage`), so
        /// several servers can share them; sealed as with `--storage-file`.
        #[arg(
            long,
            value_name = "URL",
            env = "ENCRYPTED_ATTR_STORAGE_POSTGRES",
            hide_env_values = true
        )]
        storage_postgres: Option<String>,
        /// Address to listen on (plain HTTP: loopback only).
        #[arg(long, default_value = "127.0.0.1:8200")]
        listen: SocketAddr,
        /// TLS certificate chain (PEM). With `--tls-key`, serves HTTPS, and then any
        /// address may be used; without TLS only loopback addresses are allowed.
        #[arg(long, value_name = "PEM", requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// TLS private key (PEM).
        #[arg(long, value_name = "PEM", requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
        /// Fix the root token's value (dev mode), like Vault's `-dev-root-token-id`.
        #[arg(long, env = "ENCRYPTED_ATTR_DEV_ROOT_TOKEN_ID")]
        dev_root_token_id: Option<String>,
    },
}

/// Runs the command line; returns the process exit code.
#[must_use]
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ENCRYPTED_ATTR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Server {
            dev,
            storage_file,
            storage_postgres,
            listen,
            tls_cert,
            tls_key,
            dev_root_token_id,
        } => match serve(
            dev,
            storage_file,
            storage_postgres,
            listen,
            tls_cert.zip(tls_key),
            dev_root_token_id.as_deref(),
        ) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("encrypted-attr: {message}");
                std::process::ExitCode::from(1)
            }
        },
    }
}

fn serve(
    dev: bool,
    storage_file: Option<std::path::PathBuf>,
    storage_postgres: Option<String>,
    listen: SocketAddr,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    root_token_id: Option<&str>,
) -> Result<(), String> {
    if tls.is_none() && !listen.ip().is_loopback() {
        return Err("plain HTTP is allowed on loopback addresses only; give --tls-cert and --tls-key".into());
    }
    let (state, root) = match (dev, storage_file, storage_postgres) {
        (true, _, _) => {
            let engine = LocalEngine::ephemeral().map_err(|e| e.to_string())?;
            let (state, root) = AppState::new(Arc::new(engine), root_token_id)?;
            (state, Some(root))
        }
        (false, Some(path), _) => {
            let storage = encrypted_attr::storage::FileStorage::open(&path).map_err(|e| e.to_string())?;
            (AppState::persistent(Arc::new(storage), "file")?, None)
        }
        (false, None, Some(url)) => {
            let storage = crate::PostgresStorage::connect(&url).map_err(|e| e.to_string())?;
            (AppState::persistent(Arc::new(storage), "postgresql")?, None)
        }
        (false, None, None) => return Err("give --dev, --storage-file PATH or --storage-postgres URL".into()),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("encrypted-attr server listening on {scheme}://{addr}");
        if let Some(root) = root {
            // The root token is printed once, to the terminal, like `vault server -dev`.
            println!("Root Token: {}", String::from_utf8_lossy(root.0.expose_secret()));
            println!("Development mode: keys live in memory and are lost at exit.");
        } else {
            println!("Sealed: initialise once with PUT /v1/sys/init, unseal with PUT /v1/sys/unseal.");
        }
        match &tls {
            Some((cert, key)) => crate::app::run_tls(listener, Arc::new(state), cert, key, shutdown_signal()).await,
            None => run(listener, Arc::new(state), shutdown_signal()).await,
        }
        .map_err(|e| format!("server failed: {e}"))
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
