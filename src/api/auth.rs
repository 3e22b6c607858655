//! Who is calling: a bearer API key resolved to its enterprise.
//!
//! Every `/v1` handler takes a [`Caller`], so an endpoint cannot forget to
//! authenticate. Keys are checked against their argon2 hashes by the store;
//! a missing, malformed, unknown or revoked key is the same 401, so the
//! answer does not tell an attacker which keys exist. A valid key of a
//! suspended or untrusted enterprise is a 403 naming the reason: the
//! enterprise is known, it is just not allowed to act.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::errors::ApiError;
use super::ApiState;
use crate::consent::Enterprise;

/// The authenticated enterprise behind a request.
#[derive(Debug, Clone)]
pub struct Caller(pub Enterprise);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Caller, ApiError> {
        let key = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .ok_or(ApiError::Unauthorized)?;
        let enterprise = state
            .store
            .verify_api_key(key)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        enterprise.ensure_may_ask().map_err(ApiError::Refused)?;
        Ok(Caller(enterprise))
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is
/// case-insensitive (RFC 7235).
pub(super) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token("Bearer sg_a_b"), Some("sg_a_b"));
        assert_eq!(bearer_token("bearer  sg_a_b "), Some("sg_a_b"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
