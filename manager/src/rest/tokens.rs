//! Worker tokens over REST: create (the token is shown once), list, revoke. Every action is in
//! `audit_log`; the token itself is never stored or logged, only its SHA-256.

use actix_web::{web, HttpResponse};
use damocles_actors::wire::auth::token_hash;
use damocles_actors::wire::hex;
use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::audit::change_one;
use super::{Admin, RestState};
use crate::db;
use crate::error::ApiError;

/// A new random token: 32 bytes, hex.
fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(&bytes)
}

/// A worker name must be what a worker can send as `[worker] name`.
fn check_name(name: &str) -> Result<(), ApiError> {
    if name.is_empty()
        || name.len() > 255
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::BadRequest(format!(
            "bad worker name {name:?}: use 1 to 255 characters without spaces, as in the worker's [worker] name (its IP when unset)"
        )));
    }
    Ok(())
}

#[utoipa::path(post, path = "/workers/{name}/token", tag = "tokens",
    params(("name" = String, Path, description = "The worker's name")),
    responses((status = 201, description = "The new token, shown once (the manager keeps its hash)", body = TokenCreated)))]
pub async fn create(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    check_name(&name)?;
    let token = new_token();
    let hash = hex::encode(&token_hash(&token));
    let act = move |c: &mut db::DbConnection, n: &str| db::tokens::create(c, n, &hash, db::now());
    let taken = |n: &str| {
        ApiError::Conflict(format!(
            "worker {n:?} already has a token: revoke it first (`util worker token revoke {n}`), then create a new one"
        ))
    };
    change_one(&s, &admin, "token.create", &name, "created", act, taken).await?;
    s.auth.invalidate();
    tracing::info!(worker = %name, by = %admin.0, "worker token created");
    Ok(HttpResponse::Created().json(TokenCreated {
        worker: name,
        token,
    }))
}

/// The answer to `token create`: the token, shown this once.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenCreated {
    /// Whose.
    pub worker: String,
    /// The token itself.
    pub token: String,
}

#[utoipa::path(get, path = "/tokens", tag = "tokens",
    responses((status = 200, description = "Every worker token (hashes, never the tokens)", body = Vec<crate::db::tokens::TokenRow>)))]
pub async fn list(_admin: Admin, s: web::Data<RestState>) -> Result<HttpResponse, ApiError> {
    let rows = s.db.run(db::tokens::list).await?;
    Ok(HttpResponse::Ok().json(rows))
}

#[utoipa::path(delete, path = "/workers/{name}/token", tag = "tokens",
    params(("name" = String, Path, description = "The worker's name")),
    responses((status = 200, description = "Revoked: the worker's calls are refused from now on", body = TokenRevoked)))]
pub async fn revoke(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let act = |c: &mut db::DbConnection, n: &str| db::tokens::revoke(c, n, db::now());
    let none = |n: &str| {
        ApiError::NotFound(format!(
            "worker {n:?} has no token in force: `util worker token list` shows them"
        ))
    };
    change_one(&s, &admin, "token.revoke", &name, "revoked", act, none).await?;
    s.auth.invalidate();
    tracing::info!(worker = %name, by = %admin.0, "worker token revoked");
    Ok(HttpResponse::Ok().json(TokenRevoked {
        worker: name,
        revoked: true,
    }))
}

/// The answer to `token revoke`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenRevoked {
    /// Whose.
    pub worker: String,
    /// Always true: a token that was not in force is a 404.
    pub revoked: bool,
}
