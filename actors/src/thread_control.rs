//! The messages every kind of thread answers (a sealer thread, a WindowPoSt slot), and the
//! handle the supervisor keeps for each, whatever its kind.

use actix::prelude::*;

use crate::wire::worker_api::ThreadInfo;

#[derive(Message)]
#[rtype(result = "ThreadInfo")]
pub struct GetInfo;

/// Pause the thread; `true` when it was not paused yet.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Pause;

/// Resume a paused thread, optionally from another state of its plan.
#[derive(Message)]
#[rtype(result = "Result<bool, String>")]
pub struct Resume {
    pub state: Option<String>,
}

/// What the supervisor and the management API need of a thread.
#[derive(Clone)]
pub struct ThreadHandle {
    pub info: Recipient<GetInfo>,
    pub pause: Recipient<Pause>,
    pub resume: Recipient<Resume>,
}

impl ThreadHandle {
    pub fn of<A>(addr: &Addr<A>) -> Self
    where
        A: Actor<Context = Context<A>> + Handler<GetInfo> + Handler<Pause> + Handler<Resume>,
    {
        ThreadHandle {
            info: addr.clone().recipient(),
            pause: addr.clone().recipient(),
            resume: addr.clone().recipient(),
        }
    }
}
