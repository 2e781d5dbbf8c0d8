//! Where the keys are, for every admin command: a server (this project's, Vault or
//! OpenBao) over HTTP, or a local keyring file.

use std::path::PathBuf;

use clap::Args;
use encrypted_attr::{ClientConfig, LocalEngine, RemoteEngine, RootKey, TransitEngine};

use super::secret::SecretArg;
use crate::error::CliError;

/// Where the keys are: a server, or a local keyring file.
#[derive(Debug, Args)]
pub(crate) struct EngineArgs {
    /// Server address (also `ENCRYPTED_ATTR_ADDR` or `VAULT_ADDR`), e.g. http://127.0.0.1:8200.
    #[arg(long, global = true, conflicts_with = "keyring")]
    address: Option<String>,
    /// Token for the server (also `ENCRYPTED_ATTR_TOKEN` or `VAULT_TOKEN`).
    #[arg(long, global = true)]
    token: Option<SecretArg>,
    /// Transit mount path on the server.
    #[arg(long, global = true, default_value = "transit")]
    mount: String,
    /// A local keyring file instead of a server; the root key comes from
    /// `--root-key-file` or the `ENCRYPTED_ATTR_ROOT_KEY` environment variable.
    #[arg(long, global = true, value_name = "PATH")]
    keyring: Option<PathBuf>,
    /// File holding the keyring's root key (32 raw bytes, base64 or hex).
    #[arg(long, global = true, value_name = "PATH")]
    root_key_file: Option<PathBuf>,
}

impl EngineArgs {
    /// The engine these arguments name.
    pub(crate) fn engine(&self) -> Result<Box<dyn TransitEngine>, CliError> {
        if let Some(path) = &self.keyring {
            let root = match &self.root_key_file {
                Some(file) => RootKey::from_file(file),
                None => RootKey::from_env("ENCRYPTED_ATTR_ROOT_KEY"),
            }?;
            return Ok(Box::new(LocalEngine::open(path, &root)?));
        }
        let env = |a: &str, b: &str| std::env::var(a).or_else(|_| std::env::var(b)).ok();
        let address = self
            .address
            .clone()
            .or_else(|| env("ENCRYPTED_ATTR_ADDR", "VAULT_ADDR"))
            .ok_or_else(|| {
                CliError::Usage(
                    "give --address (or VAULT_ADDR) for a server, or --keyring for a local keyring file".into(),
                )
            })?;
        let token = self
            .token
            .as_ref()
            .map(|t| t.expose().to_owned())
            .or_else(|| env("ENCRYPTED_ATTR_TOKEN", "VAULT_TOKEN"))
            .ok_or_else(|| CliError::Usage("give --token (or VAULT_TOKEN)".into()))?;
        let config = ClientConfig::new(address, token).mount(self.mount.clone());
        Ok(Box::new(RemoteEngine::new(config)?))
    }
}
