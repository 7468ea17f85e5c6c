//! TLS for the POP3 client: how a mailbox is reached, and the rustls client settings that check
//! the server's certificate.
//!
//! The certificate is always verified (chain and host name, RFC 6125 through webpki): against
//! the Mozilla roots of webpki-roots, plus the CA certificates of a mailbox's `ca_file` for an
//! ISP with a private CA. The crypto provider is ring, as everywhere in the workspace.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::ring;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::Error;

/// How the POP3 session is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Pop3Tls {
    /// TLS from the first byte, POP3S on port 995 (RFC 8314 section 3.3, the preferred way).
    #[default]
    Implicit,
    /// Plain POP3 upgraded with `STLS` before the login (RFC 2595 section 4); a server that
    /// does not offer it is refused, never logged in to in plain text.
    StartTls,
    /// No TLS: the password crosses the network in plain text. Only when asked for by name.
    None,
}

/// The rustls client settings for a mailbox: webpki-roots, plus the PEM certificates in
/// `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        for cert in read_certs(path)? {
            roots.add(cert).map_err(|e| Error::CaFile {
                path: path.to_owned(),
                why: format!("a certificate is unusable as a CA: {e}"),
            })?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::CaFile {
            path: ca_file.map(Path::to_owned).unwrap_or_default(),
            why: format!("no usable TLS protocol version: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bad = |why: String| Error::CaFile {
        path: path.to_owned(),
        why,
    };
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(format!("cannot be read: {e}")))?
        .collect();
    let certs = certs.map_err(|e| bad(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no certificate".into()));
    }
    Ok(certs)
}

/// The name the certificate must carry: the host part of `host:port` (a DNS name, or an IP
/// address, which then must be in the certificate's subjectAltName).
pub fn server_name(addr: &str) -> Result<ServerName<'static>, Error> {
    let host = match addr.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).map_err(|e| Error::Tls {
        peer: addr.to_owned(),
        why: format!("{host:?} is not a host name to check a certificate against: {e}"),
    })
}

/// Says what a failed handshake means for the administrator: an untrusted certificate names
/// the fix.
pub fn handshake_error(peer: &str, e: &std::io::Error) -> Error {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let why = match rustls_error {
        Some(rustls::Error::InvalidCertificate(cause)) => format!(
            "the server's certificate is not trusted ({cause}): nothing was sent; \
             for an ISP with a private CA give its certificate in ca_file"
        ),
        Some(other) => format!("handshake failed: {other}"),
        None => format!("handshake failed: {e}"),
    };
    Error::Tls {
        peer: peer.to_owned(),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_name_is_the_host_of_host_and_port() {
        assert_eq!(
            server_name("pop.isp.example:995").unwrap(),
            ServerName::try_from("pop.isp.example").unwrap()
        );
        assert_eq!(
            server_name("127.0.0.1:110").unwrap(),
            ServerName::try_from("127.0.0.1").unwrap()
        );
        assert_eq!(
            server_name("[::1]:995").unwrap(),
            ServerName::try_from("::1").unwrap()
        );
        assert!(server_name("bad name!:995").is_err());
    }

    /// The tester's case: the reason was the rustls error's Debug dump
    /// (`NotValidForNameContext { expected: DnsName(..), presented: [..] }`).
    #[test]
    fn an_untrusted_certificate_is_explained_in_words_not_a_struct_dump() {
        let cause = rustls::CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("pop.isp.example").unwrap(),
            presented: vec!["DnsName(\"mail.other.example\")".into()],
        };
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(cause),
        );
        let e = handshake_error("pop.isp.example:995", &io).to_string();
        assert!(
            e.contains("not trusted (certificate not valid for name \"pop.isp.example\""),
            "{e}"
        );
        assert!(!e.contains("NotValidForNameContext"), "{e}");
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = client_config(Some(&empty)).unwrap_err().to_string();
        assert!(
            e.contains("empty.pem") && e.contains("no certificate"),
            "{e}"
        );
        let e = client_config(Some(&dir.path().join("gone.pem")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("gone.pem"), "{e}");
        assert!(client_config(None).is_ok());
    }
}
