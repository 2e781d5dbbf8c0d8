//! Field codecs: how a Rust value becomes the bytes that get encrypted, and back.
//!
//! Numbers use fixed-width big-endian encodings so a ciphertext's length does not
//! reveal a number's magnitude. Dates are fixed width too. Strings and byte vectors
//! are their bytes; `serde_json::Value` and any serde type (with `json`) are JSON.

use crate::error::{Error, Result};
use crate::secret::SecretBytes;

/// A type that can be stored in an `#[encrypted]` field.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in an encrypted field",
    label = "no field codec for this type",
    note = "supported: String, Vec<u8>, integers, f32, f64, bool, chrono::NaiveDate, chrono::NaiveDateTime, chrono::DateTime<Utc>, uuid::Uuid, serde_json::Value, and Option of each; any serde type with #[encrypted(json)]"
)]
pub trait FieldCodec: Sized {
    /// The bytes to encrypt.
    fn encode_field(&self) -> SecretBytes;

    /// The value back from decrypted bytes.
    ///
    /// # Errors
    /// [`Error::InvalidFieldValue`] when the bytes are not an encoding of `Self`.
    fn decode_field(bytes: &[u8]) -> Result<Self>;

    /// The value back from a decrypted buffer it may take over (saves a copy for
    /// `String` and `Vec<u8>`, whose value lives on in clear in the model anyway).
    ///
    /// # Errors
    /// As [`decode_field`](Self::decode_field).
    fn decode_owned(plaintext: SecretBytes) -> Result<Self> {
        Self::decode_field(plaintext.expose_secret())
    }
}

fn invalid(what: &'static str) -> Error {
    Error::InvalidFieldValue(what)
}

impl FieldCodec for String {
    fn encode_field(&self) -> SecretBytes {
        SecretBytes::copy_from(self.as_bytes())
    }
    fn decode_field(bytes: &[u8]) -> Result<Self> {
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| invalid("decrypted bytes are not UTF-8"))
    }
    fn decode_owned(plaintext: SecretBytes) -> Result<Self> {
        String::from_utf8(plaintext.into_unprotected_vec()).map_err(|e| {
            // Wipe the rejected bytes before dropping them.
            drop(SecretBytes::new(e.into_bytes()));
            invalid("decrypted bytes are not UTF-8")
        })
    }
}

impl FieldCodec for Vec<u8> {
    fn encode_field(&self) -> SecretBytes {
        SecretBytes::copy_from(self)
    }
    fn decode_field(bytes: &[u8]) -> Result<Self> {
        Ok(bytes.to_vec())
    }
    fn decode_owned(plaintext: SecretBytes) -> Result<Self> {
        Ok(plaintext.into_unprotected_vec())
    }
}

macro_rules! fixed_width {
    ($($t:ty),*) => {$(
        impl FieldCodec for $t {
            fn encode_field(&self) -> SecretBytes {
                SecretBytes::copy_from(&self.to_be_bytes())
            }
            fn decode_field(bytes: &[u8]) -> Result<Self> {
                bytes
                    .try_into()
                    .map(<$t>::from_be_bytes)
                    .map_err(|_| invalid(concat!("decrypted bytes have the wrong length for ", stringify!($t))))
            }
        }
    )*};
}

fixed_width!(i8, i16, i32, i64, i128, u8, u16, u32, u64, u128, f32, f64);

impl FieldCodec for isize {
    fn encode_field(&self) -> SecretBytes {
        (*self as i64).encode_field()
    }
    fn decode_field(bytes: &[u8]) -> Result<Self> {
        Self::try_from(i64::decode_field(bytes)?).map_err(|_| invalid("value does not fit isize"))
    }
}

impl FieldCodec for usize {
    fn encode_field(&self) -> SecretBytes {
        (*self as u64).encode_field()
    }
    fn decode_field(bytes: &[u8]) -> Result<Self> {
        Self::try_from(u64::decode_field(bytes)?).map_err(|_| invalid("value does not fit usize"))
    }
}

impl FieldCodec for bool {
    fn encode_field(&self) -> SecretBytes {
        SecretBytes::copy_from(&[u8::from(*self)])
    }
    fn decode_field(bytes: &[u8]) -> Result<Self> {
        match bytes {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(invalid("decrypted bytes are not a bool")),
        }
    }
}

impl FieldCodec for serde_json::Value {
    fn encode_field(&self) -> SecretBytes {
        encode_json(self).unwrap_or_default()
    }
    fn decode_field(bytes: &[u8]) -> Result<Self> {
        decode_json(bytes)
    }
}

/// JSON encoding for `#[encrypted(json)]` fields.
///
/// # Errors
/// [`Error::InvalidFieldValue`] if the value cannot be serialized (e.g. a map with
/// non-string keys).
pub fn encode_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<SecretBytes> {
    serde_json::to_vec(value)
        .map(SecretBytes::new)
        .map_err(|_| invalid("value cannot be serialized to JSON"))
}

/// JSON decoding for `#[encrypted(json)]` fields.
///
/// # Errors
/// [`Error::InvalidFieldValue`] if the bytes are not JSON of the expected shape.
pub fn decode_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|_| invalid("decrypted JSON does not match the field's type"))
}

#[cfg(feature = "uuid")]
impl FieldCodec for uuid::Uuid {
    fn encode_field(&self) -> SecretBytes {
        SecretBytes::copy_from(self.as_bytes())
    }
    fn decode_field(bytes: &[u8]) -> Result<Self> {
        Self::from_slice(bytes).map_err(|_| invalid("decrypted bytes are not a UUID"))
    }
}

#[cfg(feature = "chrono")]
mod chrono_codecs {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

    use super::{FieldCodec, Result, SecretBytes, invalid};

    /// Days since 0001-01-01 (CE), 4 bytes.
    impl FieldCodec for NaiveDate {
        fn encode_field(&self) -> SecretBytes {
            chrono::Datelike::num_days_from_ce(self).encode_field()
        }
        fn decode_field(bytes: &[u8]) -> Result<Self> {
            Self::from_num_days_from_ce_opt(i32::decode_field(bytes)?).ok_or_else(|| invalid("date out of range"))
        }
    }

    fn encode_instant(seconds: i64, nanos: u32) -> SecretBytes {
        let mut bytes = [0u8; 12];
        bytes[..8].copy_from_slice(&seconds.to_be_bytes());
        bytes[8..].copy_from_slice(&nanos.to_be_bytes());
        SecretBytes::copy_from(&bytes)
    }

    fn decode_instant(bytes: &[u8]) -> Result<DateTime<Utc>> {
        let (seconds, nanos) = match bytes.split_at_checked(8) {
            Some((s, n)) if n.len() == 4 => (i64::decode_field(s)?, u32::decode_field(n)?),
            _ => return Err(invalid("decrypted bytes are not a timestamp")),
        };
        DateTime::from_timestamp(seconds, nanos).ok_or_else(|| invalid("timestamp out of range"))
    }

    /// Seconds since the epoch (8 bytes) and nanoseconds (4 bytes), as UTC.
    impl FieldCodec for NaiveDateTime {
        fn encode_field(&self) -> SecretBytes {
            let utc = self.and_utc();
            encode_instant(utc.timestamp(), utc.timestamp_subsec_nanos())
        }
        fn decode_field(bytes: &[u8]) -> Result<Self> {
            decode_instant(bytes).map(|t| t.naive_utc())
        }
    }

    /// Seconds since the epoch (8 bytes) and nanoseconds (4 bytes).
    impl FieldCodec for DateTime<Utc> {
        fn encode_field(&self) -> SecretBytes {
            encode_instant(self.timestamp(), self.timestamp_subsec_nanos())
        }
        fn decode_field(bytes: &[u8]) -> Result<Self> {
            decode_instant(bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: FieldCodec + PartialEq + std::fmt::Debug>(value: T) {
        let bytes = value.encode_field();
        assert_eq!(T::decode_field(bytes.expose_secret()).ok(), Some(value));
    }

    #[test]
    fn codecs_round_trip_and_numbers_are_fixed_width() {
        round_trip(String::from("héllo"));
        round_trip(String::new());
        round_trip(vec![0u8, 255]);
        round_trip(-5i8);
        round_trip(i64::MIN);
        round_trip(u128::MAX);
        round_trip(1.5f64);
        round_trip(f32::NEG_INFINITY);
        round_trip(true);
        round_trip(usize::MAX);
        round_trip(serde_json::json!({"a": [1, 2]}));
        assert_eq!(1i64.encode_field().len(), i64::MAX.encode_field().len());
        assert!(bool::decode_field(&[2]).is_err());
        assert!(i32::decode_field(&[1, 2]).is_err());
        assert!(String::decode_field(&[0xff]).is_err());
    }
}
