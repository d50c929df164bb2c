//! The record a sealing thread keeps for its sector, persisted in the thread's location so a
//! restarted worker carries on where it stopped. Events carry the data a step produced.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::failure::Failure;
use super::plan::{next_state, EventKind, State};
pub use crate::wire::processor::PieceInfo;
use crate::wire::venus::{AllocatedSector, SectorId, Seed, Ticket};

/// What a step produced; applying it moves the sector to the next state.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Allocate(AllocatedSector),
    AcquireDeals,
    AddPiece(Vec<PieceInfo>),
    BuildTreeD { comm_d: [u8; 32] },
    AssignTicket(Ticket),
    PC1(Value),
    PC2 { comm_r: [u8; 32], comm_d: [u8; 32] },
    SubmitPC,
    ReSubmitPC,
    CheckPC,
    Persist { instance: String },
    SubmitPersistance,
    AssignSeed(Seed),
    C1(Value),
    C2 { proof: Vec<u8> },
    SubmitProof,
    ReSubmitProof,
    Finish,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        use EventKind as K;
        match self {
            Event::Allocate(_) => K::Allocate,
            Event::AcquireDeals => K::AcquireDeals,
            Event::AddPiece(_) => K::AddPiece,
            Event::BuildTreeD { .. } => K::BuildTreeD,
            Event::AssignTicket(_) => K::AssignTicket,
            Event::PC1(_) => K::PC1,
            Event::PC2 { .. } => K::PC2,
            Event::SubmitPC => K::SubmitPC,
            Event::ReSubmitPC => K::ReSubmitPC,
            Event::CheckPC => K::CheckPC,
            Event::Persist { .. } => K::Persist,
            Event::SubmitPersistance => K::SubmitPersistance,
            Event::AssignSeed(_) => K::AssignSeed,
            Event::C1(_) => K::C1,
            Event::C2 { .. } => K::C2,
            Event::SubmitProof => K::SubmitProof,
            Event::ReSubmitProof => K::ReSubmitProof,
            Event::Finish => K::Finish,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sector {
    pub state: Option<State>,
    /// Temporary failures retried so far; damocles keeps it for the sector's whole life.
    pub retry: u32,
    pub allocated: Option<AllocatedSector>,
    pub pieces: Vec<PieceInfo>,
    pub comm_d: Option<[u8; 32]>,
    pub ticket: Option<Ticket>,
    pub pc1_out: Option<Value>,
    pub comm_r: Option<[u8; 32]>,
    pub persist_instance: Option<String>,
    pub seed: Option<Seed>,
    pub c1_out: Option<Value>,
    pub proof: Option<Vec<u8>>,
    /// Why the sector is being aborted, for `ReportAborted`.
    pub abort_reason: Option<String>,
}

impl Sector {
    pub fn state(&self) -> State {
        self.state.unwrap_or(State::Empty)
    }

    pub fn id(&self) -> Option<SectorId> {
        self.allocated.as_ref().map(|a| a.id)
    }

    /// Applies `event`: checks the transition, stores the event's data, returns the new state.
    pub fn apply(&mut self, event: Event) -> Result<State, Failure> {
        let from = self.state();
        let to = next_state(from, event.kind()).ok_or_else(|| {
            Failure::critical(format!(
                "event {:?} is not allowed in state {from}",
                event.kind()
            ))
        })?;
        match event {
            Event::Allocate(a) => self.allocated = Some(a),
            Event::AddPiece(p) => self.pieces = p,
            Event::BuildTreeD { comm_d } => self.comm_d = Some(comm_d),
            Event::AssignTicket(t) => self.ticket = Some(t),
            Event::PC1(out) => self.pc1_out = Some(out),
            Event::PC2 { comm_r, comm_d } => {
                self.comm_r = Some(comm_r);
                // PC1's output stays: an operator may resume from PC1Done.
                self.comm_d = Some(comm_d);
            }
            Event::Persist { instance } => self.persist_instance = Some(instance),
            Event::AssignSeed(s) => self.seed = Some(s),
            Event::C1(out) => self.c1_out = Some(out),
            Event::C2 { proof } => self.proof = Some(proof),
            Event::AcquireDeals
            | Event::SubmitPC
            | Event::ReSubmitPC
            | Event::CheckPC
            | Event::SubmitPersistance
            | Event::SubmitProof
            | Event::ReSubmitProof
            | Event::Finish => {}
        }
        self.state = Some(to);
        Ok(to)
    }

    /// `resume --state`: jump to a state chosen by an operator. Setting the current state again
    /// would loop forever, so it is refused (damocles does the same).
    pub fn set_state(&mut self, to: State) -> Result<(), Failure> {
        if to == self.state() && to != State::Empty {
            return Err(Failure::critical(format!(
                "state unchanged ({to}), may enter an infinite loop"
            )));
        }
        self.state = Some(to);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocated() -> AllocatedSector {
        AllocatedSector {
            id: SectorId {
                miner: 10000,
                number: 7,
            },
            proof_type: 5,
        }
    }

    #[test]
    fn apply_stores_event_data_and_moves_on() {
        let mut s = Sector::default();
        assert_eq!(s.apply(Event::Allocate(allocated())), Ok(State::Allocated));
        assert_eq!(
            s.id(),
            Some(SectorId {
                miner: 10000,
                number: 7
            })
        );
        assert_eq!(s.apply(Event::AcquireDeals), Ok(State::DealsAcquired));
        let piece = PieceInfo {
            size: 2032,
            comm_p: [1; 32],
        };
        assert_eq!(
            s.apply(Event::AddPiece(vec![piece.clone()])),
            Ok(State::PieceAdded)
        );
        assert_eq!(s.pieces, vec![piece]);
    }

    #[test]
    fn apply_refuses_an_event_out_of_order_and_keeps_the_state() {
        let mut s = Sector::default();
        let err = s.apply(Event::C2 { proof: vec![1] }).unwrap_err();
        assert_eq!(err.level, super::super::failure::Level::Critical);
        assert_eq!(s.state(), State::Empty);
        assert_eq!(s.proof, None);
    }

    #[test]
    fn outputs_stay_so_an_operator_can_resume_from_an_earlier_state() {
        let mut s = Sector {
            state: Some(State::PC1Done),
            pc1_out: Some(Value::from(1)),
            ..Default::default()
        };
        s.apply(Event::PC2 {
            comm_r: [2; 32],
            comm_d: [3; 32],
        })
        .unwrap();
        assert_eq!(
            (s.pc1_out.clone(), s.comm_r),
            (Some(Value::from(1)), Some([2; 32]))
        );
        s.state = Some(State::C1Done);
        s.c1_out = Some(Value::from(2));
        s.apply(Event::C2 { proof: vec![9] }).unwrap();
        assert_eq!(
            (s.c1_out.clone(), s.proof.clone()),
            (Some(Value::from(2)), Some(vec![9]))
        );
    }

    #[test]
    fn set_state_refuses_the_current_state() {
        let mut s = Sector {
            state: Some(State::C1Done),
            ..Default::default()
        };
        assert!(s.set_state(State::C1Done).is_err());
        assert!(s.set_state(State::PC1Done).is_ok());
        assert_eq!(s.state(), State::PC1Done);
    }
}
