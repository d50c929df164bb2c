//! Worker tokens over REST: create (the token is shown once), list, revoke. Every action is in
//! `audit_log`; the token itself is never stored or logged, only its SHA-256.

use actix_web::{web, HttpResponse};
use damocles_actors::wire::auth::token_hash;
use damocles_actors::wire::hex;
use rand::RngCore;
use serde_json::json;

use super::{audited, changed, Admin, RestState};
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

pub async fn create(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    check_name(&name)?;
    let token = new_token();
    let hash = hex::encode(&token_hash(&token));
    let n = name.clone();
    let created = audited(&s, &admin, "token.create", &name, move |c| {
        Ok(changed(
            db::tokens::create(c, &n, &hash, db::now())?,
            "created",
        ))
    })
    .await?;
    if !created {
        return Err(ApiError::Conflict(format!(
            "worker {name:?} already has a token: revoke it first (`util worker token revoke {name}`), then create a new one"
        )));
    }
    s.auth.invalidate();
    tracing::info!(worker = %name, by = %admin.0, "worker token created");
    Ok(HttpResponse::Created().json(json!({"worker": name, "token": token})))
}

pub async fn list(_admin: Admin, s: web::Data<RestState>) -> Result<HttpResponse, ApiError> {
    let rows = s.db.run(db::tokens::list).await?;
    Ok(HttpResponse::Ok().json(rows))
}

pub async fn revoke(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner();
    let n = name.clone();
    let revoked = audited(&s, &admin, "token.revoke", &name, move |c| {
        Ok(changed(db::tokens::revoke(c, &n, db::now())?, "revoked"))
    })
    .await?;
    if !revoked {
        return Err(ApiError::NotFound(format!(
            "worker {name:?} has no token in force: `util worker token list` shows them"
        )));
    }
    s.auth.invalidate();
    tracing::info!(worker = %name, by = %admin.0, "worker token revoked");
    Ok(HttpResponse::Ok().json(json!({"worker": name, "revoked": true})))
}
