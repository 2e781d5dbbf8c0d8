//! Runs the example service.
//!
//! ```text
//! DATABASE_URL=postgres://…  VAULT_ADDR=http://127.0.0.1:8200  VAULT_TOKEN=…  \
//!     cargo run -p encrypted-attr-web-app
//! ```
//!
//! `LISTEN_ADDR` (default `127.0.0.1:3000`) sets the address; `ENSURE_KEYS=1` creates
//! the transit keys at start (the token then needs `create` on `transit/keys/patients_*`;
//! in production an operator creates them once and the service's token can only use them).

use std::sync::Arc;

use encrypted_attr::{ClientConfig, RemoteEngine};
use encrypted_attr_web_app::{App, Patient, migrate, router};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let database_url = std::env::var("DATABASE_URL").map_err(|_| "DATABASE_URL is not set")?;
    let listen = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let engine = RemoteEngine::new(ClientConfig::from_env()?)?;
    if std::env::var("ENSURE_KEYS").is_ok_and(|v| v == "1") {
        Patient::ensure_keys_async(&engine).await?;
    }
    let db = sqlx::PgPool::connect(&database_url).await?;
    migrate(&db).await?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(Arc::new(App { db, engine })))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
