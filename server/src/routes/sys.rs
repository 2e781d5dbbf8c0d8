//! `sys/*` behind authentication: ACL policies, audit devices, `audit-hash`,
//! `capabilities-self`.

use serde_json::{Map, Value, json};

use crate::auth::TokenEntry;
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::Params;
use crate::request::Operation;
use crate::seal::Unsealed;

/// `LIST sys/policy` and `sys/policies/acl`: every policy name.
pub(super) fn policy_names(state: &Unsealed) -> Reply {
    let names = state.policies.names();
    Reply::SysData(json!({ "keys": names, "policies": names }))
}

/// `sys/policy/:name` (`field` = "rules") and `sys/policies/acl/:name` ("policy").
pub(super) fn policy_api(state: &Unsealed, op: Operation, name: &str, params: &Params<'_>, field: &str) -> ApiResult {
    match op {
        Operation::Read => match (name, state.policies.get(name)) {
            ("root", _) => Ok(Reply::SysData(json!({ "name": "root", field: "" }))),
            (_, Some(policy)) => Ok(Reply::SysData(json!({ "name": name, field: policy.text }))),
            (_, None) => Err(ApiError::NotFound),
        },
        Operation::Update => {
            let text = params
                .string("policy")?
                .or(params.string("rules")?)
                .ok_or_else(|| ApiError::BadRequest("'policy' parameter not supplied or empty".into()))?;
            state.policies.put(name, &text).map_err(ApiError::BadRequest)?;
            Ok(Reply::NoContent)
        }
        Operation::Delete => {
            state.policies.delete(name).map_err(ApiError::BadRequest)?;
            Ok(Reply::NoContent)
        }
        Operation::List => Err(ApiError::UnsupportedOperation),
    }
}

/// `GET sys/audit`: the enabled devices.
pub(super) fn audit_devices(state: &Unsealed) -> Reply {
    Reply::SysData(state.audit.list())
}

/// `PUT` and `DELETE sys/audit/:name`: enable or disable a device.
pub(super) fn audit_device(state: &Unsealed, op: Operation, name: &str, params: &Params<'_>) -> ApiResult {
    match op {
        Operation::Update => {
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
            let _ = params.has("local");
            state
                .audit
                .enable(name, &kind, description, file_path)
                .map_err(ApiError::BadRequest)?;
            Ok(Reply::NoContent)
        }
        Operation::Delete => {
            state.audit.disable(name).map_err(ApiError::BadRequest)?;
            Ok(Reply::NoContent)
        }
        _ => Err(ApiError::UnsupportedOperation),
    }
}

/// `PUT sys/audit-hash/:name`: what the device would write for `input`.
pub(super) fn audit_hash(state: &Unsealed, name: &str, params: &Params<'_>) -> ApiResult {
    let input = params.string("input")?.unwrap_or_default();
    let hash = state
        .audit
        .hash(name, &input)
        .ok_or_else(|| ApiError::BadRequest(format!("unknown audit backend {name}")))?;
    Ok(Reply::SysData(json!({ "hash": hash })))
}

/// `PUT sys/capabilities-self`: the caller's capabilities on each path.
pub(super) fn capabilities_self(state: &Unsealed, params: &Params<'_>, entry: &TokenEntry) -> ApiResult {
    let paths: Vec<String> = match params.raw("paths").or(params.raw("path")) {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(p)) => vec![p.clone()],
        _ => return Err(ApiError::BadRequest("missing paths".into())),
    };
    let mut data = Map::new();
    let mut all = Vec::new();
    for p in &paths {
        let names = state.policies.names_of(&entry.policies, p.trim_start_matches('/'));
        all.extend(names.iter().map(|n| (*n).to_owned()));
        data.insert(p.clone(), json!(names));
    }
    all.sort();
    all.dedup();
    data.insert("capabilities".into(), json!(all));
    Ok(Reply::SysData(Value::Object(data)))
}
