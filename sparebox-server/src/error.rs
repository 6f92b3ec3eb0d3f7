//! Errors the platform reports to its callers.

use sparebox_store::StoreError;

/// A stable, machine-readable error code (the `code` field of API errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed or a value is out of range.
    BadRequest,
    /// Missing or wrong credentials.
    Unauthorized,
    /// The caller may not touch this resource.
    Forbidden,
    /// No such resource (or not visible to the caller).
    NotFound,
    /// The request conflicts with the current state (a taken name, a full host).
    Conflict,
    /// Too many requests; retry later.
    RateLimited,
    /// The operation needs a payment first (Stripe mode).
    PaymentRequired,
    /// The request body is larger than the route accepts.
    PayloadTooLarge,
    /// A service the platform depends on (Stripe) failed or refused.
    BadGateway,
    /// Something failed inside the server; details are in its log.
    Internal,
    /// The server is too busy to take the request now; retry after the time it gives.
    Unavailable,
}

impl ErrorCode {
    /// The snake_case name used in API responses.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::PaymentRequired => "payment_required",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::BadGateway => "bad_gateway",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

/// An error from a platform operation, with a message safe to show the caller.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PlatformError {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// A message for people; never contains secrets or internal details.
    pub message: String,
    /// For rate limits: seconds until a retry may succeed.
    pub retry_after: Option<u64>,
}

impl PlatformError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// The same error, telling the caller to retry after `seconds`.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// A 400-class error for bad input.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    /// A "not found" error for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, format!("{} not found", what.into()))
    }

    /// Missing or wrong credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }
}

impl From<StoreError> for PlatformError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NoSlot { .. }
            | StoreError::NotOffered { .. }
            | StoreError::HostAtCap { .. } => Self::new(ErrorCode::Conflict, err.to_string()),
            StoreError::NotFound { .. } => Self::new(ErrorCode::NotFound, err.to_string()),
            StoreError::Conflict(_) => Self::new(ErrorCode::Conflict, err.to_string()),
            other => {
                tracing::error!(error = %other, "store failure");
                Self::new(ErrorCode::Internal, "internal storage error")
            }
        }
    }
}
