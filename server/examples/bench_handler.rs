//! The server's request handling without sockets: requests go straight into the
//! router on one thread, so the CPU cost of parsing, auth, crypto, the reply and
//! the audit log is measured apart from the kernel's networking and the load
//! generator (which share the same cores in `scripts/bench_server.py`).
//!
//! Run: `cargo run --release -p encrypted-attr-server --example bench_handler`

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use base64::Engine as _;
use encrypted_attr::{EngineOptions, LocalEngine};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The allocator the `encrypted-attr` binary uses (`server/src/main.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TOKEN: &str = "bench-root";

async fn call(router: &axum::Router, path: &str, method: &str, body: &str) -> Result<u16, String> {
    call_for_body(router, path, method, body)
        .await
        .map(|(status, _)| status)
}

/// Sends one request; returns its status and body (read in full, as a client
/// would make the server produce it).
async fn call_for_body(
    router: &axum::Router,
    path: &str,
    method: &str,
    body: &str,
) -> Result<(u16, axum::body::Bytes), String> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("X-Vault-Token", TOKEN)
        .header("Content-Type", "application/json")
        .body(Body::from(body.to_owned()))
        .map_err(|e| e.to_string())?;
    let response = router.clone().oneshot(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

/// Runs `body` against `path` in 7 rounds of `budget / 7`; returns the best
/// round's microseconds per request (the least disturbed by other work on the
/// machine).
async fn measure(router: &axum::Router, path: &str, body: &str, budget: Duration) -> Result<f64, String> {
    for _ in 0..20 {
        call(router, path, "POST", body).await?;
    }
    let mut best = f64::INFINITY;
    for _ in 0..7 {
        let start = Instant::now();
        let mut done = 0u32;
        while start.elapsed() < budget / 7 {
            let status = call(router, path, "POST", body).await?;
            if status != 200 {
                return Err(format!("{path}: status {status}"));
            }
            done += 1;
        }
        best = best.min(start.elapsed().as_secs_f64() * 1e6 / f64::from(done));
    }
    Ok(best)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let budget = Duration::from_secs(3);
    let engine = LocalEngine::ephemeral_with(EngineOptions::default().parallel_batch_threshold(None))
        .map_err(|e| e.to_string())?;
    let (state, _) = encrypted_attr_server::AppState::new(Arc::new(engine), Some(TOKEN)).map_err(|e| e.to_string())?;
    let router = encrypted_attr_server::app(Arc::new(state));
    let plaintext = base64::engine::general_purpose::STANDARD.encode([b'x'; 64]);
    let single = json!({ "plaintext": plaintext }).to_string();
    let batch = |n: usize| json!({ "batch_input": vec![json!({ "plaintext": plaintext }); n] }).to_string();
    let path = "/v1/transit/encrypt/bench";
    call(&router, "/v1/transit/keys/bench", "POST", "{}").await?;

    println!("| request (64-byte plaintexts, one thread, no sockets) | µs/request | µs/item |");
    println!("|---|---|---|");
    for (label, body, items) in [
        ("single encrypt", single.clone(), 1.0),
        ("batch of 100", batch(100), 100.0),
        ("batch of 1,000", batch(1000), 1000.0),
    ] {
        let us = measure(&router, path, &body, budget).await?;
        println!("| {label} | {us:.1} | {:.2} |", us / items);
    }
    let (_, sealed) = call_for_body(&router, path, "POST", &batch(1000)).await?;
    let reply: Value = serde_json::from_slice(&sealed).map_err(|e| e.to_string())?;
    let ciphertexts: Vec<Value> = reply["data"]["batch_results"]
        .as_array()
        .ok_or("no batch results")?
        .iter()
        .map(|r| json!({ "ciphertext": r["ciphertext"] }))
        .collect();
    let decrypt = json!({ "batch_input": ciphertexts }).to_string();
    let us = measure(&router, "/v1/transit/decrypt/bench", &decrypt, budget).await?;
    println!("| decrypt batch of 1,000 | {us:.1} | {:.2} |", us / 1000.0);

    let dir = std::env::temp_dir().join(format!("bench-handler-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let audit = json!({ "type": "file", "options": { "file_path": dir.join("audit.log") } }).to_string();
    call(&router, "/v1/sys/audit/file", "PUT", &audit).await?;
    let us = measure(&router, path, &single, budget).await?;
    println!("| single encrypt, file audit | {us:.1} | {us:.2} |");
    let us = measure(&router, path, &batch(100), budget).await?;
    println!("| batch of 100, file audit | {us:.1} | {:.2} |", us / 100.0);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
