//! sqlx glue: [`Ciphertext`] is a text value for every sqlx database (PostgreSQL,
//! MySQL/MariaDB, SQLite) — `Type`, `Encode`, `Decode` — so a record deriving
//! `sqlx::FromRow` maps encrypted columns typed `Ciphertext` or `Option<Ciphertext>`;
//! and [`EncryptedQueryAs`] fetches and decrypts in one call.
//!
//! Reading a value that is not a well-formed ciphertext (plaintext left in the column,
//! a truncated value) is an error, never returned as if it were data.

use ::sqlx::encode::IsNull;
use ::sqlx::error::BoxDynError;
use ::sqlx::query::QueryAs;
use ::sqlx::{Database, Decode, Encode, Executor, FromRow, IntoArguments, Type};

use crate::ciphertext::Ciphertext;
use crate::engine::AsyncTransitEngine;
use crate::error::QueryError;
use crate::runtime::{EncryptedRecord, decrypt_all_async};

impl<DB: Database> Type<DB> for Ciphertext
where
    String: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <String as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <String as Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: Database> Encode<'q, DB> for Ciphertext
where
    for<'a> &'a str: Encode<'q, DB>,
{
    fn encode_by_ref(&self, buf: &mut <DB as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<'q, DB>>::encode_by_ref(&self.as_str(), buf)
    }

    fn size_hint(&self) -> usize {
        self.as_str().len()
    }
}

impl<'r, DB: Database> Decode<'r, DB> for Ciphertext
where
    &'r str: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&'r str as Decode<'r, DB>>::decode(value)?;
        // The error names the problem (no prefix, bad base64…), never the value.
        text.parse::<Ciphertext>()
            .map_err(|e| format!("column does not hold a ciphertext: {e}").into())
    }
}

/// Fetch-and-decrypt for sqlx's `query_as`: one call returns models, with one engine
/// call per encrypted key for the whole result set (never one per row).
///
/// ```ignore
/// let customers: Vec<Customer> = sqlx::query_as::<_, CustomerRecord>("SELECT * FROM customers")
///     .fetch_all_decrypted(&pool, &engine)
///     .await?;
/// ```
///
/// The futures are `Send` whenever the executor, engine and record are: usable in
/// axum or actix handlers.
#[allow(async_fn_in_trait)] // Implemented here only, for sqlx's concrete `QueryAs`.
pub trait EncryptedQueryAs<'q, DB: Database, R: EncryptedRecord> {
    /// Every row, decrypted.
    ///
    /// # Errors
    /// [`QueryError::Database`] from sqlx, [`QueryError::Encryption`] from the engine
    /// (a row whose ciphertext does not belong to it fails to decrypt).
    async fn fetch_all_decrypted<'e, 'c: 'e, X, E>(
        self,
        executor: X,
        engine: &E,
    ) -> Result<Vec<R::Model>, QueryError<::sqlx::Error>>
    where
        'q: 'e,
        X: 'e + Executor<'c, Database = DB>,
        DB: 'e,
        R: 'e,
        E: AsyncTransitEngine + ?Sized;

    /// The first row, decrypted; [`sqlx::Error::RowNotFound`] in
    /// [`QueryError::Database`] when there is none.
    ///
    /// # Errors
    /// As [`fetch_all_decrypted`](Self::fetch_all_decrypted).
    async fn fetch_one_decrypted<'e, 'c: 'e, X, E>(
        self,
        executor: X,
        engine: &E,
    ) -> Result<R::Model, QueryError<::sqlx::Error>>
    where
        'q: 'e,
        X: 'e + Executor<'c, Database = DB>,
        DB: 'e,
        R: 'e,
        E: AsyncTransitEngine + ?Sized;

    /// The first row if any, decrypted.
    ///
    /// # Errors
    /// As [`fetch_all_decrypted`](Self::fetch_all_decrypted).
    async fn fetch_optional_decrypted<'e, 'c: 'e, X, E>(
        self,
        executor: X,
        engine: &E,
    ) -> Result<Option<R::Model>, QueryError<::sqlx::Error>>
    where
        'q: 'e,
        X: 'e + Executor<'c, Database = DB>,
        DB: 'e,
        R: 'e,
        E: AsyncTransitEngine + ?Sized;
}

impl<'q, DB, R, A> EncryptedQueryAs<'q, DB, R> for QueryAs<'q, DB, R, A>
where
    DB: Database,
    A: 'q + IntoArguments<DB>,
    R: EncryptedRecord + Send + Unpin + for<'r> FromRow<'r, DB::Row>,
{
    async fn fetch_all_decrypted<'e, 'c: 'e, X, E>(
        self,
        executor: X,
        engine: &E,
    ) -> Result<Vec<R::Model>, QueryError<::sqlx::Error>>
    where
        'q: 'e,
        X: 'e + Executor<'c, Database = DB>,
        DB: 'e,
        R: 'e,
        E: AsyncTransitEngine + ?Sized,
    {
        let records = self.fetch_all(executor).await.map_err(QueryError::Database)?;
        Ok(decrypt_all_async(records, engine).await?)
    }

    async fn fetch_one_decrypted<'e, 'c: 'e, X, E>(
        self,
        executor: X,
        engine: &E,
    ) -> Result<R::Model, QueryError<::sqlx::Error>>
    where
        'q: 'e,
        X: 'e + Executor<'c, Database = DB>,
        DB: 'e,
        R: 'e,
        E: AsyncTransitEngine + ?Sized,
    {
        let record = self.fetch_one(executor).await.map_err(QueryError::Database)?;
        Ok(crate::runtime::decrypt_one_async(record, engine).await?)
    }

    async fn fetch_optional_decrypted<'e, 'c: 'e, X, E>(
        self,
        executor: X,
        engine: &E,
    ) -> Result<Option<R::Model>, QueryError<::sqlx::Error>>
    where
        'q: 'e,
        X: 'e + Executor<'c, Database = DB>,
        DB: 'e,
        R: 'e,
        E: AsyncTransitEngine + ?Sized,
    {
        match self.fetch_optional(executor).await.map_err(QueryError::Database)? {
            Some(record) => Ok(Some(crate::runtime::decrypt_one_async(record, engine).await?)),
            None => Ok(None),
        }
    }
}
