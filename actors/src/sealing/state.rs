//! The names of a sector's life, shared by every sector plan: its states and the events that move
//! it between them (damocles' names, as they travel in `ReportState`). Which state leads where
//! is each plan's table (`sealing::sealer`).

use serde::{Deserialize, Serialize};

use crate::by_name;

macro_rules! states {
    ($($name:ident),* $(,)?) => {
        /// Every sector state damocles knows (the spelling `Persistance` is damocles').
        #[allow(missing_docs)] // damocles' names say it
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum State { $($name),* }

        impl State {
            /// Every state, in declaration order.
            pub const ALL: &'static [State] = &[$(State::$name),*];
            /// The state's name, as damocles spells it.
            pub fn name(self) -> &'static str {
                match self { $(State::$name => stringify!($name)),* }
            }
        }
    };
}

states!(
    Empty,
    Allocated,
    DealsAcquired,
    PieceAdded,
    TreeDBuilt,
    TicketAssigned,
    PC1Done,
    PC2Done,
    SyntheticPoRepNeeded,
    PCSubmitted,
    PCLanded,
    Persisted,
    PersistanceSubmitted,
    SeedAssigned,
    C1Done,
    C2Done,
    ProofSubmitted,
    Finished,
    Aborted,
    SnapEncoded,
    SnapProved,
    SealedChecked,
    SnapPieceAdded,
    SnapTreeDBuilt,
    SnapDone,
    Unsealed,
);

by_name!(State, "state");

macro_rules! events {
    ($($name:ident),* $(,)?) => {
        /// What moved a sector from one state to the next (damocles' event names, as they
        /// travel in `ReportState`).
        #[allow(missing_docs)] // damocles' names say it
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum EventKind { $($name),* }

        impl EventKind {
            /// Every event.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$name),*];
            /// The event's name, as damocles spells it.
            pub fn name(self) -> &'static str {
                match self { $(EventKind::$name => stringify!($name)),* }
            }
        }
    };
}

events!(
    Allocate,
    AcquireDeals,
    AddPiece,
    BuildTreeD,
    AssignTicket,
    PC1,
    PC2,
    SubmitPC,
    ReSubmitPC,
    CheckPC,
    Persist,
    SubmitPersistance,
    AssignSeed,
    C1,
    C2,
    SubmitProof,
    ReSubmitProof,
    Finish,
    AllocatedSnapUpSector,
    SnapEncode,
    SnapProve,
    RePersist,
    AllocatedRebuildSector,
    CheckSealed,
    SkipSnap,
    AllocatedUnsealSector,
    // Damocles' `UnsealDone`, which it prints (and reports) as `Unsealed`.
    Unsealed,
    UploadPieceDone,
);

by_name!(EventKind, "event");
