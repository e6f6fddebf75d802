//! The user name an EXTERNAL login (rabbitmq_auth_mechanism_ssl) takes from the client's
//! verified certificate: its subject's common name (several joined with ",", as RabbitMQ does) or
//! the n-th subject alternative name of a type, as `ssl_cert_login_from` says.

use std::net::IpAddr;

use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::settings::{CertLoginFrom, SanType, TlsSettings};

/// The name, or RabbitMQ's reason for refusing the login.
pub fn user_name(cert_der: &[u8], s: &TlsSettings) -> Result<String, &'static str> {
    let (_, cert) = X509Certificate::from_der(cert_der).map_err(|_| "no name found")?;
    match s.ssl_cert_login_from {
        CertLoginFrom::CommonName => {
            let cns: Vec<&str> = cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok()).collect();
            if cns.is_empty() { Err("no name found") } else { Ok(cns.join(",")) }
        }
        CertLoginFrom::SubjectAlternativeName => {
            let san = cert.subject_alternative_name().ok().flatten().ok_or("no name found")?;
            let of_type = san.value.general_names.iter().filter_map(|n| match (s.ssl_cert_login_san_type, n) {
                (SanType::Dns, GeneralName::DNSName(d)) => Some(d.to_string()),
                (SanType::Email, GeneralName::RFC822Name(e)) => Some(e.to_string()),
                (SanType::Uri, GeneralName::URI(u)) => Some(u.to_string()),
                (SanType::Ip, GeneralName::IPAddress(ip)) => ip_text(ip),
                _ => None,
            });
            of_type.into_iter().nth(s.ssl_cert_login_san_index).ok_or("no name found")
        }
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType as RcSan};

    fn cert(cns: &[&str], sans: Vec<RcSan>) -> Vec<u8> {
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        for cn in cns {
            dn.push(DnType::CommonName, *cn);
        }
        dn.push(DnType::OrganizationName, "Warren tests");
        p.distinguished_name = dn;
        p.subject_alt_names = sans;
        p.self_signed(&KeyPair::generate().unwrap()).unwrap().der().to_vec()
    }

    fn from(from: CertLoginFrom, ty: SanType, index: usize) -> TlsSettings {
        TlsSettings {
            ssl_cert_login_from: from,
            ssl_cert_login_san_type: ty,
            ssl_cert_login_san_index: index,
            ..TlsSettings::default()
        }
    }

    // (rcgen keeps one attribute per type, so a subject with several CNs is not made here.)
    #[test]
    fn common_name_by_default() {
        let s = TlsSettings::default();
        assert_eq!(user_name(&cert(&["alice"], vec![]), &s), Ok("alice".into()));
        assert_eq!(user_name(&cert(&[], vec![]), &s), Err("no name found"));
        assert_eq!(user_name(b"not a certificate", &s), Err("no name found"));
    }

    #[test]
    fn subject_alternative_name_of_the_type_at_the_index() {
        let sans = vec![
            RcSan::DnsName("one.example".try_into().unwrap()),
            RcSan::Rfc822Name("bob@example.com".try_into().unwrap()),
            RcSan::DnsName("two.example".try_into().unwrap()),
            RcSan::IpAddress("10.0.0.7".parse().unwrap()),
        ];
        let c = cert(&["ignored"], sans);
        let san = CertLoginFrom::SubjectAlternativeName;
        assert_eq!(user_name(&c, &from(san, SanType::Dns, 0)), Ok("one.example".into()));
        assert_eq!(user_name(&c, &from(san, SanType::Dns, 1)), Ok("two.example".into()));
        assert_eq!(user_name(&c, &from(san, SanType::Dns, 2)), Err("no name found"));
        assert_eq!(user_name(&c, &from(san, SanType::Email, 0)), Ok("bob@example.com".into()));
        assert_eq!(user_name(&c, &from(san, SanType::Ip, 0)), Ok("10.0.0.7".into()));
        assert_eq!(user_name(&c, &from(san, SanType::Uri, 0)), Err("no name found"));
    }
}
