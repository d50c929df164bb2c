//! The `sealer` plan: sector states, the events that move between them and the stage each state
//! leads to. Pure: no I/O, no actix; the thread's steps produce events, this decides.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! states {
    ($($name:ident),* $(,)?) => {
        /// Every sector state damocles knows (the spelling `Persistance` is damocles').
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum State { $($name),* }

        impl State {
            pub const ALL: &'static [State] = &[$(State::$name),*];
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

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        State::ALL
            .iter()
            .copied()
            .find(|st| st.name() == s)
            .ok_or_else(|| format!("unknown state {s:?}"))
    }
}

/// The states the sealer plan handles, in pipeline order.
pub const SEALER_STATES: &[State] = &[
    State::Empty,
    State::Allocated,
    State::DealsAcquired,
    State::PieceAdded,
    State::TreeDBuilt,
    State::TicketAssigned,
    State::PC1Done,
    State::PC2Done,
    State::PCSubmitted,
    State::PCLanded,
    State::Persisted,
    State::PersistanceSubmitted,
    State::SeedAssigned,
    State::C1Done,
    State::C2Done,
    State::ProofSubmitted,
    State::Finished,
    State::Aborted,
];

/// Parses a `resume --state` argument for the sealer plan; the error lists the valid names.
pub fn parse_resume_state(s: &str) -> Result<State, String> {
    match State::from_str(s) {
        Ok(st) if SEALER_STATES.contains(&st) => Ok(st),
        Ok(st) => Err(format!(
            "state {st} is not handled by the sealer plan; valid states: {}",
            valid_state_list()
        )),
        Err(_) => Err(format!(
            "unknown state {s:?}; valid states: {}",
            valid_state_list()
        )),
    }
}

fn valid_state_list() -> String {
    SEALER_STATES
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What moved a sector from one state to the next (damocles' event names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
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
}

/// The sealer plan's transition table: the state an event leads to from `from`, if allowed.
pub fn next_state(from: State, event: EventKind) -> Option<State> {
    use EventKind as E;
    use State as S;
    let to = match (from, event) {
        (S::Empty, E::Allocate) => S::Allocated,
        (S::Allocated, E::AcquireDeals) => S::DealsAcquired,
        (S::DealsAcquired, E::AddPiece) => S::PieceAdded,
        (S::PieceAdded, E::BuildTreeD) => S::TreeDBuilt,
        (S::TreeDBuilt, E::AssignTicket) => S::TicketAssigned,
        (S::TicketAssigned, E::PC1) => S::PC1Done,
        (S::PC1Done, E::PC2) => S::PC2Done,
        (S::PC2Done, E::SubmitPC) => S::PCSubmitted,
        (S::PCSubmitted, E::ReSubmitPC) => S::PC2Done,
        (S::PCSubmitted, E::CheckPC) => S::PCLanded,
        (S::PCLanded, E::Persist) => S::Persisted,
        (S::Persisted, E::SubmitPersistance) => S::PersistanceSubmitted,
        (S::PersistanceSubmitted, E::AssignSeed) => S::SeedAssigned,
        (S::SeedAssigned, E::C1) => S::C1Done,
        (S::C1Done, E::C2) => S::C2Done,
        (S::C2Done, E::SubmitProof) => S::ProofSubmitted,
        (S::ProofSubmitted, E::ReSubmitProof) => S::C2Done,
        (S::ProofSubmitted, E::Finish) => S::Finished,
        _ => return None,
    };
    Some(to)
}

/// What the thread will do next in `state` (the `job_stage` column).
pub fn stage(state: State) -> Option<&'static str> {
    use State as S;
    Some(match state {
        S::Empty | S::Finished | S::Aborted => return None,
        S::Allocated => "AcquireDeals",
        S::DealsAcquired => "AddPieces",
        S::PieceAdded | S::SnapPieceAdded => "TreeD",
        S::TreeDBuilt => "AssignTicket",
        S::TicketAssigned => "PC1",
        S::PC1Done => "PC2",
        S::SyntheticPoRepNeeded => "SyntheticPoRep",
        S::PC2Done => "SubmitPreCommit",
        S::PCSubmitted => "WaitPCLanded",
        S::PCLanded | S::SnapProved | S::SnapDone => "PersistFiles",
        S::Persisted => "SubmitPersisted",
        S::PersistanceSubmitted => "WaitSeed",
        S::SeedAssigned => "C1",
        S::C1Done => "C2",
        S::C2Done => "SubmitProof",
        S::ProofSubmitted => "WaitProofLanded",
        S::SnapEncoded => "SnapProve",
        S::SealedChecked => "PrepareForSnapup",
        S::SnapTreeDBuilt => "SnapEncode",
        S::Unsealed => "UploadPiece",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind as E;
    use State as S;

    #[test]
    fn the_happy_path_walks_every_sealer_state_in_order() {
        let path = [
            E::Allocate,
            E::AcquireDeals,
            E::AddPiece,
            E::BuildTreeD,
            E::AssignTicket,
            E::PC1,
            E::PC2,
            E::SubmitPC,
            E::CheckPC,
            E::Persist,
            E::SubmitPersistance,
            E::AssignSeed,
            E::C1,
            E::C2,
            E::SubmitProof,
            E::Finish,
        ];
        let mut state = S::Empty;
        let mut seen = vec![state];
        for e in path {
            state = next_state(state, e).unwrap_or(S::Aborted);
            seen.push(state);
        }
        assert_eq!(seen, SEALER_STATES[..SEALER_STATES.len() - 1].to_vec());
    }

    #[test]
    fn resubmits_go_back_and_wrong_events_are_refused() {
        let table = [
            (S::PCSubmitted, E::ReSubmitPC, Some(S::PC2Done)),
            (S::ProofSubmitted, E::ReSubmitProof, Some(S::C2Done)),
            (S::Empty, E::PC1, None),
            (S::C1Done, E::C1, None),
            (S::Finished, E::Finish, None),
            (S::Aborted, E::Allocate, None),
        ];
        for (from, event, want) in table {
            assert_eq!(next_state(from, event), want, "{from} --{event:?}-->");
        }
    }

    #[test]
    fn stages_name_the_next_step() {
        let table = [
            (S::Empty, None),
            (S::Allocated, Some("AcquireDeals")),
            (S::TicketAssigned, Some("PC1")),
            (S::C1Done, Some("C2")),
            (S::PersistanceSubmitted, Some("WaitSeed")),
            (S::Finished, None),
        ];
        for (state, want) in table {
            assert_eq!(stage(state), want, "{state}");
        }
    }

    #[test]
    fn resume_states_are_checked_against_the_plan() {
        assert_eq!(parse_resume_state("PC1Done"), Ok(S::PC1Done));
        assert_eq!(parse_resume_state("Aborted"), Ok(S::Aborted));
        let bogus = parse_resume_state("Bogus").unwrap_err();
        assert!(bogus.contains("unknown state \"Bogus\""), "{bogus}");
        assert!(
            bogus.contains("PC1Done") && bogus.contains("Finished"),
            "{bogus}"
        );
        let snap = parse_resume_state("SnapEncoded").unwrap_err();
        assert!(snap.contains("not handled by the sealer plan"), "{snap}");
        assert!(
            parse_resume_state("pc1done").is_err(),
            "names are case-sensitive"
        );
    }
}
