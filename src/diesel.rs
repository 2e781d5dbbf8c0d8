//! diesel glue: [`Ciphertext`] is a `Text` column for every diesel backend.
//!
//! Writing stores the `vault:v<N>:…` string; reading parses it, and a value that is
//! not a well-formed ciphertext (plaintext left in the column, a truncated value) is
//! an error, never returned as if it were data.

use ::diesel::backend::Backend;
use ::diesel::deserialize::{self, FromSql};
use ::diesel::serialize::{self, Output, ToSql};
use ::diesel::sql_types::Text;

use crate::ciphertext::Ciphertext;

impl<DB> ToSql<Text, DB> for Ciphertext
where
    DB: Backend,
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        <str as ToSql<Text, DB>>::to_sql(self.as_str(), out)
    }
}

impl<DB> FromSql<Text, DB> for Ciphertext
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, DB>>::from_sql(bytes)?;
        // The error names the problem (no prefix, bad base64…), never the value.
        Ciphertext::try_from(text).map_err(|e| format!("column does not hold a ciphertext: {e}").into())
    }
}
