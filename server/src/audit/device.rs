//! An audit device: its configuration and salt as stored, the file it appends to
//! (reopened when moved or removed underneath), and the one-write-or-cut-back
//! append that keeps a line whole.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::Mutex;

use encrypted_attr::HashAlgorithm;
use serde::{Deserialize, Serialize};

use super::HMAC_PREFIX;
use crate::stores::{Mirrored, Record, decode_json, encode_json};

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeviceConfig {
    #[serde(rename = "type")]
    pub(super) kind: String,
    pub(super) description: String,
    pub(super) file_path: String,
    pub(super) salt: String,
}

impl Record for DeviceConfig {
    fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
        encode_json(self)
    }
    /// A damaged entry counts as a device that cannot write (its path is kept),
    /// so requests fail closed rather than go unlogged.
    fn decode(bytes: &[u8]) -> Option<Self> {
        Some(decode_json(bytes).unwrap_or_else(|| DeviceConfig {
            kind: "file".into(),
            description: "damaged configuration".into(),
            file_path: String::new(),
            salt: String::new(),
        }))
    }
}

pub(crate) struct Device {
    pub(super) config: DeviceConfig,
    /// The open file, `None` while it cannot be opened (a stored device whose
    /// file is missing: it stays enabled and each write tries to open it again,
    /// failing — so requests fail closed — until the file can be opened).
    ///
    /// A lock around each write: a write that the disk cannot take whole must be
    /// cut back before any other line follows it, or the next line would be glued
    /// onto the torn one. Lines still go out in one `write(2)` on an `O_APPEND`
    /// file, so other processes appending to the same file never interleave.
    file: Mutex<Option<AuditFile>>,
}

/// An open audit file and the identity (device, inode) of what it was opened as,
/// to notice when the path has been removed or replaced underneath it.
struct AuditFile {
    file: File,
    identity: Option<(u64, u64)>,
}

impl Mirrored for Device {
    type Record = DeviceConfig;
    fn load(name: &str, record: Option<DeviceConfig>) -> Option<Self> {
        record.map(|config| Self::load(name, config))
    }
    fn record(&self) -> &DeviceConfig {
        &self.config
    }
}

impl Device {
    /// A stored device: opened if possible, otherwise kept as a failing device.
    pub(super) fn load(name: &str, config: DeviceConfig) -> Self {
        Self::open(config.clone()).unwrap_or_else(|e| {
            tracing::error!(device = %name, error = %e, "audit device cannot be opened; requests will fail");
            Self {
                config,
                file: Mutex::new(None),
            }
        })
    }

    pub(super) fn open(config: DeviceConfig) -> Result<Self, String> {
        let file = Self::open_file(&config)?;
        Ok(Self {
            config,
            file: Mutex::new(Some(file)),
        })
    }

    fn open_file(config: &DeviceConfig) -> Result<AuditFile, String> {
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let file = options.open(&config.file_path).map_err(|e| {
            format!(
                "sanity check failed; unable to open {:?} for writing: {e}",
                config.file_path
            )
        })?;
        let identity = file.metadata().ok().map(|m| identity(&m));
        Ok(AuditFile { file, identity })
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<AuditFile>> {
        self.file.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens the file again (after `SIGHUP`, or when its path was replaced): lines
    /// go to whatever the path names now. On failure the device fails closed.
    pub(super) fn reopen(&self, name: &str) {
        let mut slot = self.slot();
        match Self::open_file(&self.config) {
            Ok(file) => *slot = Some(file),
            Err(e) => {
                tracing::error!(device = %name, error = %e, "audit file cannot be reopened; requests will fail");
                *slot = None;
            }
        }
    }

    /// True when the open file is no longer what the path names (removed, or
    /// renamed away by log rotation).
    pub(super) fn moved(&self) -> bool {
        let current = std::fs::metadata(&self.config.file_path).ok().map(|m| identity(&m));
        let slot = self.slot();
        match (&*slot, current) {
            (Some(open), Some(now)) => open.identity != Some(now),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    pub(super) fn hash(&self, input: &str) -> String {
        let mac = HashAlgorithm::Sha2_256.hmac(self.config.salt.as_bytes(), input.as_bytes());
        let mut out = String::with_capacity(HMAC_PREFIX.len() + 2 * mac.len());
        out.push_str(HMAC_PREFIX);
        crate::encoding::push_hex(&mut out, &mac);
        out
    }

    /// Writes `line` and a newline in one `write(2)`; a line the disk could take
    /// only in part is cut off again, so the file only ever holds whole lines.
    pub(super) fn write(&self, line: &impl Serialize) -> bool {
        let mut text = Vec::with_capacity(1024);
        if serde_json::to_writer(&mut text, line).is_err() {
            return false;
        }
        text.push(b'\n');
        let mut slot = self.slot();
        if slot.is_none() {
            *slot = Self::open_file(&self.config).ok();
        }
        let Some(open) = slot.as_mut() else { return false };
        write_whole_line(&mut open.file, &text)
    }
}

/// The (device, inode) pair of a file.
fn identity(metadata: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        (metadata.dev(), metadata.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = metadata;
        (0, 0)
    }
}

/// What an audit file must do: append, tell its length and where the last write
/// ended, be cut back.
pub(super) trait AppendFile {
    fn len(&self) -> std::io::Result<u64>;
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<usize>;
    /// The offset just after the last write (with `O_APPEND`, where it landed).
    fn position(&mut self) -> std::io::Result<u64>;
    fn cut_back(&mut self, len: u64) -> std::io::Result<()>;
}

impl AppendFile for File {
    fn len(&self) -> std::io::Result<u64> {
        self.metadata().map(|m| m.len())
    }
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.write(bytes)
    }
    fn position(&mut self) -> std::io::Result<u64> {
        std::io::Seek::stream_position(self)
    }
    fn cut_back(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
}

/// Appends `line` in one write; if only part of it was written (disk full, file
/// size limit), cuts the torn part off again and reports failure. The cut is made
/// only if the torn part is still the file's end: a line another writer (another
/// process, another device on the same file) appended after it is never removed.
pub(super) fn write_whole_line(file: &mut impl AppendFile, line: &[u8]) -> bool {
    match file.append(line) {
        Ok(n) if n == line.len() => true,
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let torn_end = file.position();
            let cut = match (torn_end, file.len()) {
                (Ok(end), Ok(len)) if end == len => file.cut_back(end - n as u64),
                _ => Err(std::io::Error::other("another line followed it")),
            };
            if let Err(e) = cut {
                tracing::error!(error = %e, "a torn audit line could not be cut off");
            }
            false
        }
    }
}
