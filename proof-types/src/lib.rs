//! The proof types both binaries name, and the one place they meet filecoin-proofs-api's enums:
//! seal proofs travel as damocles' integers (`5` is 2KiB V1_1), WindowPoSt proofs as damocles'
//! names (`StackedDrgWindow2KiBV1_2`). The worker proves with them, the manager verifies with
//! them; neither maps them on its own.
//!
//! Architecture invariant: this is the only crate besides the binaries that depends on the
//! proofs library; `damocles-actors` stays free of it.
#![warn(missing_docs)]

use std::io::Read;

use damocles_actors::size::parse_size;
use damocles_actors::wire::seal_proof;
pub use filecoin_proofs_api::{RegisteredPoStProof, RegisteredSealProof, RegisteredUpdateProof};

/// The seal proofs the mock chain hands out (V1_1), by their wire integer.
const SEAL_PROOFS: [(u64, RegisteredSealProof); 5] = [
    (5, RegisteredSealProof::StackedDrg2KiBV1_1),
    (6, RegisteredSealProof::StackedDrg8MiBV1_1),
    (7, RegisteredSealProof::StackedDrg512MiBV1_1),
    (8, RegisteredSealProof::StackedDrg32GiBV1_1),
    (9, RegisteredSealProof::StackedDrg64GiBV1_1),
];

/// The current WindowPoSt proofs, one per sector size, with their wire names.
const WINDOW_POSTS: [(&str, RegisteredPoStProof); 5] = [
    (
        "StackedDrgWindow2KiBV1_2",
        RegisteredPoStProof::StackedDrgWindow2KiBV1_2,
    ),
    (
        "StackedDrgWindow8MiBV1_2",
        RegisteredPoStProof::StackedDrgWindow8MiBV1_2,
    ),
    (
        "StackedDrgWindow512MiBV1_2",
        RegisteredPoStProof::StackedDrgWindow512MiBV1_2,
    ),
    (
        "StackedDrgWindow32GiBV1_2",
        RegisteredPoStProof::StackedDrgWindow32GiBV1_2,
    ),
    (
        "StackedDrgWindow64GiBV1_2",
        RegisteredPoStProof::StackedDrgWindow64GiBV1_2,
    ),
];

/// The seal proof of a wire integer.
pub fn seal_proof(code: u64) -> Result<RegisteredSealProof, String> {
    SEAL_PROOFS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, p)| *p)
        .ok_or_else(|| format!("unsupported seal proof type {code}; supported: 5-9 (V1_1)"))
}

/// The seal proof integer for a sector size as operators write it (`2KiB`).
pub fn seal_proof_for_size(size: &str) -> Result<u64, String> {
    let bytes = parse_size(size)?;
    seal_proof::for_size(bytes).ok_or_else(|| {
        format!("{size:?} is not a sector size; valid sizes: 2KiB, 8MiB, 512MiB, 32GiB, 64GiB")
    })
}

/// The WindowPoSt proof for sectors of `bytes`.
pub fn window_post_for_size(bytes: u64) -> Result<RegisteredPoStProof, String> {
    WINDOW_POSTS
        .iter()
        .map(|(_, p)| *p)
        .find(|p| u64::from(p.sector_size()) == bytes)
        .ok_or_else(|| format!("no WindowPoSt proof for {bytes} byte sectors"))
}

/// The WindowPoSt proof that proves sectors sealed with seal proof `code`.
pub fn window_post_of_seal(code: u64) -> Result<RegisteredPoStProof, String> {
    window_post_for_size(u64::from(seal_proof(code)?.sector_size()))
}

/// The WindowPoSt proof of a wire name.
pub fn window_post(name: &str) -> Result<RegisteredPoStProof, String> {
    WINDOW_POSTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
        .ok_or_else(|| format!("unsupported WindowPoSt proof type {name:?}"))
}

/// The wire name of a WindowPoSt proof.
pub fn window_post_name(proof: RegisteredPoStProof) -> Result<&'static str, String> {
    WINDOW_POSTS
        .iter()
        .find(|(_, p)| *p == proof)
        .map(|(n, _)| *n)
        .ok_or_else(|| format!("WindowPoSt proof {proof:?} has no wire name here"))
}

/// The snap-up (empty sector update) proof of sectors sealed with seal proof `code`.
pub fn update_of_seal(code: u64) -> Result<RegisteredUpdateProof, String> {
    use RegisteredUpdateProof as U;
    let size = u64::from(seal_proof(code)?.sector_size());
    [
        U::StackedDrg2KiBV1,
        U::StackedDrg8MiBV1,
        U::StackedDrg512MiBV1,
        U::StackedDrg32GiBV1,
        U::StackedDrg64GiBV1,
    ]
    .into_iter()
    .find(|u| u64::from(u.sector_size()) == size)
    .ok_or_else(|| format!("no snap-up proof for {size} byte sectors"))
}

/// The padded size of the smallest piece that holds `payload` bytes of a client's data (a
/// power of two, at least 128: 127 bytes of data in every 128 after Fr32 padding).
pub fn piece_size(payload: u64) -> u64 {
    let mut padded = 128u64;
    while padded - padded / 128 < payload {
        padded *= 2;
    }
    padded
}

/// The piece commitment of a client's `payload`, padded with zeros to the piece of `padded`
/// bytes as Filecoin does, for sectors of seal proof `code`.
pub fn piece_commitment(code: u64, payload: &[u8], padded: u64) -> Result<[u8; 32], String> {
    let proof = seal_proof(code)?;
    let unpadded = padded - padded / 128;
    if payload.len() as u64 > unpadded || !padded.is_power_of_two() || padded < 128 {
        return Err(format!(
            "{} bytes do not fit a {padded} byte piece ({unpadded} bytes of data)",
            payload.len()
        ));
    }
    let zeros = std::io::repeat(0).take(unpadded - payload.len() as u64);
    filecoin_proofs_api::seal::generate_piece_commitment(
        proof,
        std::io::Read::chain(payload, zeros),
        filecoin_proofs_api::UnpaddedBytesAmount(unpadded),
    )
    .map(|p| p.commitment)
    .map_err(|e| format!("cannot compute the piece commitment: {e}"))
}

/// The zero pieces that fill a sector of `sector` bytes once `written` padded bytes are used,
/// smallest first: what is written is a multiple of the smallest, so none needs alignment.
pub fn filler_sizes(sector: u64, written: u64) -> Vec<u64> {
    let rest = sector.saturating_sub(written);
    (0..64)
        .map(|bit| 1u64 << bit)
        .filter(|size| rest & size != 0)
        .collect()
}

/// The data commitment of a sector of seal proof `code` holding `pieces` (commitment, padded
/// size) in that order, each aligned to its size, and zero pieces after them: the sector the
/// worker's `add_pieces` writes. No pieces is a CC sector.
pub fn sector_comm_d(code: u64, pieces: &[([u8; 32], u64)]) -> Result<[u8; 32], String> {
    use filecoin_proofs::pieces::{sum_piece_bytes_with_alignment, zero_padding};
    use filecoin_proofs_api::{PieceInfo, UnpaddedBytesAmount as U};
    let proof = seal_proof(code)?;
    let unpadded = |padded: u64| U(padded - padded / 128);
    let mut infos: Vec<PieceInfo> = pieces
        .iter()
        .map(|(comm, size)| PieceInfo {
            commitment: *comm,
            size: unpadded(*size),
        })
        .collect();
    let lengths: Vec<U> = infos.iter().map(|p| p.size).collect();
    let written = u64::from(sum_piece_bytes_with_alignment(&lengths)) / 127 * 128;
    let sector = u64::from(proof.sector_size());
    if written > sector {
        return Err(format!(
            "the pieces take {written} bytes, more than the {sector} byte sector"
        ));
    }
    for size in filler_sizes(sector, written) {
        infos.push(zero_padding(unpadded(size)).map_err(|e| e.to_string())?);
    }
    filecoin_proofs_api::seal::compute_comm_d(proof, &infos).map_err(|e| e.to_string())
}

/// The parameter and verifying-key files of snap-up's update circuit. The proofs library's own
/// `RegisteredUpdateProof::cache_params_path` names the PoRep circuit's files instead (it goes
/// through the PoRep config); the library loads the update circuit's from these.
pub fn update_param_files(
    proof: RegisteredUpdateProof,
) -> Result<(std::path::PathBuf, std::path::PathBuf), String> {
    use filecoin_proofs::constants::{
        SectorShape2KiB, SectorShape32GiB, SectorShape512MiB, SectorShape64GiB, SectorShape8MiB,
    };
    use storage_proofs_core::merkle::MerkleTreeTrait;
    use storage_proofs_core::parameter_cache::{
        parameter_cache_params_path, parameter_cache_verifying_key_path, CacheableParameters,
    };
    use storage_proofs_update::constants::TreeRHasher;
    use storage_proofs_update::{
        EmptySectorUpdateCircuit, EmptySectorUpdateCompound, PublicParams,
    };
    fn id<Tree: 'static + MerkleTreeTrait<Hasher = TreeRHasher>>(pp: &PublicParams) -> String {
        <EmptySectorUpdateCompound<Tree> as CacheableParameters<
            EmptySectorUpdateCircuit<Tree>,
            PublicParams,
        >>::cache_identifier(pp)
    }
    let size = u64::from(proof.sector_size());
    let pp = PublicParams::from_sector_size(size);
    let id = match size {
        2048 => id::<SectorShape2KiB>(&pp),
        0x80_0000 => id::<SectorShape8MiB>(&pp),
        0x2000_0000 => id::<SectorShape512MiB>(&pp),
        0x8_0000_0000 => id::<SectorShape32GiB>(&pp),
        0x10_0000_0000 => id::<SectorShape64GiB>(&pp),
        _ => return Err(format!("no snap-up circuit for {size} byte sectors")),
    };
    Ok((
        parameter_cache_params_path(&id),
        parameter_cache_verifying_key_path(&id),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_size_has_one_seal_proof_and_one_window_post_that_agree() {
        let table = [
            ("2KiB", 5, "StackedDrgWindow2KiBV1_2", 2),
            ("8MiB", 6, "StackedDrgWindow8MiBV1_2", 2),
            ("512MiB", 7, "StackedDrgWindow512MiBV1_2", 2),
            ("32GiB", 8, "StackedDrgWindow32GiBV1_2", 2349),
            ("64GiB", 9, "StackedDrgWindow64GiBV1_2", 2300),
        ];
        for (size, code, post, per_partition) in table {
            assert_eq!(seal_proof_for_size(size), Ok(code), "{size}");
            let seal = seal_proof(code).unwrap_or(RegisteredSealProof::StackedDrg2KiBV1);
            assert_eq!(parse_size(size).ok(), Some(u64::from(seal.sector_size())));
            let wp =
                window_post_of_seal(code).unwrap_or(RegisteredPoStProof::StackedDrgWinning2KiBV1);
            assert_eq!(window_post_name(wp), Ok(post), "{size}");
            assert_eq!(window_post(post), Ok(wp), "{size}");
            assert_eq!(format!("{wp:?}"), post, "the library's own name for it");
            assert_eq!(wp.sector_count(), per_partition, "{size}");
            let update = update_of_seal(code).map(|u| u64::from(u.sector_size()));
            assert_eq!(update.ok(), parse_size(size).ok(), "{size}");
        }
    }

    #[test]
    fn unknown_ones_are_refused_with_what_is_allowed() {
        assert!(seal_proof(4).unwrap_err().contains("supported: 5-9"));
        assert!(seal_proof_for_size("3KiB")
            .unwrap_err()
            .contains("valid sizes: 2KiB"));
        assert!(window_post("StackedDrgWindow2KiBV1").is_err());
        assert!(window_post_for_size(4096).is_err());
        assert!(window_post_name(RegisteredPoStProof::StackedDrgWindow2KiBV1).is_err());
    }

    #[test]
    fn pieces_are_the_smallest_power_of_two_that_holds_the_data() {
        for (payload, padded) in [
            (0, 128),
            (1, 128),
            (127, 128),
            (128, 256),
            (254, 256),
            (255, 512),
            (2032, 2048),
        ] {
            assert_eq!(piece_size(payload), padded, "{payload}");
        }
        // Zeros make the zero piece; one changed byte makes another commitment.
        let zero = piece_commitment(5, &[], 128).unwrap_or_default();
        let empty_sector_half = piece_commitment(5, &[0; 100], 128).unwrap_or_default();
        assert_eq!(zero, empty_sector_half);
        assert_ne!(piece_commitment(5, b"hello", 128).ok(), Some(zero));
        assert!(piece_commitment(5, &[1; 128], 128)
            .unwrap_err()
            .contains("do not fit"));
    }

    #[test]
    fn a_cc_sector_and_fillers_make_the_empty_sector_commitment() {
        let empty =
            filecoin_proofs_api::seal::compute_comm_d(RegisteredSealProof::StackedDrg2KiBV1_1, &[])
                .unwrap_or_default();
        assert_eq!(sector_comm_d(5, &[]).ok(), Some(empty));
        // A zero piece is no different from the zeros around it.
        let zero128 = piece_commitment(5, &[], 128).unwrap_or_default();
        assert_eq!(sector_comm_d(5, &[(zero128, 128)]).ok(), Some(empty));
        let data = piece_commitment(5, b"deal", 128).unwrap_or_default();
        assert_ne!(sector_comm_d(5, &[(data, 128)]).ok(), Some(empty));
        assert_eq!(filler_sizes(2048, 384), vec![128, 512, 1024]);
        assert!(sector_comm_d(5, &[(data, 4096)])
            .unwrap_err()
            .contains("more than"));
    }

    #[test]
    fn the_update_circuit_has_files_of_its_own() {
        let update = update_of_seal(5).unwrap_or(RegisteredUpdateProof::StackedDrg8MiBV1);
        let (params, vk) = update_param_files(update).unwrap_or_default();
        let name = params.display().to_string();
        assert!(name.contains("empty-sector-update"), "{name}");
        assert!(name.ends_with(".params") && vk.display().to_string().ends_with(".vk"));
        let porep = seal_proof(5).and_then(|p| p.cache_params_path().map_err(|e| e.to_string()));
        assert_ne!(porep.ok(), Some(params), "not the PoRep circuit's file");
    }
}
