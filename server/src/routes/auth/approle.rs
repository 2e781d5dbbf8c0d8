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

use super::token_settings::{TOKEN_SETTINGS_FIELDS, TokenSettings, cidrs_param, is_subset, login_token};
use crate::encoding::{encode_hex, format_rfc3339_nanos};
use crate::http::{ApiError, ApiResult, Reply};
use crate::params::{Fields, Params};
use crate::request::Operation;
use crate::seal::Unsealed;
use crate::stores::mounts::MountEntry;
use crate::stores::tokens::{admits, parse_stored_cidrs};
use crate::stores::{Change, Record, SealedRecords, decode_json, encode_json};

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
    params.declare(&[ROLE_FIELDS, TOKEN_SETTINGS_FIELDS]);
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

fn generate_secret_id(store: &Store, name: &str, params: &Params<'_>) -> ApiResult {
    params.declare(&[SECRET_ID_FIELDS]);
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

fn list_secret_ids(store: &Store, name: &str) -> ApiResult {
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
fn by_value(store: &Store, name: &str, params: &Params<'_>) -> Result<(String, String), ApiError> {
    params.declare(&[&["secret_id"]]);
    store.role(name)?;
    let secret_id = params.string("secret_id")?.unwrap_or_default();
    if secret_id.is_empty() {
        return Err(ApiError::BadRequest("missing secret_id".into()));
    }
    Ok((name.to_owned(), hash_secret_id(&secret_id)))
}

/// The role and hash of the secret ID named by the `secret_id_accessor` parameter;
/// an unknown accessor is Vault's 404 with the error in `data`.
fn by_accessor(store: &Store, name: &str, params: &Params<'_>) -> Result<Result<(String, String), Reply>, ApiError> {
    params.declare(&[&["secret_id_accessor"]]);
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

fn lookup_secret_id(store: &Store, role: &str, hash: &str) -> ApiResult {
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

fn destroy_secret_id(store: &Store, role: &str, hash: &str) -> ApiResult {
    let key = format!("{role}/{hash}");
    if let Some(secret) = store.secret_ids.get(&key)? {
        store.accessors.delete(&secret.accessor)?;
        store.secret_ids.delete(&key)?;
    }
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
    params.declare(&[&["role_id", "secret_id"]]);
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
