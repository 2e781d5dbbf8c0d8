//! The web UI: its pages' security headers and the absence of any cookie session
//! through the router, and the pages driven end to end in a real headless Chromium
//! (`tests/data/ui_browser.py`, Selenium; required under CI), with a page on
//! another port of the host that must get nothing of the session.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use encrypted_attr::LocalEngine;
use encrypted_attr_server::{AppState, app};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

const ROOT: &str = "ui-test-root";

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    text: String,
}

async fn send(router: &axum::Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Answer { status, headers, text }
}

fn router() -> axum::Router {
    let engine = Arc::new(LocalEngine::ephemeral().unwrap());
    let (state, _) = AppState::new(engine, Some(ROOT)).unwrap();
    app(Arc::new(state))
}

#[tokio::test]
async fn pages_are_served_with_a_strict_content_security_policy() {
    let router = router();
    let index = send(&router, Request::get("/ui/").body(Body::empty()).unwrap()).await;
    assert_eq!(index.status, StatusCode::OK);
    assert!(index.text.contains("/ui/assets/app.js"));
    let csp = index.headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(index.headers["x-frame-options"], "DENY");
    assert_eq!(index.headers["x-content-type-options"], "nosniff");
    assert_eq!(index.headers["cache-control"], "no-store");
    // No inline script the policy would have to allow.
    assert!(!index.text.contains("<script>") && !index.text.contains("onclick"));

    let script = send(&router, Request::get("/ui/assets/app.js").body(Body::empty()).unwrap()).await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(
        script.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    // Everything shown is built as text, never parsed as HTML.
    for sink in [
        ".innerHTML",
        ".outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ] {
        assert!(!script.text.contains(sink), "app.js uses {sink}");
    }
    for missing in ["/ui/assets/nope.js", "/ui/assets/..%2fCargo.toml"] {
        let answer = send(&router, Request::get(missing).body(Body::empty()).unwrap()).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{missing}");
    }
    let home = send(&router, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(home.status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(home.headers["location"], "/ui/");
}

#[tokio::test]
async fn no_cookie_is_set_or_taken_as_a_credential() {
    let router = router();
    // The pages log in through the API itself; there is no endpoint of the UI's
    // own that would hand out or take a session.
    for (method, path) in [
        ("POST", "/ui/login"),
        ("POST", "/ui/logout"),
        ("GET", "/ui/v1/auth/token/lookup-self"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("x-requested-with", "encrypted-attr-ui")
            .body(Body::from(json!({"method": "token", "token": ROOT}).to_string()))
            .unwrap();
        let answer = send(&router, request).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert!(answer.headers.get("set-cookie").is_none(), "{method} {path}");
    }
    for page in ["/ui/", "/ui/assets/app.js", "/ui/assets/app.css"] {
        let answer = send(&router, Request::get(page).body(Body::empty()).unwrap()).await;
        assert_eq!(answer.status, StatusCode::OK, "{page}");
        assert!(answer.headers.get("set-cookie").is_none(), "{page} sets a cookie");
    }
    // A cookie that another port of the host planted, named as a session cookie
    // once was, gives no access: only `X-Vault-Token` (or a bearer header) counts.
    for cookie in [format!("ea_ui_token={ROOT}"), format!("__Host-ea_ui_token={ROOT}")] {
        let request = Request::get("/v1/auth/token/lookup-self")
            .header("cookie", cookie)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&router, request).await.status, StatusCode::FORBIDDEN);
    }
    let with_header = Request::get("/v1/auth/token/lookup-self")
        .header("x-vault-token", ROOT)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&router, with_header).await.status, StatusCode::OK);
}

/// Chromium, ChromeDriver and Selenium, or why the browser test cannot run.
fn browser() -> Result<(String, String), String> {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or("chromium not found (apt-get install chromium)")?;
    let driver = "/usr/bin/chromedriver";
    if !std::path::Path::new(driver).exists() {
        return Err("chromedriver not found (apt-get install chromium-driver)".into());
    }
    let selenium = std::process::Command::new("python3")
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    if !selenium {
        return Err("python3 with selenium not found (pip install selenium)".into());
    }
    Ok((chromium.to_owned(), driver.to_owned()))
}

/// The pages in a real headless browser: init and unseal with shares, login,
/// a key created, rotated and used, policies, KV, a policy-limited user who is
/// not offered what the policy forbids, logout, 375 px wide. Screenshots go to
/// `EA_UI_SCREENSHOTS` when set (`docs/ui/` holds the README's).
#[test]
fn the_pages_work_in_a_real_browser() {
    let (chromium, driver) = match browser() {
        Ok(found) => found,
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the browser test must run under CI: {reason}")
        }
        Err(reason) => {
            eprintln!("SKIPPED: {reason}; the browser test did not run");
            return;
        }
    };
    let dir = std::env::temp_dir().join(format!("ea-ui-browser-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let storage_path = dir.join("storage.json");
    let make_state = move || {
        let storage = encrypted_attr::storage::FileStorage::open(&storage_path).unwrap();
        AppState::persistent(Arc::new(storage), "file").unwrap()
    };
    let (addr, stop, thread) = support::spawn_server(make_state, None);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/ui_browser.py");
    let mut command = std::process::Command::new("python3");
    command
        .arg(script)
        .env("EA_ADDR", format!("http://{addr}"))
        .env("EA_CHROMIUM", chromium)
        .env("EA_CHROMEDRIVER", driver);
    if let Some(screenshots) = std::env::var_os("EA_UI_SCREENSHOTS") {
        command.env("EA_SCREENSHOTS", screenshots);
    } else {
        command.env_remove("EA_SCREENSHOTS");
    }
    let out = command.output().unwrap();
    let _ = stop.send(());
    thread.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "the browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
