//! The binding strings that tie a ciphertext to its table, column and row.
//!
//! Random (non-convergent) fields carry the *row binding* as associated data, so a
//! ciphertext copied to another row, column or table fails to decrypt. Convergent
//! fields carry the *column binding* as key-derivation context: equal values stay
//! equal within the column (that is their purpose) and nothing decrypts elsewhere.
//!
//! Format (stable; admin tools reproduce it from the database): each part is
//! length-prefixed so no choice of names can make two bindings equal.
//!
//! ```text
//! column binding: ea1:<len(table)>:<table>:<len(column)>:<column>
//! row binding:    ea1:<len(table)>:<table>:<len(column)>:<column>:<len(id)>:<id>
//! ```
//!
//! Lengths are decimal byte counts; the id is the row identity's text form (an
//! integer in decimal, a UUID hyphenated lower-case, a string as is). Without an
//! `id`, the row binding is the column binding.
//!
//! Per-tenant fields (`#[encrypted(context = "tenant_id")]`) use a derived key whose
//! context is the *key context*: the column binding followed by the tenant's value.
//! Their blind indexes HMAC the tenant-scoped input, so equal values of different
//! tenants index differently:
//!
//! ```text
//! key context:         ea1:<len(table)>:<table>:<len(column)>:<column>:<len(tenant)>:<tenant>
//! tenant-scoped input: ea1:<len(tenant)>:<tenant>:<input>
//! ```

/// The binding of a column: `ea1:5:users:5:email`.
#[must_use]
pub fn column_binding(table: &str, column: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + table.len() + column.len());
    out.extend_from_slice(b"ea1");
    push_part(&mut out, table);
    push_part(&mut out, column);
    out
}

/// The binding of a value in a row: `ea1:5:users:3:ssn:2:42`.
#[must_use]
pub fn row_binding(table: &str, column: &str, row_id: Option<&str>) -> Vec<u8> {
    let mut out = column_binding(table, column);
    if let Some(id) = row_id {
        push_part(&mut out, id);
    }
    out
}

/// Appends a row binding to `out`, from its column's binding (the same for every
/// row: a load writes it once and copies it).
pub(crate) fn write_row_binding(out: &mut Vec<u8>, column_binding: &[u8], row_id: Option<&str>) {
    out.extend_from_slice(column_binding);
    if let Some(id) = row_id {
        push_part(out, id);
    }
}

/// The key-derivation context of a field: its column binding, plus the tenant's
/// value for a per-tenant field.
#[must_use]
pub fn key_context(table: &str, column: &str, tenant: Option<&str>) -> Vec<u8> {
    row_binding(table, column, tenant)
}

/// The blind-index input of a per-tenant field: the tenant's value, then the
/// (normalised) value; without a tenant, the input as is.
#[must_use]
pub fn tenant_scoped(tenant: Option<&str>, input: &[u8]) -> crate::SecretBytes {
    let Some(tenant) = tenant else {
        return crate::SecretBytes::from(input);
    };
    let mut out = Vec::with_capacity(28 + tenant.len() + input.len());
    out.extend_from_slice(b"ea1");
    push_part(&mut out, tenant);
    out.push(b':');
    out.extend_from_slice(input);
    crate::SecretBytes::new(out)
}

/// Appends `:<decimal length>:<part>` (hand-written: this runs once per value).
fn push_part(out: &mut Vec<u8>, part: &str) {
    out.push(b':');
    let mut digits = [0u8; 20];
    let mut n = part.len();
    let mut i = digits.len();
    loop {
        i -= 1;
        // `n % 10` is a single digit.
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.push(b':');
    out.extend_from_slice(part.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_are_unambiguous() {
        assert_eq!(column_binding("users", "email"), b"ea1:5:users:5:email");
        assert_eq!(row_binding("users", "ssn", Some("42")), b"ea1:5:users:3:ssn:2:42");
        assert_eq!(row_binding("users", "ssn", None), column_binding("users", "ssn"));
        assert_ne!(column_binding("a:1", "b"), column_binding("a", "1:b"));
        let long = "x".repeat(1234);
        assert_eq!(
            row_binding("t", "c", Some(&long)),
            format!("ea1:1:t:1:c:1234:{long}").into_bytes()
        );
        assert_eq!(row_binding("t", "c", Some("")), b"ea1:1:t:1:c:0:");
        assert_eq!(
            key_context("users", "email", Some("acme")),
            b"ea1:5:users:5:email:4:acme"
        );
        assert_eq!(key_context("users", "email", None), column_binding("users", "email"));
        assert_eq!(tenant_scoped(Some("7"), b"555").expose_secret(), b"ea1:1:7:555");
        assert_eq!(tenant_scoped(None, b"555").expose_secret(), b"555");
    }
}
