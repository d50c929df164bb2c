//! The client's move from a manager that cannot take calls to the next one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use crate::wire::worker_methods::WorkerVersion;

/// A listener on a free loopback port, and the URL of its `/rpc/v0`.
async fn bound() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/rpc/v0", listener.local_addr().unwrap());
    (listener, url)
}

/// A one-route HTTP server answering every request with `reply`, one request per connection;
/// counts the requests.
async fn answering(reply: Response) -> (String, Arc<AtomicUsize>) {
    serving(reply, false).await
}

/// A loopback address nobody listens on.
async fn closed() -> String {
    bound().await.1
}

fn err(code: i64) -> Response {
    Response::from_result(serde_json::Value::from(1), Err(RpcError::new(code, "no")))
}

#[actix_rt::test]
async fn a_call_moves_past_unreachable_and_unavailable_managers_and_stays() {
    let dead = closed().await;
    let (unavailable, busy_hits) = answering(err(SERVICE_UNAVAILABLE)).await;
    let (good, good_hits) = answering(Response::from_result(1.into(), Ok("v1".into()))).await;
    let c = Client::with_fallbacks(
        vec![dead, unavailable, good.clone()],
        Duration::from_secs(5),
    );
    let clone = c.clone().with_header("X-Thread", "0".into());
    assert_eq!(c.call::<WorkerVersion>([]).await.unwrap(), "v1");
    assert_eq!(c.url(), good);
    // Every clone moved with it: the next call goes straight to the third manager.
    assert_eq!(clone.call::<WorkerVersion>([]).await.unwrap(), "v1");
    assert_eq!(busy_hits.load(Ordering::SeqCst), 1);
    assert_eq!(good_hits.load(Ordering::SeqCst), 2);
}

#[actix_rt::test]
async fn an_answered_error_is_the_callers_and_every_manager_is_tried_once() {
    // The manager did something and said no: another manager would say the same.
    let (refusing, refusing_hits) = answering(err(NOT_YOURS)).await;
    let (good, good_hits) = answering(Response::from_result(1.into(), Ok("v1".into()))).await;
    let c = Client::with_fallbacks(vec![refusing.clone(), good], Duration::from_secs(5));
    match c.call::<WorkerVersion>([]).await {
        Err(CallError::Rpc(e)) => assert_eq!(e.code, NOT_YOURS),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        (
            refusing_hits.load(Ordering::SeqCst),
            good_hits.load(Ordering::SeqCst)
        ),
        (1, 0)
    );
    assert_eq!(c.url(), refusing);

    // None can take the call: the last one's error, after one try each.
    let (a, a_hits) = answering(err(SERVICE_UNAVAILABLE)).await;
    let c = Client::with_fallbacks(vec![closed().await, a], Duration::from_secs(5));
    match c.call::<WorkerVersion>([]).await {
        Err(CallError::Rpc(e)) => assert_eq!(e.code, SERVICE_UNAVAILABLE),
        other => panic!("{other:?}"),
    }
    assert_eq!(a_hits.load(Ordering::SeqCst), 1);
}

/// A keep-alive HTTP server that never closes a connection; counts the connections accepted.
async fn keeping_alive(reply: Response) -> (String, Arc<AtomicUsize>) {
    serving(reply, true).await
}

/// An HTTP server answering every request with `reply`; counts the connections it accepts.
/// With `keep_alive` it answers request after request on a connection and never closes it;
/// without, it answers one and closes.
async fn serving(reply: Response, keep_alive: bool) -> (String, Arc<AtomicUsize>) {
    let (listener, url) = bound().await;
    let conns = Arc::new(AtomicUsize::new(0));
    let body = serde_json::to_string(&reply).unwrap();
    let counted = conns.clone();
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
        body.len()
    );
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = vec![0; 64 << 10];
                loop {
                    // One whole request: its head, then Content-Length bytes of body.
                    let (head, len) = loop {
                        let text = String::from_utf8_lossy(&got).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text[..end]
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length")
                                        .then(|| v.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            break (end + 4, len);
                        }
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    };
                    while got.len() < head + len {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    got.drain(..head + len);
                    if s.write_all(answer.as_bytes()).await.is_err() || !keep_alive {
                        return;
                    }
                }
            });
        }
    });
    (url, conns)
}

#[actix_rt::test]
async fn a_connection_idle_for_client_idle_is_not_used_again() {
    // The manager closes an idle connection 4.5 to 5 s after its last answer: a call written
    // into it just then is lost. The client must stop using it first.
    assert!(CLIENT_IDLE + Duration::from_secs(1) <= SERVER_KEEP_ALIVE - Duration::from_millis(500));
    let (url, conns) = keeping_alive(Response::from_result(1.into(), Ok("v1".into()))).await;
    let c = Client::new(url, Duration::from_secs(5));
    assert_eq!(c.call::<WorkerVersion>([]).await.unwrap(), "v1");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.call::<WorkerVersion>([]).await.unwrap(), "v1");
    assert_eq!(
        conns.load(Ordering::SeqCst),
        1,
        "a fresh idle connection is used again"
    );
    tokio::time::sleep(CLIENT_IDLE + Duration::from_millis(500)).await;
    assert_eq!(c.call::<WorkerVersion>([]).await.unwrap(), "v1");
    assert_eq!(
        conns.load(Ordering::SeqCst),
        2,
        "a connection idle longer than CLIENT_IDLE is dropped, not reused"
    );
}
