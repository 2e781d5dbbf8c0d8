//! Audit devices: one JSON line per request and per response, every secret string
//! replaced by `hmac-sha256:<hex>` under the device's own salt, and fail-closed —
//! with devices enabled, a request that no device can record is refused (500) and
//! not executed; a response that no device can record is withheld.
//!
//! Hashed: the client token and its accessor, and every string, at any depth, in
//! the request's and the response's `data` (and `auth` of token creation). Not
//! hashed: keys, numbers, booleans, and request metadata (path, operation, id).
//! Only file devices exist; their configuration and salt live in the barrier on a
//! persistent server.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use encrypted_attr::HashAlgorithm;
use encrypted_attr::storage::Barrier;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::stores::{Mirror, Mirrored, Record, SealedRecords, decode_json, encode_json};

const AUDIT_PREFIX: &str = "sys/audit/";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DeviceConfig {
    #[serde(rename = "type")]
    kind: String,
    description: String,
    file_path: String,
    salt: String,
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
    config: DeviceConfig,
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
    fn load(name: &str, config: DeviceConfig) -> Self {
        Self::open(config.clone()).unwrap_or_else(|e| {
            tracing::error!(device = %name, error = %e, "audit device cannot be opened; requests will fail");
            Self {
                config,
                file: Mutex::new(None),
            }
        })
    }

    fn open(config: DeviceConfig) -> Result<Self, String> {
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
    fn reopen(&self, name: &str) {
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
    fn moved(&self) -> bool {
        let current = std::fs::metadata(&self.config.file_path).ok().map(|m| identity(&m));
        let slot = self.slot();
        match (&*slot, current) {
            (Some(open), Some(now)) => open.identity != Some(now),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }

    fn hash(&self, input: &str) -> String {
        let mac = HashAlgorithm::Sha2_256.hmac(self.config.salt.as_bytes(), input.as_bytes());
        let mut out = String::with_capacity(HMAC_PREFIX.len() + 2 * mac.len());
        out.push_str(HMAC_PREFIX);
        crate::encoding::push_hex(&mut out, &mac);
        out
    }

    /// Writes `line` and a newline in one `write(2)`; a line the disk could take
    /// only in part is cut off again, so the file only ever holds whole lines.
    fn write(&self, line: &impl Serialize) -> bool {
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
trait AppendFile {
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
fn write_whole_line(file: &mut impl AppendFile, line: &[u8]) -> bool {
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

const HMAC_PREFIX: &str = "hmac-sha256:";

/// A JSON value serialised with every string, at any depth, replaced by its hash
/// (object keys, numbers and booleans as they are): no hashed copy is built.
struct Hashed<'a> {
    value: &'a Value,
    device: &'a Device,
}

impl Serialize for Hashed<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq as _;
        match self.value {
            Value::String(s) => serializer.serialize_str(&self.device.hash(s)),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for value in items {
                    seq.serialize_element(&Hashed {
                        value,
                        device: self.device,
                    })?;
                }
                seq.end()
            }
            Value::Object(map) => HashedMap {
                map,
                device: self.device,
            }
            .serialize(serializer),
            other => other.serialize(serializer),
        }
    }
}

/// A JSON object serialised as [`Hashed`] does.
struct HashedMap<'a> {
    map: &'a Map<String, Value>,
    device: &'a Device,
}

impl Serialize for HashedMap<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut out = serializer.serialize_map(Some(self.map.len()))?;
        for (key, value) in self.map {
            out.serialize_entry(
                key,
                &Hashed {
                    value,
                    device: self.device,
                },
            )?;
        }
        out.end()
    }
}

/// One audit line, in Vault's layout.
#[derive(Serialize)]
struct Line<'a> {
    time: String,
    #[serde(rename = "type")]
    kind: &'static str,
    auth: LineAuth<'a>,
    request: LineRequest<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<Hashed<'a>>,
    error: &'a str,
}

#[derive(Serialize)]
struct LineAuth<'a> {
    client_token: &'a str,
    accessor: &'a str,
    display_name: &'static str,
    policies: &'a [String],
    token_type: &'static str,
}

#[derive(Serialize)]
struct LineRequest<'a> {
    id: &'a str,
    operation: &'static str,
    mount_type: &'a str,
    client_token: &'a str,
    client_token_accessor: &'a str,
    path: &'a str,
    data: HashedMap<'a>,
}

/// What is known of the request when it is logged.
pub(crate) struct AuditRequest<'a> {
    pub(crate) id: &'a str,
    pub(crate) operation: &'static str,
    pub(crate) path: &'a str,
    /// The type of the engine serving the path (`transit`, `kv`, `system`, `token`).
    pub(crate) mount_type: &'a str,
    pub(crate) token: &'a str,
    pub(crate) accessor: &'a str,
    pub(crate) policies: &'a [String],
    pub(crate) data: &'a crate::params::Params<'a>,
}

/// The enabled devices.
pub(crate) struct Audit {
    devices: Mirror<Device>,
}

fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// Refuses a device name that cannot be a storage path segment (`.`, `..`, empty).
fn check_device_name(name: &str) -> Result<(), DeviceError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(DeviceError::Invalid(format!("invalid audit device path {name:?}")));
    }
    Ok(())
}

/// Why a device could not be enabled or disabled.
#[derive(Debug)]
pub(crate) enum DeviceError {
    /// The caller's mistake (a 400): the type, the options, the path in use, a
    /// file that cannot be opened.
    Invalid(String),
    /// Storage failed: a 5xx, never the caller's fault.
    Storage(encrypted_attr::Error),
}

impl From<encrypted_attr::Error> for DeviceError {
    fn from(error: encrypted_attr::Error) -> Self {
        Self::Storage(error)
    }
}

impl Audit {
    /// Loads the devices stored in `barrier` (a device whose file cannot be opened
    /// stays configured but fails, so requests fail closed rather than go unlogged).
    pub(crate) fn open(barrier: Arc<Barrier>) -> Result<Self, encrypted_attr::Error> {
        Ok(Self {
            devices: Mirror::open(SealedRecords::new(barrier, AUDIT_PREFIX))?,
        })
    }

    /// Re-reads the devices from storage, to see devices enabled or disabled by
    /// another server sharing it: unchanged devices keep their open file. If storage
    /// cannot be read, the current devices stay.
    pub(crate) fn reload(&self) {
        if let Err(e) = self.devices.reload() {
            tracing::error!(error = %e, "audit devices could not be re-read; keeping the current ones");
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, std::collections::BTreeMap<String, Device>> {
        self.devices.read()
    }

    /// `sys/audit` listing.
    pub(crate) fn list(&self) -> Value {
        let devices = self.read();
        let map: Map<String, Value> = devices
            .iter()
            .map(|(name, d)| {
                (
                    format!("{name}/"),
                    json!({
                        "type": d.config.kind, "description": d.config.description, "path": format!("{name}/"),
                        "local": false, "options": { "file_path": d.config.file_path },
                    }),
                )
            })
            .collect();
        Value::Object(map)
    }

    /// Enables a file device at `name`.
    pub(crate) fn enable(
        &self,
        name: &str,
        kind: &str,
        description: String,
        file_path: String,
    ) -> Result<(), DeviceError> {
        check_device_name(name)?;
        let change = self.devices.change();
        if kind != "file" {
            return Err(DeviceError::Invalid(format!(
                "unknown backend type: {kind:?} (only \"file\" is supported)"
            )));
        }
        if file_path.is_empty() {
            return Err(DeviceError::Invalid("file_path is required".into()));
        }
        if change.contains(name) {
            return Err(DeviceError::Invalid(format!("path already in use at {name}/")));
        }
        let config = DeviceConfig {
            kind: kind.into(),
            description,
            file_path,
            salt: uuid::Uuid::new_v4().to_string(),
        };
        let device = Device::open(config).map_err(DeviceError::Invalid)?;
        change.insert(name, device)?;
        Ok(())
    }

    pub(crate) fn disable(&self, name: &str) -> Result<(), DeviceError> {
        check_device_name(name)?;
        self.devices.change().remove(name)?;
        Ok(())
    }

    /// Reopens every device's file (on `SIGHUP`, after log rotation).
    pub(crate) fn reopen(&self) {
        for (name, device) in self.read().iter() {
            device.reopen(name);
        }
    }

    /// Reopens the files whose path was removed or replaced underneath the server,
    /// so lines never go on into a deleted file.
    pub(crate) fn reopen_moved(&self) {
        for (name, device) in self.read().iter() {
            if device.moved() {
                tracing::warn!(device = %name, "audit file was removed or replaced; reopening it");
                device.reopen(name);
            }
        }
    }

    /// `sys/audit-hash/:name`.
    pub(crate) fn hash(&self, name: &str, input: &str) -> Option<String> {
        self.read().get(name).map(|d| d.hash(input))
    }

    /// Writes one line to `device`.
    fn write_line(
        device: &Device,
        kind: &'static str,
        request: &AuditRequest<'_>,
        data: &Map<String, Value>,
        response: Option<&Value>,
        error: &str,
    ) -> bool {
        let (token, accessor) = (device.hash(request.token), device.hash(request.accessor));
        device.write(&Line {
            time: now(),
            kind,
            auth: LineAuth {
                client_token: &token,
                accessor: &accessor,
                display_name: "token",
                policies: request.policies,
                token_type: "service",
            },
            request: LineRequest {
                id: request.id,
                operation: request.operation,
                mount_type: request.mount_type,
                client_token: &token,
                client_token_accessor: &accessor,
                path: request.path,
                data: HashedMap { map: data, device },
            },
            response: response.map(|value| Hashed { value, device }),
            error,
        })
    }

    /// Logs the request. `false` means devices exist and none could write: refuse.
    pub(crate) fn log_request(&self, request: &AuditRequest<'_>) -> bool {
        self.log(request, None, "")
    }

    /// Logs the response (its JSON body); `false` means withhold it.
    /// `response` is only built when a device is enabled.
    pub(crate) fn log_response(&self, request: &AuditRequest<'_>, response: impl Fn() -> Value, error: &str) -> bool {
        if self.read().is_empty() {
            return true;
        }
        let response = response();
        self.log(request, Some(&response), error)
    }

    /// Writes a request line (no `response`) or a response line to every device.
    fn log(&self, request: &AuditRequest<'_>, response: Option<&Value>, error: &str) -> bool {
        let devices = self.read();
        if devices.is_empty() {
            return true;
        }
        let kind = if response.is_some() { "response" } else { "request" };
        let Ok(data) = request.data.audit_fields() else {
            tracing::error!("request parameters could not be rebuilt for the audit log");
            return false;
        };
        let mut any = false;
        for (name, device) in devices.iter() {
            if Self::write_line(device, kind, request, &data, response, error) {
                any = true;
            } else {
                tracing::error!(device = %name, "audit device failed to write");
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that takes only `room` more bytes, then fails as a full disk does.
    struct SmallDisk {
        bytes: Vec<u8>,
        room: usize,
    }

    impl AppendFile for SmallDisk {
        fn len(&self) -> std::io::Result<u64> {
            Ok(self.bytes.len() as u64)
        }
        fn append(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::other("no space left on device"));
            }
            let n = bytes.len().min(self.room);
            self.bytes.extend_from_slice(&bytes[..n]);
            self.room -= n;
            Ok(n)
        }
        fn position(&mut self) -> std::io::Result<u64> {
            Ok(self.bytes.len() as u64)
        }
        fn cut_back(&mut self, len: u64) -> std::io::Result<()> {
            self.bytes.truncate(usize::try_from(len).expect("small"));
            Ok(())
        }
    }

    #[test]
    fn a_line_the_disk_cannot_take_whole_is_cut_off() {
        let mut disk = SmallDisk {
            bytes: Vec::new(),
            room: 40,
        };
        assert!(write_whole_line(&mut disk, b"{\"time\":\"1\"}\n"));
        assert!(
            !write_whole_line(&mut disk, b"{\"time\":\"179616440000000\",\"x\":1}\n"),
            "torn"
        );
        assert_eq!(disk.bytes, b"{\"time\":\"1\"}\n", "the torn part is gone");
        disk.room = 1000;
        assert!(write_whole_line(&mut disk, b"{\"time\":\"2\"}\n"));
        for line in disk.bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            serde_json::from_slice::<Value>(line).expect("every line is whole JSON");
        }
    }
}
