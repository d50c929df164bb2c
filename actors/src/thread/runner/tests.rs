//! A thread that cannot save its record stops; its supervisor starts it again after a backoff,
//! and the failure stays visible in `last_error`.

use std::time::Instant as StdInstant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use std::sync::Arc;

use super::*;
use crate::limits::StageLimits;
use crate::processors::Processors;
use crate::sealing::env::{ParamsStatus, SealingParams, ThreadEnv};
use crate::sealing::sealer::SEALER;
use crate::sealing::sector_plan::SectorPlan;
use crate::sealing::store::Location;
use crate::wire::jsonrpc::Client;

/// A manager that allocates a sector to every caller and records when it was asked.
async fn fake_manager(calls: Arc<std::sync::Mutex<Vec<StdInstant>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let calls = calls.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    calls.lock().unwrap().push(StdInstant::now());
                    let body = r#"{"jsonrpc":"2.0","id":1,"result":{"ID":{"Miner":1000,"Number":1},"ProofType":5}}"#;
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[actix_rt::test]
async fn a_thread_that_cannot_save_is_restarted_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let location = Location::new(dir.path());
    location.init().unwrap();
    // The record is written through meta/sector.json.tmp: a directory there makes saving fail.
    std::fs::create_dir_all(dir.path().join("meta/sector.json.tmp")).unwrap();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let port = fake_manager(calls.clone()).await;
    let (_params_tx, params) = watch::channel(ParamsStatus::Ready);
    let env = Arc::new(ThreadEnv {
        instance: "test".into(),
        location,
        manager: Client::new(
            format!("http://127.0.0.1:{port}/rpc/v0"),
            Duration::from_secs(5),
        ),
        processors: Processors::default(),
        limits: Arc::new(StageLimits::default()),
        quota: Arc::default(),
        attached: vec![],
        sealing: SealingParams {
            allowed_miners: None,
            allowed_proof_types: None,
            max_retries: 1,
            seal_interval: Duration::from_secs(1),
            recover_interval: Duration::from_secs(1),
            rpc_polling_interval: Duration::from_secs(1),
            enable_deals: false,
            deals: Default::default(),
        },
        params,
    });
    let plan = SectorPlan::new(&SEALER, env);
    let addr = Supervisor::start(move |_| ThreadRunner::new(0, plan));
    // First run: allocate, fail to save, stop; the supervisor restarts it and it backs off
    // 2s before allocating again.
    let deadline = StdInstant::now() + Duration::from_secs(20);
    while calls.lock().unwrap().len() < 2 {
        assert!(StdInstant::now() < deadline, "the thread was not restarted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let times = calls.lock().unwrap().clone();
    assert!(
        times[1] - times[0] >= Duration::from_millis(1900),
        "restart backoff: {:?}",
        times[1] - times[0]
    );
    let info = addr
        .send(GetInfo)
        .await
        .expect("a restarted thread still answers");
    let err = info.last_error.unwrap_or_default();
    assert!(
        err.starts_with("critical: cannot save the sector record"),
        "{err}"
    );
}
