//! Certificates for the peers' TLS, made with rcgen at start: nothing is read from the system.

/// A certificate and its key, PEM.
pub(crate) struct Certified {
    pub cert: String,
    pub key: String,
}

/// A self-signed certificate for 127.0.0.1: a client trusts it by naming it as its CA file.
pub(crate) fn self_signed_for_loopback() -> Result<Certified, rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
    params.is_ca = rcgen::IsCa::NoCa;
    let cert = params.self_signed(&key)?;
    Ok(Certified {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A private CA named `ca_name`, and a certificate for 127.0.0.1 (common name `host`) it
/// signed: (the CA's certificate, the server's certificate and key).
pub(crate) fn ca_signed_for_loopback(
    ca_name: &str,
    host: &str,
) -> Result<(String, Certified), rcgen::Error> {
    let (ca_params, ca_key) = ca(ca_name)?;
    let ca_pem = ca_params.self_signed(&ca_key)?.pem();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, host);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((
        ca_pem,
        Certified {
            cert: cert.pem(),
            key: key.serialize_pem(),
        },
    ))
}

/// The certificate (PEM) of a CA that signed nothing any peer has: the wrong CA to trust.
pub fn unrelated_ca() -> String {
    let (params, key) = ca("Someone else's CA").expect("make a CA");
    params.self_signed(&key).expect("sign the CA").pem()
}

fn ca(name: &str) -> Result<(rcgen::CertificateParams, rcgen::KeyPair), rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    Ok((params, rcgen::KeyPair::generate()?))
}
