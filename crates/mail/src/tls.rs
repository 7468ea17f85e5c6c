//! The server certificate: loaded from the configured PEM files, or made on first start with
//! rcgen and kept under the data directory, so clients see the same one after a restart.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use postroom_config::mail::Tls;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// Builds the rustls server configuration for every TLS listener.
pub fn server_config(
    tls: &Tls,
    data_dir: &Path,
    hostname: &str,
) -> Result<Arc<ServerConfig>, Error> {
    let (cert_path, key_path) = match (&tls.certificate, &tls.key) {
        (Some(cert), Some(key)) => (cert.clone(), key.clone()),
        (None, None) => generated(data_dir, hostname)?,
        _ => {
            return Err(Error::Tls(
                "mail.tls needs both certificate and key, or neither".into(),
            ));
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| Error::Tls(format!("{}: {e}", cert_path.display())))?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| Error::Tls(format!("{}: {e}", key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(format!("{}: {e}", cert_path.display())))?;
    Ok(Arc::new(config))
}

/// The paths of the generated certificate, made now if missing.
fn generated(data_dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf), Error> {
    let dir = data_dir.join("tls");
    let cert = dir.join("mail-cert.pem");
    let key = dir.join("mail-key.pem");
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let names = vec![hostname.to_owned(), "localhost".to_owned()];
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| Error::Tls(format!("cannot make a certificate: {e}")))?;
    // The key first and private: a crash between the two writes leaves no certificate without
    // its key, and the next start makes both again.
    crate::intake::write_durably(
        &dir,
        "mail-key.pem",
        made.signing_key.serialize_pem().as_bytes(),
    )?;
    restrict(&key)?;
    crate::intake::write_durably(&dir, "mail-cert.pem", made.cert.pem().as_bytes())?;
    tracing::info!(path = %cert.display(), "generated a self-signed certificate");
    Ok((cert, key))
}

fn restrict(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_certificate_files_are_loaded_and_half_a_pair_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["mx.office.example".into()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        fs::write(&cert, made.cert.pem()).unwrap();
        fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        let tls = Tls {
            certificate: Some(cert.clone()),
            key: Some(key),
        };
        server_config(&tls, dir.path(), "mx.office.example").unwrap();
        assert!(
            !dir.path().join("tls").exists(),
            "made a certificate although one was given"
        );

        let half = Tls {
            certificate: Some(cert),
            key: None,
        };
        assert!(server_config(&half, dir.path(), "mx.office.example").is_err());
        let missing = Tls {
            certificate: Some(dir.path().join("nope.pem")),
            key: Some(dir.path().join("nope.key")),
        };
        let err = server_config(&missing, dir.path(), "mx.office.example").unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }

    #[test]
    fn certificate_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        server_config(&Tls::default(), dir.path(), "mx.office.example").unwrap();
        let first = fs::read(dir.path().join("tls/mail-cert.pem")).unwrap();
        server_config(&Tls::default(), dir.path(), "mx.office.example").unwrap();
        let second = fs::read(dir.path().join("tls/mail-cert.pem")).unwrap();
        assert_eq!(first, second);
    }
}
