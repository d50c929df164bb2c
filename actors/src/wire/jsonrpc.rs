//! JSON-RPC 2.0 over HTTP: the envelope types and a small client used for both directions
//! (worker → manager `Venus.*`, manager/CLI → worker `VenusWorker.*`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::method::Method;

/// JSON-RPC "invalid params" code.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC "method not found" code.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC "parse error" code.
pub const PARSE_ERROR: i64 = -32700;
/// Server error: the sector's state is unknown to the manager (damocles' 11001); the worker aborts.
pub const SECTOR_STATE_NOT_FOUND: i64 = 11001;
/// Server error: the sector or WindowPoSt job is not the caller's (another worker holds it, or
/// it timed out, was reset or removed); nothing was changed, and the worker drops it.
pub const NOT_YOURS: i64 = 11002;
/// Server error: the call carries no valid token (none, unknown or revoked).
pub const UNAUTHENTICATED: i64 = 11003;
/// Server error: the worker has no thread of that index.
pub const THREAD_NOT_FOUND: i64 = 11004;
/// Server error: the caller may not make this call (a management change without the manager's
/// credential; a call without a token that names a worker that has one).
pub const FORBIDDEN: i64 = 11005;
/// Server error: the change drops work (resume into Finished or Aborted) and needs the force
/// flag.
pub const NEEDS_FORCE: i64 = 11006;
/// Server error: the manager's database cannot be reached right now; retry later.
pub const SERVICE_UNAVAILABLE: i64 = -32003;
/// Generic server error.
pub const SERVER_ERROR: i64 = -32000;

/// A request as it arrives: the parameters stay raw text until the method's own types decode
/// them (no tree of `Value`s in between).
#[derive(Debug, Serialize, Deserialize)]
pub struct Request {
    /// Always `2.0`.
    pub jsonrpc: String,
    /// The caller's id, echoed in the answer.
    pub id: Value,
    /// The method's wire name.
    pub method: String,
    /// The positional parameters, decoded only by the method that takes them.
    #[serde(default)]
    pub params: Option<Box<serde_json::value::RawValue>>,
}

/// A request as a client sends it, its parameters encoded straight from their types.
#[derive(Serialize)]
struct Outgoing<'a, P: Serialize> {
    jsonrpc: &'static str,
    id: u64,
    method: &'static str,
    params: &'a P,
}

/// A JSON-RPC error: a code (see the constants above) and a message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RpcError {
    /// What kind of error.
    pub code: i64,
    /// What went wrong, for people.
    pub message: String,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl RpcError {
    /// An error with `code`.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
        }
    }

    /// Parameters that do not fit the method.
    pub fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(INVALID_PARAMS, message)
    }
}

/// A JSON-RPC answer: a result or an error.
#[derive(Debug, Serialize, Deserialize)]
pub struct Response {
    /// Always `2.0`.
    pub jsonrpc: String,
    /// The request's id.
    pub id: Value,
    /// The result, when the call succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// The error, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RpcError>,
}

impl Response {
    /// The answer to request `id`.
    pub fn from_result(id: Value, result: Result<Value, RpcError>) -> Self {
        match result {
            Ok(v) => Response {
                jsonrpc: "2.0".into(),
                id,
                result: Some(v),
                error: None,
            },
            Err(e) => Response {
                jsonrpc: "2.0".into(),
                id,
                result: None,
                error: Some(e),
            },
        }
    }
}

/// Decodes a request body; a body that is not a request gets the parse-error response.
pub fn decode_request(body: &[u8]) -> Result<Request, Box<Response>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(Response::from_result(
            Value::Null,
            Err(RpcError::new(
                PARSE_ERROR,
                format!("malformed JSON-RPC request: {e}"),
            )),
        ))
    })
}

/// Why a call failed: the peer could not be reached, or it answered with an error.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The peer could not be reached.
    #[error("cannot reach {url}: {reason}")]
    Transport {
        /// Where.
        url: String,
        /// Why.
        reason: String,
    },
    /// The peer answered with an error.
    #[error("rpc error: {0}")]
    Rpc(RpcError),
    /// The answer could not be read.
    #[error("bad response from {url}: {reason}")]
    Decode {
        /// Where from.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Largest reply a client reads.
pub const MAX_REPLY: usize = 64 << 20;

/// How long a server (the manager, a worker's management API) keeps an idle connection open.
/// actix checks it against a clock it reads every half second, so it closes the connection
/// between 4.5 and 5 s after its last answer.
pub const SERVER_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// A client drops a pooled connection idle this long, well before the server may close it: a
/// call written into a connection the server is closing is lost, with no answer to retry on.
pub const CLIENT_IDLE: Duration = Duration::from_secs(3);

/// A JSON-RPC client bound to one URL, or to several managers in turn, sending the same
/// headers on every call (a worker's `rpc_client.headers`, its token).
#[derive(Clone, Debug)]
pub struct Client {
    /// Where calls may go; all clones share which one is in use.
    urls: Arc<[String]>,
    current: Arc<AtomicUsize>,
    http: reqwest::Client,
    headers: Vec<(String, String)>,
}

impl Client {
    /// A client that never follows a redirect (the address is one a peer reported: it must
    /// not send us, and our signed calls, elsewhere) and reads at most `MAX_REPLY` bytes.
    pub fn new(url: impl Into<String>, timeout: Duration) -> Self {
        Self::with_fallbacks(vec![url.into()], timeout)
    }

    /// A client for several managers on one database: calls go to the first until it cannot
    /// take them (unreachable, or its database is), then to the next, and stay there.
    pub fn with_fallbacks(urls: Vec<String>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(CLIENT_IDLE)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Client {
            urls: urls.into(),
            current: Arc::new(AtomicUsize::new(0)),
            http,
            headers: Vec::new(),
        }
    }

    /// The same client, sending `headers` with every call.
    pub fn with_headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.headers = headers;
        self
    }

    /// The same client, sending one more header with every call (a thread's index).
    pub fn with_header(mut self, name: &str, value: String) -> Self {
        self.headers.push((name.to_string(), value));
        self
    }

    /// The URL calls go to now.
    pub fn url(&self) -> &str {
        &self.urls[self.current.load(Ordering::Relaxed) % self.urls.len()]
    }

    /// Calls `M` with its positional parameters and decodes its result.
    pub async fn call<M: Method>(&self, params: M::Params) -> Result<M::Output, CallError> {
        self.call_with::<M>(params, |_| Vec::new()).await
    }

    /// Like `call`, with headers of this call only, made from the request body (a signature).
    /// With several managers, a call that none of it reached (no connection) or that the
    /// manager could not serve (`SERVICE_UNAVAILABLE`: it did nothing) goes to the next one,
    /// each at most once.
    pub async fn call_with<M: Method>(
        &self,
        params: M::Params,
        headers: impl FnOnce(&[u8]) -> Vec<(&'static str, String)>,
    ) -> Result<M::Output, CallError> {
        let req = Outgoing {
            jsonrpc: "2.0",
            id: 1,
            method: M::NAME,
            params: &params,
        };
        let body = serde_json::to_vec(&req).map_err(|e| CallError::Decode {
            url: self.url().to_string(),
            reason: format!("{}: cannot encode the parameters: {e}", M::NAME),
        })?;
        let extra = headers(&body);
        let started = std::time::Instant::now();
        let r = self.send::<M>(&body, &extra).await;
        let outcome = match &r {
            Ok(_) => "ok",
            Err(CallError::Rpc(_)) => "refused",
            Err(CallError::Transport { .. }) => "unreachable",
            Err(CallError::Decode { .. }) => "bad_answer",
        };
        let method = [("method", M::NAME)];
        crate::metrics::observe(
            "damocles_jsonrpc_client_call_duration_seconds",
            &method,
            started.elapsed(),
        );
        crate::metrics::inc(
            "damocles_jsonrpc_client_calls_total",
            &[("method", M::NAME), ("outcome", outcome)],
        );
        r
    }

    /// Sends an encoded call to the managers in turn (see `call_with`).
    async fn send<M: Method>(
        &self,
        body: &[u8],
        extra: &[(&'static str, String)],
    ) -> Result<M::Output, CallError> {
        let mut tries = 0;
        loop {
            let at = self.current.load(Ordering::Relaxed);
            let url = &self.urls[at % self.urls.len()];
            match self.post::<M>(url, body, extra).await {
                Err((e, true)) if tries + 1 < self.urls.len() => {
                    tries += 1;
                    // Only the first call to notice moves everyone on.
                    let _ = self.current.compare_exchange(
                        at,
                        at + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    tracing::warn!(from = %url, to = %self.url(), error = %e, "manager cannot take calls; using the next one");
                }
                r => return r.map_err(|(e, _)| e),
            }
        }
    }

    /// One call to `url`; the flag says whether another manager may take it instead.
    async fn post<M: Method>(
        &self,
        url: &str,
        body: &[u8],
        extra: &[(&'static str, String)],
    ) -> Result<M::Output, (CallError, bool)> {
        let transport = |e: reqwest::Error| {
            (
                CallError::Transport {
                    url: url.to_string(),
                    reason: describe_reqwest(&e),
                },
                e.is_connect(),
            )
        };
        let mut http = self
            .http
            .post(url)
            .header("Content-Type", "application/json");
        for (k, v) in &self.headers {
            http = http.header(k.as_str(), v.as_str());
        }
        for (k, v) in extra {
            http = http.header(*k, v.as_str());
        }
        let mut resp = http.body(body.to_vec()).send().await.map_err(transport)?;
        let status = resp.status();
        let mut reply = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| (transport(e).0, false))? {
            if reply.len() + chunk.len() > MAX_REPLY {
                return Err((
                    CallError::Decode {
                        url: url.to_string(),
                        reason: format!(
                            "http {status}: the reply is larger than {MAX_REPLY} bytes"
                        ),
                    },
                    false,
                ));
            }
            reply.extend_from_slice(&chunk);
        }
        let decode = |reason: String| {
            (
                CallError::Decode {
                    url: url.to_string(),
                    reason,
                },
                false,
            )
        };
        let resp: Response =
            serde_json::from_slice(&reply).map_err(|e| decode(format!("http {status}: {e}")))?;
        if let Some(err) = resp.error {
            let elsewhere = err.code == SERVICE_UNAVAILABLE;
            return Err((CallError::Rpc(err), elsewhere));
        }
        serde_json::from_value(resp.result.unwrap_or(Value::Null))
            .map_err(|e| decode(format!("{}: {e}", M::NAME)))
    }
}

impl Client {
    /// GETs `path` from the server this client calls (its scheme, host and port), with the
    /// client's headers (its token): at most `max` bytes, any status but 200 an error with the
    /// server's text.
    pub async fn fetch(&self, path: &str, max: u64) -> Result<Vec<u8>, CallError> {
        let url = origin(self.url()) + path;
        let transport = |e: reqwest::Error| CallError::Transport {
            url: url.clone(),
            reason: describe_reqwest(&e),
        };
        let mut http = self.http.get(&url);
        for (k, v) in &self.headers {
            http = http.header(k.as_str(), v.as_str());
        }
        let mut resp = http.send().await.map_err(transport)?;
        let status = resp.status();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if (body.len() + chunk.len()) as u64 > max {
                return Err(CallError::Decode {
                    url,
                    reason: format!("http {status}: more than {max} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status != reqwest::StatusCode::OK {
            let text = String::from_utf8_lossy(&body);
            return Err(CallError::Decode {
                url,
                reason: format!(
                    "http {status}: {}",
                    text.chars().take(500).collect::<String>()
                ),
            });
        }
        Ok(body)
    }
}

/// `http://host:port` of a URL (the URL itself when it has no path).
fn origin(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => url[..after_scheme + i].to_string(),
        None => url.to_string(),
    }
}

/// reqwest's Display hides the cause ("error sending request"); walk the chain for the reason.
pub fn describe_reqwest(e: &reqwest::Error) -> String {
    let mut reason = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut last = String::new();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    if !last.is_empty() && !reason.contains(&last) {
        reason = format!("{reason}: {last}");
    }
    reason
}

#[cfg(test)]
#[path = "jsonrpc_tests.rs"]
mod tests;
