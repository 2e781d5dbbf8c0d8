//! Rewrap throughput: 100,000 rows in SQLite, rewrapped by the `encrypted-attr rewrap`
//! command, once with a local keyring file and once through a dev server on
//! loopback. Results in `BENCHMARKS.md`.
//!
//! Run: `cargo build --release -p encrypted-attr-server --bins --examples &&
//! target/release/examples/bench_rewrap` (rows: `BENCH_ROWS`, default 100000).

use std::sync::Arc;
use std::time::Instant;

use encrypted_attr::model::row_binding;
use encrypted_attr::{EncryptItem, KeyName, KeyOptions, LocalEngine, RootKey, TransitEngine};
use sqlx::Connection;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rows: i64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100_000);
    let exe = std::env::current_exe()?
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("encrypted-attr"))
        .ok_or("cannot find the target directory")?;
    let dir = std::env::temp_dir().join(format!("ea-bench-rewrap-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    sqlx::any::install_default_drivers();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    println!("| rewrap of {rows} rows (SQLite file, batches of 1,000) | seconds | rows/s |");
    println!("|---|---|---|");
    for remote in [false, true] {
        let keyring = dir.join(format!("keys-{remote}.json"));
        let root_file = dir.join("root.key");
        let db = dir.join(format!("app-{remote}.db"));
        let _ = std::fs::remove_file(&db);
        let root = RootKey::generate()?;
        std::fs::write(&root_file, root.expose_base64().as_bytes())?;
        let engine = Arc::new(LocalEngine::open(&keyring, &root)?);
        let key = KeyName::new("people_ssn")?;
        engine.create_key(&key, KeyOptions::default())?;
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let items: Vec<EncryptItem> = (1..=rows)
            .map(|i| {
                EncryptItem::new(format!("{i:09}")).associated_data(row_binding("people", "ssn", Some(&i.to_string())))
            })
            .collect();
        let sealed: Vec<String> = engine
            .encrypt_batch(&key, items)?
            .into_iter()
            .map(|c| c.map(|c| c.into_string()))
            .collect::<Result<_, _>>()?;
        runtime.block_on(async {
            let mut conn = sqlx::AnyConnection::connect(&url).await?;
            sqlx::query("CREATE TABLE people (id BIGINT PRIMARY KEY, ssn TEXT)")
                .execute(&mut conn)
                .await?;
            let mut tx = conn.begin().await?;
            for (i, ct) in sealed.iter().enumerate() {
                sqlx::query("INSERT INTO people (id, ssn) VALUES (?, ?)")
                    .bind(i as i64 + 1)
                    .bind(ct.clone())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<(), sqlx::Error>(())
        })?;
        engine.rotate_key(&key)?;

        let mut command = std::process::Command::new(&exe);
        command.args([
            "rewrap",
            "--database-url",
            &url,
            "--table",
            "people",
            "--column",
            "ssn",
            "--key",
            "people_ssn",
        ]);
        let (stop, server) = if remote {
            // The same keyring, served by a dev-mode server holding this engine.
            let (state, _) = encrypted_attr_server::AppState::new(engine.clone(), Some("bench"))?;
            let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
            let addr = listener.local_addr()?;
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let server = runtime.spawn(encrypted_attr_server::run(listener, Arc::new(state), async {
                let _ = stopped.await;
            }));
            command.args(["--address", &format!("http://{addr}"), "--token", "bench"]);
            (Some(stop), Some(server))
        } else {
            command.args([
                "--keyring",
                keyring.to_str().unwrap_or_default(),
                "--root-key-file",
                root_file.to_str().unwrap_or_default(),
            ]);
            (None, None)
        };
        let start = Instant::now();
        let out = command.output()?;
        let seconds = start.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
        }
        let label = if remote {
            "through the server on loopback"
        } else {
            "local keyring file"
        };
        println!("| {label} | {seconds:.2} | {:.0} |", rows as f64 / seconds);
        if let (Some(stop), Some(server)) = (stop, server) {
            let _ = stop.send(());
            let _ = runtime.block_on(server);
        }
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
