//! The server certificate: loaded from the configured PEM files, or made on first start with
//! rcgen and kept under the data directory, so clients see the same one after a restart.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

/// How long a generated certificate is valid. Apple's clients refuse a TLS server certificate
/// valid for more than 825 days (support.apple.com/en-us/103769), even one the user chose to
/// trust, so the box stays inside that and makes a new one before it runs out.
const GENERATED_VALIDITY: Duration = Duration::from_secs(825 * 86_400);

/// A generated certificate older than this is made again at start (30 days before it expires).
const GENERATED_RENEWAL: Duration = Duration::from_secs(795 * 86_400);

/// The paths of the generated certificate, made now if missing or due for renewal.
fn generated(data_dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf), Error> {
    let dir = data_dir.join("tls");
    let cert = dir.join("mail-cert.pem");
    let key = dir.join("mail-key.pem");
    if cert.is_file() && key.is_file() && !due_for_renewal(&cert) {
        return Ok((cert, key));
    }
    fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let made =
        self_signed(hostname).map_err(|e| Error::Tls(format!("cannot make a certificate: {e}")))?;
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

/// Whether the generated certificate at `cert` was written longer ago than
/// [`GENERATED_RENEWAL`] (it is written once, when made).
fn due_for_renewal(cert: &Path) -> bool {
    fs::metadata(cert)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|written| written.elapsed().ok())
        .is_some_and(|age| age > GENERATED_RENEWAL)
}

/// A self-signed server certificate for `hostname` and `localhost`, named after the host (what
/// a client shows when it asks whether to trust it), for server authentication only, valid from
/// a day ago (a client clock a little behind) for [`GENERATED_VALIDITY`].
fn self_signed(hostname: &str) -> Result<rcgen::CertifiedKey<rcgen::KeyPair>, rcgen::Error> {
    let mut params =
        rcgen::CertificateParams::new(vec![hostname.to_owned(), "localhost".to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Postroom mail gateway");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + GENERATED_VALIDITY;
    let signing_key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&signing_key)?;
    Ok(rcgen::CertifiedKey { cert, signing_key })
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
    fn generated_certificate_names_the_host_serves_tls_servers_and_lasts_825_days_at_most() {
        let dir = tempfile::tempdir().unwrap();
        server_config(&Tls::default(), dir.path(), "mx.office.example").unwrap();
        let pem = fs::read(dir.path().join("tls/mail-cert.pem")).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        let cert = pem.parse_x509().unwrap();
        let common_names: Vec<&str> = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .collect();
        assert_eq!(common_names, ["mx.office.example"]);
        let days = (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp())
            / 86_400;
        assert!((800..=826).contains(&days), "valid for {days} days");
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        assert!(cert.validity().not_before.timestamp() < now);
        let eku = cert
            .extended_key_usage()
            .unwrap()
            .expect("extended key usage");
        assert!(eku.value.server_auth && !eku.value.client_auth);
        let names: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .expect("subject alternative names")
            .value
            .general_names
            .iter()
            .map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(name) => name.to_string(),
                other => format!("not a DNS name: {other:?}"),
            })
            .collect();
        assert_eq!(names, ["mx.office.example", "localhost"]);
    }

    #[test]
    fn a_generated_certificate_near_its_end_is_made_again_and_a_young_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        server_config(&Tls::default(), dir.path(), "mx.office.example").unwrap();
        let path = dir.path().join("tls/mail-cert.pem");
        let first = fs::read(&path).unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(796 * 86_400);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        server_config(&Tls::default(), dir.path(), "mx.office.example").unwrap();
        let second = fs::read(&path).unwrap();
        assert_ne!(first, second, "a certificate 796 days old was kept");
        server_config(&Tls::default(), dir.path(), "mx.office.example").unwrap();
        assert_eq!(fs::read(&path).unwrap(), second);
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
