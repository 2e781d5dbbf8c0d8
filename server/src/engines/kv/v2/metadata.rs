//! KV version 2's versions and metadata: deleting, undeleting and destroying
//! versions, and a path's metadata (read, written with its limits, listed,
//! deleted with every version).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::super::children;
use super::{METADATA_FIELDS, Secret, Store, VERSIONS_FIELDS, now, time_text};
use crate::encoding::{format_duration, parse_duration};
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Params, Reads};
use crate::stores::Change;

#[derive(Clone, Copy)]
pub(super) enum VersionChange {
    Delete,
    Undelete,
    Destroy,
}

/// The `versions` parameter: numbers, or their text (the CLI sends `"1,2"`).
fn versions_param(params: &Params<'_>) -> Result<Vec<u64>, ApiError> {
    let items: Vec<String> = match params.raw("versions") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .collect(),
        Some(Value::String(s)) => s.split(',').map(|p| p.trim().to_owned()).collect(),
        Some(Value::Number(n)) => vec![n.to_string()],
        _ => Vec::new(),
    };
    items
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| ApiError::BadRequest(format!("invalid version {s:?}")))
        })
        .collect()
}

pub(super) fn change_versions(store: &Store, path: &str, params: &Params<'_>, change: VersionChange) -> ApiResult {
    params.declare(&Reads(&[VERSIONS_FIELDS]));
    let numbers = versions_param(params)?;
    if numbers.is_empty() {
        return Err(ApiError::BadRequest("No version number provided".into()));
    }
    let at = now();
    store.secrets.update(path, &mut |current| {
        let Some(mut secret) = current else { return Change::Keep };
        for number in &numbers {
            let Some(version) = secret.versions.get_mut(number) else {
                continue;
            };
            match change {
                VersionChange::Delete if version.deleted.is_none_or(|when| when > at) && !version.destroyed => {
                    version.deleted = Some(at);
                }
                VersionChange::Undelete if !version.destroyed => version.deleted = None,
                VersionChange::Destroy => {
                    version.destroyed = true;
                    version.data = None;
                }
                _ => {}
            }
        }
        Change::Put(secret)
    })?;
    Ok(Reply::NoContent)
}

pub(super) fn read_metadata(store: &Store, path: &str) -> ApiResult {
    let Some(secret) = store.load(path)? else {
        return Err(ApiError::NotFound);
    };
    let versions: Map<String, Value> = secret
        .versions
        .iter()
        .map(|(number, version)| {
            (
                number.to_string(),
                json!({
                    "created_time": time_text(Some(version.created)),
                    "deletion_time": time_text(version.deleted),
                    "destroyed": version.destroyed,
                }),
            )
        })
        .collect();
    Ok(Reply::data(
        json!({
            "versions": versions,
            "current_version": secret.current_version,
            "current_metadata_version": secret.metadata_version,
            "oldest_version": secret.oldest_version,
            "created_time": time_text(Some(secret.created)),
            "updated_time": time_text(Some(secret.updated)),
            "max_versions": secret.max_versions,
            "cas_required": secret.cas_required,
            "metadata_cas_required": false,
            "delete_version_after": format_duration(Duration::from_secs(secret.delete_version_after)),
            "custom_metadata": secret.custom_metadata,
        }),
        vec![],
    ))
}

pub(super) fn write_metadata(store: &Store, path: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[METADATA_FIELDS]));
    if path.is_empty() {
        return Err(ApiError::BadRequest("missing path".into()));
    }
    let max_versions = max_versions_param(params)?;
    let cas_required = params.bool("cas_required")?;
    let delete_after = params
        .raw("delete_version_after")
        .map(|v| match v {
            Value::Number(n) => n.as_u64().ok_or(()),
            Value::String(s) => parse_duration(s).map(|d| d.as_secs()).ok_or(()),
            _ => Err(()),
        })
        .transpose()
        .map_err(|()| ApiError::BadRequest("invalid delete_version_after".into()))?;
    let custom = params.raw("custom_metadata").map(custom_metadata).transpose()?;
    store.load(path)?;
    let at = now();
    store.secrets.update(path, &mut |current| {
        let mut secret = current.unwrap_or_else(|| Secret {
            created: at,
            ..Secret::default()
        });
        if let Some(max) = max_versions {
            secret.max_versions = max;
        }
        if let Some(cas) = cas_required {
            secret.cas_required = cas;
        }
        if let Some(after) = delete_after {
            secret.delete_version_after = after;
        }
        if let Some(custom) = &custom {
            secret.custom_metadata = Some(custom.clone());
        }
        secret.metadata_version += 1;
        secret.updated = at;
        Change::Put(secret)
    })?;
    Ok(Reply::NoContent)
}

/// `max_versions`: 0 (the mount's setting, or Vault's 10) up to 2³² − 1. Vault
/// stores it in 32 bits and wraps what does not fit (`-1` becomes 4294967295,
/// 10¹² becomes 3567587328); here such a value is refused rather than turned
/// into another.
pub(super) fn max_versions_param(params: &Params<'_>) -> Result<Option<u64>, ApiError> {
    params
        .int("max_versions")?
        .map(|max| {
            u32::try_from(max)
                .map(u64::from)
                .map_err(|_| ApiError::BadRequest(format!("max_versions must be between 0 and {}", u32::MAX)))
        })
        .transpose()
}

/// Most keys a secret's `custom_metadata` may hold, and the longest key and value
/// (in bytes), as Vault limits them.
const MAX_CUSTOM_METADATA_KEYS: usize = 64;
const MAX_CUSTOM_METADATA_KEY_BYTES: usize = 128;
const MAX_CUSTOM_METADATA_VALUE_BYTES: usize = 512;
const CUSTOM_METADATA_FAILED: &str = "custom_metadata validation failed";

/// `custom_metadata` checked as Vault checks it: an object of at most 64 keys, each
/// key 1–128 bytes and each value 1–512 bytes, all printable. Numbers and booleans
/// become text as Vault's weak decoding makes them (`true` is `"1"`); `null` is
/// empty, and so refused; a nested object or array is refused.
/// Every problem found is reported, in Vault's multi-error form.
fn custom_metadata(raw: &Value) -> Result<BTreeMap<String, String>, ApiError> {
    let Value::Object(map) = raw else {
        return Err(ApiError::BadRequest(format!(
            "{CUSTOM_METADATA_FAILED}: custom_metadata must be an object of strings"
        )));
    };
    if map.len() > MAX_CUSTOM_METADATA_KEYS {
        return Err(ApiError::BadRequest(multierror(&[format!(
            "{CUSTOM_METADATA_FAILED}: payload must contain at most {MAX_CUSTOM_METADATA_KEYS} keys, provided {}",
            map.len()
        )])));
    }
    let mut custom = BTreeMap::new();
    for (key, value) in map {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => if *b { "1" } else { "0" }.to_owned(),
            Value::Null => String::new(),
            // Vault's words (its decoder names the Go type it could not convert).
            Value::Array(_) | Value::Object(_) => {
                return Err(ApiError::BadRequest(format!(
                    "{CUSTOM_METADATA_FAILED}: '' expected type 'string', got unconvertible type '{}'",
                    if value.is_array() {
                        "[]interface {}"
                    } else {
                        "map[string]interface {}"
                    }
                )));
            }
        };
        custom.insert(key.clone(), text);
    }
    let mut problems = Vec::new();
    for (key, value) in &custom {
        let quoted = go_quoted(key);
        if key.is_empty() || key.len() > MAX_CUSTOM_METADATA_KEY_BYTES {
            problems.push(format!(
                "{CUSTOM_METADATA_FAILED}: length of key {quoted} is {} but must be 0 < len(key) <= {MAX_CUSTOM_METADATA_KEY_BYTES}",
                key.len()
            ));
        }
        if value.is_empty() || value.len() > MAX_CUSTOM_METADATA_VALUE_BYTES {
            problems.push(format!(
                "{CUSTOM_METADATA_FAILED}: length of value for key {quoted} is {} but must be 0 < len(value) <= {MAX_CUSTOM_METADATA_VALUE_BYTES}",
                value.len()
            ));
        }
        if !is_printable(key) {
            problems.push(format!(
                "{CUSTOM_METADATA_FAILED}: key {quoted} ({key}) contains unprintable characters"
            ));
        }
        if !is_printable(value) {
            problems.push(format!(
                "{CUSTOM_METADATA_FAILED}: value for key {quoted} contains unprintable characters"
            ));
        }
    }
    if problems.is_empty() {
        Ok(custom)
    } else {
        Err(ApiError::BadRequest(multierror(&problems)))
    }
}

/// Several errors as Vault's `multierror` prints them.
fn multierror(errors: &[String]) -> String {
    let points: Vec<String> = errors.iter().map(|e| format!("* {e}")).collect();
    let count = match errors.len() {
        1 => "1 error occurred".to_owned(),
        n => format!("{n} errors occurred"),
    };
    format!("{count}:\n\t{}\n\n", points.join("\n\t"))
}

/// A name quoted as Go's `%q` quotes it (the names in Vault's messages): JSON's
/// escaping is the same for the printable names this is used with.
fn go_quoted(name: &str) -> String {
    serde_json::to_string(name).unwrap_or_default()
}

/// Whether text is printable as Go's `strutil.Printable` means it: no control
/// characters, no space but the ASCII one, and no invisible formatting characters.
fn is_printable(text: &str) -> bool {
    text.chars().all(|c| {
        c == ' '
            || !(c.is_control()
                || c.is_whitespace()
                || matches!(c, '\u{ad}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{feff}'))
    })
}

pub(super) fn delete_metadata(store: &Store, path: &str) -> ApiResult {
    store.secrets.delete(path.trim_end_matches('/'))?;
    Ok(Reply::NoContent)
}

pub(super) fn list(store: &Store, path: &str) -> ApiResult {
    let folder = if path.is_empty() || path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    let keys = children(store.secrets.names_under(&folder)?, &folder);
    if keys.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Reply::data(json!({ "keys": keys }), vec![]))
}
