//! The text form of a row's id, written into a reused buffer on every load: integer
//! ids (the common case) without the formatting machinery, any other id through
//! `Display`. Both give the same text, which is part of every row binding.
//!
//! The derive picks the writer by method resolution on a concrete type ("autoref
//! dispatch"): `RowId(&id).write_row_id_text(out)` finds [`IntegerRowId`] for an
//! integer, and falls back to [`DisplayRowId`] (one reference further) otherwise.

use std::fmt::Display;

/// A row id on its way into a binding.
pub struct RowId<'a, T: ?Sized>(pub &'a T);

/// Integers, written with `itoa` (a fraction of `Display`'s cost, same text).
pub trait IntegerRowId {
    /// Appends the id's decimal text to `out`.
    fn write_row_id_text(&self, out: &mut String);
}

/// Every other id, through `Display`.
pub trait DisplayRowId {
    /// Appends the id's `Display` text to `out`.
    fn write_row_id_text(&self, out: &mut String);
}

macro_rules! integer_row_ids {
    ($($t:ty),*) => {$(
        impl IntegerRowId for RowId<'_, $t> {
            fn write_row_id_text(&self, out: &mut String) {
                out.push_str(itoa::Buffer::new().format(*self.0));
            }
        }
    )*};
}

integer_row_ids!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

impl<T: Display + ?Sized> DisplayRowId for &RowId<'_, T> {
    fn write_row_id_text(&self, out: &mut String) {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(out, "{}", self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(
        clippy::needless_borrow,
        reason = "the extra reference is how the derive picks the writer; the same call for every type"
    )]
    fn integers_and_other_ids_give_their_display_text() {
        fn check<T: Display>(id: T, written: impl FnOnce(&mut String)) {
            let mut out = String::from("stale");
            out.clear();
            written(&mut out);
            assert_eq!(out, id.to_string());
        }
        for id in [0i64, 7, -1, i64::MIN, i64::MAX, 1_000_000] {
            check(id, |out| (&RowId(&id)).write_row_id_text(out));
        }
        check(u128::MAX, |out| (&RowId(&u128::MAX)).write_row_id_text(out));
        check(i8::MIN, |out| (&RowId(&i8::MIN)).write_row_id_text(out));
        check(usize::MAX, |out| (&RowId(&usize::MAX)).write_row_id_text(out));
        let text = String::from("user-007");
        check(&text, |out| (&RowId(&text)).write_row_id_text(out));
        check("x", |out| (&RowId("x")).write_row_id_text(out));
    }
}
