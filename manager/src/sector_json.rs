//! `util sealer sectors export-json` / `import-json`: one sector in damocles-manager's own
//! `core.SectorState` JSON shape (v0.13), so a sector moves either way between a damocles
//! cluster and ours. What damocles keeps outside that record (the persist store lives in its
//! sector index) travels in `DamoclesRs`, a field damocles ignores when it reads the file.

use damocles_actors::wire::commcid;
use damocles_actors::wire::go_json::null_as_default;
use damocles_actors::wire::hex;
use damocles_actors::wire::venus::{
    Cid, DealInfo, PieceInfo, ReportStateReq, SectorId, SectorPiece, SectorPublicInfo,
    SectorStateChange, Seed, Ticket, WorkerIdentifier,
};
use serde::{Deserialize, Serialize};

use crate::db::deals::DealRow;
use crate::db::sectors::SectorRow;
use crate::mock_chain::market::sector_piece;

/// damocles' `core.SectorState`. Fields Go writes with `omitempty` are left out when empty;
/// the others are always written, `null` when unset, as Go does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SectorState {
    #[serde(rename = "ID")]
    pub id: SectorId,
    /// The registered seal proof.
    pub sector_type: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Ticket>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<Seed>,
    /// Pieces of damocles before v0.9 (`LegacyDealInfo`); read when `Pieces` is empty.
    #[serde(rename = "Deals", default, deserialize_with = "null_as_default")]
    pub legacy_deals: Vec<LegacyDeal>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub pieces: Vec<SectorPiece>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre: Option<PreCommitInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<ProofInfo>,
    #[serde(default)]
    pub message_info: MessageInfo,
    #[serde(default)]
    pub terminate_info: TerminateInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_state: Option<ReportStateReq>,
    #[serde(default)]
    pub finalized: bool,
    #[serde(default)]
    pub removed: bool,
    #[serde(default)]
    pub abort_reason: String,
    #[serde(default)]
    pub upgraded: bool,
    #[serde(default)]
    pub upgrade_public: Option<SectorPublicInfo>,
    #[serde(default)]
    pub upgraded_info: Option<UpgradedInfo>,
    #[serde(rename = "UpgradeMessageID", default)]
    pub upgrade_message_id: Option<String>,
    #[serde(default)]
    pub upgrade_landed_epoch: Option<i64>,
    #[serde(default)]
    pub imported: bool,
    #[serde(default)]
    pub need_rebuild: bool,
    #[serde(default)]
    pub unsealing: bool,
    /// What our manager adds; damocles ignores it.
    #[serde(
        rename = "DamoclesRs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ours: Option<Extension>,
}

/// damocles' `LegacyDealInfo`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LegacyDeal {
    #[serde(rename = "ID")]
    pub id: u64,
    #[serde(rename = "PayloadSize", default)]
    pub payload_size: u64,
    #[serde(rename = "Piece")]
    pub piece: LegacyPiece,
}

/// damocles' `PieceInfo` of a legacy deal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LegacyPiece {
    pub size: u64,
    #[serde(default)]
    pub offset: u64,
    pub cid: Cid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PreCommitInfo {
    pub comm_r: Cid,
    pub comm_d: Cid,
    pub ticket: Ticket,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProofInfo {
    #[serde(with = "damocles_actors::wire::go_json::b64")]
    pub proof: Vec<u8>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MessageInfo {
    #[serde(default)]
    pub pre_commit_cid: Option<Cid>,
    #[serde(default)]
    pub commit_cid: Option<Cid>,
    #[serde(default)]
    pub need_send: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TerminateInfo {
    #[serde(default)]
    pub terminate_cid: Option<Cid>,
    #[serde(default)]
    pub terminated_at: i64,
    #[serde(default)]
    pub added_height: i64,
}

/// damocles' `SectorUpgradedInfo`: the snap-up's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpgradedInfo {
    pub access_instance: String,
    #[serde(rename = "SealedCID")]
    pub sealed_cid: Cid,
    #[serde(rename = "UnsealedCID")]
    pub unsealed_cid: Cid,
    #[serde(with = "damocles_actors::wire::go_json::b64")]
    pub proof: Vec<u8>,
}

/// Our additions.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Extension {
    /// The persist store of the sealed file and cache.
    #[serde(default)]
    pub persist_store: Option<String>,
}

fn b64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .unwrap_or_default()
}

fn cid_of(hex_comm: Option<&str>, kind: fn(&[u8; 32]) -> String) -> Option<Cid> {
    hex_comm
        .and_then(hex::decode32)
        .map(|c| Cid { root: kind(&c) })
}

/// The record of one of our sectors, with its deals.
pub fn export(row: &SectorRow, deals: &[DealRow]) -> SectorState {
    let ticket = row.ticket.as_deref().map(|t| Ticket {
        ticket: b64(t),
        epoch: 0,
    });
    let pre = match (
        cid_of(row.comm_r.as_deref(), commcid::sealed_cid),
        cid_of(row.comm_d.as_deref(), commcid::piece_cid),
        &ticket,
    ) {
        (Some(comm_r), Some(comm_d), Some(t)) => Some(PreCommitInfo {
            comm_r,
            comm_d,
            ticket: t.clone(),
        }),
        _ => None,
    };
    let upgraded = row.snap_state.as_deref() == Some(crate::db::snap::DONE);
    let upgraded_info = match (
        upgraded,
        cid_of(row.update_comm_r.as_deref(), commcid::sealed_cid),
        cid_of(row.update_comm_d.as_deref(), commcid::piece_cid),
    ) {
        (true, Some(sealed_cid), Some(unsealed_cid)) => Some(UpgradedInfo {
            access_instance: row.update_store.clone().unwrap_or_default(),
            sealed_cid,
            unsealed_cid,
            proof: b64(row.update_proof.as_deref().unwrap_or_default()),
        }),
        _ => None,
    };
    let upgrade_public = upgraded
        .then(|| row.comm_r.as_deref().and_then(hex::decode32))
        .flatten()
        .map(|c| SectorPublicInfo {
            comm_r: c,
            sealed_cid: Cid {
                root: commcid::sealed_cid(&c),
            },
            activation: 0,
            expiration: 0,
        });
    SectorState {
        id: SectorId {
            miner: row.miner_id as u64,
            number: row.sector_number as u64,
        },
        sector_type: row.proof_type as u64,
        seed: row.seed.as_deref().map(|s| Seed {
            seed: b64(s),
            epoch: 0,
        }),
        ticket,
        legacy_deals: Vec::new(),
        pieces: deals.iter().map(sector_piece).collect(),
        pre,
        proof: row.proof.as_deref().map(|p| ProofInfo { proof: b64(p) }),
        message_info: MessageInfo::default(),
        terminate_info: TerminateInfo::default(),
        latest_state: Some(ReportStateReq {
            worker: WorkerIdentifier {
                instance: row.worker_name.clone().unwrap_or_default(),
                location: row.location.clone().unwrap_or_default(),
            },
            state_change: SectorStateChange {
                prev: String::new(),
                next: row.state.clone(),
                event: String::new(),
            },
            failure: None,
        }),
        finalized: row.proof_state.as_deref() == Some("Landed"),
        removed: false,
        abort_reason: row.abort_reason.clone().unwrap_or_default(),
        upgraded,
        upgrade_public,
        upgraded_info,
        upgrade_message_id: None,
        upgrade_landed_epoch: None,
        imported: row.imported_at.is_some(),
        need_rebuild: false,
        unsealing: false,
        ours: Some(Extension {
            persist_store: row.persist_store.clone(),
        }),
    }
}

/// A sector to import, checked: a finalized (proven) sector of this chain.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Import {
    pub miner: u64,
    pub number: u64,
    pub proof_type: u64,
    /// Base64, as our rows keep them.
    pub ticket: String,
    pub seed: Option<String>,
    pub proof: String,
    /// Hex.
    pub comm_r: String,
    pub comm_d: String,
    pub persist_store: String,
    /// The worker and location damocles last saw it at (for the operator only).
    pub last_worker: Option<String>,
    pub last_location: Option<String>,
    pub update: Option<ImportedUpdate>,
    pub pieces: Vec<ImportedPiece>,
}

/// A snap-up's result, imported.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportedUpdate {
    pub comm_r: String,
    pub comm_d: String,
    pub store: String,
    pub proof: String,
}

/// A deal's piece, imported (the piece's bytes stay where they were).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportedPiece {
    pub deal_id: u64,
    pub piece_cid: String,
    pub piece_size: u64,
    pub payload_size: u64,
    pub offset: u64,
    pub client: String,
    pub start_epoch: i64,
    pub end_epoch: i64,
}

fn enc64(v: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(v)
}

/// What this chain accepts of a record: `miner` and the sector size of `proof_type` are the
/// chain's; `store` stands in for a persist store the record does not name.
pub fn check(
    st: &SectorState,
    miner: u64,
    proof_type: u64,
    store: Option<&str>,
) -> Result<Import, String> {
    use damocles_actors::wire::seal_proof::sector_size;
    let id = st.id;
    let name = format!("s-t0{}-{}", id.miner, id.number);
    if id.miner != miner {
        return Err(format!(
            "{name} is a sector of miner t0{}; this manager's chain serves t0{miner} only",
            id.miner
        ));
    }
    let (theirs, ours) = (sector_size(st.sector_type), sector_size(proof_type));
    if theirs.is_none() || theirs != ours {
        return Err(format!(
            "{name} has seal proof {} ({}); this chain seals {} sectors (proof {proof_type})",
            st.sector_type,
            theirs.map_or("unknown".to_string(), |s| format!("{s} bytes")),
            ours.map_or("unknown".to_string(), |s| format!("{s}-byte")),
        ));
    }
    if st.removed || !st.abort_reason.is_empty() {
        return Err(format!(
            "{name} was {} on its cluster: only a live, proven sector can be imported",
            if st.removed { "removed" } else { "aborted" }
        ));
    }
    let (Some(pre), Some(proof), Some(ticket), true) =
        (&st.pre, &st.proof, &st.ticket, st.finalized)
    else {
        let at = st
            .latest_state
            .as_ref()
            .map_or("-".to_string(), |l| l.state_change.next.clone());
        return Err(format!(
            "{name} is not finalized (its last state is {at}): only a proven sector (Finalized, \
             with Pre, Proof and Ticket) can be imported; finish it on its own cluster first"
        ));
    };
    let comm = |what: &str, c: &Cid, kind: commcid::Commitment| {
        commcid::decode(kind, &c.root)
            .map(|b| hex::encode(&b))
            .map_err(|e| format!("{name}: {what} {:?} is not a commitment CID: {e}", c.root))
    };
    let persist_store = st
        .ours
        .as_ref()
        .and_then(|o| o.persist_store.clone())
        .or(store.map(String::from))
        .ok_or_else(|| {
            format!(
                "{name}: the record names no persist store (damocles keeps it in its sector \
                 index): give the store holding its sealed file and cache with --store <name>"
            )
        })?;
    let update = match (&st.upgraded, &st.upgraded_info) {
        (false, _) => None,
        (true, None) => {
            return Err(format!(
                "{name} is Upgraded but has no UpgradedInfo (its update's CIDs, store and proof)"
            ))
        }
        (true, Some(u)) => Some(ImportedUpdate {
            comm_r: comm(
                "UpgradedInfo.SealedCID",
                &u.sealed_cid,
                commcid::Commitment::Sealed,
            )?,
            comm_d: comm(
                "UpgradedInfo.UnsealedCID",
                &u.unsealed_cid,
                commcid::Commitment::Unsealed,
            )?,
            store: u.access_instance.clone(),
            proof: enc64(&u.proof),
        }),
    };
    let pieces = if st.pieces.is_empty() {
        st.legacy_deals
            .iter()
            .filter(|d| d.id != 0)
            .map(|d| ImportedPiece {
                deal_id: d.id,
                piece_cid: d.piece.cid.root.clone(),
                piece_size: d.piece.size,
                payload_size: d.payload_size,
                offset: d.piece.offset,
                client: String::new(),
                start_epoch: 0,
                end_epoch: 0,
            })
            .collect()
    } else {
        st.pieces
            .iter()
            .filter_map(|p| p.deal_info.as_ref().map(|d| piece_of(&p.piece, d)))
            .filter(|p| p.deal_id != 0)
            .collect()
    };
    Ok(Import {
        miner: id.miner,
        number: id.number,
        proof_type: st.sector_type,
        ticket: enc64(&ticket.ticket),
        seed: st.seed.as_ref().map(|s| enc64(&s.seed)),
        proof: enc64(&proof.proof),
        comm_r: comm("Pre.CommR", &pre.comm_r, commcid::Commitment::Sealed)?,
        comm_d: comm("Pre.CommD", &pre.comm_d, commcid::Commitment::Unsealed)?,
        persist_store,
        last_worker: st.latest_state.as_ref().map(|l| l.worker.instance.clone()),
        last_location: st.latest_state.as_ref().map(|l| l.worker.location.clone()),
        update,
        pieces,
    })
}

fn piece_of(p: &PieceInfo, d: &DealInfo) -> ImportedPiece {
    ImportedPiece {
        deal_id: d.deal_id,
        piece_cid: p.piece_cid.root.clone(),
        piece_size: p.size,
        payload_size: d.payload_size,
        offset: d.offset,
        client: d.client.clone(),
        start_epoch: d.start_epoch,
        end_epoch: d.end_epoch,
    }
}

#[cfg(test)]
mod tests;
