//! The model field a `migrate` fills: how to read its plaintext column on each
//! database, and the bytes the derive's codec makes of the value, so that migrated
//! rows load through `#[derive(Encrypted)]` as if the application had written them.

use clap::ValueEnum;
use encrypted_attr::{FieldCodec, SecretBytes};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::table::Dialect;

/// The Rust type of the model's field (not the column's SQL type: a `SMALLINT`
/// column may feed an `i32` field, and the bytes follow the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FieldType {
    /// `String`.
    String,
    /// `Vec<u8>` (a `BYTEA` or `BLOB` column).
    Bytes,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `u8`.
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `f32` (only values an f32 holds exactly: `0.1` from a `double` column is
    /// refused, not rounded).
    F32,
    /// `f64`.
    F64,
    /// `bool` (a boolean column, or an integer column holding 0 and 1).
    Bool,
    /// `chrono::NaiveDate`.
    Date,
    /// `chrono::NaiveDateTime`.
    Datetime,
    /// `chrono::DateTime<Utc>` (a value with an offset, as PostgreSQL writes
    /// `timestamptz`, is moved to UTC; one without is taken as UTC).
    DatetimeUtc,
    /// `uuid::Uuid` (PostgreSQL `uuid`, or its text form).
    Uuid,
    /// `serde_json::Value` (a `json`/`jsonb` column, or JSON text).
    Json,
}

/// Why a cell could not become the field's value; never contains the value.
pub(crate) type CellProblem = &'static str;

impl FieldType {
    /// The expression that selects the plaintext column `column` for this field.
    pub(crate) fn select(self, dialect: Dialect, column: &str) -> String {
        let text = match dialect {
            Dialect::MySql => "CHAR",
            Dialect::Postgres | Dialect::Sqlite => "TEXT",
        };
        match self {
            // Read as stored: a cast in SQL would turn text that is not a number
            // into 0 on SQLite and MariaDB, and fail the whole page on PostgreSQL
            // with the value in the message.
            Self::String | Self::Bytes | Self::F32 | Self::F64 => column.to_owned(),
            // Everything else through its text form, exact for integers of any
            // width, dates, times (with their offset), uuids and JSON alike; casting
            // to text never fails.
            _ => format!("CAST({column} AS {text})"),
        }
    }

    /// The bytes the derive's codec encrypts for the cell at `index` of `row`.
    pub(crate) fn encode(self, row: &AnyRow, index: usize) -> Result<SecretBytes, CellProblem> {
        const NOT_READ: CellProblem = "the cell could not be read as the field's type";
        match self {
            Self::Bytes => row
                .try_get::<Vec<u8>, _>(index)
                .map(SecretBytes::new)
                .map_err(|_| NOT_READ),
            Self::F64 => read_float(row, index).map(|v| v.encode_field()),
            Self::F32 => {
                let wide = read_float(row, index)?;
                let narrow = wide as f32;
                // Only values an f32 holds exactly (what a `real` column holds).
                if f64::from(narrow) == wide || wide.is_nan() {
                    Ok(narrow.encode_field())
                } else {
                    Err("the value does not fit an f32 exactly")
                }
            }
            Self::String => row
                .try_get::<String, _>(index)
                .map(|v| SecretBytes::new(v.into_bytes()))
                .map_err(|_| NOT_READ),
            _ => {
                let text = zeroize::Zeroizing::new(row.try_get::<String, _>(index).map_err(|_| NOT_READ)?);
                self.encode_text(text.trim())
            }
        }
    }

    /// The codec's bytes for a value read in its text form.
    fn encode_text(self, text: &str) -> Result<SecretBytes, CellProblem> {
        fn integer<T: std::str::FromStr + FieldCodec>(text: &str) -> Result<SecretBytes, CellProblem> {
            text.parse::<T>()
                .map(|v| v.encode_field())
                .map_err(|_| "the value is not an integer the field's type holds")
        }
        match self {
            Self::I8 => integer::<i8>(text),
            Self::I16 => integer::<i16>(text),
            Self::I32 => integer::<i32>(text),
            Self::I64 => integer::<i64>(text),
            Self::U8 => integer::<u8>(text),
            Self::U16 => integer::<u16>(text),
            Self::U32 => integer::<u32>(text),
            Self::U64 => integer::<u64>(text),
            Self::Bool => match text {
                "1" | "t" | "true" | "TRUE" => Ok(true.encode_field()),
                "0" | "f" | "false" | "FALSE" => Ok(false.encode_field()),
                _ => Err("the value is not a boolean (true/false, t/f or 1/0)"),
            },
            Self::Date => chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|v| v.encode_field())
                .map_err(|_| "the value is not a date (YYYY-MM-DD)"),
            Self::Datetime => naive_datetime(text)
                .map(|v| v.encode_field())
                .ok_or("the value is not a date and time (YYYY-MM-DD HH:MM:SS[.fraction])"),
            // With an offset (PostgreSQL writes `timestamptz` in the session's zone,
            // `+00` or `+05:30`), or without one (taken as UTC).
            Self::DatetimeUtc => chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .or_else(|| {
                    ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"]
                        .iter()
                        .find_map(|format| chrono::DateTime::parse_from_str(text, format).ok())
                })
                .map(|v| v.to_utc())
                .or_else(|| naive_datetime(text).map(|v| v.and_utc()))
                .map(|v| v.encode_field())
                .ok_or("the value is not a date and time"),
            Self::Uuid => uuid::Uuid::parse_str(text)
                .map(|v| v.encode_field())
                .map_err(|_| "the value is not a UUID"),
            Self::Json => serde_json::from_str::<serde_json::Value>(text)
                .map(|v| v.encode_field())
                .map_err(|_| "the value is not JSON"),
            Self::String | Self::Bytes | Self::F32 | Self::F64 => Err("read natively, not as text"),
        }
    }
}

/// A float cell as stored: a floating-point column, an integer column (exact up to
/// 2^53), or text that is a number; anything else is a problem, never a 0.
fn read_float(row: &AnyRow, index: usize) -> Result<f64, CellProblem> {
    const MAX_EXACT: i64 = 1 << 53;
    if let Ok(v) = row.try_get::<f64, _>(index) {
        return Ok(v);
    }
    if let Ok(v) = row.try_get::<f32, _>(index) {
        return Ok(f64::from(v));
    }
    if let Ok(v) = row.try_get::<i64, _>(index) {
        return if (-MAX_EXACT..=MAX_EXACT).contains(&v) {
            Ok(v as f64)
        } else {
            Err("the integer does not fit a float exactly")
        };
    }
    let text = zeroize::Zeroizing::new(
        row.try_get::<String, _>(index)
            .map_err(|_| "the cell could not be read as the field's type")?,
    );
    text.trim().parse::<f64>().map_err(|_| "the value is not a number")
}

/// `2024-01-31 12:34:56[.123456]`, with a space or a `T`, as the databases write it.
fn naive_datetime(text: &str) -> Option<chrono::NaiveDateTime> {
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
}

#[cfg(test)]
mod tests {
    use encrypted_attr::FieldCodec;

    use super::FieldType;

    fn bytes(field: FieldType, text: &str) -> Option<Vec<u8>> {
        field.encode_text(text).ok().map(|b| b.expose_secret().to_vec())
    }

    #[test]
    fn text_forms_become_the_codecs_bytes() {
        assert_eq!(bytes(FieldType::I16, "-7"), Some((-7i16).to_be_bytes().to_vec()));
        assert_eq!(
            bytes(FieldType::U64, "18446744073709551615"),
            Some(u64::MAX.to_be_bytes().to_vec())
        );
        assert_eq!(bytes(FieldType::I8, "300"), None, "out of range");
        assert_eq!(bytes(FieldType::Bool, "t"), Some(vec![1]));
        assert_eq!(bytes(FieldType::Bool, "0"), Some(vec![0]));
        assert_eq!(bytes(FieldType::Bool, "2"), None);
        let date = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(
            bytes(FieldType::Date, "2024-02-29"),
            Some(date.encode_field().expose_secret().to_vec())
        );
        let at = date.and_hms_micro_opt(12, 34, 56, 123_456).unwrap();
        for text in ["2024-02-29 12:34:56.123456", "2024-02-29T12:34:56.123456"] {
            assert_eq!(
                bytes(FieldType::Datetime, text),
                Some(at.encode_field().expose_secret().to_vec())
            );
        }
        for text in [
            "2024-02-29T14:34:56.123456+02:00",
            "2024-02-29 14:34:56.123456+02",
            "2024-02-29 18:04:56.123456+05:30",
            "2024-02-29 12:34:56.123456",
        ] {
            assert_eq!(
                bytes(FieldType::DatetimeUtc, text),
                Some(at.and_utc().encode_field().expose_secret().to_vec()),
                "{text}"
            );
        }
        let id = uuid::Uuid::from_u128(0x0b9b_3c1e_64a4_4d0b_9d35_6f8f_1d1d_0001);
        assert_eq!(
            bytes(FieldType::Uuid, "0b9b3c1e-64a4-4d0b-9d35-6f8f1d1d0001"),
            Some(id.as_bytes().to_vec())
        );
        let json: serde_json::Value = serde_json::from_str(r#"{"b": 1, "a": [true]}"#).unwrap();
        assert_eq!(
            bytes(FieldType::Json, r#"{"b": 1, "a": [true]}"#),
            Some(json.encode_field().expose_secret().to_vec())
        );
        assert_eq!(bytes(FieldType::Json, "{nope"), None);
    }
}
