//! `sys/policy/*` and `sys/policies/acl/*`: list, read, write and delete ACL
//! policies (the store is `crate::stores::policies`).

use serde_json::json;

use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Params, Reads};
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::policies::PolicyError;

/// `LIST sys/policy` and `sys/policies/acl`: every policy name.
pub(super) fn names(state: &Unsealed) -> Reply {
    let names = state.policies.names();
    Reply::sys(json!({ "keys": names, "policies": names }))
}

/// `sys/policy/:name` (`field` = "rules") and `sys/policies/acl/:name` ("policy").
pub(super) fn policy(state: &Unsealed, op: Operation, name: &str, params: &Params<'_>, field: &str) -> ApiResult {
    match op {
        Operation::Read => match (name, state.policies.text(name)) {
            ("root", _) => Ok(Reply::sys(json!({ "name": "root", field: "" }))),
            (_, Some(text)) => Ok(Reply::sys(json!({ "name": name, field: text }))),
            (_, None) => Err(ApiError::NotFound),
        },
        Operation::Update => {
            params.declare(&Reads(&[&["policy", "rules"]]));
            // An empty `policy` falls back to `rules`, and both empty is refused, as
            // in Vault (an empty policy would grant nothing while looking set).
            let text = params
                .string("policy")?
                .filter(|text| !text.is_empty())
                .or(params.string("rules")?.filter(|text| !text.is_empty()))
                .ok_or_else(|| ApiError::BadRequest("'policy' parameter not supplied or empty".into()))?;
            state.policies.put(name, &text)?;
            Ok(Reply::NoContent)
        }
        Operation::Delete => {
            state.policies.delete(name)?;
            Ok(Reply::NoContent)
        }
        Operation::List | Operation::Patch => Err(ApiError::UnsupportedOperation),
    }
}

impl From<PolicyError> for ApiError {
    fn from(error: PolicyError) -> Self {
        match error {
            PolicyError::Invalid(message) => Self::BadRequest(message),
            PolicyError::Storage(error) => Self::from(error),
        }
    }
}
