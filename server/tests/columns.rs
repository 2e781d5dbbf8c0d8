//! `encrypted-attr migrate` for every field type the derive supports, on SQLite,
//! PostgreSQL and MariaDB: each plaintext column is migrated with its field type,
//! and the ciphertexts decrypt and decode, with the derive's codecs, to the values
//! the columns held.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use encrypted_attr::model::row_binding;
use encrypted_attr::{DecryptItem, FieldCodec, KeyName, KeyOptions, LocalEngine, RootKey, TransitEngine};
use sqlx::{AnyConnection, Connection, Row};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Database {
    Sqlite,
    Postgres,
    MariaDb,
}

/// One field: its name (the ciphertext column; the plaintext column is
/// `<name>_plain`), `--field-type`, the column's SQL type per database, the value's
/// SQL literal per database, and the bytes the derive's codec makes of the value.
struct Case {
    field: &'static str,
    field_type: &'static str,
    sql_type: [&'static str; 3],
    literal: [&'static str; 3],
    expected: Vec<u8>,
}

fn codec<T: FieldCodec>(value: T) -> Vec<u8> {
    value.encode_field().expose_secret().to_vec()
}

fn cases() -> Vec<Case> {
    let date = chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    let at = date.and_hms_micro_opt(12, 34, 56, 123_456).unwrap();
    let id = uuid::Uuid::from_u128(0x0b9b_3c1e_64a4_4d0b_9d35_6f8f_1d1d_0001);
    let json: serde_json::Value = serde_json::from_str(r#"{"b": 1, "a": [true, null]}"#).unwrap();
    // [SQLite, PostgreSQL, MariaDB]
    vec![
        Case {
            field: "text_f",
            field_type: "string",
            sql_type: ["TEXT", "TEXT", "TEXT"],
            literal: ["'héllo'"; 3],
            expected: codec(String::from("héllo")),
        },
        Case {
            field: "bytes_f",
            field_type: "bytes",
            sql_type: ["BLOB", "BYTEA", "BLOB"],
            literal: ["X'00ff10'", "decode('00ff10', 'hex')", "X'00ff10'"],
            expected: codec(vec![0u8, 255, 16]),
        },
        Case {
            field: "small_f",
            field_type: "i16",
            sql_type: ["INTEGER", "SMALLINT", "SMALLINT"],
            literal: ["-12345"; 3],
            expected: codec(-12345i16),
        },
        Case {
            field: "int_f",
            field_type: "i32",
            sql_type: ["INTEGER", "INTEGER", "INT"],
            literal: ["-2000000000"; 3],
            expected: codec(-2_000_000_000i32),
        },
        Case {
            field: "big_f",
            field_type: "i64",
            sql_type: ["INTEGER", "BIGINT", "BIGINT"],
            literal: ["-9000000000000000000"; 3],
            expected: codec(-9_000_000_000_000_000_000i64),
        },
        Case {
            field: "unsigned_f",
            field_type: "u32",
            sql_type: ["INTEGER", "BIGINT", "INT UNSIGNED"],
            literal: ["4000000000"; 3],
            expected: codec(4_000_000_000u32),
        },
        Case {
            field: "double_f",
            field_type: "f64",
            sql_type: ["REAL", "DOUBLE PRECISION", "DOUBLE"],
            literal: ["0.1"; 3],
            expected: codec(0.1f64),
        },
        Case {
            field: "float_f",
            field_type: "f32",
            sql_type: ["REAL", "REAL", "FLOAT"],
            literal: ["-1.5"; 3],
            expected: codec(-1.5f32),
        },
        Case {
            field: "flag_f",
            field_type: "bool",
            sql_type: ["INTEGER", "BOOLEAN", "BOOLEAN"],
            literal: ["1", "true", "TRUE"],
            expected: codec(true),
        },
        Case {
            field: "day_f",
            field_type: "date",
            sql_type: ["TEXT", "DATE", "DATE"],
            literal: ["'2024-02-29'"; 3],
            expected: codec(date),
        },
        Case {
            field: "moment_f",
            field_type: "datetime",
            sql_type: ["TEXT", "TIMESTAMP", "DATETIME(6)"],
            literal: ["'2024-02-29 12:34:56.123456'"; 3],
            expected: codec(at),
        },
        Case {
            field: "instant_f",
            field_type: "datetime-utc",
            sql_type: ["TEXT", "TIMESTAMPTZ", "DATETIME(6)"],
            literal: [
                "'2024-02-29T12:34:56.123456Z'",
                "'2024-02-29 14:34:56.123456+02'",
                "'2024-02-29 12:34:56.123456'",
            ],
            expected: codec(at.and_utc()),
        },
        Case {
            field: "local_instant_f",
            field_type: "datetime-utc",
            sql_type: ["TEXT", "TIMESTAMP", "DATETIME(6)"],
            literal: ["'2024-02-29 12:34:56.123456'"; 3],
            expected: codec(at.and_utc()),
        },
        Case {
            field: "text_double_f",
            field_type: "f64",
            sql_type: ["TEXT", "TEXT", "TEXT"],
            literal: ["'-2.5e-3'"; 3],
            expected: codec(-2.5e-3f64),
        },
        Case {
            field: "uuid_f",
            field_type: "uuid",
            sql_type: ["TEXT", "UUID", "CHAR(36)"],
            literal: ["'0b9b3c1e-64a4-4d0b-9d35-6f8f1d1d0001'"; 3],
            expected: codec(id),
        },
        Case {
            field: "json_f",
            field_type: "json",
            sql_type: ["TEXT", "JSONB", "JSON"],
            literal: [r#"'{"b": 1, "a": [true, null]}'"#; 3],
            expected: codec(json),
        },
    ]
}

/// SQLite (a file named after `tag`), and PostgreSQL and MariaDB when their URLs are
/// set (required under CI).
fn databases(tag: &str) -> Vec<(Database, String)> {
    let dir = std::env::temp_dir().join(format!("ea-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut found = vec![(
        Database::Sqlite,
        format!("sqlite://{}?mode=rwc", dir.join("app.db").display()),
    )];
    for (var, db) in [
        ("ENCRYPTED_ATTR_TEST_POSTGRES_URL", Database::Postgres),
        ("ENCRYPTED_ATTR_TEST_MYSQL_URL", Database::MariaDb),
    ] {
        match std::env::var(var) {
            Ok(url) => found.push((db, url)),
            Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("{var} must be set under CI"),
            Err(_) => eprintln!("SKIPPED: {var} is not set; migrate's field types were not tested on it"),
        }
    }
    found
}

/// Every field type on every database: row 1 holds a value in every column, row 2
/// only NULLs (left NULL), row 3 a value the field's type cannot hold in one column
/// (reported, skipped, the command exits non-zero, the other rows are migrated).
#[test]
fn migrate_encrypts_every_field_type_as_the_derive_would() {
    let exe = env!("CARGO_BIN_EXE_encrypted-attr");
    sqlx::any::install_default_drivers();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cases = cases();
    for (db, url) in databases("migrate-types-db") {
        let slot = db as usize;
        let dir = std::env::temp_dir().join(format!("ea-migrate-types-{}-{slot}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let root = RootKey::generate().unwrap();
        let root_file = dir.join("root.key");
        std::fs::write(&root_file, root.expose_base64().as_bytes()).unwrap();
        let keyring = dir.join("keys.json");
        let engine = LocalEngine::open(&keyring, &root).unwrap();
        let table = "migrate_types";
        for case in &cases {
            engine
                .create_key(&KeyName::new(case.field).unwrap(), KeyOptions::default())
                .unwrap();
        }
        drop(engine);
        runtime.block_on(async {
            let mut conn = AnyConnection::connect(&url).await.unwrap();
            let columns: Vec<String> = cases
                .iter()
                .map(|c| format!("{0}_plain {1}, {0} TEXT", c.field, c.sql_type[slot]))
                .collect();
            for sql in [
                format!("DROP TABLE IF EXISTS {table}"),
                format!(
                    "CREATE TABLE {table} (id BIGINT PRIMARY KEY, narrow INTEGER, narrow_ct TEXT, junk TEXT, junk_ct TEXT, {})",
                    columns.join(", ")
                ),
                format!(
                    "INSERT INTO {table} (id, narrow, junk, {}) VALUES (1, 5, '2.5', {})",
                    cases
                        .iter()
                        .map(|c| format!("{}_plain", c.field))
                        .collect::<Vec<_>>()
                        .join(", "),
                    cases.iter().map(|c| c.literal[slot]).collect::<Vec<_>>().join(", ")
                ),
                format!("INSERT INTO {table} (id) VALUES (2)"),
                format!("INSERT INTO {table} (id, narrow, junk) VALUES (3, 70000, '12abc')"),
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
            }
        });
        let migrate = |column: &str, plain: &str, field_type: &str, key: &str| {
            std::process::Command::new(exe)
                .args(["migrate", "--keyring", keyring.to_str().unwrap()])
                .args(["--root-key-file", root_file.to_str().unwrap(), "--database-url", &url])
                .args(["--table", table, "--column", column, "--plaintext-column", plain])
                .args(["--field-type", field_type, "--key", key, "--verify", "10"])
                .output()
                .unwrap()
        };
        for case in &cases {
            let out = migrate(
                case.field,
                &format!("{}_plain", case.field),
                case.field_type,
                case.field,
            );
            assert!(
                out.status.success(),
                "{db:?} {}: {}{}",
                case.field,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("1 rows encrypted"),
                "{db:?} {}",
                case.field
            );
        }
        // 70,000 does not fit an i16: row 3 is named, never its value, and left.
        let out = migrate("narrow_ct", "narrow", "i16", "small_f");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{db:?}: {stdout}{stderr}");
        assert!(
            stdout.contains("1 rows encrypted") && stdout.contains("1 skipped"),
            "{db:?}: {stdout}"
        );
        assert!(
            stderr.contains("row 3: the value is not an integer the field's type holds"),
            "{db:?}: {stderr}"
        );
        assert!(
            !stderr.contains("70000"),
            "{db:?}: the value must not be shown: {stderr}"
        );

        // Text that is not a number is reported, never encrypted as 0 or 12.
        let out = migrate("junk_ct", "junk", "f64", "double_f");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{db:?}: {stdout}{stderr}");
        assert!(
            stdout.contains("1 rows encrypted") && stdout.contains("1 skipped"),
            "{db:?}: {stdout}"
        );
        assert!(stderr.contains("row 3: the value is not a number"), "{db:?}: {stderr}");
        assert!(
            !stderr.contains("12abc"),
            "{db:?}: the value must not be shown: {stderr}"
        );

        let engine = LocalEngine::open(&keyring, &root).unwrap();
        runtime.block_on(async {
            let mut conn = AnyConnection::connect(&url).await.unwrap();
            for case in &cases {
                let sql = format!(
                    "SELECT {0} FROM {table} WHERE id = 1 UNION ALL SELECT {0} FROM {table} WHERE id = 2",
                    case.field
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                let stored: String = rows[0].try_get(0).unwrap();
                assert_eq!(
                    rows[1].try_get::<Option<String>, _>(0).unwrap(),
                    None,
                    "{db:?} {}: NULL stays NULL",
                    case.field
                );
                let item = DecryptItem::new(stored.parse().unwrap()).associated_data(row_binding(
                    table,
                    case.field,
                    Some("1"),
                ));
                let opened = engine.decrypt(&KeyName::new(case.field).unwrap(), item).unwrap();
                assert_eq!(
                    opened.expose_secret(),
                    case.expected.as_slice(),
                    "{db:?} {}",
                    case.field
                );
            }
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("ea-migrate-types-db-{}", std::process::id())));
}

/// `migrate`, then `rewrap`, each killed with SIGKILL midway and run again, on every
/// database: every row ends encrypted exactly once, at the latest version, to its own
/// plaintext — the set-based writes are as resumable as row-by-row ones were.
#[test]
fn migrate_and_rewrap_resume_after_a_kill_on_every_database() {
    let exe = env!("CARGO_BIN_EXE_encrypted-attr");
    sqlx::any::install_default_drivers();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rows = 10_000i64;
    for (db, url) in databases("kill-db") {
        let slot = db as usize;
        let dir = std::env::temp_dir().join(format!("ea-kill-{}-{slot}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let root = RootKey::generate().unwrap();
        let root_file = dir.join("root.key");
        std::fs::write(&root_file, root.expose_base64().as_bytes()).unwrap();
        let keyring = dir.join("keys.json");
        let key = KeyName::new("kill_rows_ct").unwrap();
        LocalEngine::open(&keyring, &root)
            .unwrap()
            .create_key(&key, KeyOptions::default())
            .unwrap();
        let fill = match db {
            Database::Postgres => {
                format!("INSERT INTO kill_rows SELECT i, 'plain-' || i, NULL FROM generate_series(1, {rows}) i")
            }
            Database::MariaDb => {
                format!("INSERT INTO kill_rows SELECT seq, CONCAT('plain-', seq), NULL FROM seq_1_to_{rows}")
            }
            Database::Sqlite => format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) INSERT INTO kill_rows SELECT i, 'plain-' || i, NULL FROM n"
            ),
        };
        let mut conn = runtime.block_on(async {
            let mut conn = AnyConnection::connect(&url).await.unwrap();
            for sql in [
                "DROP TABLE IF EXISTS kill_rows".to_owned(),
                "CREATE TABLE kill_rows (id BIGINT PRIMARY KEY, plain TEXT, ct TEXT)".to_owned(),
                fill,
            ] {
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
            }
            conn
        });
        let mut count = |sql: &str| -> i64 {
            runtime.block_on(async {
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .fetch_one(&mut conn)
                    .await
                    .unwrap()
                    .try_get(0)
                    .unwrap()
            })
        };
        let command = |verb: &str| {
            let mut command = std::process::Command::new(exe);
            command
                .args([verb, "--keyring", keyring.to_str().unwrap()])
                .args(["--root-key-file", root_file.to_str().unwrap(), "--database-url", &url])
                .args([
                    "--table",
                    "kill_rows",
                    "--column",
                    "ct",
                    "--key",
                    "kill_rows_ct",
                    "--batch",
                    "50",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            if verb == "migrate" {
                command.args(["--plaintext-column", "plain"]);
            }
            command
        };
        for (verb, done) in [
            ("migrate", "SELECT COUNT(*) FROM kill_rows WHERE ct IS NOT NULL"),
            ("rewrap", "SELECT COUNT(*) FROM kill_rows WHERE ct LIKE 'vault:v2:%'"),
        ] {
            if verb == "rewrap" {
                LocalEngine::open(&keyring, &root).unwrap().rotate_key(&key).unwrap();
            }
            let mut child = command(verb).spawn().unwrap();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while count(done) == 0 {
                assert!(std::time::Instant::now() < deadline, "{db:?} {verb} made no progress");
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            child.kill().unwrap();
            let _ = child.wait();
            let after_kill = count(done);
            assert!(
                after_kill < rows,
                "{db:?} {verb}: the kill came too late ({after_kill} rows done)"
            );
            let out = command(verb).output().unwrap();
            assert!(
                out.status.success(),
                "{db:?} {verb}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(count(done), rows, "{db:?} {verb}");
        }
        let stored: Vec<(i64, String, String)> = runtime.block_on(async {
            sqlx::query("SELECT id, plain, ct FROM kill_rows ORDER BY id")
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap(), r.try_get(2).unwrap()))
                .collect()
        });
        let engine = LocalEngine::open(&keyring, &root).unwrap();
        let items: Vec<DecryptItem> = stored
            .iter()
            .map(|(id, _, ct)| {
                DecryptItem::new(ct.parse().unwrap()).associated_data(row_binding(
                    "kill_rows",
                    "ct",
                    Some(&id.to_string()),
                ))
            })
            .collect();
        for ((id, plain, _), opened) in stored.iter().zip(engine.decrypt_batch(&key, items).unwrap()) {
            assert_eq!(opened.unwrap().expose_secret(), plain.as_bytes(), "{db:?} row {id}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let _ = std::fs::remove_dir_all(std::env::temp_dir().join(format!("ea-kill-db-{}", std::process::id())));
}
