//! `origin::Error`: every failure a handler can report, each mapped once to a status, a stable
//! code and a message a person understands.
//!
//! Internal errors are logged where they become a response and the client gets a generic
//! sentence: database and library messages never reach a response body.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use contract::ErrorBody;
use serde::de::DeserializeOwned;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (bad JSON, a bad query string).
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but a field is not acceptable.
    #[error("{0}")]
    Validation(String),
    /// No credentials, or credentials that are not valid now.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Valid credentials without the right to do this.
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    /// The change conflicts with the current state (duplicate name, set-up already done).
    #[error("{0}")]
    Conflict(String),
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(&'static str),
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    /// Too much of a bounded resource is in use right now (e.g. password hashing); try again
    /// after `retry_after_secs`. 503 with `Retry-After`.
    #[error("{message}")]
    Busy {
        message: &'static str,
        retry_after_secs: u64,
    },
    /// A dependency (the database, later the sandbox) is not available.
    #[error("{0}")]
    Unavailable(String),
    /// A server MCPbox talks to on the caller's behalf (an external MCP source) failed.
    #[error("{0}")]
    BadGateway(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Error::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Error::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            Error::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Error::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Error::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Error::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            Error::Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Error::BadGateway(_) => (StatusCode::BAD_GATEWAY, "upstream_failed"),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }
}

impl Error {
    /// The HTTP status this error answers with (the UI renders its own page with it).
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// What a person may be told: the sentence itself, except for internal errors, which are
    /// logged here (with the request's span) and replaced by a generic sentence.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                "Something went wrong on the server; the details are in its log".to_owned()
            }
            other => other.to_string(),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::Internal(anyhow::Error::new(err).context("file error"))
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Error::Internal(anyhow::Error::new(err).context("database error"))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = self.public_message();
        let mut response = (status, Json(ErrorBody::new(code, message))).into_response();
        if let Error::TooManyRequests {
            retry_after_secs, ..
        }
        | Error::Busy {
            retry_after_secs, ..
        } = self
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs.max(1)),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Turns a unique-constraint violation into a 409 with the given message, so the database (not a
/// racy check-then-insert) decides uniqueness.
pub trait OnConflict<T> {
    fn on_conflict(self, message: impl FnOnce() -> String) -> Result<T>;
}

impl<T> OnConflict<T> for std::result::Result<T, sqlx::Error> {
    fn on_conflict(self, message: impl FnOnce() -> String) -> Result<T> {
        match self {
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(Error::Conflict(message()))
            }
            other => other.map_err(Error::from),
        }
    }
}

/// `Json<T>` whose rejections are our JSON errors with a readable message.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !json_content_type(req.headers()) {
            return Err(Error::UnsupportedMediaType(
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    Error::PayloadTooLarge {
                        limit: crate::http::MAX_BODY_BYTES,
                    }
                } else {
                    Error::BadRequest(format!(
                        "could not read the request body: {}",
                        rejection.body_text()
                    ))
                }
            })?;
        // Every body is an object. serde would also read a struct from an array of its fields
        // (`[null, null]`), which the document does not allow.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(Error::Validation(
                "the JSON body must be an object".to_owned(),
            ));
        }
        match Json::<T>::from_bytes(&bytes) {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `application/json` or `application/…+json`, as axum's `Json` requires.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

fn json_rejection(rejection: JsonRejection) -> Error {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            Error::UnsupportedMediaType("expected a JSON body with Content-Type: application/json")
        }
        JsonRejection::JsonSyntaxError(err) => {
            Error::BadRequest(format!("the body is not valid JSON: {}", source_text(&err)))
        }
        JsonRejection::JsonDataError(err) => Error::Validation(format!(
            "the JSON body does not have the expected fields: {}",
            source_text(&err)
        )),
        JsonRejection::BytesRejection(err) if err.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Error::PayloadTooLarge {
                limit: crate::http::MAX_BODY_BYTES,
            }
        }
        other => Error::BadRequest(format!(
            "could not read the request body: {}",
            other.body_text()
        )),
    }
}

/// serde's message without axum's "Failed to deserialize…" prefix.
fn source_text(err: &dyn std::error::Error) -> String {
    let mut last = err.to_string();
    let mut current = err.source();
    while let Some(source) = current {
        last = source.to_string();
        current = source.source();
    }
    last
}

/// `Query<T>` whose rejection is a readable 400.
pub struct ApiQuery<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| ApiQuery(value))
            .map_err(|rejection| {
                Error::BadRequest(format!(
                    "the query string is not valid: {}",
                    source_text(&rejection)
                ))
            })
    }
}

/// An optional JSON body: an empty body is `None`; anything else must be valid JSON of `T`.
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| Error::PayloadTooLarge {
                limit: crate::http::MAX_BODY_BYTES,
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        // `null` is no body too (the document describes these bodies as nullable).
        serde_json::from_slice::<Option<T>>(&bytes)
            .map(OptionalJson)
            .map_err(|err| Error::BadRequest(format!("the body is not valid JSON: {err}")))
    }
}
