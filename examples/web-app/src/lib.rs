//! An axum service on PostgreSQL whose personal data the companion server encrypts:
//! handlers work with plain values, the database holds only ciphertext, and the keys
//! never leave the server (`RemoteEngine`, async all the way).
//!
//! The model shows each kind of field: random (`ssn`), searchable by equality within
//! a clinic (`email`: convergent, per-clinic key), searchable by a normalised blind
//! index (`phone`), and per-clinic random (`notes`). Listing writes back what a key
//! rotation left behind (upgrade on read: rewrapped values and recomputed blind
//! indexes, compare-and-swap), so rotations complete as patients are listed.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use encrypted_attr::{Encrypted, EncryptedQueryAs, IndexUpgrade, QueryError, RemoteEngine, Upgrade};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// A patient, as the application sees it.
#[derive(Clone, PartialEq, Serialize, Deserialize, Encrypted)]
#[encrypted(table = "patients", id = "id", record(derive(sqlx::FromRow, Debug)))]
pub struct Patient {
    /// Row id (bound into every ciphertext: a value copied to another row fails).
    pub id: i64,
    /// The clinic (tenant) the patient belongs to.
    pub clinic: String,
    /// Not encrypted.
    pub name: String,
    /// Random encryption.
    #[encrypted]
    pub ssn: String,
    /// Searchable by equality within the clinic.
    #[encrypted(convergent, context = "clinic")]
    pub email: String,
    /// Searchable by digits (`phone_bidx`); NULL stays NULL.
    #[encrypted(blind_index = "phone_bidx", normalize = "digits")]
    pub phone: Option<String>,
    /// Under the clinic's own derived key.
    #[encrypted(context = "clinic")]
    pub notes: String,
}

/// What a client sends to create or replace a patient.
#[derive(Clone, Serialize, Deserialize)]
pub struct PatientInput {
    /// Name.
    pub name: String,
    /// Social security number.
    pub ssn: String,
    /// E-mail address.
    pub email: String,
    /// Phone number, any format.
    pub phone: Option<String>,
    /// Clinical notes.
    pub notes: String,
}

// `Debug` shows which patient, never the personal data: a debug log or a failed
// assertion must not print an SSN.
impl std::fmt::Debug for Patient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patient")
            .field("id", &self.id)
            .field("clinic", &self.clinic)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PatientInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatientInput").finish_non_exhaustive()
    }
}

impl PatientInput {
    fn into_patient(self, id: i64, clinic: String) -> Patient {
        Patient {
            id,
            clinic,
            name: self.name,
            ssn: self.ssn,
            email: self.email,
            phone: self.phone,
            notes: self.notes,
        }
    }
}

/// A search: by e-mail, by phone, or (neither) the clinic's first page.
#[derive(Default, Deserialize)]
pub struct Search {
    /// Exact e-mail address.
    pub email: Option<String>,
    /// Phone number, any format.
    pub phone: Option<String>,
}

/// What the handlers share.
pub struct App {
    /// The database.
    pub db: PgPool,
    /// The companion server.
    pub engine: RemoteEngine,
}

/// The tables and indexes (idempotent).
///
/// # Errors
/// Database errors.
pub async fn migrate(db: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "CREATE SEQUENCE IF NOT EXISTS patients_id_seq;
         CREATE TABLE IF NOT EXISTS patients (
             id BIGINT PRIMARY KEY, clinic TEXT NOT NULL, name TEXT NOT NULL, ssn TEXT NOT NULL,
             email TEXT NOT NULL, phone TEXT, phone_bidx TEXT, notes TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS patients_by_email ON patients (clinic, email);
         CREATE INDEX IF NOT EXISTS patients_by_phone ON patients (clinic, phone_bidx);",
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The HTTP API. The clinic comes from the path: a real service must check that the
/// caller belongs to it (authentication is out of this example's scope) — per-clinic
/// keys bind data to a clinic, they do not decide who may ask for it.
///
/// `POST /clinics/{clinic}/patients`, `GET /clinics/{clinic}/patients[?email=…|?phone=…]`,
/// `GET` and `PUT /clinics/{clinic}/patients/{id}`.
pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .route("/clinics/{clinic}/patients", get(search).post(create))
        .route("/clinics/{clinic}/patients/{id}", get(read).put(replace))
        .with_state(app)
}

/// A failed request: the status and a message that names no value.
#[derive(Debug)]
pub enum AppError {
    /// No such patient in this clinic.
    NotFound,
    /// The database or the companion server failed (details in the log).
    Internal(String),
}

impl<D: std::fmt::Display> From<QueryError<D>> for AppError {
    fn from(e: QueryError<D>) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<encrypted_attr::Error> for AppError {
    fn from(e: encrypted_attr::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.to_string())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            Self::NotFound => {
                (StatusCode::NOT_FOUND, Json(serde_json::json!({ "error": "not found" }))).into_response()
            }
            Self::Internal(detail) => {
                // Errors of the engine and the database never carry plaintext.
                eprintln!("request failed: {detail}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(serde_json::json!({ "error": "internal error" })),
                )
                    .into_response()
            }
        }
    }
}

async fn create(
    State(app): State<Arc<App>>,
    Path(clinic): Path<String>,
    Json(input): Json<PatientInput>,
) -> Result<(StatusCode, Json<Patient>), AppError> {
    let (id,): (i64,) = sqlx::query_as("SELECT nextval('patients_id_seq')")
        .fetch_one(&app.db)
        .await?;
    let patient = input.into_patient(id, clinic);
    let record = patient.encrypt_async(&app.engine).await?;
    sqlx::query(
        "INSERT INTO patients (id, clinic, name, ssn, email, phone, phone_bidx, notes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind_record(&record)
    .execute(&app.db)
    .await?;
    Ok((StatusCode::CREATED, Json(patient)))
}

async fn read(State(app): State<Arc<App>>, Path((clinic, id)): Path<(String, i64)>) -> Result<Json<Patient>, AppError> {
    sqlx::query_as::<_, PatientRecord>("SELECT * FROM patients WHERE clinic = $1 AND id = $2")
        .bind(&clinic)
        .bind(id)
        .fetch_optional_decrypted(&app.db, &app.engine)
        .await?
        .map(Json)
        .ok_or(AppError::NotFound)
}

async fn replace(
    State(app): State<Arc<App>>,
    Path((clinic, id)): Path<(String, i64)>,
    Json(input): Json<PatientInput>,
) -> Result<Json<Patient>, AppError> {
    let patient = input.into_patient(id, clinic);
    let record = patient.encrypt_async(&app.engine).await?;
    let done = sqlx::query(
        "UPDATE patients SET name = $3, ssn = $4, email = $5, phone = $6, phone_bidx = $7, notes = $8 \
         WHERE id = $1 AND clinic = $2",
    )
    .bind_record(&record)
    .execute(&app.db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(AppError::NotFound);
    }
    Ok(Json(patient))
}

async fn search(
    State(app): State<Arc<App>>,
    Path(clinic): Path<String>,
    Query(search): Query<Search>,
) -> Result<Json<Vec<Patient>>, AppError> {
    if let Some(email) = &search.email {
        // Every value the column may hold for this address (one per live key version).
        let wanted: Vec<String> = Patient::email_lookup_async(&app.engine, &clinic, email)
            .await?
            .into_iter()
            .map(encrypted_attr::Ciphertext::into_string)
            .collect();
        let found = sqlx::query_as::<_, PatientRecord>(
            "SELECT * FROM patients WHERE clinic = $1 AND email = ANY($2) ORDER BY id",
        )
        .bind(&clinic)
        .bind(wanted)
        .fetch_all_decrypted(&app.db, &app.engine)
        .await?;
        return Ok(Json(found));
    }
    if let Some(phone) = &search.phone {
        let wanted = Patient::phone_index_async(&app.engine, phone).await?;
        let found = sqlx::query_as::<_, PatientRecord>(
            "SELECT * FROM patients WHERE clinic = $1 AND phone_bidx = ANY($2) ORDER BY id",
        )
        .bind(&clinic)
        .bind(wanted)
        .fetch_all_decrypted(&app.db, &app.engine)
        .await?;
        return Ok(Json(found));
    }
    let records = sqlx::query_as::<_, PatientRecord>("SELECT * FROM patients WHERE clinic = $1 ORDER BY id LIMIT 100")
        .bind(&clinic)
        .fetch_all(&app.db)
        .await?;
    let loaded = PatientRecord::decrypt_all_upgrading_async(records, &app.engine).await?;
    // The answer is already right; a failed write-back only delays the upgrade.
    for upgrade in &loaded.upgrades {
        if let Err(AppError::Internal(detail)) = write_back(&app.db, upgrade).await {
            eprintln!("upgrade of {} left for a later read: {detail}", upgrade.column);
        }
    }
    for index in &loaded.index_upgrades {
        if let Err(AppError::Internal(detail)) = write_back_index(&app.db, index).await {
            eprintln!("upgrade of {} left for a later read: {detail}", index.column);
        }
    }
    Ok(Json(loaded.models))
}

/// Binds every column of a patient's record, in table order (`$1` id … `$8` notes).
trait BindRecord<'q> {
    fn bind_record(self, record: &'q PatientRecord) -> Self;
}

impl<'q> BindRecord<'q> for sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    fn bind_record(self, record: &'q PatientRecord) -> Self {
        self.bind(record.id)
            .bind(&record.clinic)
            .bind(&record.name)
            .bind(&record.ssn)
            .bind(&record.email)
            .bind(&record.phone)
            .bind(&record.phone_bidx)
            .bind(&record.notes)
    }
}

/// The row id an upgrade names (the model has an `id`, so every upgrade carries one).
fn upgraded_row(row_id: Option<&str>) -> Result<i64, AppError> {
    row_id
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| AppError::Internal("upgrade without a row id".into()))
}

/// Writes one rewrapped value where the column still holds the value that was read
/// (a concurrent update wins; the row is upgraded on a later read).
async fn write_back(db: &PgPool, upgrade: &Upgrade) -> Result<(), AppError> {
    // Column names come from the model's spec, never from a request.
    let statement = match upgrade.column {
        "ssn" => "UPDATE patients SET ssn = $1 WHERE id = $2 AND ssn = $3",
        "email" => "UPDATE patients SET email = $1 WHERE id = $2 AND email = $3",
        "phone" => "UPDATE patients SET phone = $1 WHERE id = $2 AND phone = $3",
        "notes" => "UPDATE patients SET notes = $1 WHERE id = $2 AND notes = $3",
        other => return Err(AppError::Internal(format!("no write-back for column {other}"))),
    };
    let id = upgraded_row(upgrade.row_id.as_deref())?;
    sqlx::query(statement)
        .bind(&upgrade.ciphertext)
        .bind(id)
        .bind(&upgrade.previous)
        .execute(db)
        .await?;
    Ok(())
}

/// Writes one recomputed blind index where the column still holds the old one.
async fn write_back_index(db: &PgPool, index: &IndexUpgrade) -> Result<(), AppError> {
    if index.column != "phone_bidx" {
        return Err(AppError::Internal(format!("no write-back for column {}", index.column)));
    }
    let id = upgraded_row(index.row_id.as_deref())?;
    sqlx::query("UPDATE patients SET phone_bidx = $1 WHERE id = $2 AND phone_bidx = $3")
        .bind(&index.value)
        .bind(id)
        .bind(&index.previous)
        .execute(db)
        .await?;
    Ok(())
}
