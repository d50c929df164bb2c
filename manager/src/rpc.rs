//! The worker-facing JSON-RPC at `/rpc/v0`, namespace `Venus`: identifies the caller by its
//! token, decodes each method's positional parameters with damocles' exact count (one type per
//! method in `wire::venus_methods`), and hands them to the mock chain, the heartbeat writer or
//! the WindowPoSt job queue, saying who asks.

use std::sync::Arc;

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use damocles_actors::wire::auth::THREAD_HEADER;
use damocles_actors::wire::jsonrpc::{
    decode_request, Response, RpcError, METHOD_NOT_FOUND, SERVICE_UNAVAILABLE,
};
use damocles_actors::wire::method::{serve, Method};
use damocles_actors::wire::venus_methods::{self as m, ALL};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::auth::{Asker, Authenticator};
use crate::heartbeat_writer::{HeartbeatWriter, Ping};
use crate::mock_chain::MockChain;
use crate::wdpost::JobQueue;

pub struct RpcState {
    pub chain: MockChain,
    pub heartbeats: Addr<HeartbeatWriter>,
    pub jobs: JobQueue,
    pub auth: Arc<Authenticator>,
}

/// Largest body of the biggest calls: a ping of `intake::MAX_THREADS` threads, a finished
/// WindowPoSt job's proofs.
pub const MAX_BODY: usize = 4 << 20;

/// Largest body a call of `method` may have; the rest carry a few ids and hashes.
pub fn body_limit(method: &str) -> usize {
    match method {
        m::WorkerPing::NAME | m::WdPoStFinishJob::NAME => MAX_BODY,
        m::SubmitProof::NAME
        | m::SubmitPreCommit::NAME
        | m::SubmitSnapUpProof::NAME
        | m::ReportState::NAME => 256 << 10,
        _ => 64 << 10,
    }
}

pub async fn handle(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<RpcState>,
) -> HttpResponse {
    let call = match decode_request(&body) {
        Ok(r) => r,
        Err(resp) => return HttpResponse::Ok().json(resp),
    };
    if body.len() > body_limit(&call.method) {
        let e = RpcError::invalid_params(format!(
            "{}: the request has {} bytes; at most {} are accepted for this method",
            call.method,
            body.len(),
            body_limit(&call.method)
        ));
        return HttpResponse::PayloadTooLarge().json(Response::from_result(call.id, Err(e)));
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let caller = match state.auth.identify(header("Authorization")).await {
        Ok(c) => c,
        Err(e) => {
            let status = if e.code == SERVICE_UNAVAILABLE {
                actix_web::http::StatusCode::SERVICE_UNAVAILABLE
            } else {
                actix_web::http::StatusCode::UNAUTHORIZED
            };
            return HttpResponse::build(status).json(Response::from_result(call.id, Err(e)));
        }
    };
    let asker = Asker {
        caller,
        thread: header(THREAD_HEADER).and_then(|v| v.trim().parse().ok()),
    };
    // How the caller reached this manager: where it can upload what it unsealed.
    let base = {
        let info = req.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    };
    let started = std::time::Instant::now();
    let result = dispatch(&call.method, call.params.as_deref(), &state, &asker, &base).await;
    record(&call.method, &result, started.elapsed());
    HttpResponse::Ok().json(Response::from_result(call.id, result))
}

/// Counts and times an answered call; a method this manager does not serve is `other` (the
/// name is the caller's, and must not grow the metrics without bound).
fn record(method: &str, result: &Result<Value, RpcError>, took: std::time::Duration) {
    let method = ALL
        .iter()
        .map(|(n, _)| *n)
        .find(|n| *n == method)
        .unwrap_or("other");
    let code;
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => {
            code = e.code.to_string();
            code.as_str()
        }
    };
    use damocles_actors::metrics;
    metrics::observe(
        "damocles_rpc_server_call_duration_seconds",
        &[("method", method)],
        took,
    );
    metrics::inc(
        "damocles_rpc_server_calls_total",
        &[("method", method), ("outcome", outcome)],
    );
}

async fn dispatch(
    method: &str,
    p: Option<&RawValue>,
    s: &RpcState,
    a: &Asker,
    base: &str,
) -> Result<Value, RpcError> {
    let c = &s.chain;
    let who = &a.caller;
    match method {
        m::WorkerPing::NAME => {
            serve::<m::WorkerPing, _, _>(p, |(info,)| async move {
                let info = crate::intake::check_ping(info).map_err(RpcError::invalid_params)?;
                s.auth.speaks_for(who, &info.name).await?;
                s.heartbeats
                    .send(Ping(info))
                    .await
                    .map_err(|e| RpcError::new(SERVICE_UNAVAILABLE, e.to_string()))?
            })
            .await
        }
        m::AllocateSector::NAME => {
            serve::<m::AllocateSector, _, _>(p, |(spec,)| c.allocate_sector(spec, a)).await
        }
        m::AcquireDeals::NAME => {
            serve::<m::AcquireDeals, _, _>(p, |(sid, spec)| c.acquire_deals(sid, spec, who)).await
        }
        m::AssignTicket::NAME => {
            serve::<m::AssignTicket, _, _>(p, |(sid,)| c.assign_ticket(sid, who)).await
        }
        m::SubmitPreCommit::NAME => {
            serve::<m::SubmitPreCommit, _, _>(p, |(sector, info, reset)| {
                c.submit_pre_commit(sector, info, reset, who)
            })
            .await
        }
        m::PollPreCommitState::NAME => {
            serve::<m::PollPreCommitState, _, _>(p, |(sid,)| c.poll_pre_commit(sid, who)).await
        }
        m::SubmitPersisted::NAME => {
            serve::<m::SubmitPersisted, _, _>(p, |(sid, instance)| {
                c.submit_persisted(sid, instance, false, who)
            })
            .await
        }
        m::SubmitPersistedEx::NAME => {
            serve::<m::SubmitPersistedEx, _, _>(p, |(sid, instance, upgrade)| {
                c.submit_persisted(sid, instance, upgrade, who)
            })
            .await
        }
        m::WaitSeed::NAME => {
            serve::<m::WaitSeed, _, _>(p, |(sid, _proof)| c.wait_seed(sid, who)).await
        }
        m::SubmitProof::NAME => {
            serve::<m::SubmitProof, _, _>(p, |(sid, proof, reset)| {
                c.submit_proof(sid, proof, reset, who)
            })
            .await
        }
        m::PollProofState::NAME => {
            serve::<m::PollProofState, _, _>(p, |(sid,)| c.poll_proof(sid, who)).await
        }
        m::ReportState::NAME => {
            serve::<m::ReportState, _, _>(p, |(sid, req)| async move {
                crate::intake::check_report(&req.state_change.next, &req.worker.location)
                    .map_err(RpcError::invalid_params)?;
                c.report_state(sid, req, who).await
            })
            .await
        }
        m::ReportFinalized::NAME => {
            serve::<m::ReportFinalized, _, _>(p, |(sid,)| c.report_finalized(sid, who)).await
        }
        m::ReportAborted::NAME => {
            serve::<m::ReportAborted, _, _>(p, |(sid, reason)| {
                c.report_aborted(sid, crate::intake::text(reason), who)
            })
            .await
        }
        m::StoreReserveSpace::NAME => {
            serve::<m::StoreReserveSpace, _, _>(p, |(sid, size, candidates)| {
                c.reserve_space(sid, size, candidates.unwrap_or_default(), who)
            })
            .await
        }
        m::StoreBasicInfo::NAME => {
            serve::<m::StoreBasicInfo, _, _>(p, |(name,)| c.store_info(name)).await
        }
        m::AllocateSnapUpSector::NAME => {
            serve::<m::AllocateSnapUpSector, _, _>(p, |(spec,)| c.allocate_snapup(spec, a)).await
        }
        m::SubmitSnapUpProof::NAME => {
            serve::<m::SubmitSnapUpProof, _, _>(p, |(sid, info)| c.submit_snapup(sid, info, who))
                .await
        }
        m::AllocateRebuildSector::NAME => {
            serve::<m::AllocateRebuildSector, _, _>(p, |(spec,)| c.allocate_rebuild(spec, a)).await
        }
        m::AllocateUnsealSector::NAME => {
            serve::<m::AllocateUnsealSector, _, _>(p, |(spec,)| c.allocate_unseal(spec, a)).await
        }
        m::AchieveUnsealSector::NAME => {
            serve::<m::AchieveUnsealSector, _, _>(p, |(sid, cid, error)| {
                c.achieve_unseal(sid, cid, crate::intake::text(error), who)
            })
            .await
        }
        m::AcquireUnsealDest::NAME => {
            serve::<m::AcquireUnsealDest, _, _>(p, |(sid, cid)| c.unseal_dest(sid, cid, who, base))
                .await
        }
        m::WdPoStAllocateJobs::NAME => {
            serve::<m::WdPoStAllocateJobs, _, _>(p, |(spec, num, worker)| async move {
                s.auth.speaks_for(who, &worker).await?;
                s.jobs.allocate(spec, num, worker, a.thread).await
            })
            .await
        }
        m::WdPoStHeartbeatJobs::NAME => {
            serve::<m::WdPoStHeartbeatJobs, _, _>(p, |(ids, worker)| async move {
                crate::intake::check_job_ids(&ids).map_err(RpcError::invalid_params)?;
                s.auth.speaks_for(who, &worker).await?;
                s.jobs.heartbeat(ids, worker).await
            })
            .await
        }
        m::WdPoStFinishJob::NAME => {
            serve::<m::WdPoStFinishJob, _, _>(p, |(id, output, error)| {
                s.jobs
                    .finish(id, output, crate::intake::text(error), who, &s.auth)
            })
            .await
        }
        _ => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!(
                "method {method:?} not found; this manager serves: {}",
                ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}
