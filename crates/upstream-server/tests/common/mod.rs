//! A real hyper client (HTTP/1.1 keep-alive or h2c prior knowledge) for the upstream server's
//! tests, and a condition-with-deadline helper.

#![allow(dead_code)]

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Http1,
    H2c,
}

pub const BOTH: [Proto; 2] = [Proto::Http1, Proto::H2c];

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub struct TestClient {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl TestClient {
    pub fn new(proto: Proto) -> Self {
        let mut builder = Client::builder(TokioExecutor::new());
        builder.http2_only(proto == Proto::H2c);
        Self {
            client: builder.build_http(),
        }
    }

    pub async fn get(&self, url: &str) -> Reply {
        self.send(
            Request::get(url)
                .body(Full::new(Bytes::new()))
                .expect("valid request"),
        )
        .await
    }

    pub async fn send(&self, request: Request<Full<Bytes>>) -> Reply {
        let response = self.client.request(request).await.expect("request failed");
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.expect("reading the body");
        let trailers = collected.trailers().cloned();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: collected.to_bytes(),
            trailers,
        }
    }
}

/// Polls `condition` until it holds or 5 s pass.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
