//! HTTPS for the receiver (`M2S_WEBHOOK_TLS_CERT`, `M2S_WEBHOOK_TLS_KEY`): MLflow delivers
//! webhooks only to `https` URLs unless its operator relaxes `MLFLOW_WEBHOOK_ALLOWED_SCHEMES`.
//! The certificate and key are PEM files, read again when they change (a renewed certificate,
//! as cert-manager writes it into a mounted Secret, needs no restart): before a handshake,
//! m2s looks at the files' modification times, at most once a second, and loads them anew when
//! one changed. A renewal that cannot be read (a key that does not match, a half-written file)
//! keeps the previous certificate, logged.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{anyhow, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

/// How often, at most, the files' modification times are looked at.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Where the certificate and its key are.
#[derive(Debug, Clone)]
pub(crate) struct TlsFiles {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// The certificate in use, and what its files looked like when it was read.
struct Loaded {
    key: Arc<CertifiedKey>,
    stamps: (Option<SystemTime>, Option<SystemTime>),
    looked: Instant,
}

/// Resolves every handshake to the current certificate, reloading it when its files change.
pub(crate) struct ReloadingCert {
    files: TlsFiles,
    loaded: Mutex<Loaded>,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReloadingCert({:?})", self.files)
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The certificate chain and key of `files`, checked to belong together.
fn load(files: &TlsFiles) -> Result<Arc<CertifiedKey>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| {
            format!(
                "reading the certificate {} (M2S_WEBHOOK_TLS_CERT)",
                files.cert.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!(
            "{} (M2S_WEBHOOK_TLS_CERT) holds no PEM certificate",
            files.cert.display()
        );
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| {
            format!(
                "reading the private key {} (M2S_WEBHOOK_TLS_KEY)",
                files.key.display()
            )
        })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
        anyhow!(
            "the private key {} (M2S_WEBHOOK_TLS_KEY) is not one m2s can sign with: {e}",
            files.key.display()
        )
    })?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| {
        anyhow!(
            "the private key {} does not belong to the certificate {}: {e}",
            files.key.display(),
            files.cert.display()
        )
    })?;
    Ok(Arc::new(certified))
}

impl ReloadingCert {
    /// Reads the files once: a certificate that cannot be read stops the receiver at start.
    pub(crate) fn new(files: TlsFiles) -> Result<ReloadingCert> {
        let key = load(&files)?;
        let stamps = (modified(&files.cert), modified(&files.key));
        Ok(ReloadingCert {
            files,
            loaded: Mutex::new(Loaded {
                key,
                stamps,
                looked: Instant::now(),
            }),
        })
    }

    /// The certificate to present now.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if loaded.looked.elapsed() >= LOOK_EVERY {
            loaded.looked = Instant::now();
            let stamps = (modified(&self.files.cert), modified(&self.files.key));
            if stamps != loaded.stamps {
                match load(&self.files) {
                    Ok(key) => {
                        log::info!(cert = self.files.cert.display().to_string().as_str(); "TLS certificate reloaded");
                        loaded.key = key;
                        loaded.stamps = stamps;
                    }
                    // Half written, or a key of another certificate: the next look tries again.
                    Err(e) => {
                        log::warn!("TLS certificate not reloaded, the previous one stays: {e:#}")
                    }
                }
            }
        }
        loaded.key.clone()
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// The TLS acceptor of the receiver: HTTP/1.1, the certificate of `files` (reloaded).
pub(crate) fn acceptor(files: TlsFiles) -> Result<tokio_rustls::TlsAcceptor> {
    let resolver = ReloadingCert::new(files)?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests;
