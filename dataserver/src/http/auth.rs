//! Who is calling: a business server, proven by its API key (compared by digest).

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::HeaderMap;
use actix_web::{FromRequest, HttpRequest, web};
use sha2::{Digest, Sha256};
use shared::BusinessId;

use super::error::ApiError;
use crate::AppState;

use super::Result;

/// The business server a request comes from, proven by its API key.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub BusinessId);

pub fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

pub(crate) fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        return v.strip_prefix("Bearer ");
    }
    headers.get("auth").and_then(|v| v.to_str().ok())
}

/// The business whose key the request presents, among `keys` (digest → business).
pub(crate) fn known_caller(
    headers: &HeaderMap,
    keys: &std::collections::HashMap<[u8; 32], BusinessId>,
) -> Option<BusinessId> {
    presented_key(headers).and_then(|k| keys.get(&key_digest(k)).copied())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Caller>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Keys are compared by their SHA-256 in a hash map: the lookup's timing depends only on
        // the digest, which reveals nothing useful about the key.
        let found = req.app_data::<web::Data<AppState>>().and_then(|state| known_caller(req.headers(), &state.keys));
        ready(found.map(Caller).ok_or(ApiError::Unauthorized))
    }
}

impl Caller {
    /// The business id in the path must be the caller's own.
    pub(crate) fn owns(self, path_business: &str) -> Result<BusinessId> {
        match path_business.parse::<BusinessId>() {
            Ok(b) if b == self.0 => Ok(b),
            _ => Err(ApiError::WrongBusiness { key: self.0, path: path_business.chars().take(32).collect() }),
        }
    }
}
