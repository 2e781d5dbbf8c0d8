//! The ceiling for server benchmarks: an axum handler that answers a transit-shaped
//! JSON reply with no crypto, no auth and no audit.
//!
//! Run: `cargo run --release -p encrypted-attr-server --example bare_axum -- 127.0.0.1:8299`

use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

async fn encrypt(Json(body): Json<Value>) -> Json<Value> {
    drop(body);
    Json(json!({
        "request_id": "00000000-0000-0000-0000-000000000000", "lease_id": "", "renewable": false,
        "lease_duration": 0, "data": {"ciphertext": "vault:v1:AAAA", "key_version": 1},
        "wrap_info": null, "warnings": null, "auth": null,
    }))
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8299".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(
        listener,
        axum::Router::new().route("/v1/transit/encrypt/{name}", post(encrypt)),
    )
    .await
}
