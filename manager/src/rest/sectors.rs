//! What operators do to one sector: `abort`, `restore`, `rebuild`, `export` and `import`
//! (damocles-manager's `SectorState` JSON). Without `really_do_it=true` each is a dry run that says what it would
//! do; a real one writes its audit row in the same transaction as the change.

use actix_web::{web, HttpResponse};
use damocles_actors::wire::worker_api::ThreadInfo;
use damocles_actors::wire::worker_methods::{WorkerList, WorkerPause, WorkerResume};
use serde::{Deserialize, Serialize};

use super::audit::{audited, Done};
use super::workers::{call_worker, resolve};
use super::{Admin, RestState};
use crate::db::sectors::SectorRow;
use crate::db::{self, sector_admin, snap};
use crate::error::ApiError;
use crate::sector_json::{self, SectorState};

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DoIt {
    #[serde(default)]
    pub really_do_it: bool,
    /// Why (abort only; shown with the sector).
    pub reason: Option<String>,
}

fn name(miner: u64, number: u64) -> String {
    format!("s-t0{miner}-{number}")
}

async fn row(s: &RestState, miner: u64, number: u64) -> Result<SectorRow, ApiError> {
    s.db.run(move |c| db::sectors::get(c, miner, number))
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "sector {} does not exist; `util sealer sectors list` shows the sectors",
                name(miner, number)
            ))
        })
}

/// The answer to abort and restore: what was (or would be) done.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Changed {
    pub sector: String,
    pub dry_run: bool,
    /// What it did, or would do.
    pub action: String,
    /// The thread that held the sector (`worker#index`), when one was found.
    pub thread: Option<String>,
    /// Whether that thread was stopped and freed now.
    pub thread_stopped: bool,
    /// Anything the operator should know.
    pub note: Option<String>,
}

/// What an abort of `row` is: the whole sector, or only its snap-up in flight.
fn abort_kind(row: &SectorRow) -> Result<&'static str, ApiError> {
    let n = name(row.miner_id as u64, row.sector_number as u64);
    if row.state == crate::mock_chain::ABORTED {
        return Err(ApiError::Conflict(format!(
            "sector {n} is aborted already: {}",
            row.abort_reason.as_deref().unwrap_or("-")
        )));
    }
    if row.snap_state.as_deref() == Some(snap::ALLOCATED) {
        return Ok("snap-up");
    }
    if row.proof_state.as_deref() == Some("Landed") {
        return Err(ApiError::Conflict(format!(
            "sector {n} is proven on chain: aborting it would drop a live sector. A proven \
             sector whose files are lost is rebuilt (`util sealer sectors rebuild`), not aborted"
        )));
    }
    Ok("sector")
}

#[utoipa::path(post, path = "/sectors/{miner}/{number}/abort", tag = "sectors", params(("miner" = u64, Path, description = "The miner's actor id"), ("number" = u64, Path, description = "The sector number"), DoIt),
    responses((status = 200, description = "Aborted (or, without really_do_it, what would be)", body = Changed)))]
pub async fn abort(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<(u64, u64)>,
    q: web::Query<DoIt>,
) -> Result<HttpResponse, ApiError> {
    let (miner, number) = path.into_inner();
    let sector = name(miner, number);
    let before = row(&s, miner, number).await?;
    let kind = abort_kind(&before)?;
    let holder = holder(&s, &before).await;
    let thread = holder.as_ref().map(|(w, t)| format!("{w}#{}", t.index));
    if !q.really_do_it {
        return Ok(HttpResponse::Ok().json(Changed {
            action: format!(
                "would abort the {kind} (state {}) and stop {}",
                before.state,
                thread
                    .as_deref()
                    .unwrap_or("the thread holding it at its next call")
            ),
            sector,
            dry_run: true,
            thread,
            thread_stopped: false,
            note: Some("pass --really-do-it to abort".into()),
        }));
    }
    let reason = format!(
        "aborted by operator ({}){}",
        admin.0,
        q.reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default()
    );
    let (r, at) = (reason.clone(), db::now());
    let done = audited(&s, &admin, "sector.abort", &sector, move |c| {
        let done = match kind {
            "snap-up" => sector_admin::abort_snap(c, miner, number, at)?,
            _ => sector_admin::abort(c, miner, number, &r, at)?,
        };
        let result = Done {
            detail: Some(r),
            result: format!("{kind} aborted"),
        };
        Ok((done, done.then_some(result)))
    })
    .await?;
    if !done {
        return Err(ApiError::Conflict(format!(
            "sector {sector} changed meanwhile (a worker reported it); look again with `util sealer sectors state`"
        )));
    }
    tracing::warn!(%sector, by = %admin.0, %reason, "sector aborted by an operator");
    // The thread drops the sector now; one that cannot be reached aborts at its next call.
    let stopped = match &holder {
        Some((worker, t)) => stop_thread(&s, worker, t.index).await,
        None => Err("no thread of a live worker holds it".into()),
    };
    Ok(HttpResponse::Ok().json(Changed {
        action: format!("{kind} aborted"),
        sector,
        dry_run: false,
        thread,
        thread_stopped: stopped.is_ok(),
        note: stopped.err().map(|e| {
            format!("{e}; a thread still holding it aborts at its next call to the manager")
        }),
    }))
}

/// The worker and thread working on `row`, if its worker answers.
async fn holder(s: &RestState, row: &SectorRow) -> Option<(String, ThreadInfo)> {
    let worker = row.snap_owner.clone().or(row.worker_name.clone())?;
    let (name, dest) = resolve(s, &worker).await.ok()?;
    let threads = call_worker::<WorkerList>(s, &name, &dest, [], false)
        .await
        .ok()?;
    let job = format!("s-t0{}-{}", row.miner_id, row.sector_number);
    let t = threads
        .into_iter()
        .find(|t| t.job_id.as_deref() == Some(job.as_str()))?;
    Some((name, t))
}

/// Stops thread `index` of `worker` at once (a forced pause cancels even a processor step) and
/// resumes it into Aborted, which wipes the sector's files and frees the thread.
async fn stop_thread(s: &RestState, worker: &str, index: usize) -> Result<(), String> {
    let (name, dest) = resolve(s, worker).await.map_err(|e| e.to_string())?;
    call_worker::<WorkerPause>(s, &name, &dest, (index,), true)
        .await
        .map_err(|e| e.to_string())?;
    let state = Some(crate::mock_chain::ABORTED.to_string());
    match call_worker::<WorkerResume>(s, &name, &dest, (index, state), true).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("thread {name}#{index} did not stop")),
        Err(e) => Err(e.to_string()),
    }
}

#[utoipa::path(post, path = "/sectors/{miner}/{number}/restore", tag = "sectors", params(("miner" = u64, Path, description = "The miner's actor id"), ("number" = u64, Path, description = "The sector number"), DoIt),
    responses((status = 200, description = "Restored (or, without really_do_it, what would be)", body = Changed)))]
pub async fn restore(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<(u64, u64)>,
    q: web::Query<DoIt>,
) -> Result<HttpResponse, ApiError> {
    let (miner, number) = path.into_inner();
    let sector = name(miner, number);
    let before = row(&s, miner, number).await?;
    if before.state != crate::mock_chain::ABORTED {
        return Err(ApiError::Conflict(format!(
            "sector {sector} is not aborted (state {}): there is nothing to restore",
            before.state
        )));
    }
    let Some(to) = before.aborted_from.clone() else {
        return Err(ApiError::Conflict(format!(
            "sector {sector} cannot be restored: {}. Only a sector whose abort kept its deals \
             (or had none) goes back",
            before
                .abort_reason
                .as_deref()
                .unwrap_or("aborted before restore was possible")
        )));
    };
    let note = "the thread that held it must still have its files: one that acted on the abort \
                has wiped them, and its next call reports it aborted again";
    if !q.really_do_it {
        return Ok(HttpResponse::Ok().json(Changed {
            action: format!("would restore it to {to}"),
            sector,
            dry_run: true,
            thread: None,
            thread_stopped: false,
            note: Some(format!("{note}; pass --really-do-it to restore")),
        }));
    }
    let (t, at) = (to.clone(), db::now());
    let done = audited(&s, &admin, "sector.restore", &sector, move |c| {
        let done = sector_admin::restore(c, miner, number, at)?;
        let result = Done {
            detail: Some(format!("to {t}")),
            result: "restored".into(),
        };
        Ok((done, done.then_some(result)))
    })
    .await?;
    if !done {
        return Err(ApiError::Conflict(format!(
            "sector {sector} changed meanwhile; look again with `util sealer sectors state`"
        )));
    }
    Ok(HttpResponse::Ok().json(Changed {
        action: format!("restored to {to}"),
        sector,
        dry_run: false,
        thread: None,
        thread_stopped: false,
        note: Some(note.into()),
    }))
}

#[utoipa::path(post, path = "/sectors/{miner}/{number}/rebuild", tag = "sectors", params(("miner" = u64, Path, description = "The miner's actor id"), ("number" = u64, Path, description = "The sector number"), DoIt),
    responses((status = 200, description = "Queued for a rebuild (or, without really_do_it, what would be)", body = Changed)))]
pub async fn rebuild(
    admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<(u64, u64)>,
    q: web::Query<DoIt>,
) -> Result<HttpResponse, ApiError> {
    let (miner, number) = path.into_inner();
    let sector = name(miner, number);
    let before = row(&s, miner, number).await?;
    if before.proof_state.as_deref() != Some("Landed") {
        return Err(ApiError::Conflict(format!(
            "sector {sector} is not proven (state {}): only a proven sector is rebuilt; one \
             still sealing goes on, or is aborted",
            before.state
        )));
    }
    let current =
        s.db.run(move |c| db::rebuild::get(c, miner, number))
            .await?;
    match current {
        Some(r) if r.state == db::rebuild::QUEUED => {
            return Err(ApiError::Conflict(format!(
                "sector {sector} is queued for a rebuild already"
            )))
        }
        Some(r) if r.state == db::rebuild::ALLOCATED => {
            return Err(ApiError::Conflict(format!(
                "sector {sector} is being rebuilt by {}",
                r.owner.as_deref().unwrap_or("a worker without a token")
            )))
        }
        _ => {}
    }
    let kind = if before.snap_state.as_deref() == Some(snap::DONE) {
        "seal it again, then encode its snap-up's deals"
    } else {
        "seal it again"
    };
    if !q.really_do_it {
        return Ok(HttpResponse::Ok().json(Changed {
            action: format!("would queue a rebuild: a `plan = \"rebuild\"` thread will {kind}"),
            sector,
            dry_run: true,
            thread: None,
            thread_stopped: false,
            note: Some("pass --really-do-it to queue it".into()),
        }));
    }
    let at = db::now();
    let done = audited(&s, &admin, "sector.rebuild", &sector, move |c| {
        let done = db::rebuild::queue(c, miner, number, at)?;
        let result = Done {
            detail: None,
            result: "queued".into(),
        };
        Ok((done, done.then_some(result)))
    })
    .await?;
    if !done {
        return Err(ApiError::Conflict(format!(
            "sector {sector} changed meanwhile; look again with `util sealer sectors state`"
        )));
    }
    tracing::info!(%sector, by = %admin.0, "sector queued for a rebuild");
    Ok(HttpResponse::Ok().json(Changed {
        action: format!("queued for a rebuild: a `plan = \"rebuild\"` thread will {kind}"),
        sector,
        dry_run: false,
        thread: None,
        thread_stopped: false,
        note: None,
    }))
}

#[utoipa::path(get, path = "/sectors/{miner}/{number}/export", tag = "sectors", params(("miner" = u64, Path, description = "The miner's actor id"), ("number" = u64, Path, description = "The sector number")),
    responses((status = 200, description = "The sector as damocles-manager's `core.SectorState` JSON (v0.13), whose shape is damocles'", body = Object)))]
pub async fn export(
    _admin: Admin,
    s: web::Data<RestState>,
    path: web::Path<(u64, u64)>,
) -> Result<HttpResponse, ApiError> {
    let (miner, number) = path.into_inner();
    let r = row(&s, miner, number).await?;
    let (deals, unsealing, rebuild) =
        s.db.run(move |c| {
            let rebuild = db::rebuild::get(c, miner, number)?;
            Ok((
                db::deals::of_sector(c, miner, number)?,
                db::unseal::in_progress(c, miner, number)?,
                rebuild.is_some_and(|r| r.state != db::rebuild::DONE),
            ))
        })
        .await?;
    let mut state = sector_json::export(&r, &deals);
    // damocles' marks of work in progress on a sealed sector.
    state.unsealing = unsealing;
    state.need_rebuild = rebuild;
    Ok(HttpResponse::Ok().json(state))
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    #[serde(default)]
    pub really_do_it: bool,
    /// Replace a finished or aborted sector of the same number.
    #[serde(default)]
    pub r#override: bool,
    /// The persist store, when the record names none (damocles' records do not).
    pub store: Option<String>,
}

/// The answer to an import.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Imported {
    pub sector: String,
    pub dry_run: bool,
    /// Where WindowPoSt will prove it.
    pub deadline: i32,
    pub partition: i32,
    /// The record as it is (or would be) written.
    pub import: sector_json::Import,
}

#[utoipa::path(post, path = "/sectors/import", tag = "sectors", params(ImportQuery),
    request_body(content = Object, description = "A sector as damocles-manager's `core.SectorState` JSON (v0.13)"),
    responses((status = 200, description = "Imported (or, without really_do_it, what would be)", body = Imported)))]
pub async fn import(
    admin: Admin,
    s: web::Data<RestState>,
    q: web::Query<ImportQuery>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let st: SectorState = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body is not a sector record (damocles' SectorState JSON, as `util sealer \
             sectors export-json` writes it): {e}"
        ))
    })?;
    let imp = sector_json::check(&st, s.miner, s.proof_type, q.store.as_deref())
        .map_err(ApiError::BadRequest)?;
    // With no [[persist_store]] configured, the mock chain takes any store name.
    let stores = &s.chain.stores;
    if !stores.is_empty() && !stores.iter().any(|p| p.name == imp.persist_store) {
        return Err(ApiError::BadRequest(format!(
            "persist store {:?} is not one of this manager's [[persist_store]]: {}",
            imp.persist_store,
            stores
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let (deadline, partition) = s.chain.placement(imp.number);
    let sector = name(imp.miner, imp.number);
    let (i, replace, at) = (imp.clone(), q.r#override, db::now());
    if !q.really_do_it {
        // Every check the import makes, and nothing written.
        s.db.run(move |c| {
            db::rolled_back(c, |c| {
                sector_admin::import(c, &i, replace, (deadline, partition), at)
            })
        })
        .await?;
    } else {
        audited(&s, &admin, "sector.import", &sector, move |c| {
            sector_admin::import(c, &i, replace, (deadline, partition), at)?;
            let result = Done {
                detail: Some(format!("store {}", i.persist_store)),
                result: if replace {
                    "imported (replacing)"
                } else {
                    "imported"
                }
                .into(),
            };
            Ok(((), Some(result)))
        })
        .await?;
        tracing::info!(%sector, by = %admin.0, "sector imported");
    }
    Ok(HttpResponse::Ok().json(Imported {
        sector,
        dry_run: !q.really_do_it,
        deadline,
        partition,
        import: imp,
    }))
}
