//! The lease manager against a revoker that records what it is asked (and can
//! be told to fail), over memory storage and, for two servers, PostgreSQL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use encrypted_attr::storage::Barrier;
use serde_json::json;

use super::schedule::REVOCATIONS_PER_TICK;
use super::*;
use crate::stores::tokens::{NewTokenRequest, TokenEntry, TokenLimits, TokenStore};

/// Records revocations and renewals; refuses revocations while `failing`.
#[derive(Default)]
struct Recorder {
    revoked: Mutex<Vec<String>>,
    renewed: Mutex<Vec<(String, u64)>>,
    failing: AtomicBool,
}

impl Revoker for Recorder {
    fn revoke(&self, lease: &LeaseRecord) -> Result<(), String> {
        if self.failing.load(Ordering::SeqCst) {
            return Err("connection refused by the database".into());
        }
        self.revoked.lock().expect("lock").push(lease.id.clone());
        Ok(())
    }
    fn renew(&self, lease: &LeaseRecord, ttl: Duration) -> Result<(), String> {
        self.renewed
            .lock()
            .expect("lock")
            .push((lease.id.clone(), ttl.as_secs()));
        Ok(())
    }
}

impl Recorder {
    fn revoked(&self) -> Vec<String> {
        self.revoked.lock().expect("lock").clone()
    }
}

fn secret(ttl: u64, max_ttl: u64, renewable: bool) -> SecretLease {
    SecretLease {
        ttl: Duration::from_secs(ttl),
        max_ttl: Duration::from_secs(max_ttl),
        renewable,
        internal: json!({ "username": "app-1" }),
    }
}

fn issue(leases: &Leases, holder: &str, lease: &SecretLease, now: SystemTime) -> String {
    let record = Leases::record_for("db/creds/app", "db", holder, lease, now).expect("record");
    leases.store(&record).expect("stored").id
}

struct World {
    barrier: Arc<Barrier>,
    tokens: TokenStore,
    leases: Leases,
    revoker: Recorder,
}

fn world() -> World {
    let barrier = crate::stores::memory_barrier().expect("barrier");
    World {
        tokens: TokenStore::open(barrier.clone()).expect("tokens"),
        leases: Leases::open(barrier.clone()),
        barrier,
        revoker: Recorder::default(),
    }
}

/// A token, a child of `parent`'s if given, and its entry.
fn token(tokens: &TokenStore, parent: Option<&TokenEntry>) -> (String, TokenEntry) {
    let id = format!("hvs.{}", crate::stores::tokens::random_base62(24));
    let made = tokens
        .create(NewTokenRequest {
            policies: vec!["default".into()],
            ttl: Some(Duration::from_secs(3600)),
            renewable: true,
            id: Some(&id),
            parent,
            path: "auth/token/create",
            max_ttl: None,
            limits: TokenLimits::default(),
        })
        .expect("token");
    (id, made.entry)
}

fn at(base: SystemTime, secs: u64) -> SystemTime {
    base + Duration::from_secs(secs)
}

#[test]
fn a_lease_expires_and_its_secret_is_revoked_by_the_round_once() {
    let w = world();
    let now = SystemTime::now();
    let (_, entry) = token(&w.tokens, None);
    let id = issue(&w.leases, &entry.holder(), &secret(60, 300, true), now);
    assert!(
        id.starts_with("db/creds/app/") && id.len() == "db/creds/app/".len() + 24,
        "{id}"
    );
    let record = w.leases.lookup(&id).expect("reads").expect("stored");
    assert_eq!(record.ttl_secs, 60);
    assert_eq!(record.holder, entry.holder());
    // Not yet due.
    let round = w.leases.tick(&w.revoker, &w.tokens, at(now, 59));
    assert_eq!(round.revoked, 0);
    assert!(w.leases.lookup(&id).expect("reads").is_some());
    // Due.
    let round = w.leases.tick(&w.revoker, &w.tokens, at(now, 61));
    assert_eq!(round.revoked, 1);
    assert_eq!(w.revoker.revoked(), std::slice::from_ref(&id));
    assert!(w.leases.lookup(&id).expect("reads").is_none());
    w.leases.tick(&w.revoker, &w.tokens, at(now, 120));
    assert_eq!(w.revoker.revoked().len(), 1, "revoked once");
}

#[test]
fn renewals_are_capped_by_the_maximum_from_issue_with_vaults_warning() {
    let w = world();
    let now = SystemTime::now();
    let (_, entry) = token(&w.tokens, None);
    let id = issue(&w.leases, &entry.holder(), &secret(60, 300, true), now);
    let renewed = w
        .leases
        .renew(&id, Duration::from_secs(120), &w.revoker, at(now, 10))
        .expect("renews");
    assert_eq!(renewed.grant.duration, 120);
    assert!(renewed.warnings.is_empty());
    // 280 s left of the 300 s maximum when asking for an hour.
    let capped = w
        .leases
        .renew(&id, Duration::from_secs(3600), &w.revoker, at(now, 20))
        .expect("renews");
    assert_eq!(capped.grant.duration, 280);
    assert_eq!(
        capped.warnings,
        ["TTL of \"1h\" exceeded the effective max_ttl of \"4m40s\"; TTL value is capped accordingly"]
    );
    // No increment: the lease's own TTL.
    let again = w
        .leases
        .renew(&id, Duration::ZERO, &w.revoker, at(now, 30))
        .expect("renews");
    assert_eq!(again.grant.duration, 60);
    let record = w.leases.lookup(&id).expect("reads").expect("stored");
    assert_eq!(record.expires_ms, millis(at(now, 90)));
    assert_eq!(record.last_renewal_ms, Some(millis(at(now, 30))));
    // The engine was asked each time, with what was granted.
    let asked: Vec<u64> = w
        .revoker
        .renewed
        .lock()
        .expect("lock")
        .iter()
        .map(|(_, ttl)| *ttl)
        .collect();
    assert_eq!(asked, [120, 280, 60]);
    // The renewal moved the expiry: not revoked at the first expiry.
    assert_eq!(w.leases.tick(&w.revoker, &w.tokens, at(now, 61)).revoked, 0);
    assert_eq!(w.leases.tick(&w.revoker, &w.tokens, at(now, 91)).revoked, 1);
    // Past the maximum, expired, unknown, not renewable: Vault's refusals.
    let refused = |id: &str, when: u64| match w.leases.renew(id, Duration::ZERO, &w.revoker, at(now, when)) {
        Err(LeaseError::Invalid(message)) => message,
        other => panic!("{other:?}"),
    };
    assert_eq!(refused(&id, 100), "lease not found");
    let fixed = issue(&w.leases, "holder", &secret(60, 300, false), now);
    assert_eq!(refused(&fixed, 10), "lease is not renewable");
    assert_eq!(refused(&fixed, 61), "lease expired");
    assert_eq!(refused("db/creds/app/nope", 10), "lease not found");
    assert_eq!(refused("../x", 10), "lease not found");
}

#[test]
fn a_maximum_beyond_the_systems_is_capped_at_it() {
    let w = world();
    let now = SystemTime::now();
    let id = issue(&w.leases, "holder", &secret(u64::MAX / 2, u64::MAX / 2, true), now);
    let record = w.leases.lookup(&id).expect("reads").expect("stored");
    assert_eq!(record.max_ttl_secs, SYSTEM_MAX_TTL.as_secs());
    assert_eq!(record.ttl_secs, SYSTEM_MAX_TTL.as_secs());
}

#[test]
fn revoke_prefix_takes_the_leases_below_whole_segments_only() {
    let w = world();
    let now = SystemTime::now();
    let mut ids = Vec::new();
    for path in ["db/creds/app", "db/creds/app", "db/creds/other", "db2/creds/app"] {
        let record = Leases::record_for(
            path,
            path.split('/').next().unwrap_or_default(),
            "h",
            &secret(60, 300, true),
            now,
        )
        .expect("record");
        ids.push(w.leases.store(&record).expect("stored").id);
    }
    assert_eq!(w.leases.list("db/creds").expect("lists"), ["app/", "other/"]);
    assert_eq!(w.leases.list("").expect("lists"), ["db/", "db2/"]);
    w.leases
        .revoke_prefix("db/creds/app", true, false, &w.revoker, now)
        .expect("revokes");
    let mut revoked = w.revoker.revoked();
    revoked.sort();
    let mut expected = vec![ids[0].clone(), ids[1].clone()];
    expected.sort();
    assert_eq!(revoked, expected);
    // `db` is a segment: `db2/` stays.
    w.leases
        .revoke_prefix("db", true, false, &w.revoker, now)
        .expect("revokes");
    assert_eq!(w.revoker.revoked().len(), 3);
    assert!(w.leases.lookup(&ids[3]).expect("reads").is_some());
    // A lease id as the prefix revokes that lease.
    w.leases
        .revoke_prefix(&ids[3], true, false, &w.revoker, now)
        .expect("revokes");
    assert_eq!(w.revoker.revoked().len(), 4);
    // Without `sync`, marked expired for the round.
    let later = issue(&w.leases, "h", &secret(600, 600, true), now);
    w.leases
        .revoke_prefix("db/", false, false, &w.revoker, now)
        .expect("marks");
    assert!(w.leases.lookup(&later).expect("reads").is_some());
    assert_eq!(w.leases.tick(&w.revoker, &w.tokens, at(now, 1)).revoked, 1);
    assert!(w.leases.lookup(&later).expect("reads").is_none());
}

#[test]
fn revoking_a_token_revokes_its_leases_and_its_childrens() {
    let w = world();
    let now = SystemTime::now();
    let (parent, parent_entry) = token(&w.tokens, None);
    let (_, child_entry) = token(&w.tokens, Some(&parent_entry));
    let (_, other_entry) = token(&w.tokens, None);
    let of_parent = issue(&w.leases, &parent_entry.holder(), &secret(600, 600, true), now);
    let of_child = issue(&w.leases, &child_entry.holder(), &secret(600, 600, true), now);
    let of_other = issue(&w.leases, &other_entry.holder(), &secret(600, 600, true), now);
    assert!(w.tokens.revoke(&parent).expect("revokes"));
    let round = w.leases.tick(&w.revoker, &w.tokens, at(now, 1));
    assert_eq!(round.revoked, 2);
    let mut revoked = w.revoker.revoked();
    revoked.sort();
    let mut expected = vec![of_parent, of_child];
    expected.sort();
    assert_eq!(revoked, expected);
    assert!(w.leases.lookup(&of_other).expect("reads").is_some());
}

#[test]
fn a_token_gone_without_this_server_seeing_it_is_found_by_the_sweep() {
    let w = world();
    let now = SystemTime::now();
    let (token_id, entry) = token(&w.tokens, None);
    let id = issue(&w.leases, &entry.holder(), &secret(600, 600, true), now);
    // Revoked by "another server": this store's notice is dropped.
    w.tokens.revoke(&token_id).expect("revokes");
    w.tokens.take_revoked();
    let round = w.leases.tick(&w.revoker, &w.tokens, at(now, 1));
    assert_eq!(round.revoked, 1, "the first round sweeps the holders");
    assert_eq!(w.revoker.revoked(), [id]);
}

#[test]
fn after_a_restart_overdue_leases_are_revoked_at_a_bounded_pace() {
    let w = world();
    let now = SystemTime::now();
    let total = REVOCATIONS_PER_TICK * 2 + 7;
    for _ in 0..total {
        issue(&w.leases, "h", &secret(60, 60, true), now);
    }
    // A new server over the same storage (a restart): it has read nothing yet.
    let restarted = Leases::open(w.barrier.clone());
    let revoker = Recorder::default();
    let later = at(now, 3600);
    let mut rounds = Vec::new();
    while revoker.revoked().len() < total && rounds.len() < 10 {
        rounds.push(restarted.tick(&revoker, &w.tokens, later).revoked);
    }
    assert_eq!(rounds, [REVOCATIONS_PER_TICK, REVOCATIONS_PER_TICK, 7]);
    assert_eq!(restarted.list("").expect("lists"), Vec::<String>::new());
}

#[test]
fn a_revocation_that_keeps_failing_backs_off_then_is_marked_irrevocable() {
    let w = world();
    let now = SystemTime::now();
    // Its token is gone too: that does not hasten the retries.
    let id = issue(&w.leases, "a-token-long-gone", &secret(60, 60, true), now);
    w.revoker.failing.store(true, Ordering::SeqCst);
    let mut when = at(now, 60);
    let mut attempts_at = Vec::new();
    // Ten minutes of rounds, one a second.
    for _ in 0..600 {
        let round = w.leases.tick(&w.revoker, &w.tokens, when);
        if round.failed > 0 {
            attempts_at.push(when.duration_since(now).expect("later").as_secs());
        }
        when += Duration::from_secs(1);
    }
    // Six attempts, each after a doubling wait (5 s, 10 s, … with a little
    // jitter), then none for an hour: no retry storm.
    assert_eq!(attempts_at.len(), MAX_REVOCATION_ATTEMPTS as usize, "{attempts_at:?}");
    let gaps: Vec<u64> = attempts_at.windows(2).map(|w| w[1] - w[0]).collect();
    for (gap, expected) in gaps.iter().zip([5, 10, 20, 40, 80]) {
        assert!((expected..=expected + expected / 10 + 1).contains(gap), "{gaps:?}");
    }
    let record = w.leases.lookup(&id).expect("reads").expect("kept");
    assert!(record.revocation.is_irrevocable());
    assert_eq!(record.revocation.attempts, MAX_REVOCATION_ATTEMPTS);
    assert_eq!(
        record.revocation.last_error.as_deref(),
        Some("connection refused by the database")
    );
    assert!(record.revocation.claimed_until_ms.is_none());
    assert_eq!(w.leases.irrevocable(), 1);
    // Renewing it is refused as Vault refuses it.
    assert!(matches!(
        w.leases.renew(&id, Duration::ZERO, &w.revoker, when),
        Err(LeaseError::Invalid(m)) if m == "lease is expired and has failed previous revocation attempts"
    ));
    // The hourly retry, once the database is back, revokes it.
    w.revoker.failing.store(false, Ordering::SeqCst);
    let hour_later = at(
        now,
        attempts_at[attempts_at.len() - 1] + IRREVOCABLE_RETRY.as_secs() + 400,
    );
    assert_eq!(w.leases.tick(&w.revoker, &w.tokens, hour_later).revoked, 1);
    assert_eq!(w.leases.irrevocable(), 0);
    // A forced revocation deletes a lease whose engine keeps failing.
    let stuck = issue(&w.leases, "h", &secret(60, 60, true), now);
    w.revoker.failing.store(true, Ordering::SeqCst);
    assert!(matches!(
        w.leases.revoke(&stuck, &w.revoker, now),
        Err(LeaseError::Engine(m)) if m == "connection refused by the database"
    ));
    w.leases
        .revoke_prefix("db/creds", true, true, &w.revoker, now)
        .expect("forced");
    assert!(w.leases.lookup(&stuck).expect("reads").is_none());
}

#[test]
fn tidy_deletes_damaged_records_and_expires_the_leases_of_gone_tokens() {
    let w = world();
    let now = SystemTime::now();
    let (token_id, entry) = token(&w.tokens, None);
    let orphaned = issue(&w.leases, &entry.holder(), &secret(600, 600, true), now);
    w.tokens.revoke(&token_id).expect("revokes");
    w.barrier
        .update("sys/expire/id/db/creds/app/damaged", &mut |_| {
            Ok(encrypted_attr::storage::Update::Put(b"not json".to_vec()))
        })
        .expect("written");
    assert_eq!(w.leases.tidy(&w.tokens, now).expect("tidies"), (1, 1));
    assert!(
        w.barrier
            .get("sys/expire/id/db/creds/app/damaged")
            .expect("reads")
            .is_none()
    );
    let record = w.leases.lookup(&orphaned).expect("reads").expect("kept until revoked");
    assert_eq!(record.expires_ms, millis(now));
}

/// Two servers over one storage, each running its rounds on its own thread:
/// every lease is revoked exactly once.
fn two_servers_revoke_each_lease_once(barrier: &Arc<Barrier>) {
    let tokens = TokenStore::open(barrier.clone()).expect("tokens");
    let now = SystemTime::now();
    let first = Leases::open(barrier.clone());
    let ids: Vec<String> = (0..40)
        .map(|_| issue(&first, "h", &secret(60, 60, true), now))
        .collect();
    let second = Leases::open(barrier.clone());
    let revokers = [Recorder::default(), Recorder::default()];
    let later = at(now, 120);
    std::thread::scope(|scope| {
        for (leases, revoker) in [&first, &second].into_iter().zip(&revokers) {
            let tokens = &tokens;
            scope.spawn(move || {
                for _ in 0..6 {
                    leases.tick(revoker, tokens, later);
                }
            });
        }
    });
    let mut counts: HashMap<String, usize> = HashMap::new();
    for id in revokers.iter().flat_map(Recorder::revoked) {
        *counts.entry(id).or_default() += 1;
    }
    for id in &ids {
        assert_eq!(counts.get(id), Some(&1), "{id} revoked once: {counts:?}");
        assert!(first.lookup(id).expect("reads").is_none());
    }
}

#[test]
fn two_servers_on_one_memory_storage_revoke_each_lease_once() {
    two_servers_revoke_each_lease_once(&crate::stores::memory_barrier().expect("barrier"));
}

#[test]
fn two_servers_on_one_postgresql_revoke_each_lease_once() {
    let Ok(url) = std::env::var("ENCRYPTED_ATTR_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI sets ENCRYPTED_ATTR_TEST_POSTGRES_URL: this test must run there"
        );
        eprintln!("ENCRYPTED_ATTR_TEST_POSTGRES_URL unset: skipped");
        return;
    };
    // A table of its own: a fresh database per run.
    let database = format!("ea_leases_{}", crate::stores::tokens::random_base62(10).to_lowercase());
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("connects");
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .expect("database made");
    let own_url = match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => panic!("a URL with a database: {url}"),
    };
    {
        let storage = Arc::new(crate::pg_storage::PostgresStorage::connect(&own_url).expect("storage"));
        let root = encrypted_attr::RootKey::generate().expect("random");
        let barrier = Arc::new(Barrier::open(storage, &root).expect("barrier"));
        two_servers_revoke_each_lease_once(&barrier);
    }
    let _ = admin.batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"));
}

/// Revokes through `inner`, and on its first revocation asks the manager to
/// revoke the same lease again meanwhile (a request racing the round on one
/// server), keeping what that second revocation answered.
struct Racing<'a> {
    leases: &'a Leases,
    inner: Recorder,
    raced: Mutex<Option<Revoked>>,
}

impl Revoker for Racing<'_> {
    fn revoke(&self, lease: &LeaseRecord) -> Result<(), String> {
        let first = self.raced.lock().expect("lock").is_none();
        if first {
            let again = self
                .leases
                .revoke(&lease.id, &self.inner, SystemTime::now())
                .expect("answers");
            *self.raced.lock().expect("lock") = Some(again);
        }
        self.inner.revoke(lease)
    }
    fn renew(&self, lease: &LeaseRecord, ttl: Duration) -> Result<(), String> {
        self.inner.renew(lease, ttl)
    }
}

#[test]
fn a_revocation_under_way_on_this_server_is_not_started_twice() {
    let w = world();
    let now = SystemTime::now();
    let (_, entry) = token(&w.tokens, None);
    let id = issue(&w.leases, &entry.holder(), &secret(60, 60, true), now);
    let racing = Racing {
        leases: &w.leases,
        inner: Recorder::default(),
        raced: Mutex::new(None),
    };
    assert_eq!(w.leases.revoke(&id, &racing, now).expect("revokes"), Revoked::Done);
    assert_eq!(*racing.raced.lock().expect("lock"), Some(Revoked::UnderWay));
    assert_eq!(racing.inner.revoked(), std::slice::from_ref(&id), "revoked once");
}
