//! Who calls `/rpc/v0`: the worker whose token the call carries (`Authorization: Bearer`).
//! Tokens are created by operators (`util worker token create <name>`); the database keeps only
//! their SHA-256. Every manager caches the tokens in force: a known token costs one hash and one
//! map lookup, no query; a cache older than `FRESH` is reloaded in the background, so a token
//! revoked through another manager stops working within a few seconds (at once on the one that
//! revoked it), and a database outage does not stop workers that were already known. An
//! unknown token reloads the cache before it is refused.
//!
//! `[auth] workers = "optional"` also takes calls without a token (a stock damocles-worker with no
//! headers): such a caller is anonymous and gets damocles' own semantics, except that it may
//! not speak for, or touch the work of, a worker that has a token.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use damocles_actors::wire::auth::{bearer, ct_eq, token_hash};
use damocles_actors::wire::hex;
use damocles_actors::wire::jsonrpc::{RpcError, FORBIDDEN, UNAUTHENTICATED};
use serde::Deserialize;
use tracing::{info, warn};

use crate::db::{self, Db};
use crate::error::db_error;

/// How long the cached list of tokens is trusted.
const FRESH: Duration = Duration::from_secs(2);
/// An unknown token reloads the list at most this often (random tokens cannot flood the
/// database).
const MIN_RELOAD: Duration = Duration::from_millis(500);

/// `[auth] workers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every call needs a worker token.
    #[default]
    Required,
    /// Calls without a token are taken too, as anonymous.
    Optional,
}

/// Who made a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The worker of this name, by its token.
    Worker(String),
    /// No token (only with `workers = "optional"`).
    Anonymous,
}

impl Caller {
    /// The worker's name, for ownership and the decision log.
    pub fn name(&self) -> Option<&str> {
        match self {
            Caller::Worker(n) => Some(n),
            Caller::Anonymous => None,
        }
    }
}

#[derive(Default)]
struct Cache {
    by_hash: HashMap<[u8; 32], String>,
    names: HashSet<String>,
    loaded: Option<Instant>,
}

pub struct Authenticator {
    db: Db,
    mode: Mode,
    cache: RwLock<Cache>,
    /// Serialises reloads, so a burst of calls makes one query.
    reload: tokio::sync::Mutex<()>,
    /// A background reload is under way: calls do not start another.
    refreshing: AtomicBool,
    /// Anonymous workers already logged (each once).
    seen_anonymous: Mutex<HashSet<String>>,
}

impl Authenticator {
    pub fn new(db: Db, mode: Mode) -> Self {
        Authenticator {
            db,
            mode,
            cache: RwLock::new(Cache::default()),
            reload: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            seen_anonymous: Mutex::new(HashSet::new()),
        }
    }

    /// The caller of a request with this `Authorization` header.
    pub async fn identify(
        self: &Arc<Self>,
        authorization: Option<&str>,
    ) -> Result<Caller, RpcError> {
        let Some(token) = bearer(authorization) else {
            return match self.mode {
                Mode::Optional => Ok(Caller::Anonymous),
                Mode::Required => Err(RpcError::new(
                    UNAUTHENTICATED,
                    "this manager takes calls only from workers with a token: create one with `damocles-manager util worker token create <worker name>` and give it to the worker ([sector_manager] rpc_client.token_file, or rpc_client.headers = { Authorization = \"Bearer <token>\" })",
                )),
            };
        };
        let hash = token_hash(token);
        if let Some((name, fresh)) = self.lookup(&hash)? {
            if !fresh {
                self.refresh_behind();
            }
            return Ok(Caller::Worker(name));
        }
        self.refresh(MIN_RELOAD).await?;
        match self.lookup(&hash)?.map(|(name, _)| name) {
            Some(name) => Ok(Caller::Worker(name)),
            None => Err(RpcError::new(
                UNAUTHENTICATED,
                "the token is unknown or revoked: `damocles-manager util worker token list` shows the workers' tokens; create a new one with `util worker token create <worker name>`",
            )),
        }
    }

    /// The name of `hash`'s token from the cache, and whether the cache is fresh.
    fn lookup(&self, hash: &[u8; 32]) -> Result<Option<(String, bool)>, RpcError> {
        let cache = self
            .cache
            .read()
            .map_err(|_| RpcError::new(FORBIDDEN, "token cache poisoned"))?;
        let fresh = cache.loaded.is_some_and(|t| t.elapsed() <= FRESH);
        Ok(cache
            .by_hash
            .get_key_value(hash)
            .filter(|(k, _)| ct_eq(k.as_slice(), hash))
            .map(|(_, name)| (name.clone(), fresh)))
    }

    /// Reloads the tokens in force when the cache is older than `older_than`. When the database
    /// cannot be reached the old cache stays (workers keep working); with none it is an error.
    async fn refresh(&self, older_than: Duration) -> Result<(), RpcError> {
        let _one = self.reload.lock().await;
        let stale = |c: &Cache| c.loaded.is_none_or(|t| t.elapsed() > older_than);
        if !self.cache.read().map(|c| stale(&c)).unwrap_or(true) {
            return Ok(());
        }
        match self.db.run(db::tokens::active).await {
            Ok(rows) => {
                let mut fresh = Cache {
                    loaded: Some(Instant::now()),
                    ..Default::default()
                };
                for (name, hash) in rows {
                    if let Some(h) = hex::decode32(&hash) {
                        fresh.by_hash.insert(h, name.clone());
                    }
                    fresh.names.insert(name);
                }
                if let Ok(mut c) = self.cache.write() {
                    *c = fresh;
                }
                Ok(())
            }
            Err(e) => {
                let have = self.cache.read().is_ok_and(|c| c.loaded.is_some());
                if have {
                    warn!(error = %e, "cannot reload worker tokens; using the ones known");
                    Ok(())
                } else {
                    Err(db_error(e))
                }
            }
        }
    }

    /// Reloads the cache in the background (one reload at a time): calls go on with the cache
    /// they have.
    fn refresh_behind(self: &Arc<Self>) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        actix_rt::spawn(async move {
            if let Err(e) = me.refresh(FRESH).await {
                warn!(error = %e.message, "cannot reload worker tokens");
            }
            me.refreshing.store(false, Ordering::Release);
        });
    }

    /// Forgets the cache (a token was created or revoked here): the next call reloads it.
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cache.write() {
            *c = Cache::default();
        }
    }

    /// Whether a worker of this name has a token in force: an anonymous caller may not use it.
    pub async fn has_token(self: &Arc<Self>, name: &str) -> Result<bool, RpcError> {
        let state = self
            .cache
            .read()
            .map(|c| c.loaded.map(|t| t.elapsed() <= FRESH));
        match state {
            Ok(Some(true)) => {}
            Ok(Some(false)) => self.refresh_behind(),
            _ => self.refresh(FRESH).await?,
        }
        Ok(self.cache.read().is_ok_and(|c| c.names.contains(name)))
    }

    /// The name an anonymous caller gives itself, once checked: refused when a worker of that
    /// name has a token, logged the first time it is seen.
    pub async fn anonymous_name(self: &Arc<Self>, name: &str) -> Result<(), RpcError> {
        if self.has_token(name).await? {
            return Err(RpcError::new(
                FORBIDDEN,
                format!("worker {name:?} has a token: its calls must carry it (Authorization: Bearer <token>)"),
            ));
        }
        // Checked before inserting, so a known name costs no allocation.
        let first = self
            .seen_anonymous
            .lock()
            .is_ok_and(|mut s| !s.contains(name) && s.insert(name.to_string()));
        if first {
            info!(worker = %name, "a worker without a token is calling ([auth] workers = \"optional\")");
        }
        Ok(())
    }

    /// Checks that a call naming `named` comes from that worker: the token's name must be it,
    /// and an anonymous caller may not name a worker that has a token.
    pub async fn speaks_for(
        self: &Arc<Self>,
        caller: &Caller,
        named: &str,
    ) -> Result<(), RpcError> {
        match caller {
            Caller::Worker(n) if n == named => Ok(()),
            Caller::Worker(n) => Err(RpcError::new(
                FORBIDDEN,
                format!("this call's token is worker {n:?}'s, but the call names worker {named:?}: create the token with the worker's name ([worker] name)"),
            )),
            Caller::Anonymous => self.anonymous_name(named).await,
        }
    }
}

/// Who asks: the worker (by its token) and, our extension, its thread (by a header).
pub struct Asker {
    pub caller: Caller,
    pub thread: Option<u32>,
}
