//! The server's errors, in one place: every refusal and failure of an operation is an
//! [`ApiError`], whose [`status`](ApiError::status) is its HTTP status on every face and whose
//! [`code`](ApiError::code) is the `code` of the WebSocket's `error` frame (the table of the
//! README's *Error codes*). Each HTTP face renders it in its own envelope (see
//! [`crate::faces::Face`]). A storage failure's detail is logged here and never reaches a
//! client.

use actix_web::http::StatusCode;
use parlor_actors::SendError;

/// A refusal or failure of a request, independent of the face that renders it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Malformed input: a missing field, a wrong type, a value out of range.
    #[error("{0}")]
    Invalid(String),
    /// No token, or a token that is wrong, expired or revoked; or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// The thing named does not exist (for this tenant).
    #[error("{0}")]
    NotFound(String),
    /// It exists already (a taken username).
    #[error("{0}")]
    Conflict(String),
    /// The request or the content is over a size limit.
    #[error("{0}")]
    TooLarge(String),
    /// Over a rate limit.
    #[error("{0}")]
    TooMany(String),
    /// Over a rate limit that frees up after a known time: answered with `Retry-After`.
    #[error("{msg}")]
    Throttled { msg: String, retry_secs: u64 },
    /// The write queue is full: nothing was written; retry (a send with the same `cid`).
    #[error("{0}")]
    Overloaded(String),
    /// The actor in charge was stopping or restarting, or the server is shutting down; retry.
    #[error("{0}")]
    Unavailable(String),
    /// Storage failed: nothing was committed. The text is generic; the detail is in the log.
    #[error("{0}")]
    Storage(String),
    /// A failure of the server; the text says what, never a secret.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// The HTTP status of this error, the same on every face.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooMany(_) | ApiError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded(_) | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Storage(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The snake_case code: the WebSocket `error` frame's `code`, the same for the same
    /// condition whichever operation met it.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Invalid(_) => "invalid",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooLarge(_) => "too_large",
            ApiError::TooMany(_) | ApiError::Throttled { .. } => "rate_limited",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Storage(_) => "storage",
            ApiError::Internal(_) => "internal",
        }
    }

    /// Seconds after which a refused request may be made again, when that is known.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Throttled { retry_secs, .. } => Some(*retry_secs),
            _ => None,
        }
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        ApiError::Invalid(msg.into())
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        ApiError::NotFound(msg.into())
    }

    /// The server's own error envelope, `{"msg":"fail","data":"reason"}` with [`status`](Self::status):
    /// the uni-app face's, which the routes outside the faces answer in too (`/ws`, `/healthz`,
    /// `/metrics`, the web client, unknown paths).
    pub fn to_response(&self) -> actix_web::HttpResponse {
        self.with_retry_after(
            actix_web::HttpResponse::build(self.status())
                .json(serde_json::json!({"msg": "fail", "data": self.to_string()})),
        )
    }

    /// `resp` with a `Retry-After` header when this error knows one.
    pub fn with_retry_after(&self, mut resp: actix_web::HttpResponse) -> actix_web::HttpResponse {
        if let Some(secs) = self.retry_after() {
            resp.headers_mut()
                .insert(actix_web::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        let text = e.to_string();
        match e {
            SendError::Invalid(_) => ApiError::Invalid(text),
            SendError::TooLarge { .. } => ApiError::TooLarge(text),
            SendError::RateLimited { .. } => ApiError::TooMany(text),
            SendError::Forbidden(_) => ApiError::Forbidden(text),
            SendError::NotFound(_) => ApiError::NotFound(text),
            SendError::Conflict(_) => ApiError::Conflict(text),
            SendError::Full { .. } => ApiError::Invalid(text),
            SendError::Overloaded => ApiError::Overloaded(text),
            SendError::Storage(detail) => {
                tracing::error!(error = %detail, "storage failure");
                ApiError::Storage("storage failure: nothing was written".into())
            }
        }
    }
}

impl From<parlor_storage::Error> for ApiError {
    fn from(e: parlor_storage::Error) -> Self {
        match e {
            parlor_storage::Error::Conflict(m) => ApiError::Conflict(m),
            parlor_storage::Error::NotFound(m) => ApiError::NotFound(m),
            parlor_storage::Error::Unavailable(m) => ApiError::Overloaded(m.into()),
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::Storage("storage failure: nothing was written".into())
            }
        }
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(_: actix_web::error::BlockingError) -> Self {
        ApiError::Unavailable("the server is busy or shutting down; retry".into())
    }
}

impl From<actix::MailboxError> for ApiError {
    fn from(_: actix::MailboxError) -> Self {
        ApiError::Unavailable("server is busy".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table of the README's *Error codes*: each kind its own code and one status.
    #[test]
    fn each_kind_has_its_code_and_status() {
        let table = [
            (ApiError::Invalid(String::new()), "invalid", 400),
            (ApiError::Unauthorized(String::new()), "unauthorized", 401),
            (ApiError::Forbidden(String::new()), "forbidden", 403),
            (ApiError::NotFound(String::new()), "not_found", 404),
            (ApiError::Conflict(String::new()), "conflict", 409),
            (ApiError::TooLarge(String::new()), "too_large", 413),
            (ApiError::TooMany(String::new()), "rate_limited", 429),
            (ApiError::Overloaded(String::new()), "overloaded", 503),
            (ApiError::Unavailable(String::new()), "unavailable", 503),
            (ApiError::Storage(String::new()), "storage", 500),
            (ApiError::Internal(String::new()), "internal", 500),
        ];
        for (e, code, status) in &table {
            assert_eq!(e.code(), *code, "{e:?}");
            assert_eq!(e.status().as_u16(), *status, "{e:?}");
        }
        let mut codes: Vec<_> = table.iter().map(|(_, c, _)| *c).collect();
        codes.dedup();
        assert_eq!(codes.len(), table.len(), "codes are distinct");
    }

    #[test]
    fn a_storage_failure_never_tells_its_detail() {
        let secret = "/srv/parlor/data/parlor.redb: No space left on device (os error 28)";
        let from_send = ApiError::from(SendError::Storage(secret.into()));
        let from_store = ApiError::from(parlor_storage::Error::Io(std::sync::Arc::new(
            std::io::Error::other(secret),
        )));
        let from_codec = ApiError::from(parlor_storage::Error::Codec(secret.into()));
        for e in [from_send, from_store, from_codec] {
            assert_eq!(
                e,
                ApiError::Storage("storage failure: nothing was written".into())
            );
        }
    }

    #[test]
    fn a_full_queue_is_overloaded_and_a_stopped_actor_unavailable() {
        assert_eq!(ApiError::from(SendError::Overloaded).code(), "overloaded");
        assert_eq!(
            ApiError::from(parlor_storage::Error::Unavailable("the write queue is full")).code(),
            "overloaded"
        );
        assert_eq!(ApiError::from(actix::MailboxError::Closed).code(), "unavailable");
        assert_eq!(ApiError::from(actix::MailboxError::Timeout).code(), "unavailable");
    }

    #[test]
    fn refusals_of_a_send_keep_their_kind() {
        assert_eq!(
            ApiError::from(SendError::Forbidden("blocked".into())).code(),
            "forbidden"
        );
        assert_eq!(
            ApiError::from(SendError::NotFound("no group".into())).code(),
            "not_found"
        );
        assert_eq!(ApiError::from(SendError::Invalid("bad".into())).code(), "invalid");
    }
}
