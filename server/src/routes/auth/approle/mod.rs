//! The AppRole auth method at any path below `auth/`: roles, their role ID, secret
//! IDs (generate, list, look up, destroy, by value or accessor) and login with a
//! role ID and a secret ID. Secret IDs are stored only as SHA-256 hashes (they are
//! 128 random bits, so a fast hash cannot be searched), sealed like everything
//! else; a secret ID with a use limit is spent in one atomic storage update.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use encrypted_attr::HashAlgorithm;
use encrypted_attr::storage::Barrier;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod secret_ids;

use super::token_settings::{TOKEN_SETTINGS_FIELDS, TokenSettings, cidrs_param, login_token};
use crate::encoding::{encode_hex, format_rfc3339_nanos};
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Fields, Params, Reads};
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::mounts::MountEntry;
use crate::stores::tokens::{admits, parse_stored_cidrs};
use crate::stores::{Change, Record, SealedRecords, decode_json, encode_json};
use secret_ids::{by_accessor, by_value, destroy_secret_id, generate_secret_id, list_secret_ids, lookup_secret_id};

/// A role as stored.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Role {
    role_id: String,
    /// What its logins' tokens are.
    #[serde(flatten)]
    token: TokenSettings,
    /// Where its secret IDs may be used from (empty: anywhere).
    #[serde(default)]
    secret_id_bound_cidrs: Vec<String>,
    secret_id_ttl: u64,
    secret_id_num_uses: u64,
    bind_secret_id: bool,
}

/// A secret ID as stored (under its hash).
#[derive(Clone, Serialize, Deserialize)]
struct SecretId {
    accessor: String,
    /// Seconds since the Unix epoch.
    created: u64,
    /// 0: never expires.
    expires: u64,
    /// Uses left; 0: unlimited.
    uses_left: u64,
    num_uses: u64,
    ttl: u64,
    metadata: BTreeMap<String, String>,
    /// Where it may be used from, within the role's (empty: the role's).
    #[serde(default)]
    cidr_list: Vec<String>,
    /// Where its logins' tokens may be used from, within the role's (empty: the
    /// role's).
    #[serde(default)]
    token_bound_cidrs: Vec<String>,
}

/// What an index entry points at: a role name, or a secret ID's hash.
struct Pointer(String);

macro_rules! json_record {
    ($type:ty) => {
        impl Record for $type {
            fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
                encode_json(self)
            }
            fn decode(bytes: &[u8]) -> Option<Self> {
                decode_json(bytes)
            }
        }
    };
}
json_record!(Role);
json_record!(SecretId);

impl Record for Pointer {
    fn encode(&self) -> Result<Vec<u8>, encrypted_attr::Error> {
        Ok(self.0.as_bytes().to_vec())
    }
    fn decode(bytes: &[u8]) -> Option<Self> {
        std::str::from_utf8(bytes).ok().map(|s| Self(s.to_owned()))
    }
}

/// One AppRole mount's storage.
struct Store {
    roles: SealedRecords<Role>,
    /// `role-id/<role id>` → role name.
    role_ids: SealedRecords<Pointer>,
    /// `secret-id/<role>/<hash>`.
    secret_ids: SealedRecords<SecretId>,
    /// `secret-id-accessor/<accessor>` → `<role>/<hash>`.
    accessors: SealedRecords<Pointer>,
}

impl Store {
    fn new(barrier: &Arc<Barrier>, mount: &MountEntry) -> Self {
        let prefix = mount.storage_prefix();
        Self {
            roles: SealedRecords::new(barrier.clone(), format!("{prefix}role/")),
            role_ids: SealedRecords::new(barrier.clone(), format!("{prefix}role-id/")),
            secret_ids: SealedRecords::new(barrier.clone(), format!("{prefix}secret-id/")),
            accessors: SealedRecords::new(barrier.clone(), format!("{prefix}secret-id-accessor/")),
        }
    }

    fn role(&self, name: &str) -> Result<Role, ApiError> {
        self.roles
            .get(name)?
            .ok_or_else(|| ApiError::Missing(format!("role {name:?} does not exist")))
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn time_text(seconds: u64) -> String {
    format_rfc3339_nanos(UNIX_EPOCH + Duration::from_secs(seconds))
}

fn random_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn hash_secret_id(secret_id: &str) -> String {
    encode_hex(&HashAlgorithm::Sha2_256.digest(secret_id.as_bytes()))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

/// Serves an authorised request below an AppRole mount.
fn route(state: &Unsealed, op: Operation, mount: &MountEntry, rest: &str, params: &Params<'_>) -> ApiResult {
    let store = Store::new(&state.barrier, mount);
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    use Operation::{Delete, List, Read, Update};
    match (segments.as_slice(), op) {
        (["role"], List) => {
            let mut names = store.roles.names_under("")?;
            names.sort();
            if names.is_empty() {
                return Err(ApiError::NotFound);
            }
            Ok(Reply::data(json!({ "keys": names }), vec![]))
        }
        (["role", name], Read) => read_role(&store, &name.to_lowercase()),
        (["role", name], Update) => write_role(&store, &name.to_lowercase(), params),
        (["role", name], Delete) => delete_role(&store, &name.to_lowercase()),
        (["role", name, "role-id"], Read) => {
            let role = store.roles.get(&name.to_lowercase())?.ok_or(ApiError::NotFound)?;
            Ok(Reply::data(json!({ "role_id": role.role_id }), vec![]))
        }
        (["role", name, "secret-id"], Update) => generate_secret_id(&store, &name.to_lowercase(), params),
        (["role", name, "secret-id"], List) => list_secret_ids(&store, &name.to_lowercase()),
        (["role", name, "secret-id", "lookup"], Update) => {
            let (role, hash) = by_value(&store, &name.to_lowercase(), params)?;
            lookup_secret_id(&store, &role, &hash)
        }
        (["role", name, "secret-id", "destroy"], Update | Delete) => {
            let (role, hash) = by_value(&store, &name.to_lowercase(), params)?;
            destroy_secret_id(&store, &role, &hash)
        }
        (["role", name, "secret-id-accessor", "lookup"], Update) => {
            match by_accessor(&store, &name.to_lowercase(), params)? {
                Ok((role, hash)) => lookup_secret_id(&store, &role, &hash),
                Err(reply) => Ok(reply),
            }
        }
        (["role", name, "secret-id-accessor", "destroy"], Update | Delete) => {
            match by_accessor(&store, &name.to_lowercase(), params)? {
                Ok((role, hash)) => destroy_secret_id(&store, &role, &hash),
                Err(reply) => Ok(reply),
            }
        }
        (["role", ..] | ["login"], _) => Err(ApiError::UnsupportedOperation),
        _ => Err(ApiError::UnsupportedPath(rest.to_owned())),
    }
}

fn seconds(params: &Params<'_>, name: &'static str) -> Result<Option<u64>, ApiError> {
    Ok(params.duration(name)?.map(|d| d.as_secs()))
}

/// What a role's write reads besides its token settings.
const ROLE_FIELDS: Fields = &[
    "secret_id_bound_cidrs",
    "bound_cidr_list",
    "secret_id_ttl",
    "secret_id_num_uses",
    "bind_secret_id",
    "local_secret_ids",
];

fn write_role(store: &Store, name: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&Reads(&[ROLE_FIELDS, TOKEN_SETTINGS_FIELDS]));
    if !valid_name(name) {
        return Err(ApiError::BadRequest("invalid role name".into()));
    }
    let existing = store.roles.get(name)?;
    let creating = existing.is_none();
    let mut role = existing.unwrap_or_else(|| Role {
        role_id: random_uuid(),
        bind_secret_id: true,
        ..Role::default()
    });
    role.token.update(params)?;
    // `bound_cidr_list`: AppRole's older name for `secret_id_bound_cidrs`.
    let secret_id_cidrs = match cidrs_param(params, "secret_id_bound_cidrs")? {
        Some(cidrs) => Some(cidrs),
        None => cidrs_param(params, "bound_cidr_list")?,
    };
    if let Some(cidrs) = secret_id_cidrs {
        role.secret_id_bound_cidrs = cidrs.iter().map(ToString::to_string).collect();
    }
    if let Some(v) = seconds(params, "secret_id_ttl")? {
        role.secret_id_ttl = v;
    }
    if let Some(v) = params.int("secret_id_num_uses")? {
        role.secret_id_num_uses =
            u64::try_from(v).map_err(|_| ApiError::BadRequest("secret_id_num_uses cannot be negative".into()))?;
    }
    if let Some(bind) = params.bool("bind_secret_id")? {
        role.bind_secret_id = bind;
    }
    if params.bool("local_secret_ids")? == Some(true) {
        return Err(ApiError::BadRequest(
            "local_secret_ids is not supported by this server (secret IDs are shared by every server on the storage)"
                .into(),
        ));
    }
    if !role.bind_secret_id {
        return Err(ApiError::BadRequest(
            "at least one constraint should be enabled on the role".into(),
        ));
    }
    if creating {
        store.role_ids.put(&role.role_id, &Pointer(name.to_owned()))?;
    }
    store.roles.put(name, &role)?;
    Ok(Reply::NoContent)
}

fn read_role(store: &Store, name: &str) -> ApiResult {
    let role = store.roles.get(name)?.ok_or(ApiError::NotFound)?;
    let mut data = role.token.fields();
    data.insert("bind_secret_id".into(), json!(role.bind_secret_id));
    data.insert("secret_id_bound_cidrs".into(), json!(role.secret_id_bound_cidrs));
    data.insert("secret_id_num_uses".into(), json!(role.secret_id_num_uses));
    data.insert("secret_id_ttl".into(), json!(role.secret_id_ttl));
    data.insert("local_secret_ids".into(), json!(false));
    Ok(Reply::data(Value::Object(data), vec![]))
}

fn delete_role(store: &Store, name: &str) -> ApiResult {
    let Some(role) = store.roles.get(name)? else {
        return Ok(Reply::NoContent);
    };
    for entry in store.secret_ids.names_under(&format!("{name}/"))? {
        if let Some(secret) = store.secret_ids.get(&entry)? {
            store.accessors.delete(&secret.accessor)?;
        }
        store.secret_ids.delete(&entry)?;
    }
    store.role_ids.delete(&role.role_id)?;
    store.roles.delete(name)?;
    Ok(Reply::NoContent)
}

/// The AppRole kind.
pub(super) struct AppRole;

impl super::AuthMethod for AppRole {
    fn kind(&self) -> &'static str {
        "approle"
    }

    fn is_login(&self, rest: &str) -> bool {
        rest == "login"
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
        login(state, at.mount_path, at.mount, params, at.client)
    }

    fn family(&self, login: bool) -> &'static str {
        if login { "auth/approle/login" } else { "auth/approle" }
    }
}

/// `POST auth/<mount>/login` with `role_id` and `secret_id` (answered without a
/// token).
fn login(
    state: &Unsealed,
    mount_path: &str,
    mount: &MountEntry,
    params: &Params<'_>,
    client: Option<std::net::IpAddr>,
) -> ApiResult {
    params.declare(&Reads(&[&["role_id", "secret_id"]]));
    let store = Store::new(&state.barrier, mount);
    let role_id = params.string("role_id")?.unwrap_or_default();
    if role_id.is_empty() {
        return Err(ApiError::BadRequest("missing role_id".into()));
    }
    let invalid = || ApiError::BadRequest("invalid role or secret ID".into());
    let name = if valid_name(&role_id) {
        store.role_ids.get(&role_id)?
    } else {
        None
    };
    let Some(Pointer(name)) = name else {
        return Err(invalid());
    };
    let Some(role) = store.roles.get(&name)? else {
        return Err(invalid());
    };
    let secret_id = params.string("secret_id")?.unwrap_or_default();
    if secret_id.is_empty() {
        return Err(ApiError::BadRequest("missing secret_id".into()));
    }
    // As OpenBao: wrong secret IDs for one role ID lock it out (5 in 15 minutes,
    // for 15 minutes), counted only for role IDs that exist.
    let lockout_key = format!("{}/role-id/{role_id}", mount.accessor);
    if !state.logins.attempt(&lockout_key) {
        return Err(ApiError::LockedOut);
    }
    let source = client.map_or_else(|| "unknown".to_owned(), |address| address.to_string());
    let from_within = |cidrs: &[String]| admits(&parse_stored_cidrs(cidrs), client);
    if !from_within(&role.secret_id_bound_cidrs) {
        return Err(ApiError::BadRequest(format!(
            "source address {source:?} unauthorized by CIDR restrictions on the role"
        )));
    }
    let key = format!("{name}/{}", hash_secret_id(&secret_id));
    let at = now();
    // Checked and spent in one atomic update: a secret ID with N uses logs in N
    // times at most, however many servers race for it.
    let mut accepted = false;
    let mut outside = false;
    let mut spent_accessor = None;
    let mut token_cidrs = Vec::new();
    store.secret_ids.update(&key, &mut |current| {
        accepted = false;
        outside = false;
        spent_accessor = None;
        let Some(mut secret) = current else { return Change::Keep };
        if secret.expires != 0 && at >= secret.expires {
            return Change::Keep;
        }
        // Refused from outside its networks without spending a use.
        if !from_within(&secret.cidr_list) {
            outside = true;
            return Change::Keep;
        }
        token_cidrs.clone_from(&secret.token_bound_cidrs);
        accepted = true;
        match secret.uses_left {
            0 => Change::Keep,
            // The last use deletes it in the same update: nothing is left to reuse.
            1 => {
                spent_accessor = Some(secret.accessor.clone());
                Change::Delete
            }
            n => {
                secret.uses_left = n - 1;
                Change::Put(secret)
            }
        }
    })?;
    if let Some(accessor) = spent_accessor {
        store.accessors.delete(&accessor)?;
    }
    if outside {
        return Err(ApiError::BadRequest(format!(
            "source address {source:?} unauthorized by CIDR restrictions on the secret ID"
        )));
    }
    if !accepted {
        return Err(invalid());
    }
    state.logins.succeeded(&lockout_key);
    let path = format!("auth/{mount_path}/login");
    // The secret ID's own token bounds, when it has some, narrow the role's.
    let bound = (!token_cidrs.is_empty()).then(|| parse_stored_cidrs(&token_cidrs));
    login_token(state, &role.token, bound, &path, json!({ "role_name": name }), vec![])
}
