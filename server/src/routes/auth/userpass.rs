//! The userpass auth method at any path below `auth/`: users (create, read,
//! update, delete, list, password and policies changes) and login. Passwords are
//! kept only as argon2id hashes (sealed under the barrier like everything else),
//! checked in constant time; an unknown user costs a login the same hash check.
//! Logins are locked out after repeated failures (`crate::stores::lockout`).

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use encrypted_attr::storage::Barrier;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::policies_param;
use super::token_settings::{TOKEN_SETTINGS_FIELDS, TokenSettings, cidrs_param, login_token};
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Params, Reads};
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::mounts::MountEntry;
use crate::stores::{Record, SealedRecords, decode_json, encode_json};

/// A user as stored.
#[derive(Clone, Default, Serialize, Deserialize)]
struct User {
    /// PHC string of an argon2id hash; never the password.
    password_hash: String,
    /// What its logins' tokens are (stored beside the hash, as before the
    /// settings had a type of their own).
    #[serde(flatten)]
    token: TokenSettings,
}

impl Record for User {
    fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
        encode_json(self)
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        decode_json(bytes)
    }
}

fn users(barrier: &Arc<Barrier>, mount: &MountEntry) -> SealedRecords<User> {
    SealedRecords::new(barrier.clone(), format!("{}users/", mount.storage_prefix()))
}

/// A hash made once, checked against when the user does not exist, so that an
/// unknown name takes as long to refuse as a wrong password.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a password anyone has").unwrap_or_default())
}

fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| ApiError::Internal)?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| ApiError::Internal)?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| ApiError::Internal)
}

fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// Serves an authorised request below a userpass mount.
fn route(state: &Unsealed, op: Operation, mount: &MountEntry, rest: &str, params: &Params<'_>) -> ApiResult {
    let store = users(&state.barrier, mount);
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    match (segments.as_slice(), op) {
        (["users"], Operation::List) => {
            let mut names = store.names_under("")?;
            names.sort();
            if names.is_empty() {
                return Err(ApiError::NotFound);
            }
            Ok(Reply::data(json!({ "keys": names }), vec![]))
        }
        (["users", name], Operation::Read) => read_user(&store, &name.to_lowercase()),
        (["users", name], Operation::Update) => write_user(&store, &name.to_lowercase(), params),
        (["users", name], Operation::Delete) => {
            store.delete(&name.to_lowercase())?;
            Ok(Reply::NoContent)
        }
        (["users", name, "password"], Operation::Update) => {
            params.declare(&Reads(&[&["password"]]));
            let name = name.to_lowercase();
            let mut user = store
                .get(&name)?
                .ok_or_else(|| ApiError::BadRequest("username does not exist".into()))?;
            let password = params.string("password")?.unwrap_or_default();
            if password.is_empty() {
                return Err(ApiError::BadRequest("missing password".into()));
            }
            user.password_hash = hash_password(&password)?;
            store.put(&name, &user)?;
            Ok(Reply::NoContent)
        }
        (["users", name, "policies"], Operation::Update) => {
            params.declare(&Reads(&[&["token_policies", "policies"]]));
            let name = name.to_lowercase();
            let mut user = store
                .get(&name)?
                .ok_or_else(|| ApiError::BadRequest("username does not exist".into()))?;
            user.token.token_policies = policies_param(params)?.unwrap_or_default();
            store.put(&name, &user)?;
            Ok(Reply::NoContent)
        }
        (["users", ..] | ["login", ..], _) => Err(ApiError::UnsupportedOperation),
        _ => Err(ApiError::UnsupportedPath(rest.to_owned())),
    }
}

fn write_user(store: &SealedRecords<User>, name: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[
        &["password", "password_hash", "bound_cidrs"],
        TOKEN_SETTINGS_FIELDS,
    ]));
    let existing = store.get(name)?;
    let password = params.string("password")?.filter(|p| !p.is_empty());
    let mut user = match (existing, &password) {
        (Some(user), _) => user,
        (None, Some(_)) => User::default(),
        (None, None) => {
            return Err(ApiError::BadRequest(
                "must provide either password or password_hash".into(),
            ));
        }
    };
    if params.has("password_hash") {
        return Err(ApiError::BadRequest(
            "password_hash is not supported by this server: give the password".into(),
        ));
    }
    if let Some(password) = &password {
        user.password_hash = hash_password(password)?;
    }
    user.token.update(params)?;
    // `bound_cidrs`: userpass's older name for `token_bound_cidrs`.
    if !params.has("token_bound_cidrs")
        && let Some(cidrs) = cidrs_param(params, "bound_cidrs")?
    {
        user.token.token_bound_cidrs = cidrs.iter().map(ToString::to_string).collect();
    }
    store.put(name, &user)?;
    Ok(Reply::NoContent)
}

fn read_user(store: &SealedRecords<User>, name: &str) -> ApiResult {
    let user = store.get(name)?.ok_or(ApiError::NotFound)?;
    let mut data = user.token.fields();
    data.insert("ttl".into(), json!(user.token.token_ttl));
    data.insert("max_ttl".into(), json!(user.token.token_max_ttl));
    data.insert("bound_cidrs".into(), json!(user.token.token_bound_cidrs));
    Ok(Reply::data(serde_json::Value::Object(data), vec![]))
}

/// The userpass kind.
pub(super) struct Userpass;

impl super::AuthMethod for Userpass {
    fn kind(&self) -> &'static str {
        "userpass"
    }

    fn is_login(&self, rest: &str) -> bool {
        rest == "login" || rest.strip_prefix("login/").is_some_and(|name| !name.contains('/'))
    }

    fn handle(
        &self,
        state: &Unsealed,
        op: Operation,
        mount: &MountEntry,
        rest: &str,
        params: &Params<'_>,
    ) -> ApiResult {
        route(state, op, mount, rest, params)
    }

    fn login(&self, state: &Unsealed, at: super::LoginAt<'_>, params: &Params<'_>) -> ApiResult {
        login(state, at.mount_path, at.mount, at.rest, params, at.client)
    }

    fn family(&self, login: bool) -> &'static str {
        if login { "auth/userpass/login" } else { "auth/userpass" }
    }
}

/// `POST auth/<mount>/login/<username>` (answered without a token).
fn login(
    state: &Unsealed,
    mount_path: &str,
    mount: &MountEntry,
    rest: &str,
    params: &Params<'_>,
    client: Option<std::net::IpAddr>,
) -> ApiResult {
    params.declare(&Reads(&[&["username", "password"]]));
    let name = match rest.trim_end_matches('/').split_once('/') {
        Some(("login", name)) if !name.is_empty() => name.to_lowercase(),
        _ => params.string("username")?.unwrap_or_default().to_lowercase(),
    };
    let password = params.string("password")?.unwrap_or_default();
    if password.is_empty() {
        return Err(ApiError::BadRequest("missing password".into()));
    }
    let lockout_key = format!("{}/{name}", mount.accessor);
    if !state.logins.attempt(&lockout_key) {
        return Err(ApiError::LockedOut);
    }
    let user = users(&state.barrier, mount).get(&name)?;
    let hash = user.as_ref().map_or_else(|| dummy_hash(), |u| u.password_hash.as_str());
    let matches = password_matches(hash, &password);
    let Some(user) = user.filter(|_| matches) else {
        return Err(ApiError::BadRequest("invalid username or password".into()));
    };
    state.logins.succeeded(&lockout_key);
    // As Vault: a user bound to networks logs in only from them (and its token
    // works only from them).
    if !crate::stores::tokens::admits(&user.token.bound_cidrs(), client) {
        return Err(ApiError::PermissionDenied);
    }
    let path = format!("auth/{mount_path}/login/{name}");
    login_token(state, &user.token, None, &path, json!({ "username": name }), vec![])
}
