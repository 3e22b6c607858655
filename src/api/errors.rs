//! The API's errors and how each becomes an HTTP answer.
//!
//! Every failure leaves as `{"error": {"code": …, "message": …}}` with a
//! stable machine-readable code, plus `field` when one input is at fault, so
//! that a CRM integration can react without parsing sentences. Store
//! failures are logged here and reported without their internals.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::consent::Refusal;
use crate::store::ConsentStoreError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid API key is required: send `Authorization: Bearer sg_<id>_<secret>`")]
    Unauthorized,
    /// The consent rules refuse; enterprise-level refusals are 403, the
    /// others (subscription, do-not-call) 409.
    #[error("{0}")]
    Refused(Refusal),
    #[error("no {what} with id {id:?}")]
    NotFound { what: &'static str, id: String },
    #[error("no such endpoint")]
    NoRoute,
    #[error("{0}")]
    BadRequest(String),
    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("the request body is larger than the limit")]
    TooLarge,
    #[error("{0}")]
    Conflict(String),
    #[error("the store is unavailable")]
    Unavailable,
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn invalid(field: &str, reason: impl Into<String>) -> ApiError {
        ApiError::Invalid {
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    pub fn not_found(what: &'static str, id: &str) -> ApiError {
        ApiError::NotFound {
            what,
            id: id.to_string(),
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Refused(Refusal::EnterpriseSuspended | Refusal::EnterpriseUntrusted) => {
                StatusCode::FORBIDDEN
            }
            ApiError::Refused(_) | ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NotFound { .. } | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Refused(r) => r.code(),
            ApiError::NotFound { .. } | ApiError::NoRoute => "not_found",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Invalid { .. } => "invalid_field",
            ApiError::TooLarge => "body_too_large",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal => "internal",
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable identifier: a refusal code (`subscription_paused`,
    /// `do_not_call_enterprise`, …) or `unauthorized`, `not_found`,
    /// `bad_request`, `invalid_field`, `body_too_large`, `conflict`.
    pub code: String,
    pub message: String,
    /// The input at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let field = match &self {
            ApiError::Invalid { field, .. } => Some(field.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_string(),
                message: self.to_string(),
                field,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(self, ApiError::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ConsentStoreError> for ApiError {
    fn from(e: ConsentStoreError) -> ApiError {
        match e {
            ConsentStoreError::NotFound { what, id } => ApiError::NotFound { what, id },
            ConsentStoreError::Refused(r) => ApiError::Refused(r),
            ConsentStoreError::Number(e) => ApiError::invalid("number", e.to_string()),
            ConsentStoreError::Identifier(e) => ApiError::invalid("number", e.to_string()),
            ConsentStoreError::Invalid { field, reason } => ApiError::invalid(field, reason),
            e @ (ConsentStoreError::Conflict { .. }
            | ConsentStoreError::InUse { .. }
            | ConsentStoreError::NotClaimed { .. }
            | ConsentStoreError::Transition(_)
            | ConsentStoreError::IdentifierTaken { .. }) => ApiError::Conflict(e.to_string()),
            e @ (ConsentStoreError::Store(_) | ConsentStoreError::KeyHash(_)) => {
                tracing::error!(error = %e, "API request failed in the store");
                ApiError::Internal
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let text = rejection.body_text();
        match rejection {
            JsonRejection::JsonDataError(_) => {
                // serde names the offending field in backticks ("unknown
                // field `colour`") or as the path before the colon.
                let field = backticked(&text)
                    .or_else(|| data_error_path(&text))
                    .unwrap_or_else(|| "body".to_string());
                ApiError::Invalid {
                    field,
                    reason: text,
                }
            }
            // The body limit surfaces as a failure to buffer the body.
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
            _ => ApiError::BadRequest(text),
        }
    }
}

fn backticked(text: &str) -> Option<String> {
    let start = text.find("field `")? + "field `".len();
    let len = text[start..].find('`')?;
    Some(text[start..start + len].to_string())
}

/// "Failed to deserialize the JSON body into the target type: options[0].start: …"
fn data_error_path(text: &str) -> Option<String> {
    let rest = text.split_once("target type: ")?.1;
    let (path, _) = rest.split_once(": ")?;
    (!path.contains(' ')).then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_found_in_serde_messages() {
        assert_eq!(
            backticked("unknown field `colour`, expected one of `a`").as_deref(),
            Some("colour")
        );
        assert_eq!(
            data_error_path(
                "Failed to deserialize the JSON body into the target type: locale: invalid type"
            )
            .as_deref(),
            Some("locale")
        );
    }
}
