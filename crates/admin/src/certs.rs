//! `/certs` as Envoy prints it (`envoy.admin.v3.Certificates`): one entry per TLS context, a
//! listener filter chain's or a cluster's, with its first trusted CA (`ca_cert`) and the first
//! certificate of each of its chains (`cert_chain`): path (`<inline>` for inline data), serial
//! number, SANs (DNS, then URI, then IP), days until expiration (0 once expired), validity.

use std::time::SystemTime;

use envoy_types::pb::envoy::admin::v3::{
    Certificate, CertificateDetails, Certificates, SubjectAlternateName,
    subject_alternate_name::Name,
};
use envoy_types::pb::google::protobuf::Timestamp;
use outrider_model::{CommonTls, DataSource};
use outrider_tables::Snapshot;
use outrider_tls::CertificateFacts;

/// Every TLS context of the snapshot: listeners' chains by listener name, then clusters by
/// name.
pub(crate) fn certificates(snapshot: &Snapshot, now: SystemTime) -> Certificates {
    let mut listeners: Vec<_> = snapshot.listeners().collect();
    listeners.sort_by(|a, b| a.0.cmp(b.0));
    let mut clusters: Vec<_> = snapshot.clusters().collect();
    clusters.sort_by(|a, b| a.0.cmp(b.0));
    let server_contexts = listeners.into_iter().flat_map(|(_, listener)| {
        listener
            .filter_chains
            .iter()
            .chain(listener.default_filter_chain.as_ref())
            .filter_map(|chain| chain.tls.as_ref().map(|tls| &tls.common))
            .collect::<Vec<_>>()
    });
    let client_contexts = clusters
        .into_iter()
        .filter_map(|(_, entry)| entry.config.tls.as_ref().map(|tls| &tls.common));
    let certificates = server_contexts
        .chain(client_contexts)
        .map(|common| context(common, now))
        .collect();
    Certificates { certificates }
}

fn context(common: &CommonTls, now: SystemTime) -> Certificate {
    let ca_cert = common
        .validation
        .as_ref()
        .and_then(|v| Some((v.trusted_ca.as_ref()?, v.ca_certificates.first()?)))
        .and_then(|(source, der)| details(source, der, now))
        .into_iter()
        .collect();
    let cert_chain = common
        .certificates
        .iter()
        .filter_map(|pair| {
            let leaf = pair.loaded.cert.first()?;
            details(&pair.certificate_chain, leaf, now)
        })
        .collect();
    Certificate {
        ca_cert,
        cert_chain,
    }
}

fn details(source: &DataSource, der: &[u8], now: SystemTime) -> Option<CertificateDetails> {
    let facts = CertificateFacts::of(der)?;
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let days = (facts.not_after - now).max(0) / 86_400;
    let names = |kind: fn(String) -> Name, values: &[String]| {
        values
            .iter()
            .map(move |v| SubjectAlternateName {
                name: Some(kind(v.clone())),
            })
            .collect::<Vec<_>>()
    };
    let mut subject_alt_names = names(Name::Dns, &facts.sans.dns);
    subject_alt_names.extend(names(Name::Uri, &facts.sans.uri));
    subject_alt_names.extend(names(Name::IpAddress, &facts.sans.ip));
    let path = match source {
        DataSource::File(path) => path.display().to_string(),
        DataSource::Inline(_) => "<inline>".to_string(),
    };
    Some(CertificateDetails {
        path,
        serial_number: facts.serial_number,
        subject_alt_names,
        days_until_expiration: u64::try_from(days).unwrap_or(0),
        valid_from: Some(Timestamp {
            seconds: facts.not_before,
            nanos: 0,
        }),
        expiration_time: Some(Timestamp {
            seconds: facts.not_after,
            nanos: 0,
        }),
        ocsp_details: None,
    })
}
