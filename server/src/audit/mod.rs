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

use std::sync::Arc;

use encrypted_attr::storage::Barrier;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::stores::{Mirror, SealedRecords};

mod device;

use device::{Device, DeviceConfig};

const AUDIT_PREFIX: &str = "sys/audit/";

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
    use super::device::{AppendFile, write_whole_line};
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
