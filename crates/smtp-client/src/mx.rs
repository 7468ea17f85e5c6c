//! Finding a domain's mail servers (RFC 5321 section 5.1, RFC 7505 null MX).

use hickory_resolver::TokioResolver;

use crate::Error;

/// A resolver from the system's settings (/etc/resolv.conf), to be built once and shared, so
/// that its cache serves every delivery.
pub fn system_resolver() -> Result<std::sync::Arc<TokioResolver>, Error> {
    let builder = TokioResolver::builder_tokio().map_err(|e| Error::NoRoute {
        domain: String::new(),
        reason: format!("cannot read the DNS settings: {e}"),
        permanent: false,
    })?;
    Ok(std::sync::Arc::new(builder.build()))
}

/// Orders MX records by preference, lowest first (RFC 5321 section 5.1). Records of equal
/// preference keep the order DNS gave them, which resolvers already shuffle.
///
/// A single record with the root as its exchange is a null MX (RFC 7505 section 3): the domain
/// takes no mail, which is a permanent failure.
pub fn order_mx(domain: &str, mut records: Vec<(u16, String)>) -> Result<Vec<String>, Error> {
    let is_root = |name: &str| name.trim_end_matches('.').is_empty();
    if records.iter().any(|(_, name)| is_root(name)) {
        return Err(Error::NoRoute {
            domain: domain.to_owned(),
            reason: "the domain publishes a null MX: it accepts no mail (RFC 7505)".into(),
            permanent: true,
        });
    }
    records.sort_by_key(|(pref, _)| *pref);
    let mut hosts: Vec<String> = Vec::with_capacity(records.len());
    for (_, name) in records {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if !hosts.contains(&name) {
            hosts.push(name);
        }
    }
    Ok(hosts)
}

/// The host names to try for `domain`, best first: its MX hosts, or when it has no MX
/// records, the domain itself as an implicit MX with preference 0 (RFC 5321 section 5.1).
pub async fn mail_hosts(resolver: &TokioResolver, domain: &str) -> Result<Vec<String>, Error> {
    // A domain literal (`user@[192.0.2.1]`) names its server directly (RFC 5321 4.1.3).
    if let Some(literal) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let literal = literal.strip_prefix("IPv6:").unwrap_or(literal);
        return Ok(vec![literal.to_owned()]);
    }
    let fqdn = format!("{}.", domain.trim_end_matches('.'));
    match resolver.mx_lookup(fqdn.as_str()).await {
        Ok(lookup) => {
            let records: Vec<(u16, String)> = lookup
                .iter()
                .map(|mx| (mx.preference(), mx.exchange().to_ascii()))
                .collect();
            if records.is_empty() {
                return Ok(vec![domain.to_owned()]);
            }
            order_mx(domain, records)
        }
        Err(e) if e.is_nx_domain() => Err(Error::NoRoute {
            domain: domain.to_owned(),
            reason: "no such domain".into(),
            permanent: true,
        }),
        Err(e) if e.is_no_records_found() => Ok(vec![domain.to_owned()]),
        Err(e) => Err(Error::NoRoute {
            domain: domain.to_owned(),
            reason: format!("MX lookup failed: {e}"),
            permanent: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mx_hosts_are_tried_lowest_preference_first_without_duplicates() {
        let records = vec![
            (20, "backup.example.".to_owned()),
            (10, "MX1.example.".to_owned()),
            (10, "mx2.example.".to_owned()),
            (30, "mx1.example".to_owned()),
        ];
        let hosts = order_mx("example", records).unwrap();
        assert_eq!(hosts, ["mx1.example", "mx2.example", "backup.example"]);
    }

    #[test]
    fn null_mx_is_a_permanent_failure() {
        let err = order_mx("nomail.example", vec![(0, ".".to_owned())]).unwrap_err();
        assert!(matches!(
            err,
            Error::NoRoute {
                permanent: true,
                ..
            }
        ));
    }
}
