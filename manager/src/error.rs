//! One error type for the REST API, one status per variant, JSON bodies `{"error": "..."}`;
//! and what a database failure is on the JSON-RPC side.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use damocles_actors::wire::jsonrpc::{RpcError, SERVER_ERROR, SERVICE_UNAVAILABLE};

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong token: send Authorization: Bearer <token> (the token is in the manager's home directory)")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    /// The change would drop work or collides with the current state.
    #[error("{0}")]
    Conflict(String),
    /// A credential other than the admin token (an upload's secret) does not match.
    #[error("{0}")]
    Forbidden(String),
    #[error("worker {worker} at {addr} cannot be reached: {reason}")]
    WorkerUnreachable {
        worker: String,
        addr: String,
        reason: String,
    },
    #[error("worker {worker} at {addr} did not answer in time: {reason}")]
    WorkerTimeout {
        worker: String,
        addr: String,
        reason: String,
    },
    #[error("{0}; retry when the database is back")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            DbError::Invalid(m) => ApiError::BadRequest(m),
            DbError::Query(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::WorkerUnreachable { .. } => StatusCode::BAD_GATEWAY,
            ApiError::WorkerTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut body = ErrorBody {
            error: self.to_string(),
            worker: None,
            addr: None,
            reason: None,
        };
        if let ApiError::WorkerUnreachable {
            worker,
            addr,
            reason,
        }
        | ApiError::WorkerTimeout {
            worker,
            addr,
            reason,
        } = self
        {
            body.worker = Some(worker.clone());
            body.addr = Some(addr.clone());
            body.reason = Some(reason.clone());
        }
        HttpResponse::build(self.status_code()).json(body)
    }
}

/// Every REST error's body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, and what is allowed.
    pub error: String,
    /// A worker that could not be reached or timed out: its name,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// its management address,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    /// and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A database failure as a JSON-RPC error: unavailable (retry later) or a server error.
pub fn db_error(e: DbError) -> RpcError {
    match e {
        DbError::Unavailable(_) => RpcError::new(SERVICE_UNAVAILABLE, e.to_string()),
        _ => RpcError::new(SERVER_ERROR, e.to_string()),
    }
}
