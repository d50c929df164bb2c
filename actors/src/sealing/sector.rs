//! The record a sector thread keeps, persisted in the thread's location so a restarted worker
//! carries on where it stopped. Each step fills in what it produced.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::failure::Failure;
use super::state::State;
pub use crate::wire::processor::PieceInfo;
use crate::wire::venus::{AllocatedSector, SectorId, SectorPiece, Seed, Ticket};

/// A sector thread's record: the state and everything the steps produced so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sector {
    /// Where the sector is (none: `Empty`).
    pub state: Option<State>,
    /// Temporary failures retried so far; damocles keeps it for the sector's whole life.
    pub retry: u32,
    /// The sector the manager gave, with its proof type.
    pub allocated: Option<AllocatedSector>,
    /// The deals' pieces the manager put in it (none for CC), in sector order.
    #[serde(default)]
    pub deals: Vec<SectorPiece>,
    /// Its pieces as written: the deals', then zero fillers (one zero piece for CC).
    pub pieces: Vec<PieceInfo>,
    /// Its data commitment, from TreeD or PC2.
    pub comm_d: Option<[u8; 32]>,
    /// The ticket PC1 sealed with.
    pub ticket: Option<Ticket>,
    /// PC1's output, for PC2.
    pub pc1_out: Option<Value>,
    /// Its replica commitment, from PC2.
    pub comm_r: Option<[u8; 32]>,
    /// The store it was persisted to.
    pub persist_instance: Option<String>,
    /// The seed C1 proves with.
    pub seed: Option<Seed>,
    /// C1's output, for C2.
    pub c1_out: Option<Value>,
    /// The PoRep proof, from C2.
    pub proof: Option<Vec<u8>>,
    /// Snap-up: the proven CC sector's replica that the deals are encoded into.
    #[serde(default)]
    pub snap_key: Option<SnapKey>,
    /// Snap-up: the updated replica's commitments, from `snap_encode`.
    #[serde(default)]
    pub update: Option<UpdateCommitments>,
    /// Why the sector is being aborted, for `ReportAborted`.
    pub abort_reason: Option<String>,
    /// Rebuild: what the chain knows of the sector, and the deals of its snap-up if it had one.
    #[serde(default)]
    pub rebuild: Option<RebuildOf>,
    /// Unseal: the piece to regenerate and where the sealed replica is.
    #[serde(default)]
    pub unseal: Option<UnsealOf>,
}

/// An unseal's piece.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsealOf {
    /// The piece.
    pub piece_cid: String,
    /// Where it starts in the sector, in unpadded bytes.
    pub offset: u64,
    /// Its unpadded size.
    pub size: u64,
    /// The sector's data commitment.
    pub comm_d: [u8; 32],
    /// The persist store holding the replica (the updated one for a snapped sector).
    pub access_instance: String,
    /// A snapped sector: where its sector key is, decoded against.
    #[serde(default)]
    pub upgrade: Option<crate::wire::venus::UnsealUpgrade>,
}

/// A rebuild's target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebuildOf {
    /// The replica commitment on chain: the sealing must make this one again.
    pub comm_r: [u8; 32],
    /// The deals its snap-up encoded (none: it was not snapped up).
    pub snap_deals: Vec<SectorPiece>,
}

/// The replica a snap-up starts from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapKey {
    /// Its replica commitment.
    pub comm_r: [u8; 32],
    /// The persist store that holds its sealed file and cache; empty for a rebuild, whose
    /// sealed file and cache are in its own location.
    pub access_instance: String,
}

/// A snap-up's new commitments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateCommitments {
    /// The updated replica's.
    pub comm_r_new: [u8; 32],
    /// The deal data's.
    pub comm_d_new: [u8; 32],
}

impl Sector {
    /// The state (`Empty` when none).
    pub fn state(&self) -> State {
        self.state.unwrap_or(State::Empty)
    }

    /// The sector's id, once allocated.
    pub fn id(&self) -> Option<SectorId> {
        self.allocated.as_ref().map(|a| a.id)
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
