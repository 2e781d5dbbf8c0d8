//! `sys/audit/*` and `sys/audit-hash/*`: list, enable and disable audit devices,
//! and what a device would write for a value (the devices are `crate::audit`).

use serde_json::{Value, json};

use crate::audit::DeviceError;
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Params, Reads};
use crate::request::Operation;
use crate::seal::Unsealed;

/// `GET sys/audit`: the enabled devices.
pub(super) fn devices(state: &Unsealed) -> Reply {
    Reply::sys(state.audit.list())
}

/// `PUT` and `DELETE sys/audit/:name`: enable or disable a device (`local` is
/// accepted and has no effect: there is no replication).
pub(super) fn device(state: &Unsealed, op: Operation, name: &str, params: &Params<'_>) -> ApiResult {
    match op {
        Operation::Update => {
            params.declare(&Reads(&[&["type", "description", "options", "local"]]));
            let kind = params.string("type")?.unwrap_or_default();
            let description = params.string("description")?.unwrap_or_default();
            let file_path = match params.raw("options") {
                Some(Value::Object(options)) => options
                    .get("file_path")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                _ => String::new(),
            };
            state.audit.enable(name, &kind, description, file_path)?;
            Ok(Reply::NoContent)
        }
        Operation::Delete => {
            state.audit.disable(name)?;
            Ok(Reply::NoContent)
        }
        _ => Err(ApiError::UnsupportedOperation),
    }
}

/// `PUT sys/audit-hash/:name`: what the device would write for `input`.
pub(super) fn hash(state: &Unsealed, name: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[&["input"]]));
    let input = params.string("input")?.unwrap_or_default();
    let hash = state
        .audit
        .hash(name, &input)
        .ok_or_else(|| ApiError::BadRequest(format!("unknown audit backend {name}")))?;
    Ok(Reply::sys(json!({ "hash": hash })))
}

impl From<DeviceError> for ApiError {
    fn from(error: DeviceError) -> Self {
        match error {
            DeviceError::Invalid(message) => Self::BadRequest(message),
            DeviceError::Storage(error) => Self::from(error),
        }
    }
}
