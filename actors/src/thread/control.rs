//! The messages every kind of thread answers, and the handle the supervisor keeps for each,
//! whatever its plan.

use actix::prelude::*;

use super::plan::PlanKind;
use crate::wire::worker_api::ThreadInfo;

/// What the thread is and does, for `worker list`.
#[derive(Message)]
#[rtype(result = "ThreadInfo")]
pub struct GetInfo;

/// An operator's order to a thread.
#[derive(Debug, Clone, PartialEq, Message)]
#[rtype(result = "Result<bool, String>")]
pub enum Control {
    /// Park the thread; `true` when it was not paused yet.
    Pause {
        /// Stop now even inside a step that is not cancellable (the step runs again on resume,
        /// or is dropped by resuming into Aborted), unless the thread holds a WindowPoSt job:
        /// `X-Damocles-Force: true`, sent by the manager when an operator aborts the thread's
        /// sector.
        force: bool,
    },
    /// Leave the parked state, optionally in another state of the thread's plan; `true` when
    /// the thread was parked (or about to be).
    Resume {
        /// `resume --state`: one of the plan's states.
        state: Option<String>,
    },
}

/// What the supervisor and the management API need of a thread.
#[derive(Clone)]
pub struct ThreadHandle {
    /// Asks what the thread is doing.
    pub info: Recipient<GetInfo>,
    /// Pauses and resumes it.
    pub control: Recipient<Control>,
    /// Its plan, shown even when the actor cannot answer.
    pub plan: PlanKind,
}

impl ThreadHandle {
    /// The handle of a running thread actor.
    pub fn of<A>(addr: &Addr<A>, plan: PlanKind) -> Self
    where
        A: Actor<Context = Context<A>> + Handler<GetInfo> + Handler<Control>,
    {
        ThreadHandle {
            info: addr.clone().recipient(),
            control: addr.clone().recipient(),
            plan,
        }
    }
}
