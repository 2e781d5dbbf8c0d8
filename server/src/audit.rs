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
use std::sync::RwLock;

use encrypted_attr::HashAlgorithm;
use encrypted_attr::storage::{Barrier, Update};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

const AUDIT_PREFIX: &str = "sys/audit/";

#[derive(Clone, Serialize, Deserialize)]
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
    /// main cost under load).
    file: File,
}

impl Device {
    fn open(config: DeviceConfig) -> Result<Self, String> {
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
        Ok(Self { config, file })
    }

    fn hash(&self, input: &str) -> String {
        let mac = HashAlgorithm::Sha2_256.hmac(self.config.salt.as_bytes(), input.as_bytes());
        format!(
            "hmac-sha256:{}",
            mac.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }

    /// Replaces every string in `value` (recursively) by its hash.
    fn hash_strings(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.hash(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.hash_strings(v)).collect()),
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), self.hash_strings(v))).collect()),
            other => other.clone(),
        }
    }

    fn write(&self, line: &Value) -> bool {
        let Ok(mut text) = serde_json::to_vec(line) else {
            return false;
        };
        text.push(b'\n');
        // One call: a short write (disk full) counts as a failure.
        matches!((&self.file).write(&text), Ok(n) if n == text.len())
    }
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
            for path in barrier.list(AUDIT_PREFIX)? {
                let Some(raw) = barrier.get(&path)? else { continue };
                let Ok(config) = serde_json::from_slice::<DeviceConfig>(&raw) else {
                    continue;
                };
                let name = path.trim_start_matches(AUDIT_PREFIX).to_owned();
                match Device::open(config.clone()) {
                    Ok(device) => {
                        devices.insert(name, device);
                    }
                    Err(e) => tracing::error!(device = %name, error = %e, "audit device cannot be opened"),
                }
            }
        }
        Ok(Self {
            devices: RwLock::new(devices),
            persist,
        })
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

    fn entry(device: &Device, kind: &str, request: &AuditRequest<'_>, response: Option<&Value>, error: &str) -> Value {
        let (token, accessor) = (device.hash(request.token), device.hash(request.accessor));
        let mut line = json!({
            "time": now(),
            "type": kind,
            "auth": {
                "client_token": token,
                "accessor": accessor,
                "display_name": "token",
                "policies": request.policies,
                "token_type": "service",
            },
            "request": {
                "id": request.id,
                "operation": request.operation,
                "mount_type": if request.path.starts_with("transit/") { "transit" } else { "" },
                "client_token": token,
                "client_token_accessor": accessor,
                "path": request.path,
                "data": Value::Object(
                    request.data.audit_fields().iter().map(|(k, v)| (k.clone(), device.hash_strings(v))).collect()
                ),
            },
            "error": error,
        });
        if let Some(response) = response {
            line["response"] = device.hash_strings(response);
        }
        line
    }

    /// Logs the request. `false` means devices exist and none could write: refuse.
    pub(crate) fn log_request(&self, request: &AuditRequest<'_>) -> bool {
        self.log(|device| Self::entry(device, "request", request, None, ""))
    }

    /// Logs the response (its JSON body); `false` means withhold it.
    /// `response` is only built when a device is enabled.
    pub(crate) fn log_response(&self, request: &AuditRequest<'_>, response: impl Fn() -> Value, error: &str) -> bool {
        if self.read().is_empty() {
            return true;
        }
        let response = response();
        self.log(|device| Self::entry(device, "response", request, Some(&response), error))
    }

    fn log(&self, line: impl Fn(&Device) -> Value) -> bool {
        let devices = self.read();
        if devices.is_empty() {
            return true;
        }
        let mut any = false;
        for (name, device) in devices.iter() {
            if device.write(&line(device)) {
                any = true;
            } else {
                tracing::error!(device = %name, "audit device failed to write");
            }
        }
        any
    }
}
