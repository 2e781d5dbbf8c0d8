//! diesel glue: [`Ciphertext`] is a `Text` column for every diesel backend, and
//! [`EncryptedRunQueryDsl`] loads and decrypts in one call.
//!
//! Writing stores the `vault:v<N>:…` string; reading parses it, and a value that is
//! not a well-formed ciphertext (plaintext left in the column, a truncated value) is
//! an error, never returned as if it were data.

use ::diesel::backend::Backend;
use ::diesel::deserialize::{self, FromSql};
use ::diesel::query_dsl::{LoadQuery, RunQueryDsl};
use ::diesel::serialize::{self, Output, ToSql};
use ::diesel::sql_types::Text;

use crate::ciphertext::Ciphertext;
use crate::engine::TransitEngine;
use crate::error::QueryError;
use crate::runtime::{EncryptedRecord, decrypt_all, decrypt_one};

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

/// Load-and-decrypt for every diesel query, next to diesel's own `RunQueryDsl`: one
/// call returns models, with one engine call per encrypted key for the whole result
/// set (never one per row).
///
/// ```ignore
/// let people: Vec<Person> = people::table
///     .filter(people::email.eq_any(wanted))
///     .select(PersonRecord::as_select())
///     .load_decrypted(&mut conn, &engine)?;
/// ```
///
/// Writing needs no helper: `insert_into(people::table).values(&person.encrypt(&engine)?)`
/// (or `Person::encrypt_all` for many rows) and `update(…).set(&record)` take records.
pub trait EncryptedRunQueryDsl<Conn>: RunQueryDsl<Conn> + Sized {
    /// Every row, decrypted.
    ///
    /// # Errors
    /// [`QueryError::Database`] from diesel, [`QueryError::Encryption`] from the engine
    /// (a row whose ciphertext does not belong to it fails to decrypt).
    fn load_decrypted<'query, R, E>(
        self,
        conn: &mut Conn,
        engine: &E,
    ) -> Result<Vec<R::Model>, QueryError<::diesel::result::Error>>
    where
        Self: LoadQuery<'query, Conn, R>,
        R: EncryptedRecord,
        E: TransitEngine + ?Sized,
    {
        let records = self.load::<R>(conn).map_err(QueryError::Database)?;
        Ok(decrypt_all(records, engine)?)
    }

    /// The one row of the query, decrypted (`NotFound` in [`QueryError::Database`]
    /// when there is none).
    ///
    /// # Errors
    /// As [`load_decrypted`](Self::load_decrypted).
    fn get_result_decrypted<'query, R, E>(
        self,
        conn: &mut Conn,
        engine: &E,
    ) -> Result<R::Model, QueryError<::diesel::result::Error>>
    where
        Self: LoadQuery<'query, Conn, R>,
        R: EncryptedRecord,
        E: TransitEngine + ?Sized,
    {
        let record = self.get_result::<R>(conn).map_err(QueryError::Database)?;
        Ok(decrypt_one(record, engine)?)
    }
}

impl<T: RunQueryDsl<Conn>, Conn> EncryptedRunQueryDsl<Conn> for T {}
