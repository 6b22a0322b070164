//! TLS transport sockets: `UpstreamTlsContext` for clusters, `DownstreamTlsContext` for filter
//! chains, and their shared `CommonTlsContext`. Certificates stay as `DataSource`s; the data
//! plane loads them into rustls.

use envoy_types::pb::envoy::config::core::v3::{self as core, transport_socket};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    self as pb, common_tls_context::ValidationContextType, downstream_tls_context,
    subject_alt_name_matcher::SanType as PbSanType, tls_parameters::TlsProtocol,
};
use prost::Name;

use std::sync::Arc;

use outrider_tls::rustls::pki_types::CertificateDer;
use outrider_tls::rustls::sign::CertifiedKey;
use outrider_tls::{
    ClientAuth, ClientSettings, ClientTls, PeerSans, SanCheck, ServerConfigs, ServerSettings,
    ServerValidation, TlsError,
};

use crate::data_source::DataSource;
use crate::error::{Result, ValidationError, Within, convert_each, reject_if_set, required};
use crate::matcher::{StringMatcher, StringPattern};
use crate::proto_value::{any_type_name, bool_or, decode_any, enum_value};

const RAW_BUFFER: &str = "envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamTls {
    pub sni: Option<String>,
    pub common: CommonTls,
    /// What the handshakes use, built from the fields above.
    pub client: Built<ClientTls>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DownstreamTls {
    pub require_client_certificate: bool,
    /// A client that sends no SNI is refused.
    pub require_sni: bool,
    pub common: CommonTls,
    /// A client whose SNI names no certificate gets the best for its key types among all of
    /// them, not the first.
    pub full_scan_certs_on_sni_mismatch: bool,
    /// Cipher suites by the client's preference, not the server's.
    pub prefer_client_ciphers: bool,
    /// What the handshakes use, built from the fields above.
    pub server: Built<ServerConfigs>,
}

/// Something built from the configuration beside it (rustls's configurations, a loaded key):
/// equal whenever that configuration is, so it never makes two equal configurations differ.
#[derive(Clone)]
pub struct Built<T>(pub Arc<T>);

impl<T> PartialEq for Built<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> std::fmt::Debug for Built<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Built")
    }
}

impl<T> std::ops::Deref for Built<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CommonTls {
    pub certificates: Vec<CertificateKeyPair>,
    /// `None`: the peer certificate is not verified (Envoy without a validation context).
    pub validation: Option<CertificateValidation>,
    pub alpn_protocols: Vec<String>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
    /// `tls_params.cipher_suites` (BoringSSL names; empty: Envoy's defaults).
    pub cipher_suites: Vec<String>,
    /// `tls_params.ecdh_curves` (empty: X25519, P-256).
    pub ecdh_curves: Vec<String>,
}

#[derive(Clone, PartialEq)]
pub struct CertificateKeyPair {
    pub certificate_chain: DataSource,
    pub private_key: DataSource,
    /// The two, read and checked to belong together.
    pub loaded: Built<CertifiedKey>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CertificateValidation {
    pub trusted_ca: Option<DataSource>,
    /// `trusted_ca`'s certificates, read.
    pub ca_certificates: Vec<CertificateDer<'static>>,
    /// Trust the operating system's roots.
    pub system_root_certs: bool,
    /// The peer must present a SAN matching any of these (none: no SAN check).
    pub subject_alt_names: Vec<SanMatcher>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SanMatcher {
    pub san_type: SanType,
    pub matcher: StringMatcher,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanType {
    /// Legacy `match_subject_alt_names`: DNS, URI, email or IP SAN.
    Any,
    Email,
    Dns,
    Uri,
    IpAddress,
}

/// Which side of the connection a TLS context is for (their defaults differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Server,
}

/// A cluster's `transport_socket`: `None` for plaintext (`raw_buffer` or unset).
pub(crate) fn upstream_transport_socket(
    proto: &core::TransportSocket,
) -> Result<Option<UpstreamTls>> {
    let Some(any) = typed_config(proto)? else {
        return Ok(None);
    };
    match any_type_name(any) {
        RAW_BUFFER => Ok(None),
        name if name == pb::UpstreamTlsContext::full_name() => {
            let ctx: pb::UpstreamTlsContext = decode_any(any, "typed_config")?;
            upstream_tls(&ctx).within("typed_config").map(Some)
        }
        other => Err(ValidationError::new(
            "typed_config",
            format!("unsupported transport socket {other}"),
        )),
    }
}

/// A filter chain's `transport_socket`: `None` for plaintext.
pub(crate) fn downstream_transport_socket(
    proto: &core::TransportSocket,
) -> Result<Option<DownstreamTls>> {
    let Some(any) = typed_config(proto)? else {
        return Ok(None);
    };
    match any_type_name(any) {
        RAW_BUFFER => Ok(None),
        name if name == pb::DownstreamTlsContext::full_name() => {
            let ctx: pb::DownstreamTlsContext = decode_any(any, "typed_config")?;
            downstream_tls(&ctx).within("typed_config").map(Some)
        }
        other => Err(ValidationError::new(
            "typed_config",
            format!("unsupported transport socket {other}"),
        )),
    }
}

/// The socket's `typed_config`; `None` for a bare `raw_buffer` by name.
fn typed_config(
    proto: &core::TransportSocket,
) -> Result<Option<&envoy_types::pb::google::protobuf::Any>> {
    let core::TransportSocket { name, config_type } = proto;
    match config_type {
        Some(transport_socket::ConfigType::TypedConfig(any)) => Ok(Some(any)),
        None if name == "envoy.transport_sockets.raw_buffer" || name == "raw_buffer" => Ok(None),
        None => Err(ValidationError::required("typed_config")),
    }
}

fn upstream_tls(proto: &pb::UpstreamTlsContext) -> Result<UpstreamTls> {
    let pb::UpstreamTlsContext {
        common_tls_context,
        sni,
        auto_host_sni,
        auto_sni_san_validation,
        allow_renegotiation,
        // Size of the session-resumption cache: performance only.
        max_session_keys: _,
        // rustls always enforces RSA key usage.
        enforce_rsa_key_usage: _,
    } = proto;
    reject_if_set!(allow_renegotiation);
    for (set, field, what) in [
        (*auto_host_sni, "auto_host_sni", "the SNI is `sni` or none"),
        (
            *auto_sni_san_validation,
            "auto_sni_san_validation",
            "the server's certificate is checked by the SAN matchers only",
        ),
    ] {
        if set {
            return Err(ValidationError::not_enforced(field, what));
        }
    }
    let common = match common_tls_context {
        Some(c) => common_tls(c, Side::Client).within("common_tls_context")?,
        None => common_tls(&pb::CommonTlsContext::default(), Side::Client)?,
    };
    if sni.len() > 255 {
        return Err(ValidationError::new("sni", "must be at most 255 bytes"));
    }
    if common.certificates.len() > 1 {
        return Err(ValidationError::new(
            "common_tls_context.tls_certificates",
            "Multiple TLS certificates are not supported for client contexts",
        ));
    }
    refuse_system_roots(
        &common,
        "servers' certificates are verified against trusted_ca only",
    )?;
    let sni = Some(sni.clone()).filter(|s| !s.is_empty());
    let client = client_tls(&common, sni.clone())?;
    Ok(UpstreamTls {
        sni,
        common,
        client,
    })
}

/// The cipher suites and groups a context's `tls_params` leave.
fn crypto(common: &CommonTls) -> Result<Arc<outrider_tls::rustls::crypto::CryptoProvider>> {
    outrider_tls::provider_for(&common.cipher_suites, &common.ecdh_curves)
        .map_err(|e| tls_error(e, "common_tls_context"))
}

/// `alpn_protocols` as rustls takes them.
fn alpn_bytes(common: &CommonTls) -> Vec<Vec<u8>> {
    common
        .alpn_protocols
        .iter()
        .map(|p| p.as_bytes().to_vec())
        .collect()
}

/// The SAN matchers of a validation context, if it has any.
fn san_check(validation: &CertificateValidation) -> Option<Arc<dyn SanCheck>> {
    (!validation.subject_alt_names.is_empty())
        .then(|| Arc::new(SanMatchers(validation.subject_alt_names.clone())) as Arc<dyn SanCheck>)
}

/// The operating system's CA certificates are not loaded: `what` says what that leaves.
fn refuse_system_roots(common: &CommonTls, what: &str) -> Result<()> {
    if common
        .validation
        .as_ref()
        .is_some_and(|v| v.system_root_certs)
    {
        return Err(ValidationError::not_enforced(
            "common_tls_context.validation_context.system_root_certs",
            what,
        ));
    }
    Ok(())
}

/// The rustls side of a client context.
fn client_tls(common: &CommonTls, sni: Option<String>) -> Result<Built<ClientTls>> {
    let validation = common
        .validation
        .as_ref()
        .filter(|v| !v.ca_certificates.is_empty())
        .map(|v| ServerValidation {
            roots: v.ca_certificates.clone(),
            san_check: san_check(v),
        });
    let settings = ClientSettings {
        crypto: crypto(common)?,
        certificate: common.certificates.first().map(|c| c.loaded.0.clone()),
        min_version: tls_version(common.min_version),
        max_version: tls_version(common.max_version),
        alpn_protocols: alpn_bytes(common),
        validation,
        sni,
    };
    ClientTls::build(&settings)
        .map(|client| Built(Arc::new(client)))
        .map_err(|e| match e.field {
            Some("sni") => ValidationError::new("sni", e.message),
            _ => tls_error(e, "common_tls_context"),
        })
}

fn downstream_tls(proto: &pb::DownstreamTlsContext) -> Result<DownstreamTls> {
    let pb::DownstreamTlsContext {
        common_tls_context,
        require_client_certificate,
        require_sni,
        // Session resumption settings only affect handshake cost.
        disable_stateful_session_resumption: _,
        session_timeout: _,
        ocsp_staple_policy,
        full_scan_certs_on_sni_mismatch,
        prefer_client_ciphers,
        session_ticket_keys_type,
    } = proto;
    if enum_value::<downstream_tls_context::OcspStaplePolicy>(
        *ocsp_staple_policy,
        "ocsp_staple_policy",
    )? != downstream_tls_context::OcspStaplePolicy::LenientStapling
    {
        return Err(ValidationError::unsupported("ocsp_staple_policy"));
    }
    match session_ticket_keys_type {
        None
        | Some(downstream_tls_context::SessionTicketKeysType::DisableStatelessSessionResumption(
            _,
        )) => {}
        Some(_) => return Err(ValidationError::unsupported("session_ticket_keys")),
    }
    let common = common_tls(
        required(common_tls_context, "common_tls_context")?,
        Side::Server,
    )
    .within("common_tls_context")?;
    if common.certificates.is_empty() {
        return Err(ValidationError::new(
            "common_tls_context.tls_certificates",
            "a server TLS context needs a certificate",
        ));
    }
    refuse_system_roots(
        &common,
        "client certificates are verified against trusted_ca only",
    )?;
    let require_client_certificate = bool_or(require_client_certificate, false);
    if require_client_certificate
        && !common
            .validation
            .as_ref()
            .is_some_and(|v| v.trusted_ca.is_some() || v.system_root_certs)
    {
        return Err(ValidationError::new(
            "require_client_certificate",
            "needs common_tls_context.validation_context.trusted_ca",
        ));
    }
    let full_scan_certs_on_sni_mismatch = bool_or(full_scan_certs_on_sni_mismatch, false);
    let prefer_client_ciphers = *prefer_client_ciphers;
    let server = server_configs(
        &common,
        require_client_certificate,
        full_scan_certs_on_sni_mismatch,
        prefer_client_ciphers,
    )?;
    Ok(DownstreamTls {
        require_client_certificate,
        require_sni: bool_or(require_sni, false),
        common,
        full_scan_certs_on_sni_mismatch,
        prefer_client_ciphers,
        server,
    })
}

/// The rustls side of a server context. A CA makes the server ask for client certificates;
/// `require_client_certificate` or SAN matchers make one necessary (as Envoy's validator).
fn server_configs(
    common: &CommonTls,
    require_client_certificate: bool,
    full_scan_certs_on_sni_mismatch: bool,
    prefer_client_ciphers: bool,
) -> Result<Built<ServerConfigs>> {
    let with_ca = common
        .validation
        .as_ref()
        .filter(|v| !v.ca_certificates.is_empty());
    let client_auth = with_ca.map(|v| ClientAuth {
        roots: v.ca_certificates.clone(),
        required: require_client_certificate || !v.subject_alt_names.is_empty(),
        san_check: san_check(v),
    });
    let settings = ServerSettings {
        crypto: crypto(common)?,
        certificates: common
            .certificates
            .iter()
            .map(|c| c.loaded.0.clone())
            .collect(),
        min_version: tls_version(common.min_version),
        max_version: tls_version(common.max_version),
        alpn_protocols: alpn_bytes(common),
        client_auth,
        full_scan_certs_on_sni_mismatch,
        prefer_client_ciphers,
    };
    ServerConfigs::build(&settings)
        .map(|configs| Built(Arc::new(configs)))
        .map_err(|e| tls_error(e, "common_tls_context"))
}

fn tls_version(version: TlsVersion) -> outrider_tls::TlsVersion {
    match version {
        TlsVersion::Tls12 => outrider_tls::TlsVersion::Tls12,
        TlsVersion::Tls13 => outrider_tls::TlsVersion::Tls13,
    }
}

/// A TLS error as a validation error at `field` (within `within`, when the error names one).
fn tls_error(error: TlsError, within: &str) -> ValidationError {
    let field = match error.field {
        Some(inner) => format!("{within}.{inner}"),
        None => within.to_string(),
    };
    ValidationError::new(field, error.message)
}

/// Envoy's SAN matchers: a certificate passes when any matcher accepts any of its names of
/// the matcher's type.
#[derive(Debug)]
struct SanMatchers(Vec<SanMatcher>);

impl SanCheck for SanMatchers {
    fn accepts(&self, sans: &PeerSans) -> bool {
        self.0.iter().any(|m| {
            let dns = |names: &[String]| names.iter().any(|n| dns_matches(&m.matcher, n));
            let any = |names: &[String]| names.iter().any(|n| m.matcher.matches(n));
            match m.san_type {
                SanType::Dns => dns(&sans.dns),
                SanType::Uri => any(&sans.uri),
                SanType::Email => any(&sans.email),
                SanType::IpAddress => any(&sans.ip),
                SanType::Any => {
                    dns(&sans.dns) || any(&sans.uri) || any(&sans.email) || any(&sans.ip)
                }
            }
        })
    }
}

/// An exact matcher accepts a wildcard DNS SAN covering it (`*.example.com` for
/// `a.example.com`, one label deep), as Envoy's DNS SAN matching does.
fn dns_matches(matcher: &StringMatcher, san: &str) -> bool {
    if let (StringPattern::Exact(exact), Some(parent)) = (&matcher.pattern, san.strip_prefix("*."))
    {
        let covered = exact
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(parent));
        if covered {
            return true;
        }
    }
    matcher.matches(san)
}

fn common_tls(proto: &pb::CommonTlsContext, side: Side) -> Result<CommonTls> {
    let pb::CommonTlsContext {
        tls_params,
        tls_certificates,
        tls_certificate_sds_secret_configs,
        tls_certificate_provider_instance,
        custom_tls_certificate_selector,
        tls_certificate_certificate_provider,
        tls_certificate_certificate_provider_instance,
        alpn_protocols,
        custom_handshaker,
        key_log,
        validation_context_type,
    } = proto;
    reject_if_set!(
        tls_certificate_sds_secret_configs,
        tls_certificate_provider_instance,
        custom_tls_certificate_selector,
        tls_certificate_certificate_provider,
        tls_certificate_certificate_provider_instance,
        custom_handshaker,
        key_log,
    );
    // Envoy's defaults: TLS 1.2 minimum; maximum 1.2 for clients and 1.3 for servers.
    let default_max = match side {
        Side::Client => TlsVersion::Tls12,
        Side::Server => TlsVersion::Tls13,
    };
    let (min_version, max_version, cipher_suites, ecdh_curves) = match tls_params {
        None => (TlsVersion::Tls12, default_max, Vec::new(), Vec::new()),
        Some(p) => tls_parameters(p, default_max).within("tls_params")?,
    };
    let validation = match validation_context_type {
        None => None,
        Some(ValidationContextType::ValidationContext(v)) => {
            Some(validation_context(v).within("validation_context")?)
        }
        Some(ValidationContextType::ValidationContextSdsSecretConfig(_)) => {
            return Err(ValidationError::unsupported(
                "validation_context_sds_secret_config",
            ));
        }
        Some(ValidationContextType::CombinedValidationContext(_)) => {
            return Err(ValidationError::unsupported("combined_validation_context"));
        }
        Some(ValidationContextType::ValidationContextCertificateProvider(_)) => {
            return Err(ValidationError::unsupported(
                "validation_context_certificate_provider",
            ));
        }
        Some(ValidationContextType::ValidationContextCertificateProviderInstance(_)) => {
            return Err(ValidationError::unsupported(
                "validation_context_certificate_provider_instance",
            ));
        }
    };
    Ok(CommonTls {
        certificates: convert_each(tls_certificates, "tls_certificates", certificate)?,
        validation,
        alpn_protocols: alpn_protocols.clone(),
        min_version,
        max_version,
        cipher_suites,
        ecdh_curves,
    })
}

type TlsParameters = (TlsVersion, TlsVersion, Vec<String>, Vec<String>);

/// Versions, cipher suites and curves (checked against what rustls offers when the context
/// is built).
fn tls_parameters(proto: &pb::TlsParameters, default_max: TlsVersion) -> Result<TlsParameters> {
    let pb::TlsParameters {
        tls_minimum_protocol_version,
        tls_maximum_protocol_version,
        cipher_suites,
        ecdh_curves,
        signature_algorithms,
        compliance_policies,
    } = proto;
    reject_if_set!(signature_algorithms, compliance_policies);
    let version = |value: i32, field: &str, default: TlsVersion| -> Result<TlsVersion> {
        match enum_value::<TlsProtocol>(value, field)? {
            TlsProtocol::TlsAuto => Ok(default),
            TlsProtocol::TlSv12 => Ok(TlsVersion::Tls12),
            TlsProtocol::TlSv13 => Ok(TlsVersion::Tls13),
            TlsProtocol::TlSv10 | TlsProtocol::TlSv11 => Err(ValidationError::new(
                field,
                "TLS 1.0 and 1.1 are not supported",
            )),
        }
    };
    let min = version(
        *tls_minimum_protocol_version,
        "tls_minimum_protocol_version",
        TlsVersion::Tls12,
    )?;
    let max = version(
        *tls_maximum_protocol_version,
        "tls_maximum_protocol_version",
        default_max,
    )?;
    if min > max {
        return Err(ValidationError::new(
            "tls_maximum_protocol_version",
            "must not be lower than tls_minimum_protocol_version",
        ));
    }
    Ok((min, max, cipher_suites.clone(), ecdh_curves.clone()))
}

fn certificate(proto: &pb::TlsCertificate) -> Result<CertificateKeyPair> {
    let pb::TlsCertificate {
        certificate_chain,
        private_key,
        pkcs12,
        watched_directory,
        private_key_provider,
        password,
        ocsp_staple,
        signed_certificate_timestamp,
        tls_params,
    } = proto;
    reject_if_set!(
        pkcs12,
        watched_directory,
        private_key_provider,
        password,
        ocsp_staple,
        signed_certificate_timestamp,
        tls_params,
    );
    let certificate_chain =
        DataSource::from_proto(required(certificate_chain, "certificate_chain")?)
            .within("certificate_chain")?;
    let private_key =
        DataSource::from_proto(required(private_key, "private_key")?).within("private_key")?;
    let chain_pem = read(&certificate_chain, "certificate_chain")?;
    let key_pem = read(&private_key, "private_key")?;
    let loaded = outrider_tls::certified_key(&chain_pem, &key_pem).map_err(|e| {
        let field = e.field.unwrap_or("certificate_chain");
        ValidationError::new(field, e.message)
    })?;
    Ok(CertificateKeyPair {
        certificate_chain,
        private_key,
        loaded: Built(loaded),
    })
}

impl std::fmt::Debug for CertificateKeyPair {
    /// The private key stays out of logs, as Envoy redacts it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key = match &self.private_key {
            DataSource::File(path) => format!("File({})", path.display()),
            DataSource::Inline(_) => "[redacted]".to_string(),
        };
        f.debug_struct("CertificateKeyPair")
            .field("certificate_chain", &self.certificate_chain)
            .field("private_key", &key)
            .finish_non_exhaustive()
    }
}

/// The bytes of `source`, read now (a file that went away since validation is an error).
fn read(source: &DataSource, field: &str) -> Result<Vec<u8>> {
    source
        .read()
        .map(std::borrow::Cow::into_owned)
        .map_err(|e| ValidationError::new(field, format!("unable to read: {e}")))
}

fn validation_context(proto: &pb::CertificateValidationContext) -> Result<CertificateValidation> {
    let pb::CertificateValidationContext {
        trusted_ca,
        ca_certificate_provider_instance,
        system_root_certs,
        watched_directory,
        verify_certificate_spki,
        verify_certificate_hash,
        match_typed_subject_alt_names,
        match_subject_alt_names,
        require_signed_certificate_timestamp,
        crl,
        allow_expired_certificate,
        trust_chain_verification,
        custom_validator_config,
        // Only refines CRL checking, which is rejected.
        only_verify_leaf_cert_crl: _,
        max_verify_depth,
        suppress_client_ca_list,
    } = proto;
    reject_if_set!(
        ca_certificate_provider_instance,
        watched_directory,
        verify_certificate_spki,
        verify_certificate_hash,
        require_signed_certificate_timestamp,
        crl,
        allow_expired_certificate,
        trust_chain_verification,
        custom_validator_config,
        max_verify_depth,
        suppress_client_ca_list,
    );
    let trusted_ca = trusted_ca
        .as_ref()
        .map(|d| DataSource::from_proto(d).within("trusted_ca"))
        .transpose()?;
    let ca_certificates = match &trusted_ca {
        Some(source) => outrider_tls::certificates(&read(source, "trusted_ca")?)
            .map_err(|e| ValidationError::new("trusted_ca", e.message))?,
        None => Vec::new(),
    };
    let mut subject_alt_names = convert_each(
        match_typed_subject_alt_names,
        "match_typed_subject_alt_names",
        |m| {
            let pb::SubjectAltNameMatcher {
                san_type,
                matcher,
                oid,
            } = m;
            let san_type = match enum_value::<PbSanType>(*san_type, "san_type")? {
                PbSanType::Email => SanType::Email,
                PbSanType::Dns => SanType::Dns,
                PbSanType::Uri => SanType::Uri,
                PbSanType::IpAddress => SanType::IpAddress,
                PbSanType::Unspecified => {
                    return Err(ValidationError::new("san_type", "must be specified"));
                }
                PbSanType::OtherName => return Err(ValidationError::unsupported("san_type")),
            };
            if !oid.is_empty() {
                return Err(ValidationError::unsupported("oid"));
            }
            Ok(SanMatcher {
                san_type,
                matcher: StringMatcher::from_proto(required(matcher, "matcher")?)
                    .within("matcher")?,
            })
        },
    )?;
    subject_alt_names.extend(convert_each(
        match_subject_alt_names,
        "match_subject_alt_names",
        |m| {
            Ok(SanMatcher {
                san_type: SanType::Any,
                matcher: StringMatcher::from_proto(m)?,
            })
        },
    )?);
    let system_root_certs = system_root_certs.is_some();
    if trusted_ca.is_none() && !system_root_certs && !subject_alt_names.is_empty() {
        // Envoy: "SAN-based verification of peer certificates without trusted CA is insecure
        // and not allowed".
        return Err(ValidationError::new(
            "trusted_ca",
            "SAN-based verification of peer certificates without trusted CA is insecure and not allowed",
        ));
    }
    Ok(CertificateValidation {
        trusted_ca,
        ca_certificates,
        system_root_certs,
        subject_alt_names,
    })
}
