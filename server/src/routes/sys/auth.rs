//! `sys/auth` and `sys/auth/:path`: list, read, enable and disable auth methods
//! (`userpass`, `approle`; `token/` is built in).

use serde_json::{Map, Value};

use super::mounts::describe;
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Params, Reads};
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::mounts::MountEntry;

/// `GET sys/auth`: every auth method by path.
pub(super) fn list(state: &Unsealed) -> Reply {
    let methods: Map<String, Value> = state
        .auth_methods
        .list()
        .into_iter()
        .map(|(path, entry)| (path, describe_method(&entry)))
        .collect();
    Reply::sys(Value::Object(methods))
}

/// `sys/auth/:path`: read, enable (`PUT`/`POST`) or disable (`DELETE`).
pub(super) fn method(state: &Unsealed, op: Operation, path: &str, params: &Params<'_>) -> ApiResult {
    let path = path.trim_matches('/');
    match op {
        Operation::Read => match state.auth_methods.get(path) {
            Some(entry) => Ok(Reply::sys(describe_method(&entry))),
            None => Err(ApiError::BadRequest(format!("No auth engine at {path}/"))),
        },
        Operation::Update => {
            params.declare(&Reads(&[&["type", "description"]]));
            let kind = params.string("type")?.unwrap_or_default();
            let description = params.string("description")?.unwrap_or_default();
            if kind.is_empty() {
                return Err(ApiError::BadRequest(
                    "backend type must be specified as a string".into(),
                ));
            }
            if !crate::routes::auth::is_known(&kind) {
                return Err(ApiError::BadRequest(format!("unknown backend type: {kind:?}")));
            }
            state
                .auth_methods
                .enable(path, MountEntry::new(&kind, description, None))?;
            Ok(Reply::NoContent)
        }
        Operation::Delete => {
            if let Some(removed) = state.auth_methods.disable(path)? {
                // The method's tokens go with it, as in Vault.
                state.tokens.revoke_prefix(&format!("auth/{path}"))?;
                crate::stores::mounts::delete_data(&state.barrier, &removed)?;
            }
            Ok(Reply::NoContent)
        }
        Operation::List | Operation::Patch => Err(ApiError::UnsupportedOperation),
    }
}

/// An auth method as `sys/auth` describes it: a mount, with its token type.
fn describe_method(entry: &MountEntry) -> Value {
    let mut described = describe(entry);
    described["config"]["token_type"] = Value::from("default-service");
    described
}
