//! Runtime of `#[derive(Encrypted)]`: the traits the derive implements, the binding
//! of ciphertexts to their table, column and row, and the one generic driver that
//! turns models into records and back with one engine call per key.
//!
//! The derive emits no I/O. It implements [`EncryptedModel`] and [`EncryptedRecord`]
//! (where each field's bytes come from and go to) and thin inherent methods that call
//! the functions here. The driver *plans* every batch (which values go to which key,
//! with which context or associated data), runs the plan on a blocking or an async
//! engine, then *applies* the results — so sync and async share everything but the
//! engine calls.

mod binding;
mod codec;

use crate::HashAlgorithm;
use crate::ciphertext::Ciphertext;
use crate::engine::{AsyncTransitEngine, DecryptItem, EncryptItem, HmacItem, HmacTag, TransitEngine};
use crate::error::{Error, Result};
use crate::keyring::{KeyInfo, KeyOptions};
use crate::name::KeyName;
use crate::secret::{Plaintext, SecretBytes};

pub use binding::{column_binding, row_binding};
pub use codec::{FieldCodec, decode_json, encode_json};

/// How one encrypted field is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The Rust field name.
    pub field: &'static str,
    /// The column holding the ciphertext.
    pub column: &'static str,
    /// The transit key's name.
    pub key: &'static str,
    /// Deterministic encryption, for equality lookups.
    pub convergent: bool,
    /// The column holding the blind index, if the field has one.
    pub blind_index: Option<&'static str>,
}

/// How a model is stored: its table and its encrypted fields, in declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// The table name, part of every binding.
    pub table: &'static str,
    /// The encrypted fields.
    pub fields: &'static [FieldSpec],
}

/// What encrypting one field of one model produced.
#[derive(Debug, Default)]
pub struct SealedField {
    /// The ciphertext, `None` for a NULL (`None`) value.
    pub ciphertext: Option<Ciphertext>,
    /// The blind index, when the field has one and is not NULL.
    pub blind_index: Option<String>,
}

/// A model whose encrypted fields become a record of ciphertexts (implemented by
/// `#[derive(Encrypted)]`).
pub trait EncryptedModel: Sized {
    /// The record type the ORM maps.
    type Record;
    /// The storage layout.
    const SPEC: ModelSpec;

    /// The row identity bound into every field's associated data, in text form;
    /// `None` when the model names no `id`.
    fn row_id(&self) -> Option<String>;

    /// The bytes to encrypt for field `index` of [`SPEC`](Self::SPEC); `None` for NULL.
    ///
    /// # Errors
    /// A value that cannot be encoded (JSON serialization failure).
    fn field_plaintext(&self, index: usize) -> Result<Option<SecretBytes>>;

    /// The (normalised) bytes to blind-index for field `index`; `None` for NULL or
    /// for a field without blind index.
    ///
    /// # Errors
    /// A value that cannot be encoded.
    fn blind_index_input(&self, index: usize) -> Result<Option<SecretBytes>>;

    /// Builds the record, copying the plain fields and taking `sealed[i]` for field `i`.
    ///
    /// # Errors
    /// A non-optional field without ciphertext (cannot happen through the driver).
    fn to_record(&self, sealed: Vec<SealedField>) -> Result<Self::Record>;
}

/// A record of ciphertexts that decrypts into a model (implemented by the derive).
pub trait EncryptedRecord: Sized {
    /// The model type.
    type Model;
    /// The storage layout (the model's).
    const SPEC: ModelSpec;

    /// The row identity, in the same text form as the model's.
    fn row_id(&self) -> Option<String>;

    /// The ciphertext of field `index`; `None` for NULL.
    fn field_ciphertext(&self, index: usize) -> Option<&Ciphertext>;

    /// Builds the model from the decrypted bytes of every field, in order.
    ///
    /// # Errors
    /// [`Error::InvalidFieldValue`] when bytes do not decode into the field's type,
    /// or a NULL column for a field that is not an `Option`.
    fn into_model(self, opened: Vec<Option<Plaintext>>) -> Result<Self::Model>;
}

/// The engine items for one field's value.
fn encrypt_item(spec: &ModelSpec, field: &FieldSpec, row_id: Option<&str>, plaintext: SecretBytes) -> EncryptItem {
    let item = EncryptItem::new(plaintext);
    if field.convergent {
        // Deterministic across rows: bind the column through the derived key; a
        // row identity would make equal values differ.
        item.context(column_binding(spec.table, field.column))
    } else {
        item.associated_data(row_binding(spec.table, field.column, row_id))
    }
}

fn decrypt_item(spec: &ModelSpec, field: &FieldSpec, row_id: Option<&str>, ciphertext: Ciphertext) -> DecryptItem {
    let item = DecryptItem::new(ciphertext);
    if field.convergent {
        item.context(column_binding(spec.table, field.column))
    } else {
        item.associated_data(row_binding(spec.table, field.column, row_id))
    }
}

fn key_name(field: &FieldSpec) -> Result<KeyName> {
    KeyName::new(field.key)
}

fn field_error(spec: &ModelSpec, index: usize, item: usize, source: Error) -> Error {
    Error::Field {
        table: spec.table,
        column: spec.fields.get(index).map_or("?", |f| f.column),
        item,
        source: Box::new(source),
    }
}

/// A planned engine call, and where its results go.
enum Call {
    Encrypt {
        field: usize,
        key: KeyName,
        items: Vec<EncryptItem>,
        owners: Vec<usize>,
    },
    BlindIndex {
        field: usize,
        key: KeyName,
        items: Vec<HmacItem>,
        owners: Vec<usize>,
    },
}

enum Outcome {
    Sealed(Vec<Result<Ciphertext>>),
    Indexed(Vec<Result<HmacTag>>),
}

/// Every call needed to encrypt `models`: one per field key, plus one HMAC call per
/// blind-indexed field.
fn plan_encrypt<M: EncryptedModel>(models: &[M]) -> Result<Vec<Call>> {
    let spec = &M::SPEC;
    let row_ids: Vec<Option<String>> = models.iter().map(EncryptedModel::row_id).collect();
    let mut calls = Vec::new();
    for (index, field) in spec.fields.iter().enumerate() {
        let key = key_name(field)?;
        let (mut items, mut owners) = (Vec::with_capacity(models.len()), Vec::with_capacity(models.len()));
        for (m, model) in models.iter().enumerate() {
            let plaintext = model
                .field_plaintext(index)
                .map_err(|e| field_error(spec, index, m, e))?;
            if let Some(plaintext) = plaintext {
                items.push(encrypt_item(spec, field, row_ids[m].as_deref(), plaintext));
                owners.push(m);
            }
        }
        if !items.is_empty() {
            calls.push(Call::Encrypt {
                field: index,
                key: key.clone(),
                items,
                owners,
            });
        }
        if field.blind_index.is_some() {
            let (mut items, mut owners) = (Vec::new(), Vec::new());
            for (m, model) in models.iter().enumerate() {
                if let Some(input) = model
                    .blind_index_input(index)
                    .map_err(|e| field_error(spec, index, m, e))?
                {
                    items.push(HmacItem::new(input));
                    owners.push(m);
                }
            }
            if !items.is_empty() {
                calls.push(Call::BlindIndex {
                    field: index,
                    key,
                    items,
                    owners,
                });
            }
        }
    }
    Ok(calls)
}

/// Applies the outcomes of [`plan_encrypt`]'s calls and builds the records.
fn finish_encrypt<M: EncryptedModel>(models: &[M], calls: Vec<(Call, Outcome)>) -> Result<Vec<M::Record>> {
    let spec = &M::SPEC;
    let mut sealed: Vec<Vec<SealedField>> = models
        .iter()
        .map(|_| spec.fields.iter().map(|_| SealedField::default()).collect())
        .collect();
    for (call, outcome) in calls {
        match (call, outcome) {
            (Call::Encrypt { field, owners, .. }, Outcome::Sealed(results)) => {
                for (m, result) in owners.into_iter().zip(results) {
                    let ct = result.map_err(|e| field_error(spec, field, m, e))?;
                    sealed[m][field].ciphertext = Some(ct);
                }
            }
            (Call::BlindIndex { field, owners, .. }, Outcome::Indexed(results)) => {
                for (m, result) in owners.into_iter().zip(results) {
                    let tag = result.map_err(|e| field_error(spec, field, m, e))?;
                    sealed[m][field].blind_index = Some(tag.to_string());
                }
            }
            _ => return Err(Error::invalid("engine results do not match the plan")),
        }
    }
    models
        .iter()
        .zip(sealed)
        .map(|(model, fields)| model.to_record(fields))
        .collect()
}

fn check_len<T>(expected: usize, results: Vec<T>) -> Result<Vec<T>> {
    if results.len() == expected {
        Ok(results)
    } else {
        Err(Error::invalid(
            "engine returned a different number of results than items",
        ))
    }
}

fn run_call<E: TransitEngine + ?Sized>(engine: &E, call: Call) -> Result<(Call, Outcome)> {
    Ok(match call {
        Call::Encrypt {
            field,
            key,
            items,
            owners,
        } => {
            let results = check_len(owners.len(), engine.encrypt_batch(&key, items)?)?;
            (
                Call::Encrypt {
                    field,
                    key,
                    items: Vec::new(),
                    owners,
                },
                Outcome::Sealed(results),
            )
        }
        Call::BlindIndex {
            field,
            key,
            items,
            owners,
        } => {
            let results = check_len(owners.len(), engine.hmac_batch(&key, HashAlgorithm::Sha2_256, items)?)?;
            (
                Call::BlindIndex {
                    field,
                    key,
                    items: Vec::new(),
                    owners,
                },
                Outcome::Indexed(results),
            )
        }
    })
}

async fn run_call_async<E: AsyncTransitEngine + ?Sized>(engine: &E, call: Call) -> Result<(Call, Outcome)> {
    Ok(match call {
        Call::Encrypt {
            field,
            key,
            items,
            owners,
        } => {
            let results = check_len(owners.len(), engine.encrypt_batch_async(&key, items).await?)?;
            (
                Call::Encrypt {
                    field,
                    key,
                    items: Vec::new(),
                    owners,
                },
                Outcome::Sealed(results),
            )
        }
        Call::BlindIndex {
            field,
            key,
            items,
            owners,
        } => {
            let results = check_len(
                owners.len(),
                engine.hmac_batch_async(&key, HashAlgorithm::Sha2_256, items).await?,
            )?;
            (
                Call::BlindIndex {
                    field,
                    key,
                    items: Vec::new(),
                    owners,
                },
                Outcome::Indexed(results),
            )
        }
    })
}

/// Encrypts `models` into records: one engine call per encrypted field's key (and
/// one per blind index), whatever the number of models.
///
/// # Errors
/// The first failing field, as [`Error::Field`], or a whole-call error.
pub fn encrypt_all<M: EncryptedModel, E: TransitEngine + ?Sized>(models: &[M], engine: &E) -> Result<Vec<M::Record>> {
    let calls = plan_encrypt(models)?;
    let done = calls
        .into_iter()
        .map(|call| run_call(engine, call))
        .collect::<Result<Vec<_>>>()?;
    finish_encrypt(models, done)
}

/// [`encrypt_all`] on an async engine.
///
/// # Errors
/// As [`encrypt_all`].
pub async fn encrypt_all_async<M: EncryptedModel, E: AsyncTransitEngine + ?Sized>(
    models: &[M],
    engine: &E,
) -> Result<Vec<M::Record>> {
    let calls = plan_encrypt(models)?;
    let mut done = Vec::with_capacity(calls.len());
    for call in calls {
        done.push(run_call_async(engine, call).await?);
    }
    finish_encrypt(models, done)
}

/// Encrypts one model.
///
/// # Errors
/// As [`encrypt_all`].
pub fn encrypt_one<M: EncryptedModel, E: TransitEngine + ?Sized>(model: &M, engine: &E) -> Result<M::Record> {
    single(encrypt_all(std::slice::from_ref(model), engine)?)
}

/// Encrypts one model on an async engine.
///
/// # Errors
/// As [`encrypt_all`].
pub async fn encrypt_one_async<M: EncryptedModel, E: AsyncTransitEngine + ?Sized>(
    model: &M,
    engine: &E,
) -> Result<M::Record> {
    single(encrypt_all_async(std::slice::from_ref(model), engine).await?)
}

fn single<T>(mut all: Vec<T>) -> Result<T> {
    all.pop().ok_or_else(|| Error::invalid("no result for the item"))
}

/// One planned decrypt call: field index, key, items, and the record of each item.
type DecryptCall = (usize, KeyName, Vec<DecryptItem>, Vec<usize>);

/// Decrypt calls: per field, the items and which record each belongs to.
fn plan_decrypt<R: EncryptedRecord>(records: &[R]) -> Result<Vec<DecryptCall>> {
    let spec = &R::SPEC;
    let row_ids: Vec<Option<String>> = records.iter().map(EncryptedRecord::row_id).collect();
    let mut calls = Vec::new();
    for (index, field) in spec.fields.iter().enumerate() {
        let (mut items, mut owners) = (Vec::new(), Vec::new());
        for (r, record) in records.iter().enumerate() {
            if let Some(ct) = record.field_ciphertext(index) {
                items.push(decrypt_item(spec, field, row_ids[r].as_deref(), ct.clone()));
                owners.push(r);
            }
        }
        if !items.is_empty() {
            calls.push((index, key_name(field)?, items, owners));
        }
    }
    Ok(calls)
}

type Opened = Vec<(usize, Vec<usize>, Vec<Result<Plaintext>>)>;

fn finish_decrypt<R: EncryptedRecord>(records: Vec<R>, opened: Opened) -> Result<Vec<R::Model>> {
    let spec = &R::SPEC;
    let mut plaintexts: Vec<Vec<Option<Plaintext>>> = records
        .iter()
        .map(|_| spec.fields.iter().map(|_| None).collect())
        .collect();
    for (field, owners, results) in opened {
        for (r, result) in owners.into_iter().zip(results) {
            plaintexts[r][field] = Some(result.map_err(|e| field_error(spec, field, r, e))?);
        }
    }
    records
        .into_iter()
        .zip(plaintexts)
        .enumerate()
        .map(|(r, (record, fields))| record.into_model(fields).map_err(|e| field_error(spec, 0, r, e)))
        .collect()
}

/// Decrypts records into models: one engine call per encrypted field's key.
///
/// # Errors
/// The first failing field, as [`Error::Field`] (a ciphertext moved to another
/// row or column fails here with [`Error::DecryptionFailed`] inside).
pub fn decrypt_all<R: EncryptedRecord, E: TransitEngine + ?Sized>(
    records: Vec<R>,
    engine: &E,
) -> Result<Vec<R::Model>> {
    let mut opened = Vec::new();
    for (field, key, items, owners) in plan_decrypt(&records)? {
        let results = check_len(owners.len(), engine.decrypt_batch(&key, items)?)?;
        opened.push((field, owners, results));
    }
    finish_decrypt(records, opened)
}

/// [`decrypt_all`] on an async engine.
///
/// # Errors
/// As [`decrypt_all`].
pub async fn decrypt_all_async<R: EncryptedRecord, E: AsyncTransitEngine + ?Sized>(
    records: Vec<R>,
    engine: &E,
) -> Result<Vec<R::Model>> {
    let mut opened = Vec::new();
    for (field, key, items, owners) in plan_decrypt(&records)? {
        let results = check_len(owners.len(), engine.decrypt_batch_async(&key, items).await?)?;
        opened.push((field, owners, results));
    }
    finish_decrypt(records, opened)
}

/// Decrypts one record.
///
/// # Errors
/// As [`decrypt_all`].
pub fn decrypt_one<R: EncryptedRecord, E: TransitEngine + ?Sized>(record: R, engine: &E) -> Result<R::Model> {
    single(decrypt_all(vec![record], engine)?)
}

/// Decrypts one record on an async engine.
///
/// # Errors
/// As [`decrypt_all`].
pub async fn decrypt_one_async<R: EncryptedRecord, E: AsyncTransitEngine + ?Sized>(
    record: R,
    engine: &E,
) -> Result<R::Model> {
    single(decrypt_all_async(vec![record], engine).await?)
}

/// Encrypts one field's value for a partial update (`UPDATE … SET ssn = $1`).
///
/// # Errors
/// Engine errors.
pub fn encrypt_field<E: TransitEngine + ?Sized>(
    engine: &E,
    spec: &ModelSpec,
    index: usize,
    row_id: Option<&str>,
    plaintext: SecretBytes,
) -> Result<Ciphertext> {
    let field = spec.fields.get(index).ok_or_else(|| Error::invalid("no such field"))?;
    engine.encrypt(&key_name(field)?, encrypt_item(spec, field, row_id, plaintext))
}

/// The values a convergent field takes for `plaintext` under every key version that
/// can still decrypt: compare the column with all of them (`WHERE email IN (…)`), so
/// a lookup keeps working after a rotation until old rows are rewrapped.
///
/// # Errors
/// Engine errors; [`Error::InvalidRequest`] if the field is not convergent.
pub fn convergent_lookup<E: TransitEngine + ?Sized>(
    engine: &E,
    spec: &ModelSpec,
    index: usize,
    plaintext: &SecretBytes,
) -> Result<Vec<Ciphertext>> {
    let field = spec.fields.get(index).ok_or_else(|| Error::invalid("no such field"))?;
    if !field.convergent {
        return Err(Error::invalid("lookup needs a convergent field"));
    }
    let key = key_name(field)?;
    let info = engine.read_key(&key)?;
    let items = lookup_versions(&info)
        .map(|v| {
            EncryptItem::new(plaintext.duplicate_secret())
                .context(column_binding(spec.table, field.column))
                .key_version(v)
        })
        .collect();
    engine.encrypt_batch(&key, items)?.into_iter().collect()
}

/// The blind-index values of `input` (already normalised) under every key version
/// that can still decrypt; compare the blind-index column with all of them.
///
/// # Errors
/// Engine errors; [`Error::InvalidRequest`] if the field has no blind index.
pub fn blind_index_lookup<E: TransitEngine + ?Sized>(
    engine: &E,
    spec: &ModelSpec,
    index: usize,
    input: &SecretBytes,
) -> Result<Vec<String>> {
    let field = spec.fields.get(index).ok_or_else(|| Error::invalid("no such field"))?;
    if field.blind_index.is_none() {
        return Err(Error::invalid("field has no blind index"));
    }
    let key = key_name(field)?;
    let info = engine.read_key(&key)?;
    let items = lookup_versions(&info)
        .map(|v| HmacItem::new(input.duplicate_secret()).key_version(v))
        .collect();
    engine
        .hmac_batch(&key, HashAlgorithm::Sha2_256, items)?
        .into_iter()
        .map(|r| r.map(|tag| tag.to_string()))
        .collect()
}

/// Versions to look up with: decryptable, and allowed for encryption on request.
fn lookup_versions(info: &KeyInfo) -> impl Iterator<Item = crate::KeyVersion> + '_ {
    info.decryptable_versions()
        .filter(|v| v.get() >= info.min_encryption_version)
}

/// Creates every key a model needs that does not exist yet (convergent fields get a
/// derived, convergent key), and checks that existing keys have the right kind.
///
/// # Errors
/// [`Error::InvalidRequest`] if an existing key's kind does not match its field.
pub fn ensure_keys<E: TransitEngine + ?Sized>(engine: &E, spec: &ModelSpec) -> Result<()> {
    for field in spec.fields {
        let options = if field.convergent {
            KeyOptions::convergent()
        } else {
            KeyOptions::default()
        };
        let info = engine.create_key(&key_name(field)?, options)?;
        if info.convergent_encryption != field.convergent {
            return Err(Error::invalid(format!(
                "key {} for {}.{} is {}convergent, but the field is {}",
                field.key,
                spec.table,
                field.column,
                if info.convergent_encryption { "" } else { "not " },
                if field.convergent {
                    "convergent"
                } else {
                    "not convergent"
                },
            )));
        }
    }
    Ok(())
}

/// Normalisers for blind indexes (`normalize = "lowercase" | "trim" | "digits"`).
pub mod normalize {
    use crate::secret::SecretBytes;

    /// Lower-cases (Unicode) and trims surrounding whitespace.
    pub fn lowercase(value: &str) -> SecretBytes {
        SecretBytes::from(value.trim().to_lowercase())
    }

    /// Trims surrounding whitespace.
    pub fn trim(value: &str) -> SecretBytes {
        SecretBytes::from(value.trim())
    }

    /// Keeps only ASCII digits (phone numbers, card numbers).
    pub fn digits(value: &str) -> SecretBytes {
        SecretBytes::from(value.chars().filter(char::is_ascii_digit).collect::<String>())
    }

    /// No normalisation: the value's bytes.
    pub fn exact(value: &str) -> SecretBytes {
        SecretBytes::from(value)
    }
}
