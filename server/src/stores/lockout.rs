//! Failed logins per user, and the lockout they lead to, with Vault's defaults
//! (1.13+): 5 failed logins, counted over 15 minutes, lock the user out for 15
//! minutes; a successful login clears the count. Kept in each server's memory.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failed logins that lock a user out.
pub(crate) const LOCKOUT_THRESHOLD: u32 = 5;
/// How long a lockout lasts.
pub(crate) const LOCKOUT_DURATION: Duration = Duration::from_secs(15 * 60);
/// How long failures are counted before the count starts again.
pub(crate) const COUNTER_RESET: Duration = Duration::from_secs(15 * 60);
/// Users tracked at once (about 120 bytes each). Every attempt costs a password
/// hash, so filling this within the 15 minutes a count lives takes over 100
/// attempts a second, sustained.
const MAX_TRACKED: usize = 100_000;
/// How often a full table is swept for entries that no longer count.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

struct Failures {
    count: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

impl Failures {
    /// Whether this entry still counts anything: a lockout running, or failures
    /// within the counting window.
    fn live(&self, now: Instant) -> bool {
        self.locked_until.is_some_and(|until| now < until) || now.duration_since(self.first) < COUNTER_RESET
    }
}

/// Failed logins by `<mount accessor>/<user>`.
pub(crate) struct Lockouts {
    table: Mutex<Table>,
    /// Users tracked at most ([`MAX_TRACKED`]; smaller in tests).
    max_tracked: usize,
}

#[derive(Default)]
struct Table {
    users: HashMap<String, Failures>,
    /// When a full table was last swept (a sweep walks every entry).
    last_sweep: Option<Instant>,
}

impl Default for Lockouts {
    fn default() -> Self {
        Self::with_room_for(MAX_TRACKED)
    }
}

impl Lockouts {
    fn with_room_for(max_tracked: usize) -> Self {
        Self {
            table: Mutex::default(),
            max_tracked,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a login attempt for `user`: `false` if the user is locked out.
    /// The attempt counts as a failure from this moment (a success clears the
    /// count again), so guesses sent in parallel cannot all slip in before the
    /// lockout; the attempt that reaches the threshold is still checked.
    ///
    /// When the table is full of entries that still count, a user not in it is
    /// refused (as if locked out) rather than tracked by dropping someone else's
    /// count: any rule for choosing whom to drop can be steered by whoever sends
    /// the logins that fill the table, and dropping a count or a lockout lets a
    /// guesser start again. Fail closed: a flood delays logins of users it did not
    /// reach, it never resets the count of one it did.
    pub(crate) fn attempt(&self, user: &str) -> bool {
        let now = Instant::now();
        let mut table = self.table();
        if table.users.len() >= self.max_tracked && !table.users.contains_key(user) {
            // Swept at most once a second: a sweep walks every entry, and refused
            // attempts cost no password hash. The warning goes with the sweep, so a
            // flood of refused logins is not also a flood of log lines.
            if table
                .last_sweep
                .is_none_or(|at| now.duration_since(at) >= SWEEP_INTERVAL)
            {
                table.users.retain(|_, f| f.live(now));
                table.last_sweep = Some(now);
                if table.users.len() >= self.max_tracked {
                    tracing::warn!(
                        tracked = table.users.len(),
                        "the login failure table is full; logins of users not in it are refused until entries expire"
                    );
                }
            }
            if table.users.len() >= self.max_tracked {
                return false;
            }
        }
        let failures = table.users.entry(user.to_owned()).or_insert(Failures {
            count: 0,
            first: now,
            locked_until: None,
        });
        if failures.locked_until.is_some_and(|until| now < until) {
            return false;
        }
        let lock_over = failures.locked_until.is_some();
        if lock_over || now.duration_since(failures.first) >= COUNTER_RESET {
            *failures = Failures {
                count: 0,
                first: now,
                locked_until: None,
            };
        }
        failures.count += 1;
        if failures.count >= LOCKOUT_THRESHOLD {
            failures.locked_until = Some(now + LOCKOUT_DURATION);
        }
        true
    }

    /// A successful login: the count starts again.
    pub(crate) fn succeeded(&self, user: &str) {
        self.table().users.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_attempt_locks_and_a_success_clears_the_count() {
        let logins = Lockouts::default();
        for _ in 0..LOCKOUT_THRESHOLD - 1 {
            assert!(logins.attempt("m/alice"));
        }
        logins.succeeded("m/alice");
        for _ in 0..LOCKOUT_THRESHOLD - 1 {
            assert!(logins.attempt("m/alice"), "the count started again after a success");
        }
        assert!(logins.attempt("m/alice"), "the fifth attempt is still checked");
        assert!(!logins.attempt("m/alice"), "then the user is locked out");
        assert!(logins.attempt("m/bob"), "per user");
    }

    #[test]
    fn a_flood_of_made_up_users_does_not_evict_a_real_users_count() {
        let logins = Lockouts::with_room_for(100);
        for _ in 0..LOCKOUT_THRESHOLD - 1 {
            assert!(logins.attempt("m/alice"));
        }
        // Enough made-up names to fill the table ten times over.
        for i in 0..1_000 {
            logins.attempt(&format!("m/made-up-{i}"));
        }
        assert!(logins.table().users.len() <= 100, "memory stays bounded");
        assert!(!logins.attempt("m/someone-new"), "a full table refuses new names");
        assert!(logins.attempt("m/alice"), "the fifth attempt is still checked");
        assert!(!logins.attempt("m/alice"), "alice's four earlier failures still count");
    }

    #[test]
    fn a_table_full_of_lockouts_neither_grows_nor_lifts_one() {
        let logins = Lockouts::with_room_for(100);
        for _ in 0..LOCKOUT_THRESHOLD {
            logins.attempt("m/alice");
        }
        assert!(!logins.attempt("m/alice"), "alice is locked out");
        // A guesser locks made-up names until the table is full, hoping that
        // making room drops alice's lockout or, later, her count.
        for i in 0..150 {
            for _ in 0..LOCKOUT_THRESHOLD {
                logins.attempt(&format!("m/locked-{i}"));
            }
        }
        assert!(logins.table().users.len() <= 100);
        assert!(!logins.attempt("m/alice"), "alice's lockout holds");
    }

    #[test]
    fn a_full_table_with_one_unlocked_user_keeps_that_users_count() {
        // The steering the eviction rule allowed: every other entry locked, so a
        // rule that drops "the least important" entry would always drop alice's.
        let logins = Lockouts::with_room_for(100);
        for i in 0..99 {
            for _ in 0..LOCKOUT_THRESHOLD {
                logins.attempt(&format!("m/locked-{i}"));
            }
        }
        let mut checked = 0;
        for round in 0..20 {
            for _ in 0..LOCKOUT_THRESHOLD - 1 {
                if logins.attempt("m/alice") {
                    checked += 1;
                }
            }
            logins.attempt(&format!("m/new-{round}"));
        }
        assert!(checked <= LOCKOUT_THRESHOLD, "{checked} passwords checked for alice");
    }
}
