//! The certificate files of tests/fixtures/tls: `a` and `b`, each a self-signed P-256
//! certificate for localhost with its key (generated once with openssl, valid 100 years).

use std::path::Path;

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

/// Copies fixture `pair` (a or b) to `dir`'s tls.crt and tls.key.
fn install(dir: &Path, pair: &str) {
    fs::copy(fixture(&format!("{pair}.crt")), dir.join("tls.crt")).unwrap();
    fs::copy(fixture(&format!("{pair}.key")), dir.join("tls.key")).unwrap();
}

fn files(dir: &Path) -> TlsFiles {
    TlsFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("m2s-tls-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn subject(key: &CertifiedKey) -> Vec<u8> {
    key.cert[0].as_ref().to_vec()
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    let dir = temp_dir("reload");
    install(&dir, "a");
    let resolver = ReloadingCert::new(files(&dir)).unwrap();
    let first = resolver.current();
    assert_eq!(subject(&first), fs_der("a"));
    // Renewed: other files (a new modification time) are served after the next look.
    std::thread::sleep(Duration::from_millis(20));
    install(&dir, "b");
    touch_later(&dir);
    resolver.loaded.lock().unwrap().looked -= LOOK_EVERY;
    assert_eq!(subject(&resolver.current()), fs_der("b"));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_renewal_that_cannot_be_read_keeps_the_previous_certificate() {
    let dir = temp_dir("half");
    install(&dir, "a");
    let resolver = ReloadingCert::new(files(&dir)).unwrap();
    // The certificate of b with the key of a: they do not belong together.
    fs::copy(fixture("b.crt"), dir.join("tls.crt")).unwrap();
    touch_later(&dir);
    resolver.loaded.lock().unwrap().looked -= LOOK_EVERY;
    assert_eq!(subject(&resolver.current()), fs_der("a"));
    // Half written.
    fs::write(dir.join("tls.crt"), "-----BEGIN CERTIFICATE-----\nMIIB").unwrap();
    touch_later(&dir);
    resolver.loaded.lock().unwrap().looked -= LOOK_EVERY;
    assert_eq!(subject(&resolver.current()), fs_der("a"));
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn files_that_cannot_be_read_stop_the_start_naming_them() {
    let dir = temp_dir("bad");
    let err = ReloadingCert::new(files(&dir)).unwrap_err();
    assert!(
        format!("{err:#}").contains("M2S_WEBHOOK_TLS_CERT"),
        "{err:#}"
    );
    fs::copy(fixture("a.crt"), dir.join("tls.crt")).unwrap();
    fs::copy(fixture("b.key"), dir.join("tls.key")).unwrap();
    let err = format!("{:#}", ReloadingCert::new(files(&dir)).unwrap_err());
    assert!(err.contains("does not belong to the certificate"), "{err}");
    fs::write(dir.join("tls.crt"), "not pem").unwrap();
    let err = format!("{:#}", ReloadingCert::new(files(&dir)).unwrap_err());
    assert!(err.contains("holds no PEM certificate"), "{err}");
    let _ = fs::remove_dir_all(dir);
}

/// The DER of fixture certificate `pair`.
fn fs_der(pair: &str) -> Vec<u8> {
    CertificateDer::from_pem_file(fixture(&format!("{pair}.crt")))
        .unwrap()
        .as_ref()
        .to_vec()
}

/// Moves the files' modification time a second on, as a later write would.
fn touch_later(dir: &Path) {
    for f in ["tls.crt", "tls.key"] {
        let file = fs::File::options().write(true).open(dir.join(f)).unwrap();
        let later = SystemTime::now() + Duration::from_secs(1);
        file.set_modified(later).unwrap();
    }
}
