//! How servers sharing one storage see each other's changes: how often shared
//! state is re-read, and the engine options that follow from it. A leaf: the
//! seal, the transit mounts and the CLI all take these from here.

use std::time::Duration;

use encrypted_attr::EngineOptions;

/// How often a persistent server re-reads what other servers sharing its storage
/// may change: keys (through the engine's `refresh_interval`), policies, audit
/// devices and mounts; token entries are re-read on use after [`crate::stores::tokens::TOKEN_RECHECK`].
pub(crate) const SHARED_STATE_REFRESH: Duration = Duration::from_secs(2);

/// Engine options of a server: concurrent requests already keep every core busy,
/// so a batch stays on its request's thread (starting threads per batch halved
/// throughput on batches of 1,000 under load).
pub(crate) fn server_engine_options() -> EngineOptions {
    EngineOptions::default().parallel_batch_threshold(None)
}

/// Engine options of a persistent server: storage may be shared with other servers,
/// so keys are also re-read every [`SHARED_STATE_REFRESH`] to see their rotations.
pub(crate) fn shared_engine_options() -> EngineOptions {
    server_engine_options().refresh_interval(SHARED_STATE_REFRESH)
}
