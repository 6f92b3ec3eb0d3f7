//! The one JSON error shape of the API.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::{ErrorCode, PlatformError};

/// An error response: `{"error": {"code", "message"}}` with a matching status.
#[derive(Debug)]
pub struct ApiError(pub PlatformError);

impl From<PlatformError> for ApiError {
    fn from(err: PlatformError) -> Self {
        Self(err)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let message = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "expected a request body with Content-Type: application/json".to_owned()
            }
            JsonRejection::BytesRejection(_) => "request body too large or unreadable".to_owned(),
            other => format!("invalid JSON body: {}", other.body_text()),
        };
        Self(PlatformError::bad_request(message))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self(PlatformError::bad_request(format!(
            "invalid path parameter: {}",
            rejection.body_text()
        )))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self(PlatformError::bad_request(format!(
            "invalid query: {}",
            rejection.body_text()
        )))
    }
}

/// The HTTP status of an error code.
pub(crate) fn status(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::PaymentRequired => StatusCode::PAYMENT_REQUIRED,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::BadGateway => StatusCode::BAD_GATEWAY,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.0.code.as_str(), "message": self.0.message }
        });
        let mut response = (status(self.0.code), Json(body)).into_response();
        if self.0.code == ErrorCode::Unauthorized {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(seconds) = self.0.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}
