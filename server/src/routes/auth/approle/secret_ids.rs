//! AppRole's secret IDs: generated within their role's limits, listed by
//! accessor, looked up and destroyed by value or by accessor.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::token_settings::{cidrs_param, is_subset};
use super::{Pointer, SecretId, Store, hash_secret_id, now, random_uuid, seconds, time_text, valid_name};
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Fields, Params, Reads};
use crate::stores::tokens::parse_stored_cidrs;

/// What a secret ID asked for (`asked`) gets under its role's `limit` (0: none):
/// a request may tighten the limit, never loosen it, and asking for more (or for
/// none, under a limit) is refused with `refusal`, as Vault does, not clamped.
fn within_role_limit(asked: Option<u64>, limit: u64, refusal: &str) -> Result<u64, ApiError> {
    match (asked, limit) {
        (None, limit) => Ok(limit),
        (Some(asked), 0) => Ok(asked),
        (Some(asked), limit) if asked != 0 && asked <= limit => Ok(asked),
        (Some(_), _) => Err(ApiError::BadRequest(refusal.to_owned())),
    }
}

/// The parameters a secret ID's generation reads.
const SECRET_ID_FIELDS: Fields = &["metadata", "cidr_list", "token_bound_cidrs", "ttl", "num_uses"];

pub(super) fn generate_secret_id(store: &Store, name: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[SECRET_ID_FIELDS]));
    let role = store.role(name)?;
    let metadata: BTreeMap<String, String> = match params.raw("metadata") {
        Some(Value::String(text)) if !text.is_empty() => serde_json::from_str(text)
            .map_err(|_| ApiError::BadRequest("failed to parse metadata: not a JSON object of strings".into()))?,
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect(),
        _ => BTreeMap::new(),
    };
    let ttl = within_role_limit(
        seconds(params, "ttl")?,
        role.secret_id_ttl,
        "ttl cannot be longer than the role's secret_id_ttl",
    )?;
    let asked_uses = params
        .int("num_uses")?
        .map(|n| u64::try_from(n).map_err(|_| ApiError::BadRequest("num_uses cannot be negative".into())))
        .transpose()?;
    let num_uses = within_role_limit(
        asked_uses,
        role.secret_id_num_uses,
        "num_uses cannot be higher than the role's secret_id_num_uses",
    )?;
    let cidr_list = cidrs_param(params, "cidr_list")?.unwrap_or_default();
    let role_cidrs = parse_stored_cidrs(&role.secret_id_bound_cidrs);
    if !is_subset(&cidr_list, &role_cidrs) {
        return Err(ApiError::BadRequest(format!(
            "failed to verify subset relationship between CIDR blocks on the role {:?} and CIDR blocks on the secret ID {:?}",
            role.secret_id_bound_cidrs,
            cidr_list.iter().map(ToString::to_string).collect::<Vec<_>>()
        )));
    }
    let token_cidrs = cidrs_param(params, "token_bound_cidrs")?.unwrap_or_default();
    if !is_subset(&token_cidrs, &role.token.bound_cidrs()) {
        return Err(ApiError::BadRequest(format!(
            "failed to verify subset relationship between the token CIDR blocks on the role {:?} and the token CIDR blocks on the secret ID {:?}",
            role.token.token_bound_cidrs,
            token_cidrs.iter().map(ToString::to_string).collect::<Vec<_>>()
        )));
    }
    let secret_id = random_uuid();
    let accessor = random_uuid();
    let created = now();
    let entry = SecretId {
        accessor: accessor.clone(),
        created,
        expires: if ttl == 0 { 0 } else { created + ttl },
        uses_left: num_uses,
        num_uses,
        ttl,
        metadata,
        cidr_list: cidr_list.iter().map(ToString::to_string).collect(),
        token_bound_cidrs: token_cidrs.iter().map(ToString::to_string).collect(),
    };
    let key = format!("{name}/{}", hash_secret_id(&secret_id));
    store.accessors.put(&accessor, &Pointer(key.clone()))?;
    store.secret_ids.put(&key, &entry)?;
    Ok(Reply::data(
        json!({
            "secret_id": secret_id,
            "secret_id_accessor": accessor,
            "secret_id_ttl": ttl,
            "secret_id_num_uses": num_uses,
        }),
        vec![],
    ))
}

pub(super) fn list_secret_ids(store: &Store, name: &str) -> ApiResult {
    store.role(name)?;
    let mut accessors = Vec::new();
    for entry in store.secret_ids.names_under(&format!("{name}/"))? {
        if let Some(secret) = store.secret_ids.get(&entry)? {
            accessors.push(secret.accessor);
        }
    }
    accessors.sort();
    if accessors.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Reply::data(json!({ "keys": accessors }), vec![]))
}

/// The role and hash of the `secret_id` parameter.
pub(super) fn by_value(store: &Store, name: &str, params: &Params<'_>) -> Result<(String, String), ApiError> {
    params.declare(&Reads(&[&["secret_id"]]));
    store.role(name)?;
    let secret_id = params.string("secret_id")?.unwrap_or_default();
    if secret_id.is_empty() {
        return Err(ApiError::BadRequest("missing secret_id".into()));
    }
    Ok((name.to_owned(), hash_secret_id(&secret_id)))
}

/// The role and hash of the secret ID named by the `secret_id_accessor` parameter;
/// an unknown accessor is Vault's 404 with the error in `data`.
pub(super) fn by_accessor(
    store: &Store,
    name: &str,
    params: &Params<'_>,
) -> Result<Result<(String, String), Reply>, ApiError> {
    params.declare(&Reads(&[&["secret_id_accessor"]]));
    store.role(name)?;
    let accessor = params.string("secret_id_accessor")?.unwrap_or_default();
    if accessor.is_empty() {
        return Err(ApiError::BadRequest("missing secret_id_accessor".into()));
    }
    let target = if valid_name(&accessor) {
        store.accessors.get(&accessor)?
    } else {
        None
    };
    let Some(Pointer(key)) = target.filter(|Pointer(key)| key.starts_with(&format!("{name}/"))) else {
        return Ok(Err(Reply::Data {
            status: axum::http::StatusCode::NOT_FOUND,
            data: json!({ "error": format!("failed to find accessor entry for secret_id_accessor: {accessor:?}") }),
            warnings: vec![],
        }));
    };
    let hash = key.rsplit('/').next().unwrap_or_default().to_owned();
    Ok(Ok((name.to_owned(), hash)))
}

pub(super) fn lookup_secret_id(store: &Store, role: &str, hash: &str) -> ApiResult {
    let Some(secret) = store.secret_ids.get(&format!("{role}/{hash}"))? else {
        // Vault answers an unknown secret ID with an empty 204.
        return Ok(Reply::NoContent);
    };
    Ok(Reply::data(
        json!({
            "secret_id_accessor": secret.accessor,
            "creation_time": time_text(secret.created),
            "last_updated_time": time_text(secret.created),
            "expiration_time": if secret.expires == 0 { "0001-01-01T00:00:00Z".to_owned() } else { time_text(secret.expires) },
            "secret_id_num_uses": secret.uses_left,
            "secret_id_ttl": secret.ttl,
            "metadata": secret.metadata,
            "cidr_list": secret.cidr_list,
            "token_bound_cidrs": secret.token_bound_cidrs,
        }),
        vec![],
    ))
}

pub(super) fn destroy_secret_id(store: &Store, role: &str, hash: &str) -> ApiResult {
    let key = format!("{role}/{hash}");
    if let Some(secret) = store.secret_ids.get(&key)? {
        store.accessors.delete(&secret.accessor)?;
        store.secret_ids.delete(&key)?;
    }
    Ok(Reply::NoContent)
}
