//! Per-thread buffers reused from value to value on the hot paths (encoding an
//! envelope, decoding one before it is opened): bytes that do not outlive the call
//! cost no allocation per value.

use std::cell::RefCell;
use std::thread::LocalKey;

/// A buffer larger than this after a call is not kept for the thread's next value.
const MAX_KEPT: usize = 64 * 1024;

/// A buffer a thread can keep between calls.
pub(crate) trait Scratch: Default {
    fn capacity(&self) -> usize;
}

impl Scratch for Vec<u8> {
    fn capacity(&self) -> usize {
        Vec::capacity(self)
    }
}

impl Scratch for String {
    fn capacity(&self) -> usize {
        String::capacity(self)
    }
}

/// Runs `f` on this thread's buffer `key`. A thread being torn down (a thread-local's
/// destructor encrypting or decrypting) has no buffer any more: it gets one of its own.
pub(crate) fn with<B: Scratch + 'static, R>(key: &'static LocalKey<RefCell<B>>, mut f: impl FnMut(&mut B) -> R) -> R {
    key.try_with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        let result = f(&mut buffer);
        if buffer.capacity() > MAX_KEPT {
            *buffer = B::default();
        }
        result
    })
    .unwrap_or_else(|_| f(&mut B::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }

    #[test]
    fn small_buffers_are_kept_and_large_ones_let_go() {
        with(&BUFFER, |b| b.extend_from_slice(&[1; 100]));
        assert!(BUFFER.with_borrow(|b| b.capacity() >= 100));
        with(&BUFFER, |b| b.resize(MAX_KEPT + 1, 0));
        assert_eq!(BUFFER.with_borrow(Vec::capacity), 0);
    }
}
