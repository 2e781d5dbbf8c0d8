//! One named key as stored: its flags, its versions and their material, and the
//! lifecycle transitions (create, rotate, configure, trim) with Vault's rules.
//!
//! Every transition is a pure function of the stored state, so it can run inside a
//! storage compare-and-swap: two processes rotating at once each apply `rotate` to
//! the state they read under the storage lock, and never create two different
//! "version 3"s. Invariants (checked by [`StoredKey::validate`] on every load):
//! versions `max(1, min_available)..=latest` all exist, `1 <= min_decryption <=
//! latest`, `min_encryption` is 0 or in `min_decryption..=latest`,
//! `min_available <= min_decryption`.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::cipher::{self, HMAC_KEY_LEN, KeyType};
use crate::error::Error;
use crate::name::{KeyName, KeyVersion};

/// The shortest non-zero `auto_rotate_period` Vault accepts.
pub const MIN_AUTO_ROTATE_PERIOD: Duration = Duration::from_secs(3600);

/// Options for creating a key; the defaults are Vault's (`aes256-gcm96`, nothing
/// derived, nothing exportable, no auto-rotation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyOptions {
    /// The cipher.
    pub key_type: KeyType,
    /// Derive a key per `context` with HKDF-SHA256; every call must then pass one.
    pub derived: bool,
    /// Deterministic encryption (requires `derived`): equal inputs give equal
    /// ciphertexts, so a column can be searched by equality.
    pub convergent_encryption: bool,
    /// Allow the key material to be exported (one-way: cannot be turned off).
    pub exportable: bool,
    /// Allow a plaintext backup of the key (one-way).
    pub allow_plaintext_backup: bool,
    /// Rotate automatically once the latest version is this old (zero: never).
    pub auto_rotate_period: Duration,
}

impl KeyOptions {
    /// Options for a derived, convergent key: what a column searched by equality needs.
    #[must_use]
    pub fn convergent() -> Self {
        Self {
            derived: true,
            convergent_encryption: true,
            ..Self::default()
        }
    }

    /// Sets the key type.
    #[must_use]
    pub fn key_type(mut self, key_type: KeyType) -> Self {
        self.key_type = key_type;
        self
    }

    /// Sets `derived`.
    #[must_use]
    pub fn derived(mut self, derived: bool) -> Self {
        self.derived = derived;
        self
    }

    /// Sets `convergent_encryption` (which also needs `derived`).
    #[must_use]
    pub fn convergent_encryption(mut self, convergent: bool) -> Self {
        self.convergent_encryption = convergent;
        self
    }

    /// Sets `exportable`.
    #[must_use]
    pub fn exportable(mut self, exportable: bool) -> Self {
        self.exportable = exportable;
        self
    }

    /// Sets `allow_plaintext_backup`.
    #[must_use]
    pub fn allow_plaintext_backup(mut self, allow: bool) -> Self {
        self.allow_plaintext_backup = allow;
        self
    }

    /// Sets `auto_rotate_period`.
    #[must_use]
    pub fn auto_rotate_period(mut self, period: Duration) -> Self {
        self.auto_rotate_period = period;
        self
    }
}

/// Changes to a key's configuration; `None` leaves a setting as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyConfig {
    /// Oldest version that may still decrypt (0 is read as 1, as Vault does).
    pub min_decryption_version: Option<u32>,
    /// Oldest version that may encrypt when a caller asks for one (0 = latest only).
    pub min_encryption_version: Option<u32>,
    /// Whether the key may be deleted.
    pub deletion_allowed: Option<bool>,
    /// Turn on export (cannot be turned off again).
    pub exportable: Option<bool>,
    /// Turn on plaintext backup (cannot be turned off again).
    pub allow_plaintext_backup: Option<bool>,
    /// New auto-rotation period (zero turns it off).
    pub auto_rotate_period: Option<Duration>,
}

impl KeyConfig {
    /// Sets `min_decryption_version`.
    #[must_use]
    pub fn min_decryption_version(mut self, version: u32) -> Self {
        self.min_decryption_version = Some(version);
        self
    }

    /// Sets `min_encryption_version`.
    #[must_use]
    pub fn min_encryption_version(mut self, version: u32) -> Self {
        self.min_encryption_version = Some(version);
        self
    }

    /// Sets `deletion_allowed`.
    #[must_use]
    pub fn deletion_allowed(mut self, allowed: bool) -> Self {
        self.deletion_allowed = Some(allowed);
        self
    }

    /// Sets `exportable`.
    #[must_use]
    pub fn exportable(mut self, exportable: bool) -> Self {
        self.exportable = Some(exportable);
        self
    }

    /// Sets `auto_rotate_period`.
    #[must_use]
    pub fn auto_rotate_period(mut self, period: Duration) -> Self {
        self.auto_rotate_period = Some(period);
        self
    }
}

/// Key bytes in storage: base64 in the (barrier-encrypted) JSON, wiped in memory.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct KeyBytes(pub(crate) Zeroizing<Vec<u8>>);

impl std::fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyBytes([REDACTED])")
    }
}

impl Serialize for KeyBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let encoded = Zeroizing::new(BASE64.encode(&*self.0));
        s.serialize_str(&encoded)
    }
}

impl<'de> Deserialize<'de> for KeyBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let encoded = Zeroizing::new(String::deserialize(d)?);
        BASE64
            .decode(encoded.as_bytes())
            .map(|bytes| Self(Zeroizing::new(bytes)))
            .map_err(|_| serde::de::Error::custom("key material is not base64"))
    }
}

/// One version of a key as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredVersion {
    /// The version's encryption key (the HKDF input key for derived keys).
    pub(crate) key: KeyBytes,
    /// Independent 32-byte key for the `hmac` operation.
    pub(crate) hmac_key: KeyBytes,
    /// Creation time, Unix seconds.
    pub(crate) created: i64,
    /// Random-nonce encryptions reserved so far, by every process together. Counted
    /// in blocks before use, so a crash can only over-count.
    #[serde(default)]
    pub(crate) encryptions_reserved: u64,
}

impl StoredVersion {
    fn generate(key_type: KeyType, now: i64) -> Result<Self, Error> {
        Ok(Self {
            key: KeyBytes(cipher::os_random(key_type.key_len())?.into_zeroizing()),
            hmac_key: KeyBytes(cipher::os_random(HMAC_KEY_LEN)?.into_zeroizing()),
            created: now,
            encryptions_reserved: 0,
        })
    }
}

/// The format number written in every stored key.
const STORED_KEY_FORMAT: u32 = 1;

/// A named key as stored inside the barrier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredKey {
    pub(crate) format: u32,
    pub(crate) name: KeyName,
    pub(crate) key_type: KeyType,
    pub(crate) derived: bool,
    pub(crate) convergent_encryption: bool,
    pub(crate) exportable: bool,
    pub(crate) allow_plaintext_backup: bool,
    pub(crate) deletion_allowed: bool,
    pub(crate) auto_rotate_period_secs: u64,
    pub(crate) latest_version: u32,
    pub(crate) min_decryption_version: u32,
    pub(crate) min_encryption_version: u32,
    pub(crate) min_available_version: u32,
    pub(crate) versions: BTreeMap<u32, StoredVersion>,
}

/// Checks an auto-rotation period against Vault's rule.
fn check_auto_rotate(period: Duration) -> Result<u64, Error> {
    if !period.is_zero() && period < MIN_AUTO_ROTATE_PERIOD {
        return Err(Error::invalid(
            "auto rotate period must be 0 to disable or at least an hour",
        ));
    }
    Ok(period.as_secs())
}

impl StoredKey {
    /// A new key with fresh material for version 1.
    pub(crate) fn create(name: KeyName, options: &KeyOptions, now: i64) -> Result<Self, Error> {
        if options.convergent_encryption && !options.derived {
            return Err(Error::invalid(
                "convergent encryption requires derivation to be enabled",
            ));
        }
        let auto_rotate_period_secs = check_auto_rotate(options.auto_rotate_period)?;
        let mut versions = BTreeMap::new();
        versions.insert(1, StoredVersion::generate(options.key_type, now)?);
        Ok(Self {
            format: STORED_KEY_FORMAT,
            name,
            key_type: options.key_type,
            derived: options.derived,
            convergent_encryption: options.convergent_encryption,
            exportable: options.exportable,
            allow_plaintext_backup: options.allow_plaintext_backup,
            deletion_allowed: false,
            auto_rotate_period_secs,
            latest_version: 1,
            min_decryption_version: 1,
            min_encryption_version: 0,
            min_available_version: 0,
            versions,
        })
    }

    /// Adds version `latest + 1` with fresh material.
    pub(crate) fn rotate(&mut self, now: i64) -> Result<KeyVersion, Error> {
        let next = self
            .latest_version
            .checked_add(1)
            .ok_or_else(|| Error::invalid("key has reached the maximum number of versions"))?;
        self.versions.insert(next, StoredVersion::generate(self.key_type, now)?);
        self.latest_version = next;
        Ok(KeyVersion::try_from(next)?)
    }

    /// True when `auto_rotate_period` is set and the latest version is older than it.
    pub(crate) fn rotation_due(&self, now: i64) -> bool {
        if self.auto_rotate_period_secs == 0 {
            return false;
        }
        let created = self.versions.get(&self.latest_version).map_or(i64::MIN, |v| v.created);
        let period = i64::try_from(self.auto_rotate_period_secs).unwrap_or(i64::MAX);
        now >= created.saturating_add(period)
    }

    /// Applies a configuration change with Vault's validation rules. Returns the
    /// warnings Vault would give (e.g. `min_decryption_version` 0 read as 1).
    pub(crate) fn configure(&mut self, config: &KeyConfig) -> Result<Vec<String>, Error> {
        let mut warnings = Vec::new();
        let mut min_dec = self.min_decryption_version;
        let mut min_enc = self.min_encryption_version;
        if let Some(v) = config.min_decryption_version {
            min_dec = if v == 0 {
                warnings.push("since Vault 0.3, transit key numbering starts at 1; forcing minimum to 1".to_owned());
                1
            } else {
                v
            };
            if min_dec > self.latest_version {
                return Err(Error::invalid(format!(
                    "cannot set min decryption version of {min_dec}, latest key version is {}",
                    self.latest_version
                )));
            }
            if min_dec < self.min_available_version {
                return Err(Error::invalid(format!(
                    "cannot set min decryption version below min available version {}",
                    self.min_available_version
                )));
            }
        }
        if let Some(v) = config.min_encryption_version {
            if v > self.latest_version {
                return Err(Error::invalid(format!(
                    "cannot set min encryption version of {v}, latest key version is {}",
                    self.latest_version
                )));
            }
            if v != 0 && v < self.min_available_version {
                return Err(Error::invalid(format!(
                    "cannot set min encryption version below min available version {}",
                    self.min_available_version
                )));
            }
            min_enc = v;
        }
        if min_enc != 0 && min_enc < min_dec {
            return Err(Error::invalid(
                "cannot set min encryption/decryption values; min encryption version must be greater than or equal to min decryption version",
            ));
        }
        if config.exportable == Some(false) && self.exportable {
            return Err(Error::invalid("cannot disable exportability of a key"));
        }
        if config.allow_plaintext_backup == Some(false) && self.allow_plaintext_backup {
            return Err(Error::invalid("cannot disable plaintext backup of a key"));
        }
        let auto_rotate = match config.auto_rotate_period {
            Some(period) => check_auto_rotate(period)?,
            None => self.auto_rotate_period_secs,
        };
        self.min_decryption_version = min_dec;
        self.min_encryption_version = min_enc;
        self.auto_rotate_period_secs = auto_rotate;
        if let Some(allowed) = config.deletion_allowed {
            self.deletion_allowed = allowed;
        }
        if config.exportable == Some(true) {
            self.exportable = true;
        }
        if config.allow_plaintext_backup == Some(true) {
            self.allow_plaintext_backup = true;
        }
        Ok(warnings)
    }

    /// Permanently deletes versions below `min_available_version` (Vault's rules).
    pub(crate) fn trim(&mut self, min_available_version: u32) -> Result<(), Error> {
        if min_available_version == 0 {
            return Err(Error::invalid("minimum available version should be positive"));
        }
        if min_available_version < self.min_available_version {
            return Err(Error::invalid("minimum available version cannot be decremented"));
        }
        if self.min_encryption_version == 0 {
            return Err(Error::invalid(
                "minimum available version cannot be set when minimum encryption version is not set",
            ));
        }
        if min_available_version > self.min_encryption_version {
            return Err(Error::invalid(
                "minimum available version cannot be greater than minimum encryption version",
            ));
        }
        if min_available_version > self.min_decryption_version {
            return Err(Error::invalid(
                "minimum available version cannot be greater than minimum decryption version",
            ));
        }
        self.versions.retain(|v, _| *v >= min_available_version);
        self.min_available_version = min_available_version;
        Ok(())
    }

    /// Checks the invariants listed in the module documentation.
    pub(crate) fn validate(&self, location: &str) -> Result<(), Error> {
        let corrupt = |reason| {
            Err(Error::CorruptStorage {
                location: location.to_owned(),
                reason,
            })
        };
        if self.format != STORED_KEY_FORMAT {
            return corrupt("unsupported key format");
        }
        let first = self.min_available_version.max(1);
        if self.latest_version == 0
            || self.min_decryption_version == 0
            || self.min_decryption_version > self.latest_version
            || self.min_available_version > self.min_decryption_version
            || (self.min_encryption_version != 0
                && (self.min_encryption_version < self.min_decryption_version
                    || self.min_encryption_version > self.latest_version))
        {
            return corrupt("key version bounds are inconsistent");
        }
        if self.convergent_encryption && !self.derived {
            return corrupt("convergent key is not derived");
        }
        let expected = (first..=self.latest_version).count();
        if self.versions.len() != expected || !(first..=self.latest_version).all(|v| self.versions.contains_key(&v)) {
            return corrupt("key versions are missing");
        }
        let key_len = self.key_type.key_len();
        if self
            .versions
            .values()
            .any(|v| v.key.0.len() != key_len || v.hmac_key.0.len() != HMAC_KEY_LEN)
        {
            return corrupt("key material has the wrong length");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Result<StoredKey, Error> {
        StoredKey::create(KeyName::new("k")?, &KeyOptions::default(), 100)
    }

    #[test]
    fn create_validates_vaults_rules() -> Result<(), Error> {
        let name = KeyName::new("k")?;
        let convergent_only = KeyOptions {
            convergent_encryption: true,
            ..KeyOptions::default()
        };
        assert!(StoredKey::create(name.clone(), &convergent_only, 0).is_err());
        let short = KeyOptions::default().auto_rotate_period(Duration::from_secs(60));
        assert!(StoredKey::create(name.clone(), &short, 0).is_err());
        let k = StoredKey::create(name, &KeyOptions::convergent(), 0)?;
        k.validate("test")?;
        Ok(())
    }

    #[test]
    fn rotate_configure_trim_keep_the_invariants() -> Result<(), Error> {
        let mut k = key()?;
        k.rotate(101)?;
        k.rotate(102)?;
        assert_eq!(k.latest_version, 3);
        assert!(k.configure(&KeyConfig::default().min_decryption_version(4)).is_err());
        assert!(k.trim(2).is_err(), "needs min_encryption_version first");
        k.configure(&KeyConfig::default().min_decryption_version(2).min_encryption_version(3))?;
        assert!(k.configure(&KeyConfig::default().min_encryption_version(1)).is_err());
        assert!(k.trim(3).is_err(), "above min_decryption_version");
        k.trim(2)?;
        assert!(!k.versions.contains_key(&1));
        k.validate("test")?;
        assert!(k.trim(1).is_err(), "cannot decrease");
        assert!(k.configure(&KeyConfig::default().min_decryption_version(1)).is_err());
        let warnings = k.configure(&KeyConfig {
            min_decryption_version: Some(0),
            ..KeyConfig::default()
        });
        assert!(warnings.is_err(), "0 reads as 1, which is below min available");
        Ok(())
    }

    #[test]
    fn exportable_is_one_way() -> Result<(), Error> {
        let mut k = key()?;
        k.configure(&KeyConfig::default().exportable(true))?;
        assert!(k.configure(&KeyConfig::default().exportable(false)).is_err());
        Ok(())
    }

    #[test]
    fn rotation_is_due_after_the_period() -> Result<(), Error> {
        let mut k = key()?;
        assert!(!k.rotation_due(i64::MAX));
        k.configure(&KeyConfig::default().auto_rotate_period(Duration::from_secs(3600)))?;
        assert!(!k.rotation_due(100 + 3599));
        assert!(k.rotation_due(100 + 3600));
        Ok(())
    }

    #[test]
    fn validate_rejects_missing_versions() -> Result<(), Error> {
        let mut k = key()?;
        k.rotate(1)?;
        k.versions.remove(&1);
        assert!(k.validate("test").is_err());
        Ok(())
    }
}
