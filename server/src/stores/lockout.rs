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
/// Users tracked at once: past this, entries no longer counting anything go first.
const MAX_TRACKED: usize = 10_000;

struct Failures {
    count: u32,
    first: Instant,
    locked_until: Option<Instant>,
}

/// Failed logins by `<mount accessor>/<user>`.
pub(crate) struct Lockouts {
    users: Mutex<HashMap<String, Failures>>,
    /// Users tracked at most ([`MAX_TRACKED`]; smaller in tests).
    max_tracked: usize,
}

impl Default for Lockouts {
    fn default() -> Self {
        Self::with_room_for(MAX_TRACKED)
    }
}

impl Lockouts {
    fn with_room_for(max_tracked: usize) -> Self {
        Self {
            users: Mutex::default(),
            max_tracked,
        }
    }

    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<String, Failures>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a login attempt for `user`: `false` if the user is locked out.
    /// The attempt counts as a failure from this moment (a success clears the
    /// count again), so guesses sent in parallel cannot all slip in before the
    /// lockout; the attempt that reaches the threshold is still checked.
    pub(crate) fn attempt(&self, user: &str) -> bool {
        let now = Instant::now();
        let mut users = self.users();
        if users.len() >= self.max_tracked && !users.contains_key(user) {
            make_room(&mut users, now, self.max_tracked);
        }
        let failures = users.entry(user.to_owned()).or_insert(Failures {
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
        self.users().remove(user);
    }
}

/// Makes room for one more user in a full table. Entries that no longer count
/// anything go first. If every entry still counts, the one that matters least
/// goes: the fewest failures and, among those, the newest — so a flood of made-up
/// user names evicts its own entries, never an older, higher count (the count a
/// guesser of a real user's password has built up), and never a lockout while
/// anything else can go. Memory stays bounded either way.
fn make_room(users: &mut HashMap<String, Failures>, now: Instant, max_tracked: usize) {
    users.retain(|_, f| f.locked_until.is_some_and(|until| now < until) || now.duration_since(f.first) < COUNTER_RESET);
    if users.len() < max_tracked {
        return;
    }
    // Least worth keeping first: not locked before locked, fewer failures, newer,
    // and among lockouts the one ending soonest.
    let victim = users
        .iter()
        .min_by_key(|(_, f)| {
            (
                f.locked_until.is_some(),
                f.locked_until,
                f.count,
                std::cmp::Reverse(f.first),
            )
        })
        .map(|(name, _)| name.clone());
    if let Some(name) = victim {
        users.remove(&name);
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
        assert!(logins.users().len() <= 100, "memory stays bounded");
        assert!(logins.attempt("m/alice"), "the fifth attempt is still checked");
        assert!(!logins.attempt("m/alice"), "alice's four earlier failures still count");
    }

    #[test]
    fn a_table_full_of_lockouts_stays_bounded() {
        let logins = Lockouts::with_room_for(100);
        for i in 0..150 {
            for _ in 0..LOCKOUT_THRESHOLD {
                logins.attempt(&format!("m/locked-{i}"));
            }
        }
        assert!(logins.users().len() <= 100);
    }
}
