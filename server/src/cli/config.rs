//! The server's settings as a configuration file gives them: this server's TOML
//! (read here) and Vault's HCL or JSON (read into the same types by
//! [`super::vault_config`]). Flags are merged over them in [`super::serve`].

use std::net::SocketAddr;

use super::secret::SecretArg;
use crate::error::StartError;

/// The configuration file (this server's TOML; Vault's format is read into the
/// same settings by [`super::vault_config`]).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    pub(super) listen: Option<SocketAddr>,
    #[serde(default)]
    pub(super) storage: StorageConfig,
    pub(super) tls: Option<TlsConfig>,
    /// Request limits and timeouts (`docs/server.md`); unset ones keep defaults.
    #[serde(default)]
    pub(super) limits: crate::limits::Limits,
    /// What `sys/metrics` reports.
    #[serde(default)]
    pub(super) metrics: MetricsConfig,
}

/// `[metrics]`; a key left out keeps its default.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct MetricsConfig {
    /// Whether transit items are labelled with their key's name (default: yes).
    pub(super) key_names: bool,
    /// Whether `sys/metrics` answers without a token (default: no; yes in dev
    /// mode, as in Vault).
    pub(super) unauthenticated_access: Option<bool>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            key_names: true,
            unauthenticated_access: None,
        }
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StorageConfig {
    pub(super) file: Option<std::path::PathBuf>,
    pub(super) postgres: Option<SecretArg>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsConfig {
    pub(super) cert: std::path::PathBuf,
    pub(super) key: std::path::PathBuf,
}

/// This server's TOML configuration.
pub(super) fn parse_config(text: &str) -> Result<ConfigFile, StartError> {
    toml::from_str(text).map_err(|e| StartError::Config(format!("invalid configuration: {}", e.message())))
}
