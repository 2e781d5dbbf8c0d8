//! Serving: `run` and `run_tls` with graceful shutdown, and the one background
//! task that probes storage and picks up other servers' changes, and the one
//! that runs the lease manager's rounds.

use std::future::Future;
use std::sync::Arc;

use axum::http::{HeaderValue, header};
use tokio::net::TcpListener;

use crate::pipeline::app;
use crate::state::AppState;

/// Serves `app` on `listener` until `shutdown` resolves, then finishes the requests
/// in flight.
///
/// # Errors
/// The listener failed.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve(listener, state, None, shutdown).await
}

/// Serves `app` over TLS (certificate chain and private key in PEM files) on
/// `listener` until `shutdown` resolves, then lets requests in flight finish.
///
/// # Errors
/// The certificate or key cannot be read or do not match, or the listener failed.
pub async fn run_tls(
    listener: TcpListener,
    state: Arc<AppState>,
    certificate: &std::path::Path,
    private_key: &std::path::Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = crate::listener::TlsFiles::load(certificate, private_key).map_err(std::io::Error::other)?;
    serve(listener, state, Some(Arc::new(tls)), shutdown).await
}

/// Serves `state` on `listener`, over TLS when given: with TLS, every answer also
/// carries `Strict-Transport-Security`.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    tls: Option<Arc<crate::listener::TlsFiles>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    spawn_storage_probe(&state);
    spawn_lease_revoker(&state);
    let limits = state.limits;
    let mut router = app(state);
    if tls.is_some() {
        router = router.layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        ));
    }
    crate::listener::serve(listener, router, limits, tls, shutdown).await
}

/// How often the lease manager's round runs.
const LEASE_ROUND: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the lease manager's round every [`LEASE_ROUND`] while unsealed: expired
/// leases and those of revoked tokens are revoked, at a bounded pace, off the
/// async workers. Stops when the state is dropped.
fn spawn_lease_revoker(state: &Arc<AppState>) {
    let state = Arc::downgrade(state);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(LEASE_ROUND);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(state) = state.upgrade() else { return };
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(open) = state.seal.unsealed() {
                    let revoker = crate::engines::EngineRevoker { open: &open };
                    let round = open.leases.tick(&revoker, &open.tokens, std::time::SystemTime::now());
                    state
                        .metrics
                        .lease_round(round.revoked, round.failed, open.leases.irrevocable());
                }
            })
            .await;
        }
    });
}

/// Checks every [`PROBE_INTERVAL`](crate::monitored::PROBE_INTERVAL) that storage
/// answers, so `sys/health` reports an outage (and PostgreSQL reconnects) even when
/// no request comes; picks up an initialisation made by another server; re-reads
/// the keys in memory. Stops when the state is dropped.
fn spawn_storage_probe(state: &Arc<AppState>) {
    if state.seal.storage().is_none() {
        return;
    }
    let state = Arc::downgrade(state);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(crate::monitored::PROBE_INTERVAL);
        loop {
            ticker.tick().await;
            let Some(state) = state.upgrade() else { return };
            // Storage calls block: never on the async workers.
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(storage) = state.seal.storage() {
                    storage.probe("core/seal-config");
                }
                state.seal.pick_up_initialization();
                // Keys re-read here stay fresh for requests, which then never all
                // re-read one key at once when its refresh interval passes.
                if let Some(open) = state.seal.unsealed() {
                    if let Err(error) = open
                        .engine
                        .refresh_keys_older_than(crate::monitored::PROBE_INTERVAL / 2)
                    {
                        tracing::warn!(%error, "keys could not be re-read in the background");
                    }
                    open.reload_mount_tables();
                }
            })
            .await;
        }
    });
}
