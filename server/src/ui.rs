//! The web UI at `/ui/`: its pages, embedded in the binary, and the three endpoints
//! that make a browser a client of the same API as everyone else — a login that
//! keeps the token in an `HttpOnly` cookie, a logout that revokes it, and
//! `/ui/v1/…`, a `/v1/…` request whose token comes from that cookie.
//!
//! The browser never holds the token where a script could read it. What it holds
//! instead is a CSRF value in a readable cookie, which every request must echo in
//! a header (a page on another site can neither read the cookie nor set the
//! header); with `SameSite=Strict` and the origin checks below, a request another
//! site makes the browser send is refused before it reaches the API.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::app::{AppState, answer};

const CSRF_HEADER: &str = "x-csrf-token";
/// Sent by the UI's own requests; a plain form on another site cannot send it,
/// and a script there cannot without the server's consent (CORS preflight).
const REQUESTED_WITH: &str = "encrypted-attr-ui";

/// Largest login body: a few names and secrets.
const MAX_LOGIN_BYTES: usize = 16 * 1024;
/// Largest API answer a login reads back (its token and policies).
const MAX_LOGIN_ANSWER_BYTES: usize = 1024 * 1024;

/// What every UI answer says to the browser: run only this server's own scripts
/// and styles, talk only to this server, never be framed, leak no referrer.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Whether the server speaks TLS, which decides the cookies' names and attributes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct UiSettings {
    pub(crate) secure_cookies: bool,
}

impl UiSettings {
    /// The cookie that holds the session's token (`HttpOnly`: no script reads it).
    /// Over TLS its name has the `__Host-` prefix, which browsers accept only from
    /// this host itself (`Secure`, `Path=/`, no `Domain`), so a neighbouring
    /// subdomain cannot plant a session of its own choosing.
    fn token_cookie(self) -> &'static str {
        if self.secure_cookies {
            "__Host-ea_ui_token"
        } else {
            "ea_ui_token"
        }
    }

    /// The cookie whose value every request must repeat in [`CSRF_HEADER`].
    fn csrf_cookie(self) -> &'static str {
        if self.secure_cookies {
            "__Host-ea_ui_csrf"
        } else {
            "ea_ui_csrf"
        }
    }

    /// The attributes both cookies share. Plain HTTP (loopback only) cannot have
    /// `Secure` cookies, and keeps them to `/ui`.
    fn attributes(self) -> &'static str {
        if self.secure_cookies {
            "Path=/; SameSite=Strict; Secure"
        } else {
            "Path=/ui; SameSite=Strict"
        }
    }
}

/// The UI's routes, merged into the server's router.
pub(crate) fn routes(settings: UiSettings) -> Router<Arc<AppState>> {
    Router::new()
        .route("/", axum::routing::get(|| async { Redirect::temporary("/ui/") }))
        .route("/ui", axum::routing::get(|| async { Redirect::temporary("/ui/") }))
        .route("/ui/", axum::routing::get(|| async { asset("index.html") }))
        .route(
            "/ui/assets/{file}",
            axum::routing::get(|axum::extract::Path(file): axum::extract::Path<String>| async move { asset(&file) }),
        )
        .route("/ui/login", axum::routing::post(login))
        .route("/ui/logout", axum::routing::post(logout))
        .route("/ui/v1/{*path}", axum::routing::any(api))
        .layer(axum::Extension(settings))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The UI's files: written by hand, no build step, embedded at compile time.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../ui/index.html"),
    ),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../ui/app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../ui/app.css")),
];

fn asset(name: &str) -> Response {
    let Some(&(name, content_type, embedded)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let body = from_disk(name).unwrap_or_else(|| embedded.to_owned());
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// A debug build serves the UI's files from `ENCRYPTED_ATTR_UI_DIR` when it is set,
/// so the pages can be changed without rebuilding; a release build never reads
/// them from disk.
#[cfg(debug_assertions)]
fn from_disk(name: &str) -> Option<String> {
    let dir = std::env::var_os("ENCRYPTED_ATTR_UI_DIR")?;
    std::fs::read_to_string(std::path::Path::new(&dir).join(name)).ok()
}

#[cfg(not(debug_assertions))]
fn from_disk(_name: &str) -> Option<String> {
    None
}

/// How a person logs in: the three methods the UI offers.
#[derive(serde::Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
enum LoginForm {
    Token {
        token: Zeroizing<String>,
    },
    Userpass {
        #[serde(default = "userpass_mount")]
        mount: String,
        username: String,
        password: Zeroizing<String>,
    },
    Approle {
        #[serde(default = "approle_mount")]
        mount: String,
        role_id: String,
        secret_id: Zeroizing<String>,
    },
}

fn userpass_mount() -> String {
    "userpass".to_owned()
}

fn approle_mount() -> String {
    "approle".to_owned()
}

/// `POST /ui/login`: logs in through the API's own login path (audited, locked out
/// after failures, as any login), keeps the token in the cookie and answers who
/// logged in — never the token.
async fn login(
    State(state): State<Arc<AppState>>,
    axum::Extension(settings): axum::Extension<UiSettings>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let client = crate::request::client_of(&parts.extensions);
    if !from_this_ui(&parts.headers) {
        return refused("this request did not come from the UI");
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_LOGIN_BYTES).await else {
        return ui_error(StatusCode::PAYLOAD_TOO_LARGE, "the login request is too large");
    };
    let form: LoginForm = match serde_json::from_slice(&body) {
        Ok(form) => form,
        Err(_) => return ui_error(StatusCode::BAD_REQUEST, "the login form is not valid"),
    };
    let token = match form {
        LoginForm::Token { token } => token,
        LoginForm::Userpass {
            mount,
            username,
            password,
        } => {
            if !is_mount_path(&mount) || !is_plain_name(&username) {
                return ui_error(StatusCode::BAD_REQUEST, "the mount path or user name is not valid");
            }
            let body = match login_body(&PasswordLogin { password: &password }) {
                Ok(body) => body,
                Err(error) => return error.into_response(),
            };
            match login_token(&state, client, &format!("/v1/auth/{mount}/login/{username}"), body).await {
                Ok(token) => token,
                Err(response) => return response,
            }
        }
        LoginForm::Approle {
            mount,
            role_id,
            secret_id,
        } => {
            if !is_mount_path(&mount) {
                return ui_error(StatusCode::BAD_REQUEST, "the mount path is not valid");
            }
            let body = match login_body(&AppRoleLogin {
                role_id: &role_id,
                secret_id: &secret_id,
            }) {
                Ok(body) => body,
                Err(error) => return error.into_response(),
            };
            match login_token(&state, client, &format!("/v1/auth/{mount}/login"), body).await {
                Ok(token) => token,
                Err(response) => return response,
            }
        }
    };
    if token.is_empty() || !token.bytes().all(is_cookie_value_byte) {
        return ui_error(StatusCode::BAD_REQUEST, "this token cannot be used by the UI");
    }
    // Who the token is, through the API (this also checks a pasted token).
    let lookup = match call(
        &state,
        client,
        Method::GET,
        "/v1/auth/token/lookup-self",
        Some(&token),
        None,
    )
    .await
    {
        Ok(lookup) if lookup.status == StatusCode::OK => lookup,
        Ok(refused) => return refused.pass_on(),
        Err(response) => return response,
    };
    let Ok(LookupAnswer { data: who }) = serde_json::from_slice(&lookup.body) else {
        return crate::http::ApiError::Internal.into_response();
    };
    let mut csrf = [0u8; 32];
    if getrandom::fill(&mut csrf).is_err() {
        return crate::http::ApiError::Internal.into_response();
    }
    let csrf = crate::encoding::encode_hex(&csrf);
    let mut response = axum::Json(who).into_response();
    let attributes = settings.attributes();
    for cookie in [
        Zeroizing::new(format!(
            "{}={}; {attributes}; HttpOnly",
            settings.token_cookie(),
            token.as_str()
        )),
        Zeroizing::new(format!("{}={csrf}; {attributes}", settings.csrf_cookie())),
    ] {
        match HeaderValue::from_str(&cookie) {
            Ok(value) => response.headers_mut().append(header::SET_COOKIE, value),
            Err(_) => return crate::http::ApiError::Internal.into_response(),
        };
    }
    response
}

/// Runs a login request through the API; its token, or the API's refusal.
async fn login_token(
    state: &Arc<AppState>,
    client: Option<std::net::IpAddr>,
    path: &str,
    body: Zeroizing<String>,
) -> Result<Zeroizing<String>, Response> {
    let answered = call(state, client, Method::POST, path, None, Some(body)).await?;
    if answered.status != StatusCode::OK {
        return Err(answered.pass_on());
    }
    serde_json::from_slice::<LoginAnswer>(&answered.body)
        .map(|answer| answer.auth.client_token)
        .map_err(|_| crate::http::ApiError::Internal.into_response())
}

/// `POST /ui/logout`: revokes the session's token and forgets the cookies. If the
/// revocation fails for a reason that may pass (storage down), says so and keeps
/// the session, so the person can try again. If the token's policies do not allow
/// `revoke-self`, the browser forgets it anyway (someone else may use this browser
/// next) and the answer warns that the token stays valid until it expires.
async fn logout(
    State(state): State<Arc<AppState>>,
    axum::Extension(settings): axum::Extension<UiSettings>,
    request: Request,
) -> Response {
    let client = crate::request::client_of(request.extensions());
    let headers = request.headers();
    if !from_this_ui(headers) || !csrf_matches(headers, settings) {
        return refused("this request did not come from the UI");
    }
    let mut warnings = Vec::new();
    if let Some(token) = cookie(headers, settings.token_cookie()) {
        let token = Zeroizing::new(token.to_owned());
        let revoked = match call(
            &state,
            client,
            Method::POST,
            "/v1/auth/token/revoke-self",
            Some(&token),
            None,
        )
        .await
        {
            Ok(revoked) => revoked,
            Err(response) => return response,
        };
        let status = revoked.status;
        if !status.is_success() {
            // A 403 may mean the token is gone already (expired, revoked), or that
            // its policies do not allow `revoke-self`: only the first ends the
            // session. Asked of the token store itself, which no policy limits.
            let live = match token_is_live(&state, token.clone()).await {
                Ok(live) => live,
                Err(error) => return error.into_response(),
            };
            if status == StatusCode::FORBIDDEN && live {
                warnings.push(
                    "this browser forgot the token, but its policies do not allow auth/token/revoke-self, so it \
                     stays valid until it expires or someone revokes it",
                );
            } else if status != StatusCode::FORBIDDEN {
                return revoked.pass_on();
            }
        }
    }
    let mut response = if warnings.is_empty() {
        StatusCode::NO_CONTENT.into_response()
    } else {
        axum::Json(json!({ "warnings": warnings })).into_response()
    };
    for name in [settings.token_cookie(), settings.csrf_cookie()] {
        if let Ok(value) = HeaderValue::from_str(&format!("{name}=; {}; Max-Age=0; HttpOnly", settings.attributes())) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Whether `token` is still a valid token (a storage failure is an error, never
/// an answer).
async fn token_is_live(state: &Arc<AppState>, token: Zeroizing<String>) -> Result<bool, crate::http::ApiError> {
    let Some(open) = state.seal.unsealed() else {
        return Err(crate::http::ApiError::Sealed);
    };
    // Storage calls block: off the async workers.
    match tokio::task::spawn_blocking(move || open.tokens.check(&token)).await {
        Ok(Ok(found)) => Ok(found.is_some()),
        Ok(Err(error)) => Err(crate::http::ApiError::from(error)),
        Err(_) => Err(crate::http::ApiError::Internal),
    }
}

/// `/ui/v1/<path>`: the request `/v1/<path>` would be, with the session's token,
/// answered by the same dispatcher (the same policies, audit and limits).
async fn api(
    State(state): State<Arc<AppState>>,
    axum::Extension(settings): axum::Extension<UiSettings>,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    if !from_this_ui(&parts.headers) || !csrf_matches(&parts.headers, settings) {
        return refused("this request did not come from the UI (missing or wrong CSRF token)");
    }
    let token = cookie(&parts.headers, settings.token_cookie()).map(|t| Zeroizing::new(t.to_owned()));
    let Some(rest) = parts.uri.path().strip_prefix("/ui").map(str::to_owned) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let uri = match parts.uri.query() {
        Some(query) => format!("{rest}?{query}"),
        None => rest.clone(),
    };
    let Ok(uri) = uri.parse::<Uri>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    parts.uri = uri;
    // Only the cookie's token counts here; nothing else of the browser's reaches
    // the API as a credential.
    for name in [header::COOKIE, header::AUTHORIZATION] {
        parts.headers.remove(name);
    }
    parts.headers.remove("x-vault-token");
    if let Some(token) = &token {
        match HeaderValue::from_str(token) {
            Ok(value) => {
                parts.headers.insert("x-vault-token", value);
            }
            Err(_) => return refused("the session's token is not valid"),
        }
    }
    let response = answer(state, Request::from_parts(parts, body)).await;
    match token {
        Some(token) if response.status().is_success() => without_session_token(response, &token).await,
        _ => response,
    }
}

/// An answer without the session's token in it: `lookup-self` gives it as
/// `data.id`, `renew-self` as `auth.client_token`, and a script on the page must
/// never be able to read it. Answers that are not JSON pass as they are.
async fn without_session_token(response: Response, token: &str) -> Response {
    use subtle::ConstantTimeEq as _;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return crate::http::ApiError::Internal.into_response();
    };
    // Most answers do not hold the token at all, and pass as they are. A token JSON
    // would escape (quotes, backslashes, control characters: possible only for a
    // dev-mode root token chosen by hand) is always looked for field by field.
    let escaped_in_json = token.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
    if bytes.is_empty() || (!escaped_in_json && memchr::memmem::find(&bytes, token.as_bytes()).is_none()) {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return crate::http::ApiError::Internal.into_response();
    };
    for (object, field) in [("data", "id"), ("auth", "client_token")] {
        if let Some(map) = value.get_mut(object).and_then(Value::as_object_mut)
            && map
                .get(field)
                .and_then(Value::as_str)
                .is_some_and(|found| bool::from(found.as_bytes().ct_eq(token.as_bytes())))
            && let Some(Value::String(mut found)) = map.remove(field)
        {
            zeroize::Zeroize::zeroize(&mut found);
        }
    }
    let mut response = axum::Json(value).into_response();
    *response.status_mut() = parts.status;
    response
}

/// One API request made by the UI's server side, answered by the dispatcher: its
/// status and body, in a buffer wiped when dropped (a login's answer holds its
/// token). The body is parsed by whoever needs a field of it, into types that keep
/// no more than that field.
struct Answered {
    status: StatusCode,
    body: Zeroizing<Vec<u8>>,
}

impl Answered {
    /// The answer as it came, for the browser (an API refusal: no secret in it).
    fn pass_on(self) -> Response {
        let mut response = (self.status, self.body.to_vec()).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}

async fn call(
    state: &Arc<AppState>,
    client: Option<std::net::IpAddr>,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Zeroizing<String>>,
) -> Result<Answered, Response> {
    let mut builder = Request::builder().method(method).uri(path);
    // Made on the browser's behalf: from the browser's address (CIDR bounds).
    if let Some(client) = client {
        builder = builder.extension(crate::request::ClientAddress(client));
    }
    if let Some(token) = token {
        builder = builder.header("x-vault-token", token);
    }
    let body = body.map_or_else(axum::body::Body::empty, |b| {
        axum::body::Body::from(b.as_bytes().to_vec())
    });
    let request = builder
        .body(body)
        .map_err(|_| crate::http::ApiError::Internal.into_response())?;
    let response = answer(state.clone(), request).await;
    let status = response.status();
    match axum::body::to_bytes(response.into_body(), MAX_LOGIN_ANSWER_BYTES).await {
        // `Vec::from` takes the buffer over when nothing else holds it (no copy left
        // behind unwiped).
        Ok(bytes) => Ok(Answered {
            status,
            body: Zeroizing::new(Vec::from(bytes)),
        }),
        Err(_) => Err(crate::http::ApiError::Internal.into_response()),
    }
}

/// What a login's answer gives the UI: the token, and nothing else kept.
#[derive(serde::Deserialize)]
struct LoginAnswer {
    auth: LoginAuth,
}

#[derive(serde::Deserialize)]
struct LoginAuth {
    client_token: Zeroizing<String>,
}

/// What `lookup-self` tells the page of who logged in (its `id`, the token, is
/// not read).
#[derive(serde::Deserialize)]
struct LookupAnswer {
    data: Who,
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(default)]
#[derive(Default)]
struct Who {
    display_name: Value,
    policies: Value,
    ttl: Value,
}

/// A login's body, written straight into a buffer that is wiped.
#[derive(serde::Serialize)]
struct PasswordLogin<'a> {
    password: &'a str,
}

#[derive(serde::Serialize)]
struct AppRoleLogin<'a> {
    role_id: &'a str,
    secret_id: &'a str,
}

fn login_body(body: &impl serde::Serialize) -> Result<Zeroizing<String>, crate::http::ApiError> {
    serde_json::to_string(body)
        .map(Zeroizing::new)
        .map_err(|_| crate::http::ApiError::Internal)
}

/// Whether the request says it is the UI's own and, where the browser tells,
/// comes from this origin.
fn from_this_ui(headers: &HeaderMap) -> bool {
    let said = headers
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes() == REQUESTED_WITH.as_bytes());
    let same_site = headers
        .get("sec-fetch-site")
        .is_none_or(|v| v.as_bytes() == b"same-origin");
    let same_origin = match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .is_some_and(|(_, origin_host)| origin_host.as_bytes() == host.as_bytes()),
        (Some(_), None) => false,
    };
    said && same_site && same_origin
}

/// Whether the CSRF header repeats the CSRF cookie (compared in constant time).
fn csrf_matches(headers: &HeaderMap, settings: UiSettings) -> bool {
    use subtle::ConstantTimeEq as _;
    let (Some(cookie), Some(header)) = (
        cookie(headers, settings.csrf_cookie()),
        headers.get(CSRF_HEADER).map(HeaderValue::as_bytes),
    ) else {
        return false;
    };
    !cookie.is_empty() && bool::from(cookie.as_bytes().ct_eq(header))
}

/// The value of cookie `name`, if the request carries it once. Two cookies of one
/// name mean someone else set one (a planted cookie beside the real one): neither
/// is trusted.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, value)| value);
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Bytes a cookie value may hold unquoted (RFC 6265's `cookie-octet`).
fn is_cookie_value_byte(b: u8) -> bool {
    matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E)
}

/// A mount path as the UI may put it into a login path: segments of letters,
/// digits, `-`, `_` and `.`.
fn is_mount_path(path: &str) -> bool {
    !path.is_empty() && path.len() <= 256 && path.split('/').all(|s| is_plain_name(s) && s != "." && s != "..")
}

/// A name that can stand in a path as it is: letters, digits, `-`, `_`, `.`, `@`.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'))
}

fn refused(message: &str) -> Response {
    ui_error(StatusCode::FORBIDDEN, message)
}

fn ui_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "errors": [message] }))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn csrf_needs_the_cookie_and_the_same_value_in_the_header() {
        let ok = headers(&[("cookie", "a=b; ea_ui_csrf=abc123"), ("x-csrf-token", "abc123")]);
        let plain = UiSettings { secure_cookies: false };
        assert!(csrf_matches(&ok, plain));
        let wrong = headers(&[("cookie", "ea_ui_csrf=abc123"), ("x-csrf-token", "abc124")]);
        assert!(!csrf_matches(&wrong, plain));
        assert!(!csrf_matches(&headers(&[("x-csrf-token", "abc123")]), plain));
        let empty = headers(&[("cookie", "ea_ui_csrf="), ("x-csrf-token", "")]);
        assert!(!csrf_matches(&empty, plain));
        // A second cookie of the same name (planted by a neighbour): neither counts.
        let planted = headers(&[
            ("cookie", "ea_ui_csrf=abc123; ea_ui_csrf=evil"),
            ("x-csrf-token", "abc123"),
        ]);
        assert!(!csrf_matches(&planted, plain));
        // Over TLS only the `__Host-` cookie counts.
        let tls = UiSettings { secure_cookies: true };
        assert!(!csrf_matches(&ok, tls));
        let host = headers(&[("cookie", "__Host-ea_ui_csrf=abc123"), ("x-csrf-token", "abc123")]);
        assert!(csrf_matches(&host, tls));
    }

    #[test]
    fn only_same_origin_requests_that_say_so_are_the_uis() {
        let base = [("x-requested-with", REQUESTED_WITH), ("host", "127.0.0.1:8200")];
        assert!(from_this_ui(&headers(&base)));
        let mut other_site = base.to_vec();
        other_site.push(("origin", "https://evil.example"));
        assert!(!from_this_ui(&headers(&other_site)));
        let mut same = base.to_vec();
        same.push(("origin", "http://127.0.0.1:8200"));
        same.push(("sec-fetch-site", "same-origin"));
        assert!(from_this_ui(&headers(&same)));
        let mut cross = base.to_vec();
        cross.push(("sec-fetch-site", "cross-site"));
        assert!(!from_this_ui(&headers(&cross)));
        assert!(!from_this_ui(&headers(&[("host", "127.0.0.1:8200")])));
    }

    #[test]
    fn login_paths_take_plain_names_only() {
        assert!(is_mount_path("userpass") && is_mount_path("team/userpass"));
        for bad in ["", "a/../b", "a//b", "a?b", "a b", "..", "a/./b"] {
            assert!(!is_mount_path(bad), "{bad:?}");
        }
        assert!(is_plain_name("alice@example.com"));
        assert!(!is_plain_name("alice/x") && !is_plain_name("a%2e"));
    }
}
