//! The web UI at `/ui/`: its pages, embedded in the binary, served under a strict
//! Content Security Policy. The pages are a client of the API like any other: they
//! log in through `/v1/auth/…`, keep the token in the tab's `sessionStorage`
//! (readable by this origin only) and send it in `X-Vault-Token`. No cookie is set,
//! so nothing of a session reaches another port or host, and nothing another port
//! plants can change one (`docs/ui-threat-model.md`).

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

/// What every UI answer says to the browser: run only this server's own scripts
/// and styles, talk only to this server, never be framed, leak no referrer; and
/// (Trusted Types) let no script turn a string into HTML or code, so a value that
/// slipped past the page's text-only rendering still cannot become a script that
/// reads the session's token.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// The UI's routes, merged into the server's router (whatever its state).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", axum::routing::get(|| async { Redirect::temporary("/ui/") }))
        .route("/ui", axum::routing::get(|| async { Redirect::temporary("/ui/") }))
        .route("/ui/", axum::routing::get(|| async { asset("index.html") }))
        .route(
            "/ui/assets/{file}",
            axum::routing::get(|axum::extract::Path(file): axum::extract::Path<String>| async move { asset(&file) }),
        )
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
