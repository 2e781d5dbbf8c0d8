//! Fault tests: what the server does when its dependencies fail underneath it —
//! the PostgreSQL connection dropped or cut and restored under load, servers
//! started together on one new database.
//!
//! Tests needing PostgreSQL run when `ENCRYPTED_ATTR_TEST_POSTGRES_URL` is set
//! (required under `CI=true`); each works in a database of its own.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use encrypted_attr_server::{AppState, PostgresStorage};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

fn postgres_url() -> Option<String> {
    match std::env::var("ENCRYPTED_ATTR_TEST_POSTGRES_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("ENCRYPTED_ATTR_TEST_POSTGRES_URL must be set under CI")
        }
        Err(_) => {
            eprintln!("SKIPPED: ENCRYPTED_ATTR_TEST_POSTGRES_URL is not set; the PostgreSQL fault test did not run");
            None
        }
    }
}

/// A new, empty database named `name` on the test server; returns its URL.
async fn fresh_database(url: &str, name: &str) -> String {
    let admin = url.to_owned();
    let db = name.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
            .unwrap();
        client.batch_execute(&format!("CREATE DATABASE {db}")).unwrap();
    })
    .await
    .unwrap();
    let config: postgres::Config = url.parse().unwrap();
    let (host, port) = host_port(&config);
    let user = config.get_user().unwrap_or("postgres");
    format!("postgres://{user}@{host}:{port}/{name}")
}

fn host_port(config: &postgres::Config) -> (String, u16) {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".to_owned(),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

/// Runs `SQL` on the test server as the admin connection.
async fn admin_sql(url: &str, sql: String) {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client.batch_execute(&sql).unwrap();
    })
    .await
    .unwrap();
}

/// A TCP proxy in front of PostgreSQL that a test can cut (every connection
/// closed, new ones refused) and restore: a network outage on demand.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (accept_up, accept_cut) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !accept_up.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = accept_cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, up, cut }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// A server on `state`, on a real socket (so its storage probe runs); its URL.
async fn serve(state: AppState) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(encrypted_attr_server::run(
        listener,
        Arc::new(state),
        std::future::pending::<()>(),
    ));
    format!("http://{addr}")
}

fn http_client() -> reqwest::Client {
    // reqwest is built without a default TLS provider (`rustls-no-provider`).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A hung request fails the test instead of stalling it.
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

async fn call(http: &reqwest::Client, method: &str, url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = http.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
    if let Some(token) = token {
        request = request.header("X-Vault-Token", token);
    }
    if !body.is_null() {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `count` servers on the PostgreSQL database at `url`, each on its own socket;
/// their URLs.
async fn servers_on(url: &str, count: usize) -> Vec<String> {
    let mut bases = Vec::new();
    for _ in 0..count {
        let url = url.to_owned();
        let storage = tokio::task::spawn_blocking(move || PostgresStorage::connect(&url).unwrap())
            .await
            .unwrap();
        bases.push(serve(AppState::persistent(Arc::new(storage), "postgresql").unwrap()).await);
    }
    bases
}

/// Initialises the server at `base` with one share; returns the root token and
/// the share.
async fn init(http: &reqwest::Client, base: &str) -> (String, String) {
    let (status, body) = call(
        http,
        "PUT",
        &format!("{base}/v1/sys/init"),
        None,
        json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (
        body["root_token"].as_str().unwrap().to_owned(),
        body["keys"][0].as_str().unwrap().to_owned(),
    )
}

/// Initialises and unseals the server at `base`; returns the root token.
async fn init_and_unseal(http: &reqwest::Client, base: &str) -> String {
    let (status, body) = call(
        http,
        "PUT",
        &format!("{base}/v1/sys/init"),
        None,
        json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let key = body["keys"][0].as_str().unwrap().to_owned();
    let (_, status) = call(http, "PUT", &format!("{base}/v1/sys/unseal"), None, json!({"key": key})).await;
    assert_eq!(status["sealed"], false, "{status}");
    body["root_token"].as_str().unwrap().to_owned()
}

/// Requests answered while storage failed: how many of each outcome.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    unavailable: AtomicUsize,
    wrong: AtomicUsize,
}

/// Encrypt-then-decrypt round trips against `base` until `stop`: each answer is
/// a correct 200 or a 503; anything else (a 403 above all, or a wrong plaintext)
/// counts as wrong.
async fn load(http: reqwest::Client, base: String, token: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let plaintext = base64_of(&format!("value {n}"));
        let (status, body) = call(
            &http,
            "POST",
            &format!("{base}/v1/transit/encrypt/faulty"),
            Some(&token),
            json!({"plaintext": plaintext}),
        )
        .await;
        let outcome = match status {
            200 => {
                let ciphertext = body["data"]["ciphertext"].clone();
                let (status, body) = call(
                    &http,
                    "POST",
                    &format!("{base}/v1/transit/decrypt/faulty"),
                    Some(&token),
                    json!({"ciphertext": ciphertext}),
                )
                .await;
                match status {
                    200 if body["data"]["plaintext"] == json!(plaintext) => &tally.ok,
                    503 => &tally.unavailable,
                    _ => {
                        eprintln!("wrong decrypt answer: {status} {body}");
                        &tally.wrong
                    }
                }
            }
            503 => &tally.unavailable,
            _ => {
                eprintln!("wrong encrypt answer: {status} {body}");
                &tally.wrong
            }
        };
        outcome.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// Polls `check` every 100 ms until it holds or `limit` passes.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within {limit:?}");
}

async fn health(http: &reqwest::Client, base: &str) -> (u16, Value) {
    call(http, "GET", &format!("{base}/v1/sys/health"), None, Value::Null).await
}

/// The PostgreSQL connection is terminated by the database, then cut at the
/// network for several seconds, under a steady load: no answer is ever a 403 or a
/// wrong plaintext; while storage is unreachable the server answers 503 and
/// `sys/health` says so; once it is back, the server reconnects by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connection_lost_and_restored_under_load() {
    let Some(admin) = postgres_url() else { return };
    let db = format!("ea_fault_reconnect_{}", std::process::id());
    let direct = fresh_database(&admin, &db).await;
    let config: postgres::Config = direct.parse().unwrap();
    let (host, port) = host_port(&config);
    let target: SocketAddr = format!("{host}:{port}").parse().unwrap();
    let proxy = Proxy::start(target).await;
    let through_proxy = format!("postgres://postgres@{}/{db}", proxy.addr);
    let storage = tokio::task::spawn_blocking(move || PostgresStorage::connect(&through_proxy).unwrap())
        .await
        .unwrap();
    let base = serve(AppState::persistent(Arc::new(storage), "postgresql").unwrap()).await;
    let http = http_client();
    let root = init_and_unseal(&http, &base).await;
    let (status, _) = call(
        &http,
        "POST",
        &format!("{base}/v1/transit/keys/faulty"),
        Some(&root),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let worker = tokio::spawn(load(
        http.clone(),
        base.clone(),
        root.clone(),
        stop.clone(),
        tally.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;

    eprintln!("step: 1. The database");
    // 1. The database ends the server's session: the next use reconnects.
    admin_sql(
        &admin,
        format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ok_after_terminate = tally.ok.load(Ordering::SeqCst);

    eprintln!("step: 2. The network");
    // 2. The network to the database is cut: 503s, and health reports it.
    proxy.cut();
    within(Duration::from_secs(6), "health reports the storage outage", || async {
        let (status, body) = health(&http, &base).await;
        status == 503 && body["storage_reachable"] == json!(false) && body["sealed"] == json!(false)
    })
    .await;
    let unavailable_before = tally.unavailable.load(Ordering::SeqCst);
    within(
        Duration::from_secs(6),
        "requests answer 503 during the outage",
        || async { tally.unavailable.load(Ordering::SeqCst) > unavailable_before },
    )
    .await;

    eprintln!("step: 3. Restored");
    // 3. Restored: the server reconnects without a restart or an unseal.
    proxy.restore();
    within(Duration::from_secs(10), "health recovers", || async {
        let (status, body) = health(&http, &base).await;
        status == 200 && body["storage_reachable"] == json!(true)
    })
    .await;
    let ok_before = tally.ok.load(Ordering::SeqCst);
    within(Duration::from_secs(10), "requests succeed again", || async {
        tally.ok.load(Ordering::SeqCst) > ok_before + 5
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    worker.await.unwrap();

    let (ok, unavailable, wrong) = (
        tally.ok.load(Ordering::SeqCst),
        tally.unavailable.load(Ordering::SeqCst),
        tally.wrong.load(Ordering::SeqCst),
    );
    eprintln!("round trips: {ok} ok, {unavailable} answered 503, {wrong} wrong");
    assert_eq!(wrong, 0, "no 403, no wrong plaintext, ever");
    assert!(ok_after_terminate > 0 && unavailable > 0 && ok > ok_after_terminate);
    admin_sql(&admin, format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
}

/// Storage initialised by another server is picked up without a restart; two
/// servers started at the same moment on a new database both start; an
/// initialisation racing another is refused, never doubled; a database that does
/// not exist is named in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_sharing_a_new_database() {
    let Some(admin) = postgres_url() else { return };
    let db = format!("ea_fault_init_{}", std::process::id());
    let url = fresh_database(&admin, &db).await;
    let connect = |url: String| tokio::task::spawn_blocking(move || PostgresStorage::connect(&url));
    let (a, b) = tokio::join!(connect(url.clone()), connect(url.clone()));
    let (a, b) = (a.unwrap().unwrap(), b.unwrap().unwrap());
    let a = serve(AppState::persistent(Arc::new(a), "postgresql").unwrap()).await;
    let b = serve(AppState::persistent(Arc::new(b), "postgresql").unwrap()).await;
    let http = http_client();
    let (status, body) = call(&http, "GET", &format!("{b}/v1/sys/init"), None, Value::Null).await;
    assert_eq!((status, body["initialized"].clone()), (200, json!(false)));

    // A initialises; B, started before, sees it and unseals with A's shares.
    let init = json!({"secret_shares": 1, "secret_threshold": 1});
    let (status, body) = call(&http, "PUT", &format!("{a}/v1/sys/init"), None, init.clone()).await;
    assert_eq!(status, 200, "{body}");
    let key = body["keys"][0].as_str().unwrap().to_owned();
    let (status, body) = call(&http, "GET", &format!("{b}/v1/sys/init"), None, Value::Null).await;
    assert_eq!((status, body["initialized"].clone()), (200, json!(true)));
    let (status, body) = call(&http, "PUT", &format!("{b}/v1/sys/init"), None, init).await;
    assert_eq!(
        (status, body["errors"][0].clone()),
        (400, json!("Vault is already initialized"))
    );
    let (status, body) = call(&http, "PUT", &format!("{b}/v1/sys/unseal"), None, json!({"key": key})).await;
    assert_eq!((status, body["sealed"].clone()), (200, json!(false)), "{body}");

    // A database that does not exist: the reason is in the error.
    let missing = url.replace(&db, &format!("{db}_missing"));
    let error = connect(missing).await.unwrap().unwrap_err();
    let reason = format!("{error}: {}", std::error::Error::source(&error).unwrap());
    assert!(reason.contains("does not exist"), "{reason}");
    assert!(!reason.contains("postgres://"), "never the URL: {reason}");
    admin_sql(&admin, format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
}

/// Two servers racing to initialise one new database: exactly one wins; the other
/// is refused with a clear message, and the winner's shares unseal both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_initialisation_is_refused_not_doubled() {
    let Some(admin) = postgres_url() else { return };
    let db = format!("ea_fault_init_race_{}", std::process::id());
    let url = fresh_database(&admin, &db).await;
    let bases = servers_on(&url, 2).await;
    let http = http_client();
    let init = json!({"secret_shares": 1, "secret_threshold": 1});
    let (url_a, url_b) = (format!("{}/v1/sys/init", bases[0]), format!("{}/v1/sys/init", bases[1]));
    let (first, second) = tokio::join!(
        call(&http, "PUT", &url_a, None, init.clone()),
        call(&http, "PUT", &url_b, None, init.clone()),
    );
    let winners: Vec<&(u16, Value)> = [&first, &second].into_iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(winners.len(), 1, "{first:?} {second:?}");
    let loser = if first.0 == 200 { &second } else { &first };
    assert_eq!(loser.0, 400, "{loser:?}");
    let key = winners[0].1["keys"][0].as_str().unwrap().to_owned();
    for base in &bases {
        let (status, body) = call(
            &http,
            "PUT",
            &format!("{base}/v1/sys/unseal"),
            None,
            json!({"key": key}),
        )
        .await;
        assert_eq!((status, body["sealed"].clone()), (200, json!(false)), "{body}");
    }
    admin_sql(&admin, format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
}

/// The `encrypted-attr` binary, started as a dev server on a free loopback port;
/// killed when dropped.
struct ServerProcess {
    child: std::process::Child,
    base: String,
    dir: std::path::PathBuf,
    /// Dev servers own their directory; a restarted server's outlives it.
    owns_dir: bool,
}

const DEV_TOKEN: &str = "faults-root";

impl ServerProcess {
    /// Starts `encrypted-attr server --dev` with `config` (TOML) as its config file.
    fn start(tag: &str, config: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ea-faults-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self::start_in(dir, &["--dev", "--dev-root-token-id", DEV_TOKEN], config);
        server.owns_dir = true;
        server
    }

    /// Starts `encrypted-attr server` with `args` in `dir` (kept across restarts).
    fn start_in(dir: std::path::PathBuf, args: &[&str], config: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config_path = dir.join("server.toml");
        std::fs::write(&config_path, config).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_encrypted-attr"))
            .arg("server")
            .args(args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(&config_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
            owns_dir: false,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// Peak resident memory of the server process so far, in MiB.
    fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib / 1024
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn blocking_client() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Sends `body` to `path`; the status, or `None` if the server closed the
/// connection before answering (allowed for bodies it refuses unread).
fn post(http: &reqwest::blocking::Client, base: &str, path: &str, token: Option<&str>, body: Vec<u8>) -> Option<u16> {
    let mut request = http.post(format!("{base}{path}")).body(body);
    if let Some(token) = token {
        request = request.header("X-Vault-Token", token);
    }
    request.send().ok().map(|r| r.status().as_u16())
}

/// Hostile bodies — 30 MB of ten million `{}` items without a token and with
/// one, a batch over the item limit, deep nesting — are refused without the
/// server's memory growing, while `sys/health` goes on answering.
#[test]
fn hostile_bodies_are_refused_with_bounded_memory_and_a_live_health_endpoint() {
    let server = ServerProcess::start("hostile", "");
    let http = blocking_client();
    let (status, _) = {
        let r = http
            .post(format!("{}/v1/transit/keys/hostile", server.base))
            .header("X-Vault-Token", DEV_TOKEN)
            .send()
            .unwrap();
        (r.status().as_u16(), ())
    };
    assert_eq!(status, 200);
    let rss_before = server.peak_rss_mib();

    // Health is polled throughout; the slowest answer is recorded.
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let (stop, url) = (stop.clone(), format!("{}/v1/sys/health", server.base));
        std::thread::spawn(move || {
            let http = blocking_client();
            let mut slowest = Duration::ZERO;
            while !stop.load(Ordering::SeqCst) {
                let started = Instant::now();
                let status = http.get(&url).send().unwrap().status().as_u16();
                assert_eq!(status, 200);
                slowest = slowest.max(started.elapsed());
                std::thread::sleep(Duration::from_millis(20));
            }
            slowest
        })
    };

    let mut flood = b"{\"batch_input\":[".to_vec();
    for _ in 0..10_000_000 {
        flood.extend_from_slice(b"{},");
    }
    flood.extend_from_slice(b"{}]}");
    let path = "/v1/transit/encrypt/hostile";
    let anonymous = std::thread::scope(|scope| {
        let sent: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| post(&http, &server.base, path, None, flood.clone())))
            .collect();
        sent.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>()
    });
    assert!(anonymous.iter().all(|s| matches!(s, None | Some(403))), "{anonymous:?}");
    let with_token = std::thread::scope(|scope| {
        let sent: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| post(&http, &server.base, path, Some(DEV_TOKEN), flood.clone())))
            .collect();
        sent.into_iter().map(|t| t.join().unwrap()).collect::<Vec<_>>()
    });
    // 413 — or the connection closed first: the server answers as soon as the
    // limit shows, while the client may still be writing its 30 MB.
    assert!(
        with_token.iter().all(|s| matches!(s, None | Some(413))),
        "{with_token:?}"
    );
    let items = |n: usize| {
        let item = "{\"plaintext\":\"eA==\"},".repeat(n);
        format!("{{\"batch_input\":[{}]}}", item.trim_end_matches(',')).into_bytes()
    };
    assert_eq!(
        post(&http, &server.base, path, Some(DEV_TOKEN), items(10_001)),
        Some(413)
    );
    assert_eq!(
        post(&http, &server.base, path, Some(DEV_TOKEN), items(10_000)),
        Some(200)
    );
    let deep = format!("{{\"plaintext\":{}1{}}}", "[".repeat(100), "]".repeat(100)).into_bytes();
    assert_eq!(post(&http, &server.base, path, Some(DEV_TOKEN), deep), Some(413));

    stop.store(true, Ordering::SeqCst);
    let slowest = poller.join().unwrap();
    let rss_after = server.peak_rss_mib();
    eprintln!("peak RSS {rss_before} MiB before, {rss_after} MiB after; slowest health answer {slowest:?}");
    // Before the limits, the same bodies took the server from 15 MB to 1.2-3.4 GB.
    assert!(
        rss_after < rss_before + 150,
        "peak RSS grew from {rss_before} to {rss_after} MiB"
    );
    // A liveness bound, not a performance claim: health was never stalled.
    assert!(slowest < Duration::from_secs(1), "health stalled for {slowest:?}");
}

/// A client that sends half a request's headers and stops, and one that keeps an
/// idle connection, are both disconnected after the header-read timeout.
#[test]
fn slow_and_idle_clients_are_disconnected() {
    use std::io::{Read as _, Write as _};
    let server = ServerProcess::start("slow", "[limits]\nheader_read_timeout = 1\n");
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut slow = std::net::TcpStream::connect(&address).unwrap();
    slow.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n").unwrap();
    let mut idle = std::net::TcpStream::connect(&address).unwrap();
    let started = Instant::now();
    for stream in [&mut slow, &mut idle] {
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buffer = [0u8; 1024];
        // Closed (0 bytes, or a 408 then closed), not left hanging until our timeout.
        loop {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(8), "connections held for {waited:?}");
}

/// `SIGHUP` reopens the audit file (after a rotation, lines go to the new file)
/// and the server goes on serving; an audit file deleted underneath the server is
/// noticed and recreated, so lines never go into a deleted file.
#[test]
fn sighup_reopens_audit_files_and_a_deleted_file_is_recreated() {
    let mut server = ServerProcess::start("hup", "");
    let http = blocking_client();
    let audit = server.dir.join("audit.log");
    let enable = json!({ "type": "file", "options": { "file_path": audit } }).to_string();
    let base = server.base.clone();
    let put = |path: &str, body: String| {
        http.put(format!("{base}{path}"))
            .header("X-Vault-Token", DEV_TOKEN)
            .body(body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(put("/v1/sys/audit/file", enable), 204);
    assert_eq!(put("/v1/transit/keys/rotated", "{}".into()), 200);
    let rotated = server.dir.join("audit.log.1");
    std::fs::rename(&audit, &rotated).unwrap();
    let hangup = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hangup.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(server.alive(), "SIGHUP must not end the server");
    assert_eq!(put("/v1/transit/keys/after", "{}".into()), 200);
    let fresh = std::fs::read_to_string(&audit).unwrap();
    assert!(
        fresh.contains("transit/keys/after"),
        "new lines go to the reopened file"
    );
    assert!(
        !std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("transit/keys/after")
    );

    std::fs::remove_file(&audit).unwrap();
    let started = Instant::now();
    loop {
        assert_eq!(put("/v1/transit/keys/deleted", "{}".into()), 200);
        if std::fs::read_to_string(&audit).is_ok_and(|t| t.contains("transit/keys/deleted")) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "deleted audit file not recreated"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for line in std::fs::read_to_string(&audit).unwrap().lines() {
        serde_json::from_str::<Value>(line).unwrap();
    }
}

/// A TLS key that does not go with the certificate stops the start with the
/// reason, before any "listening" line or root token is printed.
#[test]
fn a_bad_tls_key_is_refused_before_the_server_announces_itself() {
    let dir = std::env::temp_dir().join(format!("ea-faults-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let one = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, one.cert.pem()).unwrap();
    std::fs::write(&key, other.signing_key.serialize_pem()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_encrypted-attr"))
        .args(["server", "--dev", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(!output.status.success());
    assert!(
        !stdout.contains("listening") && !stdout.contains("Root Token"),
        "{stdout}"
    );
    assert!(stderr.contains("do not go together"), "{stderr}");
    std::fs::write(&key, "not a key").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_encrypted-attr"))
        .args(["server", "--dev", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("private key"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A key deleted through one server is never used by another sharing its storage
/// once the deletion has answered: an encryption there is refused, not answered
/// with a ciphertext that can never be decrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_key_is_not_used_by_another_server() {
    let Some(admin) = postgres_url() else { return };
    let db = format!("ea_fault_delete_{}", std::process::id());
    let url = fresh_database(&admin, &db).await;
    let bases = servers_on(&url, 2).await;
    let http = http_client();
    let (a, b) = (&bases[0], &bases[1]);
    let (root, key) = init(&http, a).await;
    for base in [a, b] {
        let (_, status) = call(
            &http,
            "PUT",
            &format!("{base}/v1/sys/unseal"),
            None,
            json!({"key": key}),
        )
        .await;
        assert_eq!(status["sealed"], false);
    }
    let encrypt = |base: String| {
        let (http, root) = (http.clone(), root.clone());
        async move {
            call(
                &http,
                "POST",
                &format!("{base}/v1/transit/encrypt/doomed"),
                Some(&root),
                json!({"plaintext": "eA=="}),
            )
            .await
        }
    };
    for round in 0..3 {
        let (status, _) = call(
            &http,
            "POST",
            &format!("{a}/v1/transit/keys/doomed"),
            Some(&root),
            json!({}),
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = call(
            &http,
            "POST",
            &format!("{a}/v1/transit/keys/doomed/config"),
            Some(&root),
            json!({"deletion_allowed": true}),
        )
        .await;
        assert_eq!(status, 200);
        // B caches the key by using it.
        assert_eq!(encrypt(b.clone()).await.0, 200);
        let (status, body) = call(
            &http,
            "DELETE",
            &format!("{a}/v1/transit/keys/doomed"),
            Some(&root),
            Value::Null,
        )
        .await;
        assert_eq!(status, 204, "{body}");
        // B may answer 400, or 200 with a key it created anew (encrypt creates a
        // missing key, as in Vault) — never a ciphertext of the deleted key, which
        // nothing could decrypt.
        let (status, body) = encrypt(b.clone()).await;
        if status == 200 {
            let (status, decrypted) = call(
                &http,
                "POST",
                &format!("{a}/v1/transit/decrypt/doomed"),
                Some(&root),
                json!({"ciphertext": body["data"]["ciphertext"]}),
            )
            .await;
            assert_eq!(
                (status, decrypted["data"]["plaintext"].clone()),
                (200, json!("eA==")),
                "round {round}: B encrypted with the key deleted on A: {decrypted}"
            );
        } else {
            assert_eq!(status, 400, "{body}");
        }
    }
    admin_sql(&admin, format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
}

/// A tmpfs of `size` mounted at `dir` (root only), unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            return Some(Self(dir.to_owned()));
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("the disk-full test needs to mount a tmpfs (root) under CI");
        }
        eprintln!("SKIPPED: cannot mount a tmpfs (not root?); the disk-full test did not run");
        None
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// The audit device's disk fills up under load: requests fail closed (500) while
/// it is full, every line in the file stays whole JSON (no torn line, nothing
/// glued onto one), and once space is freed requests succeed and log again.
#[test]
fn a_full_disk_under_the_audit_device_leaves_only_whole_lines() {
    let server = ServerProcess::start("diskfull", "");
    let mount = server.dir.join("small");
    let Some(_disk) = SmallDisk::mount(&mount, "64k") else {
        return;
    };
    let audit = mount.join("audit.log");
    let http = blocking_client();
    let base = server.base.clone();
    let send = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .header("X-Vault-Token", DEV_TOKEN)
            .body(body.to_string())
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let enable = json!({ "type": "file", "options": { "file_path": audit } });
    assert_eq!(send("/v1/sys/audit/small", enable), 204);
    // Lines of varied length, so the last free bytes are met mid-line.
    let mut refused = 0;
    for n in 0..2_000 {
        let plaintext = base64_of(&"x".repeat(n % 200));
        match send("/v1/transit/encrypt/full", json!({ "plaintext": plaintext })) {
            200 => {}
            500 => refused += 1,
            other => panic!("unexpected status {other}"),
        }
        if refused >= 20 {
            break;
        }
    }
    assert!(refused >= 20, "the disk never filled up");
    let check_whole = || {
        let text = std::fs::read(&audit).unwrap();
        assert!(text.ends_with(b"\n"), "the file ends mid-line");
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            serde_json::from_slice::<Value>(line)
                .unwrap_or_else(|e| panic!("not a whole JSON line ({e}): {}", String::from_utf8_lossy(line)));
        }
    };
    check_whole();
    // Space comes back (the operator truncates the log): requests and lines resume.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&audit)
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_eq!(send("/v1/transit/encrypt/full", json!({ "plaintext": "eA==" })), 200);
    check_whole();
    assert!(
        std::fs::read_to_string(&audit)
            .unwrap()
            .contains("transit/encrypt/full")
    );
}

/// `kill -9` of a server on a keyring file while it rotates a key, over and over:
/// after each restart and unseal the key's versions are consecutive, none lost,
/// and a ciphertext of every version acknowledged before the kill decrypts.
#[test]
fn kill_9_during_rotations_loses_nothing() {
    let dir = std::env::temp_dir().join(format!("ea-faults-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let storage = dir.join("keys.json");
    let args = ["--storage-file", storage.to_str().unwrap()];
    let http = blocking_client();
    let request = |base: &str, method: &str, path: &str, token: Option<&str>, body: Value| {
        let mut r = http.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{base}{path}"),
        );
        if let Some(token) = token {
            r = r.header("X-Vault-Token", token);
        }
        r.body(body.to_string())
            .send()
            .map(|r| (r.status().as_u16(), r.json::<Value>().unwrap_or(Value::Null)))
    };
    let server = ServerProcess::start_in(dir.clone(), &args, "");
    let (_, init) = request(
        &server.base,
        "PUT",
        "/v1/sys/init",
        None,
        json!({"secret_shares": 1, "secret_threshold": 1}),
    )
    .unwrap();
    let (key, root) = (
        init["keys"][0].as_str().unwrap().to_owned(),
        init["root_token"].as_str().unwrap().to_owned(),
    );
    drop(server);
    let mut acknowledged: Vec<(u64, String)> = Vec::new();
    for round in 0..5 {
        let mut server = ServerProcess::start_in(dir.clone(), &args, "");
        let (_, status) = request(&server.base, "PUT", "/v1/sys/unseal", None, json!({"key": key})).unwrap();
        assert_eq!(status["sealed"], false, "round {round}");
        if round == 0 {
            request(&server.base, "POST", "/v1/transit/keys/k9", Some(&root), json!({})).unwrap();
        }
        // Everything acknowledged so far is still there.
        let (_, info) = request(&server.base, "GET", "/v1/transit/keys/k9", Some(&root), Value::Null).unwrap();
        let latest = info["data"]["latest_version"].as_u64().unwrap();
        let versions = info["data"]["keys"].as_object().unwrap().len() as u64;
        assert_eq!(versions, latest, "round {round}: versions 1..={latest}, none missing");
        for (version, ciphertext) in &acknowledged {
            assert!(
                *version <= latest,
                "round {round}: acknowledged v{version} lost (latest {latest})"
            );
            let (status, body) = request(
                &server.base,
                "POST",
                "/v1/transit/decrypt/k9",
                Some(&root),
                json!({"ciphertext": ciphertext}),
            )
            .unwrap();
            assert_eq!(
                (status, body["data"]["plaintext"].clone()),
                (200, json!("eA==")),
                "round {round}"
            );
        }
        // Rotate and encrypt from two threads, and kill -9 in the middle of it.
        let base = server.base.clone();
        let rotating = std::thread::spawn({
            let root = root.clone();
            move || {
                let http = blocking_client();
                let mut done = Vec::new();
                for _ in 0..200 {
                    let Ok(r) = http
                        .post(format!("{base}/v1/transit/keys/k9/rotate"))
                        .header("X-Vault-Token", &root)
                        .body("{}")
                        .send()
                    else {
                        break;
                    };
                    if r.status() != 200 {
                        break;
                    }
                    let Ok(r) = http
                        .post(format!("{base}/v1/transit/encrypt/k9"))
                        .header("X-Vault-Token", &root)
                        .body(r#"{"plaintext":"eA=="}"#)
                        .send()
                    else {
                        break;
                    };
                    let Ok(body) = r.json::<Value>() else { break };
                    let Some(ct) = body["data"]["ciphertext"].as_str() else {
                        break;
                    };
                    done.push((body["data"]["key_version"].as_u64().unwrap(), ct.to_owned()));
                }
                done
            }
        });
        std::thread::sleep(Duration::from_millis(300 + 70 * round));
        server.child.kill().unwrap(); // SIGKILL
        let _ = server.child.wait();
        acknowledged.extend(rotating.join().unwrap());
        assert!(
            !acknowledged.is_empty(),
            "round {round}: nothing was acknowledged before the kill"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every answer says `Cache-Control: no-store`; over TLS it also carries
/// `Strict-Transport-Security`. A connection over the limit waits its turn.
#[test]
fn security_headers_and_the_connection_limit() {
    let dir = std::env::temp_dir().join(format!("ea-faults-certificates-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let tls_config = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n[limits]\nmax_connections = 1\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let server = ServerProcess::start("headers", &tls_config);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(certified.cert.pem().as_bytes()).unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let base = server.base.replace("http://127.0.0.1", "https://localhost");
    for (path, token) in [
        ("/v1/sys/health", None),
        ("/v1/auth/token/lookup-self", Some(DEV_TOKEN)),
        ("/v1/nothing", None),
    ] {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        let response = request.send().unwrap();
        let headers = response.headers();
        assert_eq!(
            headers.get("cache-control").map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{path}"
        );
        assert!(
            headers
                .get("strict-transport-security")
                .is_some_and(|v| v.to_str().unwrap().starts_with("max-age=")),
            "{path}"
        );
    }
    drop(server);
    // One connection allowed: a second client is served only once the first is gone.
    use std::io::{Read as _, Write as _};
    let server = ServerProcess::start("connections", "[limits]\nmax_connections = 1\n");
    let address = server.base.trim_start_matches("http://").to_owned();
    let holder = std::net::TcpStream::connect(&address).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut waiting = std::net::TcpStream::connect(&address).unwrap();
    waiting
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    waiting.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut buffer = [0u8; 64];
    assert!(
        matches!(waiting.read(&mut buffer), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "the second connection must wait while the first holds the only slot"
    );
    drop(holder);
    waiting.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = waiting.read(&mut buffer).unwrap();
    assert!(buffer[..n].starts_with(b"HTTP/1.1 200"), "served once the slot is free");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two servers on one PostgreSQL database, at the same time: one rotates a key
/// over and over while the other creates, uses and deletes other keys. Every
/// rotation lands exactly once, and each deletion is seen by the rotating server
/// as soon as it has answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotation_and_deletion_on_shared_postgres() {
    let Some(admin) = postgres_url() else { return };
    let db = format!("ea_fault_rotate_delete_{}", std::process::id());
    let url = fresh_database(&admin, &db).await;
    let bases = servers_on(&url, 2).await;
    let http = http_client();
    let (a, b) = (bases[0].clone(), bases[1].clone());
    let (root, key) = init(&http, &a).await;
    for base in [&a, &b] {
        let (_, status) = call(
            &http,
            "PUT",
            &format!("{base}/v1/sys/unseal"),
            None,
            json!({"key": key}),
        )
        .await;
        assert_eq!(status["sealed"], false);
    }
    let (status, _) = call(
        &http,
        "POST",
        &format!("{a}/v1/transit/keys/spin"),
        Some(&root),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let rotations = 20;
    let rotator = {
        let (http, a, root) = (http.clone(), a.clone(), root.clone());
        tokio::spawn(async move {
            for _ in 0..rotations {
                let (status, body) = call(
                    &http,
                    "POST",
                    &format!("{a}/v1/transit/keys/spin/rotate"),
                    Some(&root),
                    json!({}),
                )
                .await;
                assert_eq!(status, 200, "{body}");
            }
        })
    };
    for round in 0..3 {
        let name = format!("gone{round}");
        let (status, _) = call(
            &http,
            "POST",
            &format!("{b}/v1/transit/keys/{name}"),
            Some(&root),
            json!({}),
        )
        .await;
        assert_eq!(status, 200);
        // A uses the key (and caches it), B deletes it.
        let (status, _) = call(
            &http,
            "POST",
            &format!("{a}/v1/transit/encrypt/{name}"),
            Some(&root),
            json!({"plaintext": "eA=="}),
        )
        .await;
        assert_eq!(status, 200);
        let (status, _) = call(
            &http,
            "POST",
            &format!("{b}/v1/transit/keys/{name}/config"),
            Some(&root),
            json!({"deletion_allowed": true}),
        )
        .await;
        assert_eq!(status, 200);
        let (status, body) = call(
            &http,
            "DELETE",
            &format!("{b}/v1/transit/keys/{name}"),
            Some(&root),
            Value::Null,
        )
        .await;
        assert_eq!(status, 204, "{body}");
        let (status, _) = call(
            &http,
            "GET",
            &format!("{a}/v1/transit/keys/{name}"),
            Some(&root),
            Value::Null,
        )
        .await;
        assert_eq!(status, 404, "round {round}: A still sees the key B deleted");
        // B encrypts with the key A keeps rotating: never a version A does not know.
        let (status, body) = call(
            &http,
            "POST",
            &format!("{b}/v1/transit/encrypt/spin"),
            Some(&root),
            json!({"plaintext": "eA=="}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = call(
            &http,
            "POST",
            &format!("{a}/v1/transit/decrypt/spin"),
            Some(&root),
            json!({"ciphertext": body["data"]["ciphertext"]}),
        )
        .await;
        assert_eq!((status, body["data"]["plaintext"].clone()), (200, json!("eA==")));
    }
    rotator.await.unwrap();
    let (_, info) = call(
        &http,
        "GET",
        &format!("{b}/v1/transit/keys/spin"),
        Some(&root),
        Value::Null,
    )
    .await;
    assert_eq!(info["data"]["latest_version"], 1 + rotations);
    assert_eq!(info["data"]["keys"].as_object().unwrap().len(), 1 + rotations as usize);
    admin_sql(&admin, format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await;
}
