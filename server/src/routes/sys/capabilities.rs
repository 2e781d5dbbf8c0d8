//! `sys/capabilities-self`: the caller's capabilities on each path it names.

use serde_json::{Map, Value, json};

use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Params, Reads};
use crate::seal::Unsealed;
use crate::stores::tokens::TokenEntry;

/// `PUT sys/capabilities-self`.
pub(super) fn capabilities_self(state: &Unsealed, params: &Params<'_>, entry: &TokenEntry) -> ApiResult {
    params.declare(&Reads(&[&["paths", "path"]]));
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
    Ok(Reply::SysData {
        data: Value::Object(data),
        warnings: Vec::new(),
    })
}
