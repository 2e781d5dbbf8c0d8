//! Accepting connections, plain or TLS: at most `max_connections` at once, a
//! deadline for every request's headers (which also closes idle keep-alive
//! connections, since hyper starts that clock whenever it waits for a request),
//! graceful shutdown, and a TLS configuration that `SIGHUP` can replace.
//!
//! Our own accept loop rather than `axum::serve`: that one sets no header-read
//! timeout and no connection limit, so a slow or idle client held a connection
//! for as long as it liked.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::limits::Limits;

/// The TLS side of a listener: the certificate and key files, and the
/// configuration loaded from them (replaced by [`TlsFiles::reload`]).
pub(crate) struct TlsFiles {
    certificate: PathBuf,
    private_key: PathBuf,
    acceptor: RwLock<tokio_rustls::TlsAcceptor>,
}

impl TlsFiles {
    /// Loads and checks the certificate chain and key (PEM).
    ///
    /// # Errors
    /// A file cannot be read, holds no certificate or key, or the key does not
    /// match the certificate.
    pub(crate) fn load(certificate: &Path, private_key: &Path) -> Result<Self, String> {
        let acceptor = acceptor(certificate, private_key)?;
        Ok(Self {
            certificate: certificate.to_owned(),
            private_key: private_key.to_owned(),
            acceptor: RwLock::new(acceptor),
        })
    }

    /// Reads the files again; on error the current configuration stays.
    pub(crate) fn reload(&self) -> Result<(), String> {
        let fresh = acceptor(&self.certificate, &self.private_key)?;
        *self.acceptor.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }

    fn current(&self) -> tokio_rustls::TlsAcceptor {
        self.acceptor
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

fn acceptor(certificate: &Path, private_key: &Path) -> Result<tokio_rustls::TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    // Err means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the TLS certificate {}: {e}", certificate.display()))?;
    if chain.is_empty() {
        return Err(format!("no certificate in {}", certificate.display()));
    }
    let key = PrivateKeyDer::from_pem_file(private_key)
        .map_err(|e| format!("cannot read the TLS private key {}: {e}", private_key.display()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the TLS certificate and key do not go together: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` on `listener` (over TLS with `tls`) until `shutdown` resolves,
/// then lets the requests in flight finish (at most the request timeout).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Arc<TlsFiles>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder.http1_only());
    tokio::pin!(shutdown);
    loop {
        // A turn first: beyond the limit, connections wait in the kernel's queue.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin or stop.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        // Each request learns its connection's peer (CIDR-bound tokens and logins).
        let client = crate::request::ClientAddress(peer.ip());
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: axum::http::Request<_>| {
                request.extensions_mut().insert(client);
                request
            },
        ));
        let tls = tls.as_ref().map(|tls| tls.current());
        let handshake_deadline = limits.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => {
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(connection.into_owned()).await;
                }
                Some(acceptor) => {
                    let Ok(Ok(stream)) = tokio::time::timeout(handshake_deadline, acceptor.accept(stream)).await else {
                        return;
                    };
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    let _ = watcher.watch(connection.into_owned()).await;
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(limits.request_timeout, graceful.shutdown()).await;
    Ok(())
}
