//! `encrypted-attr server`: settings from flags and the config file, then the server
//! until a signal stops it (`SIGHUP` reopens audit files and reloads TLS).

use std::net::SocketAddr;
use std::sync::Arc;

use encrypted_attr::LocalEngine;

use super::config::{ConfigFile, parse_config};
use super::secret::SecretArg;
use crate::error::StartError;
use crate::state::AppState;

/// Flags of `server`; each overrides the same setting of `--config`.
#[derive(Debug, clap::Args)]
pub(super) struct ServerArgs {
    /// A TOML file with the settings below: `listen`, `[storage] file | postgres`,
    /// `[tls] cert, key` (see `docs/server.md`); or Vault's own configuration
    /// file (HCL or JSON: `storage`, `listener "tcp"`), whose other settings are
    /// named in a warning.
    #[arg(long, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Development mode: keys in memory, unsealed, a root token printed at start.
    /// Nothing survives a restart.
    #[arg(long)]
    dev: bool,
    /// Keep keys and tokens in this file, sealed under a root key that Shamir
    /// shares protect: initialise once (`bao operator init` or `PUT /v1/sys/init`),
    /// then unseal after every start (`bao operator unseal` or `PUT /v1/sys/unseal`).
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
    storage_postgres: Option<SecretArg>,
    /// Address to listen on (default 127.0.0.1:8200; plain HTTP: loopback only).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM). With `--tls-key`, serves HTTPS, and then any
    /// address may be used; without TLS only loopback addresses are allowed.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Fix the root token's value (dev mode), like Vault's `-dev-root-token-id`.
    #[arg(long, env = "ENCRYPTED_ATTR_DEV_ROOT_TOKEN_ID", hide_env_values = true)]
    pub(super) dev_root_token_id: Option<SecretArg>,
    /// Leave key names out of `sys/metrics` (transit items are then counted per
    /// operation only), for operators who treat key names as sensitive.
    #[arg(long)]
    metrics_without_key_names: bool,
}

/// Where keys live.
enum StorageChoice {
    Dev,
    File(std::path::PathBuf),
    Postgres(SecretArg),
}

/// Settings after merging the file and the flags.
pub(super) struct Settings {
    listen: SocketAddr,
    storage: StorageChoice,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    limits: crate::limits::Limits,
    metrics_key_names: bool,
    metrics_without_token: bool,
}

impl ServerArgs {
    pub(super) fn settings(&self) -> Result<Settings, StartError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| StartError::Io {
                    doing: format!("cannot read {}", path.display()),
                    source,
                })?;
                if super::vault_config::is_vault_format(path, &text) {
                    let read = super::vault_config::parse(&text)?;
                    for setting in &read.ignored {
                        tracing::warn!(setting = %setting, "Vault configuration setting not supported; ignored");
                    }
                    read.file
                } else {
                    parse_config(&text)?
                }
            }
            None => ConfigFile::default(),
        };
        if file.storage.file.is_some() && file.storage.postgres.is_some() {
            return Err(StartError::Config(
                "the configuration names two storages; keep one".into(),
            ));
        }
        let storage = if self.dev {
            StorageChoice::Dev
        } else if let Some(path) = self.storage_file.clone().or(file.storage.file) {
            StorageChoice::File(path)
        } else if let Some(url) = self.storage_postgres.clone().or(file.storage.postgres) {
            StorageChoice::Postgres(url)
        } else {
            return Err(StartError::Config(
                "give --dev, --storage-file PATH, --storage-postgres URL, or a [storage] section".into(),
            ));
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            _ => file.tls.map(|t| (t.cert, t.key)),
        };
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8200)));
        Ok(Settings {
            listen,
            storage,
            tls,
            limits: file.limits,
            metrics_key_names: file.metrics.key_names && !self.metrics_without_key_names,
            metrics_without_token: file.metrics.unauthenticated_access.unwrap_or(self.dev),
        })
    }
}

pub(super) fn serve(settings: Settings, root_token_id: Option<&str>) -> Result<(), StartError> {
    let Settings {
        listen,
        storage,
        tls,
        limits,
        metrics_key_names,
        metrics_without_token,
    } = settings;
    if tls.is_none() && !listen.ip().is_loopback() {
        return Err(StartError::Config(
            "plain HTTP is allowed on loopback addresses only; give --tls-cert and --tls-key".into(),
        ));
    }
    let (state, root) = match storage {
        StorageChoice::Dev => {
            let engine =
                LocalEngine::ephemeral_with(crate::sharing::server_engine_options()).map_err(StartError::Engine)?;
            let (state, root) = AppState::new(Arc::new(engine), root_token_id)?;
            (state, Some(root))
        }
        StorageChoice::File(path) => {
            create_storage_directory(&path)?;
            let storage =
                encrypted_attr::storage::FileStorage::open(&path).map_err(|e| StartError::Storage(e.to_string()))?;
            (AppState::persistent(Arc::new(storage), "file")?, None)
        }
        StorageChoice::Postgres(url) => {
            let storage = crate::PostgresStorage::connect(url.expose())
                .map_err(|e| StartError::Storage(format!("{e}: {}", crate::error::error_chain(&e))))?;
            (AppState::persistent(Arc::new(storage), "postgresql")?, None)
        }
    };
    // Checked before anything is announced: a bad certificate or key stops the
    // start with its reason, not after a "listening" line.
    let tls = match &tls {
        Some((cert, key)) => Some(Arc::new(
            crate::listener::TlsFiles::load(cert, key).map_err(StartError::Tls)?,
        )),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| StartError::Io {
            doing: "cannot start the runtime".into(),
            source,
        })?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| StartError::Io {
                doing: format!("cannot listen on {listen}"),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Io {
            doing: "cannot read the listening address".into(),
            source,
        })?;
        let state = Arc::new(
            state
                .with_limits(limits)
                .with_metrics_key_names(metrics_key_names)
                .with_metrics_without_token(metrics_without_token),
        );
        listen_for_hangups(&state, tls.clone())?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("encrypted-attr server listening on {scheme}://{addr}");
        if let Some(root) = root {
            // The root token is printed once, to the terminal, like `vault server -dev`.
            println!("Root Token: {}", String::from_utf8_lossy(root.0.expose_secret()));
            println!("Development mode: keys live in memory and are lost at exit.");
        } else {
            println!("Sealed: initialise once with PUT /v1/sys/init, unseal with PUT /v1/sys/unseal.");
        }
        crate::server::serve(listener, state, tls, shutdown_signal())
            .await
            .map_err(|source| StartError::Io {
                doing: "server failed".into(),
                source,
            })
    })
}

/// On `SIGHUP` (what operators and logrotate send), reopens the audit files and
/// reloads the TLS certificate and key from their files, as Vault does; the
/// server goes on serving. Registered before the server is announced, so an
/// early `SIGHUP` never ends the process.
/// Creates the directory that will hold the storage file if it is missing, as
/// Vault's file backend does (readable by this user only), so that a new
/// server's first `sys/init` can write; a directory that cannot be made stops
/// the start with its reason.
fn create_storage_directory(file: &std::path::Path) -> Result<(), StartError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StartError::Storage(format!("cannot create the storage directory {}: {e}", dir.display())))
}

fn listen_for_hangups(state: &Arc<AppState>, tls: Option<Arc<crate::listener::TlsFiles>>) -> Result<(), StartError> {
    #[cfg(unix)]
    {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(|source| {
            StartError::Io {
                doing: "cannot listen for SIGHUP".into(),
                source,
            }
        })?;
        let state = Arc::downgrade(state);
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                let Some(state) = state.upgrade() else { return };
                tracing::info!("SIGHUP: reopening audit files and reloading TLS files");
                state.reopen_audit_files();
                if let Some(Err(error)) = tls.as_ref().map(|tls| tls.reload()) {
                    tracing::error!(%error, "TLS files not reloaded; the current certificate stays");
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = (state, tls);
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metrics_section_keeps_the_defaults_it_does_not_name() {
        let none = parse_config("").expect("parses");
        assert!(none.metrics.key_names && none.metrics.unauthenticated_access.is_none());
        let open = parse_config("[metrics]\nunauthenticated_access = true\n").expect("parses");
        assert!(open.metrics.key_names, "key names stay on");
        assert_eq!(open.metrics.unauthenticated_access, Some(true));
        let anonymous = parse_config("[metrics]\nkey_names = false\n").expect("parses");
        assert!(!anonymous.metrics.key_names);
        assert!(
            parse_config("[metrics]\nkey_nmes = false\n").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn a_missing_storage_directory_is_created_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let base = std::env::temp_dir().join(format!("ea-storage-dir-{}", std::process::id()));
        let file = base.join("a/b/encrypted-attr-storage.json");
        create_storage_directory(&file).expect("created");
        let mode = std::fs::metadata(base.join("a/b"))
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "no access for group or others: {mode:o}");
        // The storage opens there and can be written at once.
        let storage = encrypted_attr::storage::FileStorage::open(&file).expect("opens");
        use encrypted_attr::storage::{Storage as _, Update};
        storage
            .update("k", &mut |_| Ok(Update::Put(b"v".to_vec())))
            .expect("writable");
        create_storage_directory(&file).expect("an existing directory is fine");
        // Where a directory cannot be made, the start stops with the reason.
        std::fs::write(base.join("plain"), b"").unwrap();
        let refused = create_storage_directory(&base.join("plain/x/store.json")).expect_err("a file in the way");
        assert!(
            refused.to_string().contains("cannot create the storage directory"),
            "{refused}"
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn config_file_and_flags_merge() {
        let file = parse_config(
            "listen = \"0.0.0.0:8443\"\n[storage]\nfile = \"/var/lib/ea.json\"\n[tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n",
        )
        .expect("valid config");
        assert_eq!(file.listen.map(|a| a.port()), Some(8443));
        assert!(file.tls.is_some());
        assert!(parse_config("listen = 1").is_err());
        assert!(
            parse_config("[storage]\nfiel = \"x\"").is_err(),
            "unknown keys are refused"
        );
        let limited = parse_config("[limits]\nmax_batch_items = 500\nheader_read_timeout = 5\n").expect("limits");
        assert_eq!(limited.limits.max_batch_items, 500);
        assert_eq!(limited.limits.header_read_timeout, std::time::Duration::from_secs(5));
        assert_eq!(
            limited.limits.max_json_depth,
            crate::limits::Limits::default().max_json_depth
        );
        assert!(parse_config("[limits]\nmax_batch_itmes = 5\n").is_err());
        let dir = std::env::temp_dir().join(format!("ea-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("server.toml");
        std::fs::write(&path, "[storage]\npostgres = \"postgres://db/keys\"\n").expect("write");
        let args = ServerArgs {
            config: Some(path),
            dev: false,
            storage_file: None,
            storage_postgres: None,
            listen: Some(SocketAddr::from(([127, 0, 0, 1], 9000))),
            tls_cert: None,
            tls_key: None,
            dev_root_token_id: None,
            metrics_without_key_names: false,
        };
        let settings = args.settings().expect("settings");
        assert_eq!(settings.listen.port(), 9000, "flags win");
        assert!(matches!(settings.storage, StorageChoice::Postgres(ref url) if url.expose() == "postgres://db/keys"));
        // Secrets never reach Debug output.
        let parsed = parse_config("[storage]\npostgres = \"postgres://u:pw@db/keys\"\n").expect("config");
        assert!(!format!("{parsed:?}").contains("pw@"), "{parsed:?}");
        let token: SecretArg = "hvs.secret".parse().expect("infallible");
        assert_eq!(format!("{token:?}"), "[REDACTED]");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
