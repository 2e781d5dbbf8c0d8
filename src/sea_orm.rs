//! sea-orm glue: [`Ciphertext`] is a text value (`Value`, `TryGetable`, `ValueType`,
//! `Nullable`, `IntoActiveValue`), so an entity's encrypted column can be typed
//! `Ciphertext` (or `Option<Ciphertext>`); [`EncryptedSelectTrait`] finds and
//! decrypts in one call, [`EncryptedActiveModelTrait`] encrypts and saves in one.
//!
//! Reading a value that is not a well-formed ciphertext is an error, never data.

use ::sea_orm::sea_query::{ArrayType, ColumnType, Nullable, ValueType, ValueTypeErr};
use ::sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ActiveValue, ColIdx, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    IntoActiveValue, QueryResult, Select, TryGetError, TryGetable, Value,
};

use crate::ciphertext::Ciphertext;
use crate::engine::AsyncTransitEngine;
use crate::error::QueryError;
use crate::runtime::{EncryptedModel, EncryptedRecord, decrypt_all_async, decrypt_one_async, encrypt_one_async};

impl From<Ciphertext> for Value {
    fn from(ct: Ciphertext) -> Self {
        Value::from(ct.into_string())
    }
}

impl TryGetable for Ciphertext {
    fn try_get_by<I: ColIdx>(res: &QueryResult, index: I) -> Result<Self, TryGetError> {
        let text = <String as TryGetable>::try_get_by(res, index)?;
        <Ciphertext as TryFrom<String>>::try_from(text)
            .map_err(|e| TryGetError::DbErr(DbErr::Type(format!("column does not hold a ciphertext: {e}"))))
    }
}

impl ValueType for Ciphertext {
    fn try_from(v: Value) -> Result<Self, ValueTypeErr> {
        let text = <String as ValueType>::try_from(v)?;
        <Ciphertext as TryFrom<String>>::try_from(text).map_err(|_| ValueTypeErr)
    }

    fn type_name() -> String {
        "Ciphertext".to_owned()
    }

    fn array_type() -> ArrayType {
        ArrayType::String
    }

    fn column_type() -> ColumnType {
        ColumnType::Text
    }
}

impl Nullable for Ciphertext {
    fn null() -> Value {
        <String as Nullable>::null()
    }
}

impl IntoActiveValue<Ciphertext> for Ciphertext {
    fn into_active_value(self) -> ActiveValue<Ciphertext> {
        ActiveValue::Set(self)
    }
}

/// Find-and-decrypt for sea-orm selects: one call returns models, with one engine call
/// per encrypted key for the whole result set (never one per row).
///
/// ```ignore
/// let found: Vec<Customer> = customer::Entity::find()
///     .filter(customer::Column::Email.is_in(wanted))
///     .all_decrypted(&db, &engine)
///     .await?;
/// ```
#[allow(async_fn_in_trait)] // Implemented here only, for sea-orm's concrete `Select`.
pub trait EncryptedSelectTrait<R: EncryptedRecord> {
    /// Every row, decrypted.
    ///
    /// # Errors
    /// [`QueryError::Database`] from sea-orm, [`QueryError::Encryption`] from the
    /// engine (a row whose ciphertext does not belong to it fails to decrypt).
    async fn all_decrypted<C, E>(self, db: &C, engine: &E) -> Result<Vec<R::Model>, QueryError<DbErr>>
    where
        C: ConnectionTrait,
        E: AsyncTransitEngine + ?Sized;

    /// The first row if any, decrypted.
    ///
    /// # Errors
    /// As [`all_decrypted`](Self::all_decrypted).
    async fn one_decrypted<C, E>(self, db: &C, engine: &E) -> Result<Option<R::Model>, QueryError<DbErr>>
    where
        C: ConnectionTrait,
        E: AsyncTransitEngine + ?Sized;
}

impl<Ent> EncryptedSelectTrait<Ent::Model> for Select<Ent>
where
    Ent: EntityTrait,
    Ent::Model: EncryptedRecord,
{
    async fn all_decrypted<C, E>(
        self,
        db: &C,
        engine: &E,
    ) -> Result<Vec<<Ent::Model as EncryptedRecord>::Model>, QueryError<DbErr>>
    where
        C: ConnectionTrait,
        E: AsyncTransitEngine + ?Sized,
    {
        let records = self.all(db).await.map_err(QueryError::Database)?;
        Ok(decrypt_all_async(records, engine).await?)
    }

    async fn one_decrypted<C, E>(
        self,
        db: &C,
        engine: &E,
    ) -> Result<Option<<Ent::Model as EncryptedRecord>::Model>, QueryError<DbErr>>
    where
        C: ConnectionTrait,
        E: AsyncTransitEngine + ?Sized,
    {
        match self.one(db).await.map_err(QueryError::Database)? {
            Some(record) => Ok(Some(decrypt_one_async(record, engine).await?)),
            None => Ok(None),
        }
    }
}

/// Encrypt-and-save for models whose record is a sea-orm entity `Model`
/// (`record = entity::Model`): one call encrypts and inserts or updates.
///
/// ```ignore
/// customer.insert_encrypted::<customer::ActiveModel, _, _>(&db, &engine).await?;
/// ```
#[allow(async_fn_in_trait)] // Implemented for the derive's models only.
pub trait EncryptedActiveModelTrait: EncryptedModel {
    /// Encrypts the model and inserts it; returns the stored record.
    ///
    /// # Errors
    /// [`QueryError::Encryption`] from the engine, then [`QueryError::Database`].
    async fn insert_encrypted<A, C, E>(&self, db: &C, engine: &E) -> Result<Self::Record, QueryError<DbErr>>
    where
        Self::Record: IntoActiveModel<A>,
        A: ActiveModelTrait<Entity: EntityTrait<Model = Self::Record>> + ActiveModelBehavior + Send,
        C: ConnectionTrait,
        E: AsyncTransitEngine + ?Sized,
    {
        let record = encrypt_one_async(self, engine).await?;
        record
            .into_active_model()
            .insert(db)
            .await
            .map_err(QueryError::Database)
    }

    /// Encrypts the model and updates its row (every column); returns the stored
    /// record.
    ///
    /// # Errors
    /// [`QueryError::Encryption`] from the engine, then [`QueryError::Database`]
    /// (`RecordNotUpdated` when no row has the model's key).
    async fn update_encrypted<A, C, E>(&self, db: &C, engine: &E) -> Result<Self::Record, QueryError<DbErr>>
    where
        Self::Record: IntoActiveModel<A>,
        A: ActiveModelTrait<Entity: EntityTrait<Model = Self::Record>> + ActiveModelBehavior + Send,
        C: ConnectionTrait,
        E: AsyncTransitEngine + ?Sized,
    {
        let record = encrypt_one_async(self, engine).await?;
        // From a model every value is "unchanged": mark them set so all are written.
        record
            .into_active_model()
            .reset_all()
            .update(db)
            .await
            .map_err(QueryError::Database)
    }
}

impl<M: EncryptedModel> EncryptedActiveModelTrait for M {}
