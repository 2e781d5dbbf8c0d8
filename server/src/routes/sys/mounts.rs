//! `sys/mounts` and `sys/mounts/:path` (and `/tune`): list, read, enable and
//! disable secrets engines; `sys/internal/ui/mounts/:path`, which Vault's CLI asks
//! for a KV mount's version. `kv` (versions 1 and 2) and `transit` can be mounted
//! at any free path; `transit/` itself is built in.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Fields, Params, Reads};
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::mounts::{MountEntry, MountError};

/// `GET sys/mounts`: every mount by path.
pub(super) fn list(state: &Unsealed) -> Reply {
    let mounts: Map<String, Value> = state
        .mounts
        .list()
        .into_iter()
        .map(|(path, entry)| (path, describe(&entry)))
        .collect();
    Reply::sys(Value::Object(mounts))
}

/// `sys/mounts/:path`: read, enable (`PUT`/`POST`) or disable (`DELETE`).
pub(super) fn mount(state: &Unsealed, op: Operation, path: &str, params: &Params<'_>) -> ApiResult {
    let path = path.trim_matches('/');
    match op {
        Operation::Read => match state.mounts.get(path) {
            Some(entry) => Ok(Reply::sys(describe(&entry))),
            None => Err(ApiError::BadRequest(format!("No secret engine mount at {path}/"))),
        },
        Operation::Update => enable(state, path, params),
        Operation::Delete => {
            // Its secrets first, while its engine is still mounted to revoke
            // them (Vault's order): an unmount that cannot revoke them fails.
            if state.mounts.get(path).is_some() {
                let revoker = crate::engines::EngineRevoker { open: state };
                state
                    .leases
                    .revoke_prefix(path, true, false, &revoker, std::time::SystemTime::now())
                    .map_err(|error| match error {
                        crate::leases::LeaseError::Storage(error) => ApiError::from(error),
                        crate::leases::LeaseError::Invalid(message) | crate::leases::LeaseError::Engine(message) => {
                            ApiError::BadRequest(format!("failed to revoke {path:?}: {message}"))
                        }
                    })?;
            }
            if let Some(removed) = state.mounts.disable(path)? {
                // The data goes with the mount: a later mount at the same path
                // starts empty (it has another uuid, so another storage prefix).
                if let Some(engine) = crate::engines::of_kind(&removed.kind) {
                    engine.unmount(state, &removed)?;
                }
            }
            Ok(Reply::NoContent)
        }
        Operation::List | Operation::Patch => Err(ApiError::UnsupportedOperation),
    }
}

/// `GET sys/internal/ui/mounts/:path`: the mount serving `path`, its type and
/// options (how the CLI tells a KV version 2 mount).
pub(super) fn ui_mount(state: &Unsealed, path: &str) -> ApiResult {
    let path = path.trim_matches('/');
    let (mount_path, entry) = match state.mounts.find(path) {
        Some(found) => found,
        None => match path.split('/').next() {
            Some(first @ ("transit" | "sys")) => (first.to_owned(), state.mounts.get(first).ok_or(ApiError::NotFound)?),
            _ => {
                return Err(ApiError::BadRequest(format!(
                    "preflight capability check returned 403, please ensure client's policies grant access to path \"{path}/\""
                )));
            }
        },
    };
    let mut data = describe(&entry);
    data["path"] = json!(format!("{mount_path}/"));
    Ok(Reply::data(data, vec![]))
}

/// `GET sys/mounts/:path/tune`: the mount's lease settings.
pub(super) fn tune(state: &Unsealed, path: &str) -> ApiResult {
    let entry = state
        .mounts
        .get(path.trim_matches('/'))
        .ok_or_else(|| ApiError::BadRequest(format!("cannot fetch sysview for path {:?}", format!("{path}/"))))?;
    let mut data = describe(&entry)["config"].clone();
    if let (Value::Object(data), Some(options)) = (&mut data, &entry.options) {
        data.insert("options".into(), json!(options));
    }
    data["description"] = json!(entry.description);
    Ok(Reply::sys(data))
}

/// `POST sys/mounts/:path/tune`: `default_lease_ttl`, `max_lease_ttl` (a
/// duration, or `system` for the system's) and `description`.
pub(super) fn write_tune(state: &Unsealed, path: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[TUNE_FIELDS, UNSUPPORTED_TUNE_FIELDS]));
    let ttl = |name: &'static str| -> Result<Option<u64>, ApiError> {
        match params.string(name)?.as_deref() {
            None | Some("") => Ok(None),
            Some("system") => Ok(Some(0)),
            Some(text) => crate::encoding::parse_duration(text)
                .map(|d| Some(d.as_secs()))
                .ok_or_else(|| ApiError::BadRequest(format!("time: invalid duration {text:?}"))),
        }
    };
    // Options (a KV mount's version, say) are not changed by a tune here: refused
    // rather than answered as if applied.
    if params.raw("options").is_some() {
        return Err(ApiError::BadRequest(
            "tuning a mount's options is not supported; enable a new mount instead".into(),
        ));
    }
    // Vault's other tune settings change what a mount shows, audits or passes on;
    // this server has none of those behaviours, so it refuses them by name rather
    // than storing a setting that would change nothing.
    if let Some(name) = UNSUPPORTED_TUNE_FIELDS.iter().find(|name| params.raw(name).is_some()) {
        return Err(ApiError::BadRequest(format!(
            "tuning {name} is not supported by this server"
        )));
    }

    let default_ttl = ttl("default_lease_ttl")?;
    let max_ttl = ttl("max_lease_ttl")?;
    let description = params.string("description")?;
    state
        .mounts
        .get(path.trim_matches('/'))
        .ok_or_else(|| ApiError::BadRequest(format!("cannot fetch sysview for path {:?}", format!("{path}/"))))?;
    // Checked inside the change: two tunes at once cannot store default > max.
    state.mounts.tune(path.trim_matches('/'), |entry| {
        let new_default = default_ttl.unwrap_or(entry.config.default_lease_ttl);
        let new_max = max_ttl.unwrap_or(entry.config.max_lease_ttl);
        if new_max != 0 && new_default > new_max {
            return Err(MountError::Invalid(format!(
                "backend max lease TTL of {new_max} would be less than backend default lease TTL of {new_default}"
            )));
        }
        entry.config.default_lease_ttl = new_default;
        entry.config.max_lease_ttl = new_max;
        if let Some(description) = description {
            entry.description = description;
        }
        Ok(())
    })?;
    // Other unknown names pass without a warning, as Vault's `sys/` tune answers.
    Ok(Reply::NoContent)
}

/// The tune settings this server has (and `options`, refused with its own text).
const TUNE_FIELDS: Fields = &["default_lease_ttl", "max_lease_ttl", "description", "options"];

/// Vault's tune settings this server does not have (refused with a 400 naming
/// them).
const UNSUPPORTED_TUNE_FIELDS: Fields = &[
    "listing_visibility",
    "audit_non_hmac_request_keys",
    "audit_non_hmac_response_keys",
    "passthrough_request_headers",
    "allowed_response_headers",
    "token_type",
    "plugin_version",
    "user_lockout_config",
    "allowed_managed_keys",
    "delegated_auth_accessors",
    "identity_token_key",
];

fn enable(state: &Unsealed, path: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[&["type", "description", "options"]]));
    let kind = params.string("type")?.unwrap_or_default();
    let description = params.string("description")?.unwrap_or_default();
    let mut options: Option<BTreeMap<String, String>> = match params.raw("options") {
        Some(Value::Object(map)) => Some(
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
                .collect(),
        ),
        _ => None,
    };
    if kind.is_empty() {
        return Err(ApiError::BadRequest(
            "backend type must be specified as a string".into(),
        ));
    }
    let engine = match crate::engines::for_type_name(&kind, &mut options) {
        Some(checked) => checked?,
        None => return Err(ApiError::BadRequest(format!("unknown backend type: {kind:?}"))),
    };
    let kind = engine.kind();
    state.mounts.enable(path, MountEntry::new(kind, description, options))?;
    Ok(Reply::NoContent)
}

/// A mount as `sys/mounts` describes it.
pub(super) fn describe(entry: &MountEntry) -> Value {
    json!({
        "type": entry.kind,
        "description": entry.description,
        "accessor": entry.accessor,
        "local": entry.local,
        "seal_wrap": entry.seal_wrap,
        "external_entropy_access": false,
        "options": entry.options,
        "uuid": entry.uuid,
        "plugin_version": "",
        "running_plugin_version": "",
        "running_sha256": "",
        "deprecation_status": (crate::engines::is_known(&entry.kind) || crate::routes::auth::is_known(&entry.kind))
            .then_some("supported"),
        "config": {
            "default_lease_ttl": entry.config.default_lease_ttl,
            "max_lease_ttl": entry.config.max_lease_ttl,
            "force_no_cache": entry.config.force_no_cache,
        },
    })
}

impl From<MountError> for ApiError {
    fn from(error: MountError) -> Self {
        match error {
            MountError::Invalid(message) => Self::BadRequest(message),
            MountError::Storage(error) => Self::from(error),
        }
    }
}
