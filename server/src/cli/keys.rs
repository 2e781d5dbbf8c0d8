//! `encrypted-attr keys …`: the key lifecycle from the command line, against a
//! companion server (or Vault/OpenBao) over HTTP, or directly against a local
//! keyring file.

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use encrypted_attr::{KeyConfig, KeyInfo, KeyName, KeyOptions, KeyType, KeyVersion};

use super::engine::EngineArgs;
use crate::error::CliError;

/// `keys`: where the keys are, and how to print.
#[derive(Debug, Args)]
pub(crate) struct KeysArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key (nothing changes if it exists).
    ///
    /// Example: `encrypted-attr keys create users_email --convergent`
    Create {
        /// Key name, e.g. `users_ssn`.
        name: String,
        /// Key type: aes256-gcm96, aes128-gcm96 or chacha20-poly1305.
        #[arg(long = "type", default_value = "aes256-gcm96")]
        key_type: String,
        /// Derive a key per context.
        #[arg(long)]
        derived: bool,
        /// Deterministic encryption for equality lookups (implies --derived).
        #[arg(long)]
        convergent: bool,
        /// Allow exporting the key material (cannot be undone).
        #[arg(long)]
        exportable: bool,
        /// Rotate automatically after this long, e.g. 720h (at least 1h).
        #[arg(long, value_parser = parse_duration)]
        auto_rotate_period: Option<Duration>,
    },
    /// List key names.
    List,
    /// Show a key's versions and settings.
    Show {
        /// Key name.
        name: String,
    },
    /// Add a version; new encryptions use it, old ciphertexts still decrypt.
    ///
    /// Example: `encrypted-attr keys rotate users_ssn`
    Rotate {
        /// Key name.
        name: String,
    },
    /// Change a key's settings.
    ///
    /// Example: `encrypted-attr keys config users_ssn --min-decryption-version 3`
    Config {
        /// Key name.
        name: String,
        /// Oldest version that may still decrypt (raise it to retire old versions).
        #[arg(long)]
        min_decryption_version: Option<u32>,
        /// Oldest version a caller may ask to encrypt with (0: latest only).
        #[arg(long)]
        min_encryption_version: Option<u32>,
        /// Whether the key may be deleted.
        #[arg(long)]
        deletion_allowed: Option<bool>,
        /// Allow exporting the key material (cannot be undone).
        #[arg(long)]
        exportable: bool,
        /// Automatic rotation period (0 turns it off).
        #[arg(long, value_parser = parse_duration)]
        auto_rotate_period: Option<Duration>,
    },
    /// Delete versions below a version for ever (needs min versions set first).
    Trim {
        /// Key name.
        name: String,
        /// Versions below this one are deleted.
        #[arg(long)]
        min_available_version: u32,
    },
    /// Delete a key (only when `deletion_allowed` is set).
    Delete {
        /// Key name.
        name: String,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::encoding::parse_duration(s).ok_or_else(|| format!("not a duration: {s:?} (e.g. 3600, 90m, 24h)"))
}

impl KeysArgs {
    /// Runs the command; the message of an error is printed by the caller.
    pub(crate) fn run(&self) -> Result<(), CliError> {
        let engine = self.engine.engine()?;
        let key = |name: &str| KeyName::new(name);
        let info = match &self.command {
            KeysCommand::List => {
                let names = engine.list_keys()?;
                match self.format {
                    Format::Json => println!(
                        "{}",
                        serde_json::json!({ "keys": names.iter().map(KeyName::as_str).collect::<Vec<_>>() })
                    ),
                    Format::Table => names.iter().for_each(|n| println!("{n}")),
                }
                return Ok(());
            }
            KeysCommand::Create {
                name,
                key_type,
                derived,
                convergent,
                exportable,
                auto_rotate_period,
            } => {
                let key_type: KeyType = key_type.parse()?;
                let mut options = KeyOptions::default()
                    .key_type(key_type)
                    .derived(*derived || *convergent)
                    .convergent_encryption(*convergent)
                    .exportable(*exportable);
                if let Some(period) = auto_rotate_period {
                    options = options.auto_rotate_period(*period);
                }
                engine.create_key(&key(name)?, options)
            }
            KeysCommand::Show { name } => engine.read_key(&key(name)?),
            KeysCommand::Rotate { name } => engine.rotate_key(&key(name)?),
            KeysCommand::Config {
                name,
                min_decryption_version,
                min_encryption_version,
                deletion_allowed,
                exportable,
                auto_rotate_period,
            } => {
                let mut config = KeyConfig::default();
                config.min_decryption_version = *min_decryption_version;
                config.min_encryption_version = *min_encryption_version;
                config.deletion_allowed = *deletion_allowed;
                config.exportable = exportable.then_some(true);
                config.auto_rotate_period = *auto_rotate_period;
                engine.configure_key(&key(name)?, config)
            }
            KeysCommand::Trim {
                name,
                min_available_version,
            } => {
                let version = KeyVersion::new(*min_available_version)
                    .ok_or_else(|| CliError::Usage("versions start at 1".into()))?;
                engine.trim_key(&key(name)?, version)
            }
            KeysCommand::Delete { name } => {
                engine.delete_key(&key(name)?)?;
                if let Format::Json = self.format {
                    println!("{}", serde_json::json!({ "deleted": name }));
                } else {
                    println!("deleted {name}");
                }
                return Ok(());
            }
        }?;
        self.print(&info);
        Ok(())
    }

    fn print(&self, info: &KeyInfo) {
        match self.format {
            Format::Json => println!("{}", crate::engines::transit::keys::describe(info)),
            Format::Table => {
                println!("name                    {}", info.name);
                println!("type                    {}", info.key_type);
                println!("latest_version          {}", info.latest_version);
                println!("min_decryption_version  {}", info.min_decryption_version);
                println!("min_encryption_version  {}", info.min_encryption_version);
                println!("min_available_version   {}", info.min_available_version);
                println!("derived                 {}", info.derived);
                println!("convergent_encryption   {}", info.convergent_encryption);
                println!("exportable              {}", info.exportable);
                println!("deletion_allowed        {}", info.deletion_allowed);
                println!("auto_rotate_period      {}s", info.auto_rotate_period.as_secs());
                for (version, created) in &info.versions {
                    println!("version {version:<16} created {created}");
                }
            }
        }
    }
}
