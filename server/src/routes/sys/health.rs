//! `sys/health`, answered before authentication and without touching storage: the
//! status code tells the state (200, 503 sealed or storage unreachable, 501
//! uninitialised), each overridable by query parameter as in Vault.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::params::{Params, Reads};
use crate::seal::Seal;

/// `GET` (or `HEAD`, without a body) `sys/health`.
pub(crate) fn health(seal: &Seal, params: &Params<'_>, head: bool) -> Response {
    params.declare(&Reads(&[&[
        "uninitcode",
        "sealedcode",
        "storageerrorcode",
        "activecode",
    ]]));
    let state = seal.health();
    let code = |name: &'static str, default: u16| {
        params
            .int(name)
            .ok()
            .flatten()
            .and_then(|c| u16::try_from(c).ok())
            .and_then(|c| StatusCode::from_u16(c).ok())
            .unwrap_or(StatusCode::from_u16(default).unwrap_or(StatusCode::OK))
    };
    let http = if !state.initialized {
        code("uninitcode", 501)
    } else if state.sealed {
        code("sealedcode", 503)
    } else if !state.storage_reachable {
        code("storageerrorcode", 503)
    } else {
        code("activecode", 200)
    };
    if head {
        return http.into_response();
    }
    let body = json!({
        "initialized": state.initialized,
        "sealed": state.sealed,
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "version": crate::seal::VERSION,
        "cluster_name": "encrypted-attr",
        "cluster_id": "",
        "storage_reachable": state.storage_reachable,
    });
    (http, axum::Json(body)).into_response()
}
