//! Runtime of `#[derive(Encrypted)]`: the traits the derive implements, the binding
//! of ciphertexts to their table, column and row, and the one generic driver that
//! turns models into records and back with one engine call per key.
//!
//! The derive emits no I/O. It implements [`EncryptedModel`] and [`EncryptedRecord`]
//! (where each field's bytes come from and go to) and thin inherent methods that call
//! the functions here. Each function is a plan (which values go to which key, with
//! which context or associated data, and where the results go back) executed by the
//! one driver in `driver`, on a blocking or an async engine — so sync and async share
//! everything but the engine calls.

mod binding;
mod codec;
mod driver;
mod row_id;

use bytes::Bytes;

use crate::ciphertext::Ciphertext;
use crate::engine::{AsyncTransitEngine, DecryptItem, EncryptItem, HmacItem, HmacTag, RewrapItem, TransitEngine};
use crate::error::{Error, Result};
use crate::keyring::{KeyInfo, KeyOptions};
use crate::name::KeyName;
use crate::secret::{Plaintext, SecretBytes};
use driver::{EngineAnswer, EngineCall, Plan, Step};

pub use binding::{column_binding, key_context, row_binding, tenant_scoped};
pub use codec::{FieldCodec, decode_json, encode_json};
pub use row_id::{DisplayRowId, IntegerRowId, RowId};

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
    /// The plain field whose value derives this field's key (per-tenant keys).
    pub context: Option<&'static str>,
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

    /// The tenant of field `index` (the text form of its `context` field's value);
    /// `None` for a field without `context`.
    fn field_tenant(&self, index: usize) -> Option<String> {
        let _ = index;
        None
    }

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

    /// Writes [`row_id`](Self::row_id) into `out` (cleared first) and says whether
    /// there is one: a load formats every row's id into one reused buffer instead of
    /// allocating a string per row.
    fn write_row_id(&self, out: &mut String) -> bool {
        out.clear();
        self.row_id().map(|id| out.push_str(&id)).is_some()
    }

    /// The ciphertext of field `index`; `None` for NULL.
    fn field_ciphertext(&self, index: usize) -> Option<&Ciphertext>;

    /// The tenant of field `index`, as the model's.
    fn field_tenant(&self, index: usize) -> Option<String> {
        let _ = index;
        None
    }

    /// The stored blind index of field `index`; `None` for NULL or a field without.
    fn field_blind_index(&self, index: usize) -> Option<&str> {
        let _ = index;
        None
    }

    /// Builds the model from the decrypted bytes of every field, in order: `opened`
    /// yields one entry per field of [`SPEC`](Self::SPEC) (an iterator, so that a
    /// whole result set's plaintexts sit in one allocation, not one per row).
    ///
    /// # Errors
    /// [`Error::InvalidFieldValue`] when bytes do not decode into the field's type,
    /// or a NULL column for a field that is not an `Option`.
    fn into_model(self, opened: &mut dyn Iterator<Item = Option<Plaintext>>) -> Result<Self::Model>;
}

/// Where a value sits: its row's identity and, for a per-tenant field, its tenant.
#[derive(Clone, Copy)]
struct Place<'a> {
    row_id: Option<&'a str>,
    tenant: Option<&'a str>,
}

/// What binds a value to its place: the key-derivation context (convergent and
/// per-tenant fields: the column, and the tenant) and the associated data (every
/// non-convergent field: the row). A convergent field carries no row identity: it
/// would make equal values differ.
///
/// One call's bindings are written into one buffer and its items get slices of it,
/// so an item costs no allocation of its own.
struct BindingBuffer {
    bytes: Vec<u8>,
    /// The field's column binding, which every binding of the call starts with.
    column: Vec<u8>,
    /// Where each binding ends, in order: per item its context, then its associated
    /// data, each only if the field has it (the same for every item of a field).
    /// `u32`, half the size: a load's transient arrays are what glibc's allocator
    /// decides on whether to hand its heap back to the system (and fault it in again).
    ends: Vec<u32>,
    has_context: bool,
    has_associated_data: bool,
}

impl BindingBuffer {
    fn new(items: usize, spec: &ModelSpec, field: &FieldSpec) -> Self {
        let has_context = field.convergent || field.context.is_some();
        let has_associated_data = !field.convergent;
        let parts = usize::from(has_context) + usize::from(has_associated_data);
        // The id's digits and its length prefix are a guess; the buffer grows if not.
        let per_part = 32 + spec.table.len() + field.column.len();
        Self {
            bytes: Vec::with_capacity(items * parts * per_part),
            column: binding::column_binding(spec.table, field.column),
            ends: Vec::with_capacity(items * parts),
            has_context,
            has_associated_data,
        }
    }

    /// Writes one item's bindings.
    ///
    /// # Errors
    /// A call whose bindings pass 4 GiB (no batch that fits in memory comes close).
    fn push(&mut self, place: Place<'_>) -> Result<()> {
        if self.has_context {
            binding::write_row_binding(&mut self.bytes, &self.column, place.tenant);
            self.mark_end()?;
        }
        if self.has_associated_data {
            binding::write_row_binding(&mut self.bytes, &self.column, place.row_id);
            self.mark_end()?;
        }
        Ok(())
    }

    fn mark_end(&mut self) -> Result<()> {
        let end = u32::try_from(self.bytes.len()).map_err(|_| Error::invalid("batch too large"))?;
        self.ends.push(end);
        Ok(())
    }

    /// The items' bindings, in the order they were pushed.
    fn freeze(self) -> SharedBindings {
        SharedBindings {
            shared: Bytes::from(self.bytes),
            ends: self.ends.into_iter(),
            start: 0,
            has_context: self.has_context,
            has_associated_data: self.has_associated_data,
        }
    }
}

/// A [`BindingBuffer`]'s bindings, handed out item by item as slices of one buffer.
struct SharedBindings {
    shared: Bytes,
    ends: std::vec::IntoIter<u32>,
    start: usize,
    has_context: bool,
    has_associated_data: bool,
}

impl SharedBindings {
    /// The next item's context and associated data.
    ///
    /// # Errors
    /// More items asked for than were pushed: never an empty binding in place of one.
    fn next_item(&mut self) -> Result<(Option<Bytes>, Option<Bytes>)> {
        let context = self.has_context.then(|| self.next_slice()).transpose()?;
        let associated_data = self.has_associated_data.then(|| self.next_slice()).transpose()?;
        Ok((context, associated_data))
    }

    fn next_slice(&mut self) -> Result<Bytes> {
        let end = self.ends.next().ok_or_else(driver::mismatch)? as usize;
        let slice = self.shared.slice(self.start..end);
        self.start = end;
        Ok(slice)
    }
}

/// One item's bindings on their own (single values and upgrades, which touch few).
fn bindings(spec: &ModelSpec, field: &FieldSpec, place: Place<'_>) -> Result<(Option<Bytes>, Option<Bytes>)> {
    let mut buffer = BindingBuffer::new(1, spec, field);
    buffer.push(place)?;
    buffer.freeze().next_item()
}

/// The engine item for one field's value.
fn encrypt_item(spec: &ModelSpec, field: &FieldSpec, place: Place<'_>, plaintext: SecretBytes) -> Result<EncryptItem> {
    let mut item = EncryptItem::new(plaintext);
    (item.context, item.associated_data) = bindings(spec, field, place)?;
    Ok(item)
}

/// A per-tenant field needs its tenant: refuse rather than encrypt under a key
/// derived from nothing.
fn tenant_of(field: &FieldSpec, tenant: Option<String>) -> Result<Option<String>> {
    match (field.context, tenant) {
        (Some(context), None) => Err(Error::invalid(format!(
            "field {} derives its key from `{context}`, but no value was given",
            field.field
        ))),
        (Some(_), tenant) => Ok(tenant),
        // A field without `context` has no tenant, whatever a caller passes.
        (None, _) => Ok(None),
    }
}

fn key_name(field: &FieldSpec) -> Result<KeyName> {
    Ok(KeyName::new(field.key)?)
}

fn field_of(spec: &ModelSpec, index: usize) -> Result<&FieldSpec> {
    spec.fields.get(index).ok_or_else(|| Error::invalid("no such field"))
}

fn field_error(spec: &ModelSpec, index: usize, item: usize, source: Error) -> Error {
    Error::Field {
        table: spec.table,
        column: spec.fields.get(index).map_or("?", |f| f.column),
        item,
        source: Box::new(source),
    }
}

fn single<T>(mut all: Vec<T>) -> Result<T> {
    all.pop().ok_or_else(|| Error::invalid("no result for the item"))
}

/// Where the results of one planned call go: the field, and the model or record of
/// each item.
struct Route {
    field: usize,
    owners: Vec<usize>,
}

/// Encrypting models into records: one call per field key, plus one HMAC call per
/// blind-indexed field, whatever the number of models.
struct EncryptPlan<'a, M> {
    models: &'a [M],
    /// `None` until the calls are planned.
    routes: Option<Vec<Route>>,
}

impl<M: EncryptedModel> EncryptPlan<'_, M> {
    fn calls(&self) -> Result<(Vec<EngineCall>, Vec<Route>)> {
        let spec = &M::SPEC;
        let row_ids: Vec<Option<String>> = self.models.iter().map(EncryptedModel::row_id).collect();
        let (mut calls, mut routes) = (Vec::new(), Vec::new());
        for (index, field) in spec.fields.iter().enumerate() {
            let key = key_name(field)?;
            let tenants = self
                .models
                .iter()
                .map(|m| tenant_of(field, m.field_tenant(index)))
                .collect::<Result<Vec<_>>>()?;
            let (mut plaintexts, mut owners) = (
                Vec::with_capacity(self.models.len()),
                Vec::with_capacity(self.models.len()),
            );
            let mut buffer = BindingBuffer::new(self.models.len(), spec, field);
            for (m, model) in self.models.iter().enumerate() {
                if let Some(plaintext) = model
                    .field_plaintext(index)
                    .map_err(|e| field_error(spec, index, m, e))?
                {
                    let place = Place {
                        row_id: row_ids[m].as_deref(),
                        tenant: tenants[m].as_deref(),
                    };
                    buffer.push(place)?;
                    plaintexts.push(plaintext);
                    owners.push(m);
                }
            }
            let mut bindings = buffer.freeze();
            let items = plaintexts
                .into_iter()
                .map(|plaintext| {
                    let mut item = EncryptItem::new(plaintext);
                    (item.context, item.associated_data) = bindings.next_item()?;
                    Ok(item)
                })
                .collect::<Result<Vec<_>>>()?;
            if !items.is_empty() {
                calls.push(EngineCall::Encrypt(key.clone(), items));
                routes.push(Route { field: index, owners });
            }
            if field.blind_index.is_some() {
                let (mut items, mut owners) = (Vec::new(), Vec::new());
                for (m, model) in self.models.iter().enumerate() {
                    if let Some(input) = model
                        .blind_index_input(index)
                        .map_err(|e| field_error(spec, index, m, e))?
                    {
                        let input = match tenants[m].as_deref() {
                            Some(tenant) => tenant_scoped(Some(tenant), input.expose_secret()),
                            None => input,
                        };
                        items.push(HmacItem::new(input));
                        owners.push(m);
                    }
                }
                if !items.is_empty() {
                    calls.push(EngineCall::Hmac(key, items));
                    routes.push(Route { field: index, owners });
                }
            }
        }
        Ok((calls, routes))
    }

    fn records(&self, routes: Vec<Route>, answers: Vec<EngineAnswer>) -> Result<Vec<M::Record>> {
        let spec = &M::SPEC;
        let mut sealed: Vec<Vec<SealedField>> = self
            .models
            .iter()
            .map(|_| spec.fields.iter().map(|_| SealedField::default()).collect())
            .collect();
        if routes.len() != answers.len() {
            return Err(driver::mismatch());
        }
        for (Route { field, owners }, answer) in routes.into_iter().zip(answers) {
            match answer {
                EngineAnswer::Sealed(results) => {
                    for (m, result) in owners.into_iter().zip(results) {
                        sealed[m][field].ciphertext = Some(result.map_err(|e| field_error(spec, field, m, e))?);
                    }
                }
                EngineAnswer::Tagged(results) => {
                    for (m, result) in owners.into_iter().zip(results) {
                        let tag = result.map_err(|e| field_error(spec, field, m, e))?;
                        sealed[m][field].blind_index = Some(tag.to_string());
                    }
                }
                _ => return Err(driver::mismatch()),
            }
        }
        self.models
            .iter()
            .zip(sealed)
            .map(|(model, fields)| model.to_record(fields))
            .collect()
    }
}

impl<M: EncryptedModel> Plan for EncryptPlan<'_, M> {
    type Output = Vec<M::Record>;

    fn step(&mut self, answers: Vec<EngineAnswer>) -> Result<Step<Self::Output>> {
        match self.routes.take() {
            None => {
                let (calls, routes) = self.calls()?;
                self.routes = Some(routes);
                Ok(Step::Call(calls))
            }
            Some(routes) => self.records(routes, answers).map(Step::Done),
        }
    }
}

/// Decrypting records into models: one call per field key.
struct DecryptPlan<R> {
    records: Vec<R>,
    routes: Option<Vec<Route>>,
}

impl<R: EncryptedRecord> DecryptPlan<R> {
    fn calls(&self) -> Result<(Vec<EngineCall>, Vec<Route>)> {
        let spec = &R::SPEC;
        let (mut calls, mut routes) = (Vec::new(), Vec::new());
        let mut row_id = String::new();
        for (index, field) in spec.fields.iter().enumerate() {
            let rows = self.records.len();
            let mut owners = Vec::with_capacity(rows);
            let mut buffer = BindingBuffer::new(rows, spec, field);
            for (r, record) in self.records.iter().enumerate() {
                if record.field_ciphertext(index).is_some() {
                    let tenant = tenant_of(field, record.field_tenant(index))?;
                    let has_id = record.write_row_id(&mut row_id);
                    let place = Place {
                        row_id: has_id.then_some(row_id.as_str()),
                        tenant: tenant.as_deref(),
                    };
                    buffer.push(place)?;
                    owners.push(r);
                }
            }
            // The ciphertexts again, rather than kept from the first pass: see `ends`.
            // A record that answers differently the second time fails the call
            // instead of shifting items against their rows.
            let mut bindings = buffer.freeze();
            let items = owners
                .iter()
                .map(|&r| {
                    let ct = self.records[r].field_ciphertext(index).ok_or_else(driver::mismatch)?;
                    let mut item = DecryptItem::new(ct.clone());
                    (item.context, item.associated_data) = bindings.next_item()?;
                    Ok(item)
                })
                .collect::<Result<Vec<_>>>()?;
            if !items.is_empty() {
                calls.push(EngineCall::Decrypt(key_name(field)?, items));
                routes.push(Route { field: index, owners });
            }
        }
        Ok((calls, routes))
    }

    fn models(&mut self, routes: Vec<Route>, answers: Vec<EngineAnswer>) -> Result<Vec<R::Model>> {
        let spec = &R::SPEC;
        let records = std::mem::take(&mut self.records);
        // Row r's field f at r * fields + f: one allocation for the whole result set.
        let fields = spec.fields.len();
        let mut plaintexts: Vec<Option<Plaintext>> =
            std::iter::repeat_with(|| None).take(records.len() * fields).collect();
        if routes.len() != answers.len() {
            return Err(driver::mismatch());
        }
        for (Route { field, owners }, answer) in routes.into_iter().zip(answers) {
            let EngineAnswer::Opened(results) = answer else {
                return Err(driver::mismatch());
            };
            for (r, result) in owners.into_iter().zip(results) {
                plaintexts[r * fields + field] = Some(result.map_err(|e| field_error(spec, field, r, e))?);
            }
        }
        let mut opened = plaintexts.into_iter();
        records
            .into_iter()
            .enumerate()
            .map(|(r, record)| {
                let mut row = opened.by_ref().take(fields);
                let model = record.into_model(&mut row).map_err(|e| field_error(spec, 0, r, e));
                // Whatever the record left belongs to its row, never to the next.
                row.for_each(drop);
                model
            })
            .collect()
    }
}

impl<R: EncryptedRecord> Plan for DecryptPlan<R> {
    type Output = Vec<R::Model>;

    fn step(&mut self, answers: Vec<EngineAnswer>) -> Result<Step<Self::Output>> {
        match self.routes.take() {
            None => {
                let (calls, routes) = self.calls()?;
                self.routes = Some(routes);
                Ok(Step::Call(calls))
            }
            Some(routes) => self.models(routes, answers).map(Step::Done),
        }
    }
}

/// Encrypts `models` into records: one engine call per encrypted field's key (and
/// one per blind index), whatever the number of models.
///
/// # Errors
/// The first failing field, as [`Error::Field`], or a whole-call error.
pub fn encrypt_all<M: EncryptedModel, E: TransitEngine + ?Sized>(models: &[M], engine: &E) -> Result<Vec<M::Record>> {
    driver::run(EncryptPlan { models, routes: None }, engine)
}

/// [`encrypt_all`] on an async engine (the calls for different keys at once).
///
/// # Errors
/// As [`encrypt_all`].
pub async fn encrypt_all_async<M: EncryptedModel, E: AsyncTransitEngine + ?Sized>(
    models: &[M],
    engine: &E,
) -> Result<Vec<M::Record>> {
    driver::run_async(EncryptPlan { models, routes: None }, engine).await
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

/// Decrypts records into models: one engine call per encrypted field's key.
///
/// # Errors
/// The first failing field, as [`Error::Field`] (a ciphertext moved to another
/// row or column fails here with [`Error::DecryptionFailed`] inside).
pub fn decrypt_all<R: EncryptedRecord, E: TransitEngine + ?Sized>(
    records: Vec<R>,
    engine: &E,
) -> Result<Vec<R::Model>> {
    driver::run(DecryptPlan { records, routes: None }, engine)
}

/// [`decrypt_all`] on an async engine (the calls for different keys at once).
///
/// # Errors
/// As [`decrypt_all`].
pub async fn decrypt_all_async<R: EncryptedRecord, E: AsyncTransitEngine + ?Sized>(
    records: Vec<R>,
    engine: &E,
) -> Result<Vec<R::Model>> {
    driver::run_async(DecryptPlan { records, routes: None }, engine).await
}

/// A column value found below its key's latest version while loading, and its
/// rewrapped form (rewrapped by the engine: the plaintext never travels for it).
/// Write it back compare-and-swap — `UPDATE … SET col = ciphertext WHERE id = … AND
/// col = previous` — and a rotation completes as rows are read, without a bulk job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Upgrade {
    /// Position of the row in the loaded records (and models).
    pub row: usize,
    /// The row's identity (text form), when the model names an `id`.
    pub row_id: Option<String>,
    /// The column to write.
    pub column: &'static str,
    /// The value the column holds now: the compare-and-swap condition.
    pub previous: Ciphertext,
    /// The value to write: the same plaintext under the latest version.
    pub ciphertext: Ciphertext,
}

/// A blind index computed under an older key version than the latest, recomputed
/// while loading (from the value just decrypted). Write it back like an [`Upgrade`]:
/// `UPDATE … SET col = value WHERE id = … AND col = previous`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexUpgrade {
    /// Position of the row in the loaded records (and models).
    pub row: usize,
    /// The row's identity (text form), when the model names an `id`.
    pub row_id: Option<String>,
    /// The blind-index column to write.
    pub column: &'static str,
    /// The value the column holds now: the compare-and-swap condition.
    pub previous: String,
    /// The value to write: the index under the key's latest version.
    pub value: String,
}

/// Models decrypted from records, and the column values worth writing back.
#[derive(Debug)]
#[non_exhaustive]
pub struct Upgraded<M> {
    /// The models, in record order.
    pub models: Vec<M>,
    /// Values below their key's latest version, rewrapped.
    pub upgrades: Vec<Upgrade>,
    /// Blind indexes below their key's latest version, recomputed.
    pub index_upgrades: Vec<IndexUpgrade>,
    /// Values and indexes below their key's latest version the engine did not
    /// upgrade (the token may not rewrap or HMAC, or the engine takes no associated
    /// data on rewrap, as Vault): the load succeeds, and these stay as they are. Keys
    /// the token may not read are not looked at, so not counted.
    pub not_upgraded: usize,
}

/// Where the results of one upgrade call go: a field (its ciphertexts, or its blind
/// index), the rows, and what each row's column holds now.
struct UpgradeRoute<P> {
    field: usize,
    rows: Vec<usize>,
    row_ids: Vec<Option<String>>,
    previous: Vec<P>,
}

impl<P> UpgradeRoute<P> {
    fn new(field: usize) -> Self {
        Self {
            field,
            rows: Vec::new(),
            row_ids: Vec::new(),
            previous: Vec::new(),
        }
    }

    fn push(&mut self, row: usize, row_id: Option<String>, previous: P) {
        self.rows.push(row);
        self.row_ids.push(row_id);
        self.previous.push(previous);
    }
}

/// Decrypting records, and upgrading on the way what is below its key's latest
/// version. Step 1: the decryptions and, alongside, each field's key. Step 2: one
/// rewrap call per field with old ciphertexts, and one HMAC call per blind index with
/// old values (computed from the plaintexts just decrypted). Both tolerated to fail.
struct UpgradePlan<R: EncryptedRecord> {
    decrypt: DecryptPlan<R>,
    decrypt_routes: Option<Vec<Route>>,
    models: Option<Vec<R::Model>>,
    rewraps: Vec<UpgradeRoute<Ciphertext>>,
    indexes: Vec<UpgradeRoute<String>>,
    /// Old values found that no call will upgrade.
    skipped: usize,
}

impl<R> UpgradePlan<R>
where
    R: EncryptedRecord,
    R::Model: EncryptedModel,
{
    /// Step 2's calls, from the decryptions and key descriptions of step 1.
    fn upgrade_calls(&mut self, opened: Vec<EngineAnswer>, infos: Vec<EngineAnswer>) -> Result<Vec<EngineCall>> {
        let spec = &R::SPEC;
        let routes = self.decrypt_routes.take().unwrap_or_default();
        if infos.len() != routes.len() {
            return Err(driver::mismatch());
        }
        let mut calls = Vec::new();
        // Blind indexes to recompute: (field, key, rows with their tenant).
        let mut stale_indexes = Vec::new();
        for (route, info) in routes.iter().zip(infos) {
            let info = match info {
                EngineAnswer::Key(info) => info,
                // The key could not be read (no `read` capability): no upgrades.
                EngineAnswer::Failed => continue,
                _ => return Err(driver::mismatch()),
            };
            let field = field_of(spec, route.field)?;
            let (mut items, mut rewrap) = (Vec::new(), UpgradeRoute::new(route.field));
            let (mut index, mut tenants) = (UpgradeRoute::new(route.field), Vec::new());
            for &r in &route.owners {
                let record = &self.decrypt.records[r];
                let stale_value = record
                    .field_ciphertext(route.field)
                    .filter(|ct| ct.version() < info.latest_version);
                let stale_index = record
                    .field_blind_index(route.field)
                    .filter(|tag| tag.parse::<HmacTag>().is_ok_and(|t| t.version() < info.latest_version));
                if stale_value.is_none() && stale_index.is_none() {
                    // Up to date (the common case): no binding to build.
                    continue;
                }
                let tenant = tenant_of(field, record.field_tenant(route.field))?;
                let row_id = record.row_id();
                if let Some(ct) = stale_value {
                    let place = Place {
                        row_id: row_id.as_deref(),
                        tenant: tenant.as_deref(),
                    };
                    let mut item = RewrapItem::new(ct.clone());
                    (item.context, item.associated_data) = bindings(spec, field, place)?;
                    items.push(item);
                    rewrap.push(r, row_id.clone(), ct.clone());
                }
                if let Some(tag) = stale_index {
                    index.push(r, row_id, tag.to_owned());
                    tenants.push(tenant);
                }
            }
            if !items.is_empty() {
                let call = EngineCall::Rewrap(key_name(field)?, items);
                calls.push(EngineCall::Tolerant(Box::new(call)));
                self.rewraps.push(rewrap);
            }
            if !index.rows.is_empty() {
                stale_indexes.push((key_name(field)?, index, tenants));
            }
        }
        // Decryption errors are the ones to report: the models first.
        let models = self.decrypt.models(routes, opened)?;
        for (key, stale, tenants) in stale_indexes {
            // A row whose value gives no index input (cannot happen through the
            // derive) is left as it is, like any upgrade that cannot be made.
            let (mut items, mut index) = (Vec::with_capacity(stale.rows.len()), UpgradeRoute::new(stale.field));
            let rows = stale.rows.into_iter().zip(stale.row_ids).zip(stale.previous);
            for (((r, row_id), previous), tenant) in rows.zip(tenants) {
                let Ok(Some(input)) = models[r].blind_index_input(index.field) else {
                    self.skipped += 1;
                    continue;
                };
                let input = match tenant.as_deref() {
                    Some(tenant) => tenant_scoped(Some(tenant), input.expose_secret()),
                    None => input,
                };
                items.push(HmacItem::new(input));
                index.push(r, row_id, previous);
            }
            if !items.is_empty() {
                calls.push(EngineCall::Tolerant(Box::new(EngineCall::Hmac(key, items))));
                self.indexes.push(index);
            }
        }
        self.models = Some(models);
        Ok(calls)
    }

    fn finish(&mut self, answers: Vec<EngineAnswer>) -> Result<Upgraded<R::Model>> {
        let spec = &R::SPEC;
        if answers.len() != self.rewraps.len() + self.indexes.len() {
            return Err(driver::mismatch());
        }
        let mut answers = answers.into_iter();
        let (mut upgrades, mut index_upgrades, mut not_upgraded) = (Vec::new(), Vec::new(), self.skipped);
        for route in std::mem::take(&mut self.rewraps) {
            let results = match answers.next() {
                Some(EngineAnswer::Sealed(results)) => results,
                Some(EngineAnswer::Failed) => {
                    not_upgraded += route.rows.len();
                    continue;
                }
                _ => return Err(driver::mismatch()),
            };
            let column = field_of(spec, route.field)?.column;
            let rows = route.rows.into_iter().zip(route.row_ids).zip(route.previous);
            for (((row, row_id), previous), result) in rows.zip(results) {
                match result {
                    Ok(ciphertext) => upgrades.push(Upgrade {
                        row,
                        row_id,
                        column,
                        previous,
                        ciphertext,
                    }),
                    Err(_) => not_upgraded += 1,
                }
            }
        }
        for route in std::mem::take(&mut self.indexes) {
            let results = match answers.next() {
                Some(EngineAnswer::Tagged(results)) => results,
                Some(EngineAnswer::Failed) => {
                    not_upgraded += route.rows.len();
                    continue;
                }
                _ => return Err(driver::mismatch()),
            };
            let column = field_of(spec, route.field)?.blind_index.ok_or_else(driver::mismatch)?;
            let rows = route.rows.into_iter().zip(route.row_ids).zip(route.previous);
            for (((row, row_id), previous), result) in rows.zip(results) {
                match result {
                    Ok(tag) => index_upgrades.push(IndexUpgrade {
                        row,
                        row_id,
                        column,
                        previous,
                        value: tag.to_string(),
                    }),
                    Err(_) => not_upgraded += 1,
                }
            }
        }
        Ok(Upgraded {
            models: self.models.take().unwrap_or_default(),
            upgrades,
            index_upgrades,
            not_upgraded,
        })
    }
}

impl<R> Plan for UpgradePlan<R>
where
    R: EncryptedRecord,
    R::Model: EncryptedModel,
{
    type Output = Upgraded<R::Model>;

    fn step(&mut self, mut answers: Vec<EngineAnswer>) -> Result<Step<Self::Output>> {
        if self.decrypt_routes.is_none() && self.models.is_none() {
            let (mut calls, routes) = self.decrypt.calls()?;
            for route in &routes {
                // Tolerated: a token that may decrypt but not read the key loads all
                // the same, without upgrades.
                let read = EngineCall::ReadKey(key_name(field_of(&R::SPEC, route.field)?)?);
                calls.push(EngineCall::Tolerant(Box::new(read)));
            }
            self.decrypt_routes = Some(routes);
            return Ok(Step::Call(calls));
        }
        if self.models.is_none() {
            let decrypts = self.decrypt_routes.as_ref().map_or(0, Vec::len);
            if answers.len() != 2 * decrypts {
                return Err(driver::mismatch());
            }
            let infos = answers.split_off(decrypts);
            let calls = self.upgrade_calls(answers, infos)?;
            if !calls.is_empty() {
                return Ok(Step::Call(calls));
            }
            answers = Vec::new();
        }
        self.finish(answers).map(Step::Done)
    }
}

fn upgrade_plan<R: EncryptedRecord>(records: Vec<R>) -> UpgradePlan<R> {
    UpgradePlan {
        decrypt: DecryptPlan { records, routes: None },
        decrypt_routes: None,
        models: None,
        rewraps: Vec::new(),
        indexes: Vec::new(),
        skipped: 0,
    }
}

/// [`decrypt_all`], also upgrading what is below its key's latest version: values are
/// rewrapped by the engine, blind indexes recomputed from the decrypted values. Write
/// [`Upgraded::upgrades`] and [`Upgraded::index_upgrades`] back (compare-and-swap) to
/// finish a rotation as rows are read. One extra key read per field, sent with the
/// decryption, then one rewrap call per field and one HMAC call per blind index that
/// have old values.
///
/// # Errors
/// As [`decrypt_all`]. Upgrading is best effort and never fails the load: a key the
/// engine will not describe (a token without `read` on it) means no upgrades for its
/// field (nothing is counted: old values cannot be told without the key); a rewrap or
/// HMAC the engine refuses (a token without `rewrap` or `hmac`; Vault, whose rewrap
/// takes no associated data) is counted in [`Upgraded::not_upgraded`].
pub fn decrypt_all_upgrading<R, E>(records: Vec<R>, engine: &E) -> Result<Upgraded<R::Model>>
where
    R: EncryptedRecord,
    R::Model: EncryptedModel,
    E: TransitEngine + ?Sized,
{
    driver::run(upgrade_plan(records), engine)
}

/// [`decrypt_all_upgrading`] on an async engine.
///
/// # Errors
/// As [`decrypt_all_upgrading`].
pub async fn decrypt_all_upgrading_async<R, E>(records: Vec<R>, engine: &E) -> Result<Upgraded<R::Model>>
where
    R: EncryptedRecord,
    R::Model: EncryptedModel,
    E: AsyncTransitEngine + ?Sized,
{
    driver::run_async(upgrade_plan(records), engine).await
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

/// Encrypting one field's value for a partial update.
struct FieldPlan {
    call: Option<EngineCall>,
}

impl FieldPlan {
    fn new(spec: &ModelSpec, index: usize, place: Place<'_>, plaintext: SecretBytes) -> Result<Self> {
        let field = field_of(spec, index)?;
        tenant_of(field, place.tenant.map(str::to_owned))?;
        let item = encrypt_item(spec, field, place, plaintext)?;
        Ok(Self {
            call: Some(EngineCall::Encrypt(key_name(field)?, vec![item])),
        })
    }
}

impl Plan for FieldPlan {
    type Output = Ciphertext;

    fn step(&mut self, answers: Vec<EngineAnswer>) -> Result<Step<Ciphertext>> {
        if let Some(call) = self.call.take() {
            return Ok(Step::Call(vec![call]));
        }
        match single(answers)? {
            EngineAnswer::Sealed(results) => single(results)?,
            _ => Err(driver::mismatch()),
        }
        .map(Step::Done)
    }
}

/// Encrypts one field's value for a partial update (`UPDATE … SET ssn = $1`);
/// `tenant` is the value of a per-tenant field's `context` field.
///
/// # Errors
/// Engine errors.
pub fn encrypt_field<E: TransitEngine + ?Sized>(
    engine: &E,
    spec: &ModelSpec,
    index: usize,
    row_id: Option<&str>,
    tenant: Option<&str>,
    plaintext: SecretBytes,
) -> Result<Ciphertext> {
    driver::run(
        FieldPlan::new(spec, index, Place { row_id, tenant }, plaintext)?,
        engine,
    )
}

/// [`encrypt_field`] on an async engine.
///
/// # Errors
/// Engine errors.
pub async fn encrypt_field_async<E: AsyncTransitEngine + ?Sized>(
    engine: &E,
    spec: &ModelSpec,
    index: usize,
    row_id: Option<&str>,
    tenant: Option<&str>,
    plaintext: SecretBytes,
) -> Result<Ciphertext> {
    driver::run_async(
        FieldPlan::new(spec, index, Place { row_id, tenant }, plaintext)?,
        engine,
    )
    .await
}

/// The values a lookup compares a column with: the input under every key version that
/// can still decrypt, so a lookup keeps working after a rotation until old rows are
/// rewrapped. First the key is read, then one call covers every version.
struct LookupPlan {
    key: KeyName,
    input: SecretBytes,
    /// The convergent field's context; `None` for a blind index.
    convergent_context: Option<Vec<u8>>,
    read: bool,
}

impl LookupPlan {
    fn convergent(spec: &ModelSpec, index: usize, tenant: Option<&str>, plaintext: &SecretBytes) -> Result<Self> {
        let field = field_of(spec, index)?;
        if !field.convergent {
            return Err(Error::invalid("lookup needs a convergent field"));
        }
        let tenant = tenant_of(field, tenant.map(str::to_owned))?;
        Ok(Self {
            key: key_name(field)?,
            input: plaintext.duplicate_secret(),
            convergent_context: Some(key_context(spec.table, field.column, tenant.as_deref())),
            read: false,
        })
    }

    fn blind_index(spec: &ModelSpec, index: usize, tenant: Option<&str>, input: &SecretBytes) -> Result<Self> {
        let field = field_of(spec, index)?;
        if field.blind_index.is_none() {
            return Err(Error::invalid("field has no blind index"));
        }
        let tenant = tenant_of(field, tenant.map(str::to_owned))?;
        Ok(Self {
            key: key_name(field)?,
            input: tenant_scoped(tenant.as_deref(), input.expose_secret()),
            convergent_context: None,
            read: false,
        })
    }
}

impl Plan for LookupPlan {
    type Output = EngineAnswer;

    fn step(&mut self, answers: Vec<EngineAnswer>) -> Result<Step<EngineAnswer>> {
        if !self.read {
            self.read = true;
            return Ok(Step::Call(vec![EngineCall::ReadKey(self.key.clone())]));
        }
        match single(answers)? {
            EngineAnswer::Key(info) => {
                let versions = lookup_versions(&info);
                let call = match &self.convergent_context {
                    Some(context) => EngineCall::Encrypt(
                        self.key.clone(),
                        versions
                            .map(|v| {
                                EncryptItem::new(self.input.duplicate_secret())
                                    .context(context.clone())
                                    .key_version(v)
                            })
                            .collect(),
                    ),
                    None => EngineCall::Hmac(
                        self.key.clone(),
                        versions
                            .map(|v| HmacItem::new(self.input.duplicate_secret()).key_version(v))
                            .collect(),
                    ),
                };
                Ok(Step::Call(vec![call]))
            }
            // The last answer is the result; the public functions unpack it.
            answer => Ok(Step::Done(answer)),
        }
    }
}

fn lookup_ciphertexts(answer: EngineAnswer) -> Result<Vec<Ciphertext>> {
    match answer {
        EngineAnswer::Sealed(results) => results.into_iter().collect(),
        _ => Err(driver::mismatch()),
    }
}

fn lookup_tags(answer: EngineAnswer) -> Result<Vec<String>> {
    match answer {
        EngineAnswer::Tagged(results) => results.into_iter().map(|r| r.map(|tag| tag.to_string())).collect(),
        _ => Err(driver::mismatch()),
    }
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
    tenant: Option<&str>,
    plaintext: &SecretBytes,
) -> Result<Vec<Ciphertext>> {
    lookup_ciphertexts(driver::run(
        LookupPlan::convergent(spec, index, tenant, plaintext)?,
        engine,
    )?)
}

/// [`convergent_lookup`] on an async engine.
///
/// # Errors
/// As [`convergent_lookup`].
pub async fn convergent_lookup_async<E: AsyncTransitEngine + ?Sized>(
    engine: &E,
    spec: &ModelSpec,
    index: usize,
    tenant: Option<&str>,
    plaintext: &SecretBytes,
) -> Result<Vec<Ciphertext>> {
    lookup_ciphertexts(driver::run_async(LookupPlan::convergent(spec, index, tenant, plaintext)?, engine).await?)
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
    tenant: Option<&str>,
    input: &SecretBytes,
) -> Result<Vec<String>> {
    lookup_tags(driver::run(
        LookupPlan::blind_index(spec, index, tenant, input)?,
        engine,
    )?)
}

/// [`blind_index_lookup`] on an async engine.
///
/// # Errors
/// As [`blind_index_lookup`].
pub async fn blind_index_lookup_async<E: AsyncTransitEngine + ?Sized>(
    engine: &E,
    spec: &ModelSpec,
    index: usize,
    tenant: Option<&str>,
    input: &SecretBytes,
) -> Result<Vec<String>> {
    lookup_tags(driver::run_async(LookupPlan::blind_index(spec, index, tenant, input)?, engine).await?)
}

/// Versions to look up with: decryptable, and allowed for encryption on request.
fn lookup_versions(info: &KeyInfo) -> impl Iterator<Item = crate::KeyVersion> + '_ {
    info.decryptable_versions()
        .filter(|v| v.get() >= info.min_encryption_version)
}

/// Creating the keys a model needs (an upsert each, all at once), then checking
/// their kind.
struct EnsureKeysPlan<'s> {
    spec: &'s ModelSpec,
    asked: bool,
}

impl Plan for EnsureKeysPlan<'_> {
    type Output = ();

    fn step(&mut self, answers: Vec<EngineAnswer>) -> Result<Step<()>> {
        let spec = self.spec;
        if !self.asked {
            self.asked = true;
            let calls = spec
                .fields
                .iter()
                .map(|field| {
                    let options = if field.convergent {
                        KeyOptions::convergent()
                    } else {
                        KeyOptions::default().derived(field.context.is_some())
                    };
                    Ok(EngineCall::CreateKey(key_name(field)?, options))
                })
                .collect::<Result<_>>()?;
            return Ok(Step::Call(calls));
        }
        if answers.len() != spec.fields.len() {
            return Err(driver::mismatch());
        }
        for (field, answer) in spec.fields.iter().zip(answers) {
            let EngineAnswer::Key(info) = answer else {
                return Err(driver::mismatch());
            };
            let derived = field.convergent || field.context.is_some();
            if info.derived != derived {
                return Err(Error::invalid(format!(
                    "key {} for {}.{} is {}derived, but the field {}",
                    field.key,
                    spec.table,
                    field.column,
                    if info.derived { "" } else { "not " },
                    if derived {
                        "needs a derived key (convergent or per-tenant)"
                    } else {
                        "uses the key directly"
                    },
                )));
            }
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
        Ok(Step::Done(()))
    }
}

/// Creates every key a model needs that does not exist yet (convergent fields get a
/// derived, convergent key), and checks that existing keys have the right kind.
///
/// # Errors
/// [`Error::InvalidRequest`] if an existing key's kind does not match its field.
pub fn ensure_keys<E: TransitEngine + ?Sized>(engine: &E, spec: &ModelSpec) -> Result<()> {
    driver::run(EnsureKeysPlan { spec, asked: false }, engine)
}

/// [`ensure_keys`] on an async engine.
///
/// # Errors
/// As [`ensure_keys`].
pub async fn ensure_keys_async<E: AsyncTransitEngine + ?Sized>(engine: &E, spec: &ModelSpec) -> Result<()> {
    driver::run_async(EnsureKeysPlan { spec, asked: false }, engine).await
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::engine::LocalEngine;

    /// A convergent field: its items carry no row binding, so an item paired with
    /// the wrong row would still decrypt.
    const SPEC: ModelSpec = ModelSpec {
        table: "people",
        fields: &[FieldSpec {
            field: "ssn",
            column: "ssn",
            key: "people-ssn",
            convergent: true,
            blind_index: None,
            context: None,
        }],
    };

    /// A hand-written record; a fickle one shows its ciphertext only the first time
    /// it is asked.
    struct Person {
        ssn: Ciphertext,
        fickle: bool,
        reads: Cell<u32>,
    }

    impl EncryptedRecord for Person {
        type Model = Option<String>;
        const SPEC: ModelSpec = SPEC;

        fn row_id(&self) -> Option<String> {
            None
        }

        fn field_ciphertext(&self, _: usize) -> Option<&Ciphertext> {
            self.reads.set(self.reads.get() + 1);
            (!self.fickle || self.reads.get() == 1).then_some(&self.ssn)
        }

        fn into_model(self, opened: &mut dyn Iterator<Item = Option<Plaintext>>) -> Result<Option<String>> {
            opened.next().flatten().map(String::decode_owned).transpose()
        }
    }

    #[test]
    fn a_record_that_answers_differently_fails_the_load_instead_of_shifting_rows() -> Result<()> {
        let engine = LocalEngine::ephemeral()?;
        let key = KeyName::new("people-ssn")?;
        engine.create_key(&key, KeyOptions::convergent())?;
        let person = |value: &str, fickle| -> Result<Person> {
            let item = EncryptItem::new(value).context(column_binding("people", "ssn"));
            Ok(Person {
                ssn: engine.encrypt(&key, item)?,
                fickle,
                reads: Cell::new(0),
            })
        };
        let steady = vec![person("one", false)?, person("three", false)?];
        let loaded = decrypt_all(steady, &engine)?;
        assert_eq!(loaded, [Some("one".to_owned()), Some("three".to_owned())]);
        // Without the check, "three" would be given to the second row, and the third
        // row would load as NULL.
        let records = vec![person("one", false)?, person("two", true)?, person("three", false)?];
        assert!(matches!(decrypt_all(records, &engine), Err(Error::InvalidRequest(_))));
        Ok(())
    }
}
