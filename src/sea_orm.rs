//! sea-orm glue: [`Ciphertext`] is a text value (`Value`, `TryGetable`, `ValueType`,
//! `Nullable`, `IntoActiveValue`), so an entity's encrypted column can be typed
//! `Ciphertext` (or `Option<Ciphertext>`).
//!
//! Reading a value that is not a well-formed ciphertext is an error, never data.

use ::sea_orm::sea_query::{ArrayType, ColumnType, Nullable, ValueType, ValueTypeErr};
use ::sea_orm::{ActiveValue, ColIdx, DbErr, IntoActiveValue, QueryResult, TryGetError, TryGetable, Value};

use crate::ciphertext::Ciphertext;

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
