//! The client's admin interface as the suite reads it: HTTP/1.1 GETs (`/config_dump`, `/ready`)
//! and, where the client serves it on the admin port, CSDS over gRPC.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::admin::v3::ClientResourceStatus;
use envoy_types::pb::envoy::service::status::v3::ClientStatusRequest;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::client::ClientError;
use super::config_dump::ConfigDump;

/// How long one admin request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// An admin response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The body as text (lossy UTF-8).
    pub body: String,
}

/// One resource as the client reports it over CSDS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CsdsResource {
    /// The resource's type URL.
    pub type_url: String,
    /// Its name.
    pub name: String,
    /// The accepted version.
    pub version_info: String,
    /// `ClientResourceStatus` by name (`ACKED`, `DOES_NOT_EXIST`, …).
    pub client_status: String,
}

/// The admin interface of one client.
#[derive(Clone, Debug)]
pub struct AdminClient {
    address: SocketAddr,
}

impl AdminClient {
    /// A client of the admin interface at `address`.
    pub fn new(address: SocketAddr) -> Self {
        AdminClient { address }
    }

    /// The admin address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `GET path` (with its query) on a fresh connection.
    pub async fn get(&self, path: &str) -> Result<AdminResponse, ClientError> {
        let error = |reason: String| ClientError::Admin {
            path: path.to_string(),
            reason,
        };
        tokio::time::timeout(REQUEST_TIMEOUT, self.get_inner(path))
            .await
            .map_err(|_| error(format!("no answer within {REQUEST_TIMEOUT:?}")))?
            .map_err(error)
    }

    async fn get_inner(&self, path: &str) -> Result<AdminResponse, String> {
        let stream = tokio::net::TcpStream::connect(self.address)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.address))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake: {e}"))?;
        // The connection task ends when the response is read and the request sender dropped.
        tokio::spawn(connection);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, self.address.to_string())
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the body: {e}"))?
            .to_bytes();
        Ok(AdminResponse {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// `GET /config_dump` (with `?include_eds` when asked), parsed.
    pub async fn config_dump(&self, include_eds: bool) -> Result<ConfigDump, ClientError> {
        let path = if include_eds {
            "/config_dump?include_eds"
        } else {
            "/config_dump"
        };
        let response = self.get(path).await?;
        let error = |reason: String| ClientError::Admin {
            path: path.to_string(),
            reason,
        };
        if response.status != 200 {
            return Err(error(format!(
                "HTTP {}: {}",
                response.status,
                first_chars(&response.body, 300)
            )));
        }
        ConfigDump::parse(&response.body).map_err(|e| error(e.to_string()))
    }

    /// `GET /ready`.
    pub async fn ready(&self) -> Result<AdminResponse, ClientError> {
        self.get("/ready").await
    }

    /// Every dynamic resource the client reports over CSDS on its admin port. An error means
    /// the client does not serve CSDS there (Envoy does not).
    pub async fn client_status(&self) -> Result<Vec<CsdsResource>, ClientError> {
        let error = |reason: String| ClientError::Admin {
            path: "CSDS FetchClientStatus".to_string(),
            reason,
        };
        let call = async {
            let mut client =
                ClientStatusDiscoveryServiceClient::connect(format!("http://{}", self.address))
                    .await
                    .map_err(|e| format!("cannot connect: {e}"))?;
            client
                .fetch_client_status(ClientStatusRequest::default())
                .await
                .map_err(|status| format!("{}: {}", status.code(), status.message()))
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, call)
            .await
            .map_err(|_| error(format!("no answer within {REQUEST_TIMEOUT:?}")))?
            .map_err(error)?
            .into_inner();
        Ok(response
            .config
            .iter()
            .flat_map(|config| config.generic_xds_configs.iter())
            .map(|generic| CsdsResource {
                type_url: generic.type_url.clone(),
                name: generic.name.clone(),
                version_info: generic.version_info.clone(),
                client_status: ClientResourceStatus::try_from(generic.client_status).map_or_else(
                    |_| generic.client_status.to_string(),
                    |s| s.as_str_name().to_string(),
                ),
            })
            .collect())
    }
}

/// At most `n` characters of `text`, for error messages.
pub(crate) fn first_chars(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot HTTP/1.1 server that answers every connection with `response`.
    async fn serve(response: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        address
    }

    #[tokio::test]
    async fn reads_status_and_body_chunked_or_not() {
        let address =
            serve("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 16\r\n\r\nPRE_INITIALIZING")
                .await;
        let response = AdminClient::new(address).ready().await.expect("answer");
        assert_eq!(response.status, 503);
        assert_eq!(response.body, "PRE_INITIALIZING");

        let address = serve(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
             d\r\n{\"configs\":[]\r\n1\r\n}\r\n0\r\n\r\n",
        )
        .await;
        let dump = AdminClient::new(address)
            .config_dump(true)
            .await
            .expect("dump");
        assert!(dump.dynamic_clusters().is_empty());
    }

    #[tokio::test]
    async fn a_failed_dump_says_why() {
        let address = serve("HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\n\r\nnope").await;
        let err = AdminClient::new(address)
            .config_dump(false)
            .await
            .expect_err("404");
        assert!(err.to_string().contains("HTTP 404: nope"), "{err}");
        assert_eq!(first_chars("abcdef", 3), "abc…");
        assert_eq!(first_chars("ab", 3), "ab");
    }
}
