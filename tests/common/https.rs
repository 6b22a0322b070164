//! An HTTPS client for the TLS tests: one request on a new TLS connection, over HTTP/2 when
//! ALPN agrees on it, else HTTP/1.1.

use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;

/// A client trusting `ca_pem`, offering `alpn`, with a client certificate if given.
pub fn client_config(
    ca_pem: &str,
    alpn: &[&str],
    client: Option<(&str, &str)>,
) -> Arc<ClientConfig> {
    let versions = rustls::DEFAULT_VERSIONS;
    client_config_on(outrider_tls::provider(), versions, ca_pem, alpn, client)
}

/// `client_config` with the client's own cipher suites (in its order) and versions.
pub fn client_config_on(
    provider: Arc<rustls::crypto::CryptoProvider>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    ca_pem: &str,
    alpn: &[&str],
    client: Option<(&str, &str)>,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA");
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("client chain");
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("client key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client certificate")
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

/// What an HTTPS request got back.
#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    pub version: http::Version,
    /// The `x-upstream-name` of the upstream server that answered.
    pub upstream: Option<String>,
    /// The `location` of a redirect.
    pub location: Option<String>,
    /// The DNS names of the certificate the server presented.
    pub server_dns: Vec<String>,
    /// The cipher suite the handshake agreed on (rustls's name).
    pub cipher: String,
    pub body: String,
}

/// `GET path` to `addr` over TLS as `server_name`; an error names the step that failed.
pub async fn get(
    addr: SocketAddr,
    server_name: &str,
    config: Arc<ClientConfig>,
    path: &str,
) -> Result<Fetched, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let session = tls.get_ref().1;
    let h2 = session.alpn_protocol() == Some(b"h2".as_slice());
    let server_dns = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| outrider_tls::PeerSans::of(leaf).ok())
        .map(|sans| sans.dns)
        .unwrap_or_default();
    let cipher = session
        .negotiated_cipher_suite()
        .and_then(|s| s.suite().as_str())
        .unwrap_or_default()
        .to_string();
    let io = TokioIo::new(tls);
    let request = http::Request::get(format!("https://{server_name}{path}"))
        .header("host", server_name)
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = if h2 {
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
        tokio::spawn(connection);
        sender.send_request(request).await
    } else {
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("h1 handshake: {e}"))?;
        tokio::spawn(connection);
        let mut request = request;
        *request.uri_mut() = path.parse().expect("path");
        sender.send_request(request).await
    }
    .map_err(|e| format!("request: {e}"))?;
    let status = response.status().as_u16();
    let version = response.version();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (upstream, location) = (header("x-upstream-name"), header("location"));
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok(Fetched {
        status,
        version,
        upstream,
        location,
        server_dns,
        cipher,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A client that accepts any server certificate (checking only the handshake's signatures):
/// for tests that look at which certificate the server chose, named or not.
pub fn accept_any_server(alpn: &[&str]) -> Arc<ClientConfig> {
    let provider = outrider_tls::provider();
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Arc::new(config)
}

#[derive(Debug)]
struct AcceptAnyServer(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
