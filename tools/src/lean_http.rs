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

#[derive(Debug)]
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    auth: HeaderValue,
}

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The request got no answer (connection refused, reset or closed).
    #[error("no answer: {0}")]
    Transport(String),
    /// An answer that is not a success; its body as sent.
    #[error("HTTP {status}: {body}")]
    Refused { status: u16, body: String },
    /// A success whose body is not the expected type.
    #[error("undecodable answer: {0}")]
    Decode(String),
}

impl From<CallError> for String {
    fn from(e: CallError) -> String {
        e.to_string()
    }
}

impl Conn {
    pub async fn connect(addr: SocketAddr, bearer: &str) -> Result<Conn, CallError> {
        let transport = |e: &dyn std::fmt::Display| CallError::Transport(e.to_string());
        let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| transport(&e))?;
        stream.set_nodelay(true).map_err(|e| transport(&e))?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| transport(&e))?;
        tokio::spawn(conn);
        Ok(Conn {
            sender,
            host: HeaderValue::from_str(&addr.to_string()).map_err(|e| transport(&e))?,
            auth: HeaderValue::from_str(&format!("Bearer {bearer}")).map_err(|e| transport(&e))?,
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
            .map_err(|e| CallError::Decode(e.to_string()))?;
        let transport = |e: hyper::Error| CallError::Transport(e.to_string());
        self.sender.ready().await.map_err(transport)?;
        let resp = self.sender.send_request(req).await.map_err(transport)?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(transport)?.to_bytes();
        if status.is_success() {
            serde_json::from_slice(&bytes).map_err(|e| CallError::Decode(e.to_string()))
        } else {
            Err(CallError::Refused { status: status.as_u16(), body: String::from_utf8_lossy(&bytes).into_owned() })
        }
    }
}
