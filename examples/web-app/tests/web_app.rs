//! The example service end to end: the companion server and the service on
//! 127.0.0.1, a fresh PostgreSQL database, the service driven over HTTP with a token
//! that can only use the keys; the database holds only ciphertext; keys are rotated
//! while requests run and every answer stays right; listing finishes the rotation.
//! Needs `ENCRYPTED_ATTR_TEST_POSTGRES_URL` (required under `CI=true`).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use encrypted_attr::{AsyncTransitEngine, ClientConfig, KeyName, LocalEngine, RemoteEngine};
use encrypted_attr_web_app::{App, Patient, PatientInput, migrate, router};
use serde_json::{Value, json};

const ROOT: &str = "web-app-test-root";
const CLINICS: usize = 4;
const PER_CLINIC: usize = 8;
const ROTATIONS: u32 = 3;

fn postgres_url() -> Option<String> {
    match std::env::var("ENCRYPTED_ATTR_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("ENCRYPTED_ATTR_TEST_POSTGRES_URL must be set under CI")
        }
        Err(_) => {
            eprintln!("SKIPPED: ENCRYPTED_ATTR_TEST_POSTGRES_URL is not set; the web app test did not run");
            None
        }
    }
}

/// A database of its own, so that parallel runs do not meet.
async fn fresh_database(url: &str) -> String {
    let name = format!("ea_web_app_{}", std::process::id());
    let admin = sqlx::PgPool::connect(url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name}")))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{name}")
}

/// The companion server in dev mode on an ephemeral port; returns its address.
async fn start_companion_server() -> String {
    let engine = Arc::new(LocalEngine::ephemeral().unwrap());
    let state = Arc::new(encrypted_attr_server::AppState::new(engine, Some(ROOT)).unwrap().0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        encrypted_attr_server::run(listener, state, std::future::pending::<()>())
            .await
            .unwrap();
    });
    address
}

/// A token that may use the `patients_*` keys and read their descriptions, nothing
/// more (no rotation, no export, no deletion).
async fn service_token(http: &reqwest::Client, server: &str) -> String {
    let policy = r#"
        path "transit/encrypt/patients_*" { capabilities = ["update"] }
        path "transit/decrypt/patients_*" { capabilities = ["update"] }
        path "transit/rewrap/patients_*" { capabilities = ["update"] }
        path "transit/hmac/patients_*" { capabilities = ["update"] }
        path "transit/keys/patients_*" { capabilities = ["read"] }
    "#;
    let put = http
        .put(format!("{server}/v1/sys/policy/web-app"))
        .header("X-Vault-Token", ROOT)
        .json(&json!({ "policy": policy }))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let created: Value = http
        .post(format!("{server}/v1/auth/token/create"))
        .header("X-Vault-Token", ROOT)
        .json(&json!({ "policies": ["web-app"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["auth"]["client_token"].as_str().unwrap().to_owned()
}

fn input(clinic: usize, n: usize) -> PatientInput {
    PatientInput {
        name: format!("Patient {clinic}-{n}"),
        ssn: format!("{clinic:03}-{n:02}-{:04}", clinic * 100 + n),
        email: format!("patient{n}@mail.example"),
        phone: (!n.is_multiple_of(3)).then(|| format!("+1 (555) {clinic}{n:03}")),
        notes: format!("confidential notes {clinic}/{n}"),
    }
}

async fn get_json(http: &reqwest::Client, url: String) -> Value {
    let response = http.get(&url).send().await.unwrap();
    assert!(response.status().is_success(), "{url}: {}", response.status());
    response.json().await.unwrap()
}

/// One clinic's client: reads, searches, updates and lists its own patients in a
/// loop until `stop`, checking every answer against what it wrote.
async fn clinic_client(
    http: reqwest::Client,
    app: String,
    clinic: usize,
    mut expected: BTreeMap<i64, Patient>,
    stop: Arc<AtomicBool>,
) -> (usize, BTreeMap<i64, Patient>) {
    let base = format!("{app}/clinics/c{clinic}/patients");
    let mut checks = 0;
    for round in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let ids: Vec<i64> = expected.keys().copied().collect();
        let id = ids[round % ids.len()];
        let got: Patient = serde_json::from_value(get_json(&http, format!("{base}/{id}")).await).unwrap();
        assert_eq!(got, expected[&id], "read");

        let wanted = &expected[&id];
        let by_email: Vec<Patient> =
            serde_json::from_value(get_json(&http, format!("{base}?email={}", wanted.email)).await).unwrap();
        assert_eq!(by_email, vec![wanted.clone()], "search by e-mail");
        if let Some(phone) = &wanted.phone {
            let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
            let by_phone: Vec<Patient> =
                serde_json::from_value(get_json(&http, format!("{base}?phone={digits}")).await).unwrap();
            assert_eq!(by_phone, vec![wanted.clone()], "search by phone");
        }

        let changed = PatientInput {
            name: wanted.name.clone(),
            ssn: wanted.ssn.clone(),
            email: wanted.email.clone(),
            phone: wanted.phone.clone(),
            notes: format!("round {round} notes for {id}"),
        };
        let response = http.put(format!("{base}/{id}")).json(&changed).send().await.unwrap();
        assert!(response.status().is_success(), "update: {}", response.status());
        let updated: Patient = response.json().await.unwrap();
        assert_eq!(updated.notes, changed.notes);
        expected.insert(id, updated);

        let listed: Vec<Patient> = serde_json::from_value(get_json(&http, base.clone()).await).unwrap();
        assert_eq!(listed, expected.values().cloned().collect::<Vec<_>>(), "list");
        checks += 4;
    }
    (checks, expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_app_end_to_end() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(url) = postgres_url() else { return };
    let database_url = fresh_database(&url).await;
    let server = start_companion_server().await;
    let http = reqwest::Client::new();

    // The operator creates the keys; the service gets a token that can only use them.
    let operator = RemoteEngine::new(ClientConfig::new(&server, ROOT)).unwrap();
    Patient::ensure_keys_async(&operator).await.unwrap();
    let token = service_token(&http, &server).await;
    let engine = RemoteEngine::new(ClientConfig::new(&server, &token)).unwrap();
    let refused = engine.rotate_key_async(&KeyName::new("patients_ssn").unwrap()).await;
    assert!(
        matches!(refused, Err(encrypted_attr::Error::Remote { status: 403, .. })),
        "{refused:?}"
    );

    let db = sqlx::PgPool::connect(&database_url).await.unwrap();
    migrate(&db).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = format!("http://{}", listener.local_addr().unwrap());
    let service = router(Arc::new(App { db: db.clone(), engine }));
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });

    // Create every clinic's patients over HTTP.
    let mut clinics: Vec<BTreeMap<i64, Patient>> = vec![BTreeMap::new(); CLINICS];
    for (clinic, patients) in clinics.iter_mut().enumerate() {
        for n in 0..PER_CLINIC {
            let response = http
                .post(format!("{app}/clinics/c{clinic}/patients"))
                .json(&input(clinic, n))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            let created: Patient = response.json().await.unwrap();
            patients.insert(created.id, created);
        }
    }
    // The same e-mail address exists in every clinic; each search sees only its own.
    let first = clinics[1].values().next().unwrap().clone();
    let found: Vec<Patient> =
        serde_json::from_value(get_json(&http, format!("{app}/clinics/c1/patients?email={}", first.email)).await)
            .unwrap();
    assert_eq!(found, vec![first]);
    let missing = http
        .get(format!(
            "{app}/clinics/c2/patients/{}",
            clinics[1].keys().next().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404, "another clinic's patient");

    // Rotate every key several times while each clinic's client works.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = clinics
        .into_iter()
        .enumerate()
        .map(|(clinic, expected)| {
            tokio::spawn(clinic_client(
                http.clone(),
                app.clone(),
                clinic,
                expected,
                Arc::clone(&stop),
            ))
        })
        .collect();
    for _ in 0..ROTATIONS {
        tokio::time::sleep(Duration::from_millis(300)).await;
        for key in ["patients_ssn", "patients_email", "patients_phone", "patients_notes"] {
            operator.rotate_key_async(&KeyName::new(key).unwrap()).await.unwrap();
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut checks = 0;
    let mut finals = Vec::new();
    for client in clients {
        let (done, expected) = client.await.unwrap();
        checks += done;
        finals.push(expected);
    }
    assert!(
        checks >= 4 * CLINICS,
        "every client ran at least one round ({checks} checks)"
    );
    eprintln!("{checks} answers checked while {ROTATIONS} rotations of four keys ran");

    // One more listing per clinic writes back whatever is still below the latest
    // version: then every stored value is at the latest one.
    for (clinic, expected) in finals.iter().enumerate() {
        let listed: Vec<Patient> =
            serde_json::from_value(get_json(&http, format!("{app}/clinics/c{clinic}/patients")).await).unwrap();
        assert_eq!(listed, expected.values().cloned().collect::<Vec<_>>());
    }
    let latest = format!("vault:v{}:", ROTATIONS + 1);
    type StoredRow = (String, String, Option<String>, String, Option<String>);
    let rows: Vec<StoredRow> = sqlx::query_as("SELECT ssn, email, phone, notes, phone_bidx FROM patients")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(rows.len(), CLINICS * PER_CLINIC);
    let plaintexts: Vec<&Patient> = finals.iter().flat_map(BTreeMap::values).collect();
    for (ssn, email, phone, notes, phone_bidx) in &rows {
        for stored in [Some(ssn), Some(email), phone.as_ref(), Some(notes)]
            .into_iter()
            .flatten()
        {
            assert!(stored.starts_with(&latest), "{stored} is not at {latest}");
            for patient in &plaintexts {
                assert!(!stored.contains(&patient.ssn) && !stored.contains(&patient.notes));
            }
        }
        assert_eq!(phone.is_some(), phone_bidx.is_some());
        if let Some(index) = phone_bidx {
            assert!(index.starts_with(&latest), "blind index {index} is not at {latest}");
        }
        assert!(!email.contains("mail.example"));
    }

    db.close().await;
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let name = database_url.rsplit_once('/').unwrap().1;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
        .execute(&admin)
        .await
        .unwrap();
}
