//! Loading and decrypting 10,000 rows with two encrypted fields (random `ssn`,
//! convergent `email`) through sqlx: plaintext columns vs the in-process engine vs
//! the companion server (a dev server on loopback, in this process, on its own two
//! worker threads, holding the same keyring), on SQLite (in memory) and PostgreSQL.
//! Results in `BENCHMARKS.md`.
//!
//! Run: `cargo run --release -p encrypted-attr-server --example bench_load` with
//! `ENCRYPTED_ATTR_TEST_POSTGRES_URL` set for the PostgreSQL rows (`BENCH_ROWS`,
//! default 10000; `BENCH_RUNS`, default 15; the second server configuration:
//! `BENCH_ITEMS` per request, default 500, `BENCH_IN_FLIGHT`, default 8).

use std::sync::Arc;
use std::time::{Duration, Instant};

use encrypted_attr::{BatchLimits, ClientConfig, Encrypted, EncryptedQueryAs, LocalEngine, RemoteEngine};

const ROOT: &str = "bench-load-root";

#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "bench_people", id = "id", record(derive(sqlx::FromRow)))]
struct Person {
    id: i64,
    name: String,
    #[encrypted]
    ssn: String,
    #[encrypted(convergent)]
    email: String,
}

/// The same rows with plaintext columns.
#[derive(sqlx::FromRow)]
#[allow(dead_code)]
struct PlainPerson {
    id: i64,
    name: String,
    ssn: String,
    email: String,
}

fn person(id: i64) -> Person {
    Person {
        id,
        name: format!("person {id}"),
        ssn: format!("{:03}-{:02}-{:04}", id % 1000, id % 100, id % 10_000),
        email: format!("person{id}@example.com"),
    }
}

/// The median of `runs` timings of `f`, after two warm-up runs.
async fn median<F, Fut>(runs: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    for _ in 0..2 {
        f().await;
    }
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let n = f().await;
        times.push(start.elapsed());
        assert!(n > 0);
    }
    times.sort();
    times[runs / 2]
}

macro_rules! bench_database {
    ($label:expr, $pool:expr, $rows:expr, $runs:expr, $local:expr, $remotes:expr) => {{
        let pool = $pool;
        let (rows, runs, local, remotes): (i64, usize, &LocalEngine, &[(&str, &RemoteEngine)]) =
            ($rows, $runs, $local, $remotes);
        for table in ["bench_people", "bench_plain"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {table}")))
                .execute(&pool)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, ssn TEXT NOT NULL, email TEXT NOT NULL)"
            )))
            .execute(&pool)
            .await?;
        }
        let people: Vec<Person> = (1..=rows).map(person).collect();
        let records = Person::encrypt_all(&people, local)?;
        let mut tx = pool.begin().await?;
        for (plain, record) in people.iter().zip(&records) {
            sqlx::query("INSERT INTO bench_people (id, name, ssn, email) VALUES ($1, $2, $3, $4)")
                .bind(record.id)
                .bind(&record.name)
                .bind(&record.ssn)
                .bind(&record.email)
                .execute(&mut *tx)
                .await?;
            sqlx::query("INSERT INTO bench_plain (id, name, ssn, email) VALUES ($1, $2, $3, $4)")
                .bind(plain.id)
                .bind(&plain.name)
                .bind(&plain.ssn)
                .bind(&plain.email)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;

        let plaintext = median(runs, || async {
            sqlx::query_as::<_, PlainPerson>("SELECT id, name, ssn, email FROM bench_plain")
                .fetch_all(&pool)
                .await
                .unwrap()
                .len()
        })
        .await;
        let in_process = median(runs, || async {
            let models = sqlx::query_as::<_, PersonRecord>("SELECT id, name, ssn, email FROM bench_people")
                .fetch_all_decrypted(&pool, local)
                .await
                .unwrap();
            assert_eq!(models[7].ssn, people[7].ssn);
            models.len()
        })
        .await;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "| {} | plaintext columns | {:.1} | 1.00 | |",
            $label,
            ms(plaintext)
        );
        println!(
            "| {} | in-process engine | {:.1} | {:.2} | 1.00 |",
            $label,
            ms(in_process),
            in_process.as_secs_f64() / plaintext.as_secs_f64()
        );
        for (name, remote) in remotes {
            let through_server = median(runs, || async {
                let models = sqlx::query_as::<_, PersonRecord>("SELECT id, name, ssn, email FROM bench_people")
                    .fetch_all_decrypted(&pool, *remote)
                    .await
                    .unwrap();
                assert_eq!(models[7].ssn, people[7].ssn);
                models.len()
            })
            .await;
            println!(
                "| {} | companion server, {} | {:.1} | {:.2} | {:.2} |",
                $label,
                name,
                ms(through_server),
                through_server.as_secs_f64() / plaintext.as_secs_f64(),
                through_server.as_secs_f64() / in_process.as_secs_f64()
            );
        }
    }};
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: i64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10_000);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);

    // The companion server: a dev server with its own runtime, as a separate process
    // would have; it shares the machine's two cores with the application.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("companion-server")
        .enable_all()
        .build()?;
    // One keyring for both paths, so that both decrypt the same rows.
    let engine = Arc::new(LocalEngine::ephemeral()?);
    Person::ensure_keys(&*engine)?;
    let server_engine = Arc::clone(&engine);
    let address = server_runtime.block_on(async {
        let state = Arc::new(encrypted_attr_server::AppState::new(server_engine, Some(ROOT))?.0);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = format!("http://{}", listener.local_addr()?);
        tokio::spawn(encrypted_attr_server::run(
            listener,
            state,
            std::future::pending::<()>(),
        ));
        Ok::<_, Box<dyn std::error::Error>>(address)
    })?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("application")
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let local: &LocalEngine = &engine;
        let vault_limits = RemoteEngine::new(ClientConfig::new(&address, ROOT))?;
        let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
        let (items, in_flight) = (env("BENCH_ITEMS", 500), env("BENCH_IN_FLIGHT", 8));
        let this_server = RemoteEngine::new(
            ClientConfig::new(&address, ROOT)
                .batch_limits(
                    BatchLimits::default()
                        .max_items(items)
                        .max_json_strings(200_000)
                        .max_bytes(16 << 20),
                )
                .concurrent_requests(in_flight),
        )?;
        let tuned = format!("{items} items per request, {in_flight} in flight");
        let remotes: [(&str, &RemoteEngine); 2] = [
            (
                "default request limits (1,000 JSON strings, 4 in flight)",
                &vault_limits,
            ),
            (tuned.as_str(), &this_server),
        ];

        println!("Loading and decrypting {rows} rows (two encrypted fields), median of {runs} runs:");
        println!();
        println!("| database | engine | ms | × plaintext | × in-process |");
        println!("|---|---|---|---|---|");
        let sqlite = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await?;
        bench_database!("SQLite (memory)", sqlite, rows, runs, local, &remotes);
        if let Ok(url) = std::env::var("ENCRYPTED_ATTR_TEST_POSTGRES_URL") {
            let pg = sqlx::PgPool::connect(&url).await?;
            bench_database!("PostgreSQL", pg, rows, runs, local, &remotes);
        } else {
            println!("(PostgreSQL skipped: ENCRYPTED_ATTR_TEST_POSTGRES_URL is not set)");
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
