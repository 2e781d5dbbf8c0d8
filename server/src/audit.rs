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

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::sync::{OnceLock, RwLock};

use encrypted_attr::HashAlgorithm;
use encrypted_attr::storage::{Barrier, Update};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

const AUDIT_PREFIX: &str = "sys/audit/";

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct DeviceConfig {
    #[serde(rename = "type")]
    kind: String,
    description: String,
    file_path: String,
    salt: String,
}

struct Device {
    config: DeviceConfig,
    /// Opened with `O_APPEND`: each line goes out in one `write(2)`, which the kernel
    /// appends atomically, so concurrent requests need no lock (a lock here was the
    /// main cost under load). Empty: a stored device whose file could not be
    /// opened; it stays enabled and each write tries to open it again, failing
    /// (so requests fail closed) until the file can be opened.
    file: OnceLock<File>,
}

impl Device {
    /// A stored device: opened if possible, otherwise kept as a failing device.
    fn load(name: &str, config: DeviceConfig) -> Self {
        Self::open(config.clone()).unwrap_or_else(|e| {
            tracing::error!(device = %name, error = %e, "audit device cannot be opened; requests will fail");
            Self {
                config,
                file: OnceLock::new(),
            }
        })
    }

    fn open(config: DeviceConfig) -> Result<Self, String> {
        let file = Self::open_file(&config)?;
        Ok(Self {
            config,
            file: OnceLock::from(file),
        })
    }

    fn open_file(config: &DeviceConfig) -> Result<File, String> {
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        options.open(&config.file_path).map_err(|e| {
            format!(
                "sanity check failed; unable to open {:?} for writing: {e}",
                config.file_path
            )
        })
    }

    fn hash(&self, input: &str) -> String {
        let mac = HashAlgorithm::Sha2_256.hmac(self.config.salt.as_bytes(), input.as_bytes());
        let mut out = String::with_capacity(HMAC_PREFIX.len() + 2 * mac.len());
        out.push_str(HMAC_PREFIX);
        crate::http::push_hex(&mut out, &mac);
        out
    }

    /// Writes `line` and a newline in one `write(2)`.
    fn write(&self, line: &impl Serialize) -> bool {
        let mut text = Vec::with_capacity(1024);
        if serde_json::to_writer(&mut text, line).is_err() {
            return false;
        }
        text.push(b'\n');
        // One call: a short write (disk full) counts as a failure.
        let mut file = match self.file.get() {
            Some(file) => file,
            None => match Self::open_file(&self.config) {
                Ok(file) => self.file.get_or_init(|| file),
                Err(_) => return false,
            },
        };
        matches!(file.write(&text), Ok(n) if n == text.len())
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
    mount_type: &'static str,
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
    pub(crate) token: &'a str,
    pub(crate) accessor: &'a str,
    pub(crate) policies: &'a [String],
    pub(crate) data: &'a crate::params::Params<'a>,
}

/// The enabled devices.
pub(crate) struct Audit {
    devices: RwLock<BTreeMap<String, Device>>,
    persist: Option<Barrier>,
    /// Held by every change (enable, disable, reload) from its storage access to
    /// its map update, so a reload cannot replace the map with a view read before a
    /// local change and drop a device just enabled (or revive one just disabled).
    changes: std::sync::Mutex<()>,
}

fn now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

impl Audit {
    /// Loads the devices stored in `persist` (a device whose file cannot be opened
    /// stays configured but fails, so requests fail closed rather than go unlogged).
    pub(crate) fn new(persist: Option<Barrier>) -> Result<Self, encrypted_attr::Error> {
        let mut devices = BTreeMap::new();
        if let Some(barrier) = &persist {
            for (name, config) in Self::stored(barrier)? {
                let device = Device::load(&name, config);
                devices.insert(name, device);
            }
        }
        Ok(Self {
            devices: RwLock::new(devices),
            persist,
            changes: std::sync::Mutex::new(()),
        })
    }

    /// The device configurations in `barrier`. A damaged entry counts as a device
    /// that cannot write (its path is kept), so it fails closed.
    fn stored(barrier: &Barrier) -> Result<Vec<(String, DeviceConfig)>, encrypted_attr::Error> {
        let mut out = Vec::new();
        for path in barrier.list(AUDIT_PREFIX)? {
            let Some(raw) = barrier.get(&path)? else { continue };
            let name = path.trim_start_matches(AUDIT_PREFIX).to_owned();
            let config = serde_json::from_slice::<DeviceConfig>(&raw).unwrap_or_else(|_| DeviceConfig {
                kind: "file".into(),
                description: "damaged configuration".into(),
                file_path: String::new(),
                salt: String::new(),
            });
            out.push((name, config));
        }
        Ok(out)
    }

    /// Re-reads the devices from storage, to see devices enabled or disabled by
    /// another server sharing it: unchanged devices keep their open file. If storage
    /// cannot be read, the current devices stay.
    pub(crate) fn reload(&self) {
        let Some(barrier) = &self.persist else { return };
        let _changing = self.changing();
        let stored = match Self::stored(barrier) {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(error = %e, "audit devices could not be re-read; keeping the current ones");
                return;
            }
        };
        let unchanged = {
            let current = self.read();
            stored.len() == current.len()
                && stored
                    .iter()
                    .all(|(name, config)| current.get(name).is_some_and(|d| d.config == *config))
        };
        if unchanged {
            return;
        }
        let mut devices = self.devices.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = BTreeMap::new();
        for (name, config) in stored {
            let device = match devices.remove(&name) {
                Some(device) if device.config == config => device,
                _ => Device::load(&name, config),
            };
            next.insert(name, device);
        }
        *devices = next;
    }

    fn changing(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Device>> {
        self.devices.read().unwrap_or_else(std::sync::PoisonError::into_inner)
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
    pub(crate) fn enable(&self, name: &str, kind: &str, description: String, file_path: String) -> Result<(), String> {
        let _changing = self.changing();
        if kind != "file" {
            return Err(format!("unknown backend type: {kind:?} (only \"file\" is supported)"));
        }
        if file_path.is_empty() {
            return Err("file_path is required".into());
        }
        if self.read().contains_key(name) {
            return Err(format!("path already in use at {name}/"));
        }
        let config = DeviceConfig {
            kind: kind.into(),
            description,
            file_path,
            salt: uuid::Uuid::new_v4().to_string(),
        };
        let device = Device::open(config.clone())?;
        if let Some(barrier) = &self.persist {
            let bytes = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
            barrier
                .update(&format!("{AUDIT_PREFIX}{name}"), &mut |_| {
                    Ok(Update::Put(bytes.clone()))
                })
                .map_err(|_| "failed to store the audit device".to_owned())?;
        }
        self.devices
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(name.to_owned(), device);
        Ok(())
    }

    pub(crate) fn disable(&self, name: &str) -> Result<(), String> {
        let _changing = self.changing();
        if let Some(barrier) = &self.persist {
            barrier
                .update(&format!("{AUDIT_PREFIX}{name}"), &mut |_| Ok(Update::Delete))
                .map_err(|_| "failed to remove the audit device".to_owned())?;
        }
        self.devices
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(name);
        Ok(())
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
                mount_type: if request.path.starts_with("transit/") {
                    "transit"
                } else {
                    ""
                },
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
