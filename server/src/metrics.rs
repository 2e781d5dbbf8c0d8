//! The server's metrics at `GET /v1/sys/metrics?format=prometheus` (Vault's path):
//! requests per route family and status, their latency, batch sizes, transit items
//! per key and operation, seal state, audit failures, lease revocations and
//! storage latency.
//!
//! Labels hold only values from fixed sets — route families, statuses, operation
//! names — and key names, which an operator can leave out (`metrics_key_names =
//! false`). Never a path, a token or a parameter: a label made from what a client
//! sends would let any client grow the server's memory without bound.

use axum::http::StatusCode;
use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// Bucket bounds of request and storage latencies, in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Bucket bounds of batch sizes, in items.
const BATCH_BUCKETS: &[f64] = &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10_000.0];

/// The transit operations whose items are counted per key.
const COUNTED_OPERATIONS: &[&str] = &["encrypt", "decrypt", "rewrap", "datakey", "hmac", "verify"];

/// Every metric the server keeps, in a registry of its own (two servers in one
/// process, as in tests, keep theirs apart).
pub(crate) struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    request_seconds: HistogramVec,
    batch_items: HistogramVec,
    transit_items: IntCounterVec,
    audit_failures: IntCounter,
    lease_revocations: IntCounterVec,
    leases_irrevocable: IntGauge,
    sealed: IntGauge,
    initialized: IntGauge,
    /// Whether transit items are labelled with their key's name.
    key_names: bool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The storage latency histogram, made before the server's registry (storage is
/// opened first) and registered into it.
pub(crate) fn storage_histogram() -> HistogramVec {
    histograms(
        "encrypted_attr_storage_seconds",
        "Time storage took to answer, by operation.",
        LATENCY_BUCKETS,
        &["operation"],
    )
}

/// A labelled histogram. Every definition in this module is fixed and valid, so
/// making one cannot fail.
fn histograms(name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
    let options = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    defined(HistogramVec::new(options, labels))
}

/// A labelled counter (see [`histograms`]).
fn counters(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    defined(IntCounterVec::new(Opts::new(name, help), labels))
}

fn defined<T>(made: prometheus::Result<T>) -> T {
    made.unwrap_or_else(|_| unreachable!("a fixed, valid metric definition"))
}

impl Metrics {
    /// The metrics of a server; `storage_seconds` is its storage's latency
    /// histogram, if it has persistent storage.
    pub(crate) fn new(storage_seconds: Option<HistogramVec>, key_names: bool) -> Self {
        let registry = Registry::new();
        let requests = counters(
            "encrypted_attr_requests_total",
            "Requests answered, by route family and HTTP status.",
            &["family", "status"],
        );
        let request_seconds = histograms(
            "encrypted_attr_request_seconds",
            "Time from a request's arrival to its answer, by route family.",
            LATENCY_BUCKETS,
            &["family"],
        );
        let batch_items = histograms(
            "encrypted_attr_batch_items",
            "Items in each transit batch request, by operation.",
            BATCH_BUCKETS,
            &["operation"],
        );
        let transit_items = counters(
            "encrypted_attr_transit_items_total",
            "Transit items processed in successful requests, by operation and key (empty when key names are left out).",
            &["operation", "key"],
        );
        let audit_failures = defined(IntCounter::new(
            "encrypted_attr_audit_failures_total",
            "Requests refused because no audit device could record them.",
        ));
        let lease_revocations = counters(
            "encrypted_attr_lease_revocations_total",
            "Revocations of expired or revoked leases by the background revoker, by outcome (revoked, failed).",
            &["outcome"],
        );
        let leases_irrevocable = defined(IntGauge::new(
            "encrypted_attr_leases_irrevocable",
            "Leases whose revocation failed too often; retried hourly, or removed with sys/leases/revoke-force.",
        ));
        let sealed = defined(IntGauge::new("encrypted_attr_sealed", "1 while the server is sealed."));
        let initialized = defined(IntGauge::new(
            "encrypted_attr_initialized",
            "1 once the server is initialised.",
        ));
        let storage_seconds = storage_seconds.unwrap_or_else(storage_histogram);
        let collectors: [Box<dyn prometheus::core::Collector>; 10] = [
            Box::new(requests.clone()),
            Box::new(lease_revocations.clone()),
            Box::new(leases_irrevocable.clone()),
            Box::new(request_seconds.clone()),
            Box::new(batch_items.clone()),
            Box::new(transit_items.clone()),
            Box::new(audit_failures.clone()),
            Box::new(sealed.clone()),
            Box::new(initialized.clone()),
            Box::new(storage_seconds),
        ];
        // Each name once, into a registry of its own: cannot fail either.
        for collector in collectors {
            defined(registry.register(collector));
        }
        Self {
            registry,
            requests,
            request_seconds,
            batch_items,
            transit_items,
            audit_failures,
            lease_revocations,
            leases_irrevocable,
            sealed,
            initialized,
            key_names,
        }
    }

    /// Records one answered request.
    pub(crate) fn request(&self, family: &str, status: StatusCode, seconds: f64) {
        self.requests.with_label_values(&[family, status.as_str()]).inc();
        self.request_seconds.with_label_values(&[family]).observe(seconds);
    }

    /// Records a successful transit data request on `key`, of `items` items
    /// (`batch`: sent as `batch_input`).
    pub(crate) fn transit(&self, operation: &str, key: &str, items: usize, batch: bool) {
        let Some(&operation) = COUNTED_OPERATIONS.iter().find(|o| **o == operation) else {
            return;
        };
        let key = if self.key_names { key } else { "" };
        self.transit_items
            .with_label_values(&[operation, key])
            .inc_by(u64::try_from(items).unwrap_or(u64::MAX));
        if batch {
            #[allow(clippy::cast_precision_loss)] // a batch has at most millions of items
            self.batch_items.with_label_values(&[operation]).observe(items as f64);
        }
    }

    /// Drops the series of a deleted key.
    pub(crate) fn forget_key(&self, key: &str) {
        if !self.key_names {
            return;
        }
        for operation in COUNTED_OPERATIONS {
            // A key that never answered has no series: nothing to drop.
            let _ = self.transit_items.remove_label_values(&[operation, key]);
        }
    }

    /// Records a request refused because no audit device recorded it.
    pub(crate) fn audit_failure(&self) {
        self.audit_failures.inc();
    }

    /// Records a round of the background lease revoker: `revoked` and `failed`
    /// revocations, and the irrevocable leases now known.
    pub(crate) fn lease_round(&self, revoked: usize, failed: usize, irrevocable: usize) {
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        if revoked > 0 {
            self.lease_revocations
                .with_label_values(&["revoked"])
                .inc_by(count(revoked));
        }
        if failed > 0 {
            self.lease_revocations
                .with_label_values(&["failed"])
                .inc_by(count(failed));
        }
        self.leases_irrevocable
            .set(i64::try_from(irrevocable).unwrap_or(i64::MAX));
    }

    /// The metrics in Prometheus's text format (version 0.0.4, Vault's format),
    /// with the seal state read now.
    pub(crate) fn prometheus_text(&self, sealed: bool, initialized: bool) -> String {
        self.sealed.set(i64::from(sealed));
        self.initialized.set(i64::from(initialized));
        let mut out = Vec::new();
        // Encoding into memory fails only on a malformed family, which fixed
        // definitions never make; a failure leaves what was written.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The content type of [`Metrics::prometheus_text`], as Vault sends it.
pub(crate) const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_can_be_left_out() {
        let named = Metrics::new(None, true);
        named.transit("encrypt", "customer-email", 3, true);
        named.transit("made-up", "customer-email", 3, false);
        let text = named.prometheus_text(false, true);
        assert!(text.contains("encrypted_attr_transit_items_total{key=\"customer-email\",operation=\"encrypt\"} 3"));
        assert!(text.contains("encrypted_attr_batch_items_count{operation=\"encrypt\"} 1"));
        assert!(!text.contains("made-up"));

        named.forget_key("customer-email");
        assert!(!named.prometheus_text(false, true).contains("customer-email"));

        let anonymous = Metrics::new(None, false);
        anonymous.transit("decrypt", "customer-email", 2, false);
        let text = anonymous.prometheus_text(true, true);
        assert!(!text.contains("customer-email"));
        assert!(text.contains("encrypted_attr_transit_items_total{key=\"\",operation=\"decrypt\"} 2"));
        assert!(text.contains("encrypted_attr_sealed 1"));
    }

    #[test]
    fn requests_are_counted_by_family_and_status() {
        let metrics = Metrics::new(None, true);
        metrics.request("transit/encrypt", StatusCode::OK, 0.001);
        metrics.request("transit/encrypt", StatusCode::OK, 0.002);
        metrics.request("transit/encrypt", StatusCode::BAD_REQUEST, 0.000_1);
        let text = metrics.prometheus_text(false, true);
        assert!(text.contains("encrypted_attr_requests_total{family=\"transit/encrypt\",status=\"200\"} 2"));
        assert!(text.contains("encrypted_attr_requests_total{family=\"transit/encrypt\",status=\"400\"} 1"));
        assert!(text.contains("encrypted_attr_request_seconds_count{family=\"transit/encrypt\"} 3"));
    }
}
