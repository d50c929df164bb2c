//! `damocles-manager daemon run`: opens the database, runs migrations, starts the heartbeat
//! writer, the WindowPoSt job keeper and (mock mode) the deadline clock, and serves `/rpc/v0`
//! (workers) and the REST API (operators) on one listener.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::Context as _;
use damocles_actors::wire::jsonrpc::SERVER_KEEP_ALIVE;
use tracing::{info, warn};

use crate::auth::Authenticator;
use crate::claim_batcher::ClaimBatcher;
use crate::config::{ManagerConfig, DEFAULT_LISTEN};
use crate::db::{Db, DbError, DbSettings};
use crate::deadline_clock::DeadlineClock;
use crate::heartbeat_writer::HeartbeatWriter;
use crate::mock_chain::MockChain;
use crate::rest::{self, RestState};
use crate::rpc::{self, RpcState};
use crate::sched::Scheduler;
use crate::wdpost::JobQueue;
use crate::wdpost_keeper::JobKeeper;
use crate::{db, home, ui, verify};

/// Largest REST body (JSON): anything bigger is refused with 413.
const REST_BODY_LIMIT: usize = 64 << 10;
/// Largest JSON-RPC body of any method (`rpc::body_limit` has each method's).
const RPC_BODY_LIMIT: usize = rpc::MAX_BODY;

pub struct RunOptions {
    pub listen: Option<String>,
    pub mock: bool,
    pub miner: Option<u64>,
    pub sector_size: Option<String>,
}

pub fn db_settings(cfg: &ManagerConfig) -> DbSettings {
    DbSettings {
        url: cfg
            .db
            .url
            .clone()
            .unwrap_or_else(|| home::home().join("damocles.sqlite").display().to_string()),
        min_connections: cfg.db.min_connections.unwrap_or(1),
        max_connections: cfg.db.max_connections.unwrap_or(10),
        idle_timeout: cfg.db.idle_timeout.unwrap_or(Duration::from_secs(600)),
        claim: cfg.db.claim,
    }
}

pub fn open_db(cfg: &ManagerConfig) -> anyhow::Result<Db> {
    let settings = db_settings(cfg);
    std::fs::create_dir_all(home::home())
        .with_context(|| format!("create home {}", home::home().display()))?;
    let db = Db::connect(&settings)?;
    let applied = db.migrate()?;
    info!(backend = db.backend, url = %db::redact(&settings.url), applied = ?applied, "database ready");
    Ok(db)
}

/// Like `open_db`, but waits for a database that is not reachable yet (a manager and its
/// database restarting together); a wrong URL or a failed migration still stops at once.
async fn open_db_waiting(cfg: &ManagerConfig) -> anyhow::Result<Db> {
    loop {
        match open_db(cfg) {
            Ok(db) => return Ok(db),
            // A SQLite file that cannot be opened will not appear by waiting.
            Err(e)
                if matches!(e.downcast_ref::<DbError>(), Some(DbError::Unavailable(_)))
                    && db::backend_of(&db_settings(cfg).url).ok() == Some("mysql") =>
            {
                warn!(error = %e, "database not reachable yet; retrying in 5s");
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

pub async fn run(cfg: ManagerConfig, opts: RunOptions) -> anyhow::Result<()> {
    let mock = opts.mock || cfg.mock.enable.unwrap_or(false);
    let miner = opts.miner.or(cfg.mock.miner).unwrap_or(10000);
    let size = opts
        .sector_size
        .clone()
        .or(cfg.mock.sector_size.clone())
        .unwrap_or_else(|| "2KiB".into());
    let proof_type =
        damocles_proof_types::seal_proof_for_size(&size).map_err(anyhow::Error::msg)?;
    let listen = opts
        .listen
        .clone()
        .or_else(|| std::env::var("DAMOCLES_MANAGER_LISTEN").ok())
        .or(cfg.server.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listener = TcpListener::bind(&listen).with_context(|| format!("listen on {listen}"))?;
    let db = open_db_waiting(&cfg).await?;
    let token = home::ensure_token().context("write the admin token")?;
    info!(
        home = %home::home().display(),
        token_file = %home::token_path().display(),
        listen = %listener.local_addr()?,
        mock,
        miner,
        sector_size = %size,
        "damocles-manager started"
    );
    let sched = Arc::new(Scheduler::new(
        db.clone(),
        cfg.mock.auto_pledge.unwrap_or(true),
    ));
    let chain = MockChain {
        db: db.clone(),
        miner,
        proof_type,
        stores: cfg.persist_store.clone(),
        mock,
        deadlines: cfg.mock.deadlines(),
        partition_sectors: verify::partition_sectors(proof_type)?,
        sched: sched.clone(),
    };
    if mock {
        DeadlineClock {
            db: db.clone(),
            miner,
            proof_type: verify::post_proof_name(proof_type)?,
            deadlines: cfg.mock.deadlines(),
            interval: cfg.mock.deadline_interval(),
            partitions_per_job: cfg.task.partitions_per_job.unwrap_or(0),
            busy: false,
        }
        .start();
    }
    let rules = cfg.task.rules();
    JobKeeper::new(db.clone(), rules.clone()).start();
    crate::retention::Retention::new(db.clone(), cfg.retention.rules()).start();
    let heartbeats = HeartbeatWriter::new(db.clone()).start();
    let auth = Arc::new(Authenticator::new(db.clone(), cfg.auth.workers));
    info!(workers = ?cfg.auth.workers, "worker authentication");
    let rpc_state = web::Data::new(RpcState {
        chain: chain.clone(),
        heartbeats,
        jobs: JobQueue {
            db: db.clone(),
            sched: sched.clone(),
            claims: ClaimBatcher::new(db.clone(), sched.clone()).start(),
        },
        auth: auth.clone(),
    });
    let rest_state = web::Data::new(RestState {
        db,
        token,
        auth,
        worker_timeout: Duration::from_secs(10),
        max_retry: rules.max_retry,
        sched,
        miner,
        proof_type,
        deadlines: cfg.mock.deadlines(),
        chain,
    });
    let max_conn = cfg.server.max_connections.unwrap_or(25_000);
    HttpServer::new(move || {
        App::new()
            .app_data(rpc_state.clone())
            .app_data(rest_state.clone())
            .app_data(web::PayloadConfig::new(REST_BODY_LIMIT))
            .service(
                web::resource("/rpc/v0")
                    .app_data(web::PayloadConfig::new(RPC_BODY_LIMIT))
                    .route(web::post().to(rpc::handle)),
            )
            .route("/ui", web::get().to(ui::to_index))
            .route("/ui/", web::get().to(ui::index))
            .route("/ui/login", web::post().to(ui::login))
            .route("/ui/logout", web::post().to(ui::logout))
            .route("/ui/states", web::get().to(ui::states))
            .route("/ui/{file}", web::get().to(ui::asset))
            .configure(rest::routes)
            .default_service(web::to(|| async {
                HttpResponse::NotFound().json(serde_json::json!({"error": "no such endpoint; see the README for the REST API"}))
            }))
    })
    .max_connections(max_conn)
    .keep_alive(SERVER_KEEP_ALIVE)
    .listen(listener)?
    .run()
    .await?;
    Ok(())
}
