//! The server's view of its storage's health: a [`Storage`] wrapper that records
//! whether the last call reached the backend, read by `sys/health` (without
//! touching storage, so health answers at once even while storage hangs) and kept
//! current by a probe every [`PROBE_INTERVAL`] while the server runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use encrypted_attr::Error;
use encrypted_attr::storage::{Storage, UpdateFn};

/// How often a running server checks that its storage answers (and re-reads the
/// keys it holds, well within their 2-second refresh interval).
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// A storage whose reachability and latency are recorded on every call.
pub(crate) struct MonitoredStorage {
    inner: Arc<dyn Storage>,
    reachable: AtomicBool,
    /// Latency per operation, registered into the server's metrics.
    seconds: prometheus::HistogramVec,
    /// `seconds`' series for get, list and update, looked up once.
    latency: [prometheus::Histogram; 3],
}

impl MonitoredStorage {
    pub(crate) fn new(inner: Arc<dyn Storage>) -> Self {
        let seconds = crate::metrics::storage_histogram();
        let latency = ["get", "list", "update"].map(|operation| seconds.with_label_values(&[operation]));
        Self {
            inner,
            reachable: AtomicBool::new(true),
            seconds,
            latency,
        }
    }

    /// The latency histogram, for the server's metrics.
    pub(crate) fn latency_histogram(&self) -> prometheus::HistogramVec {
        self.seconds.clone()
    }

    fn timed<T>(&self, operation: usize, call: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
        let started = std::time::Instant::now();
        let result = call();
        self.latency[operation].observe(started.elapsed().as_secs_f64());
        self.record(result)
    }

    /// Whether the last storage call reached the backend.
    pub(crate) fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// One cheap read, to learn whether storage answers (and, for PostgreSQL, to
    /// drive reconnection while no request comes).
    pub(crate) fn probe(&self, path: &str) -> bool {
        // Not timed: the latency histogram is about the requests' storage calls.
        let _ = self.record(self.inner.get(path));
        self.reachable()
    }

    fn record<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        let reached = match &result {
            Ok(_) => true,
            Err(error) => !crate::http::is_storage_outage(error),
        };
        let was = self.reachable.swap(reached, Ordering::Relaxed);
        if was && !reached {
            if let Err(error) = &result {
                tracing::error!(error = %error, cause = crate::error::error_chain(error), "storage became unreachable");
            }
        } else if !was && reached {
            tracing::info!("storage is reachable again");
        }
        result
    }
}

impl Storage for MonitoredStorage {
    fn get(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        self.timed(0, || self.inner.get(path))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.timed(1, || self.inner.list(prefix))
    }

    fn update(&self, path: &str, change: &mut UpdateFn<'_>) -> Result<(), Error> {
        // A closure's own error (a refused change) says nothing about the backend;
        // `record` only counts outage kinds.
        self.timed(2, || self.inner.update(path, change))
    }
}
