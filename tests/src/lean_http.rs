//! A minimal HTTP/1.1 client on one kept-alive connection (hyper's connection API directly), for
//! load generation: it skips the pooling, URL parsing and redirect machinery of a full client so
//! that the load generator, which shares this machine's cores with the server, costs less.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use shared::ErrorBody;

#[derive(Debug)]
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    auth: HeaderValue,
}

/// A failed call: the server's stable error code, or `transport`.
pub type CallError = String;

impl Conn {
    pub async fn connect(addr: SocketAddr, bearer: &str) -> Result<Conn, CallError> {
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Conn {
            sender,
            host: HeaderValue::from_str(&addr.to_string()).map_err(|e| e.to_string())?,
            auth: HeaderValue::from_str(&format!("Bearer {bearer}")).map_err(|e| e.to_string())?,
        })
    }

    pub async fn call<T: DeserializeOwned>(
        &mut self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, CallError> {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        self.sender.ready().await.map_err(|_| "transport".to_string())?;
        let resp = self.sender.send_request(req).await.map_err(|_| "transport".to_string())?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(|_| "transport".to_string())?.to_bytes();
        if status.is_success() {
            serde_json::from_slice(&bytes).map_err(|e| format!("decode: {e}"))
        } else {
            Err(serde_json::from_slice::<ErrorBody>(&bytes).map_or_else(|_| status.to_string(), |b| b.error))
        }
    }
}
