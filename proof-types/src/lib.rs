//! The proof types both binaries name, and the one place they meet filecoin-proofs-api's enums:
//! seal proofs travel as damocles' integers (`5` is 2KiB V1_1), WindowPoSt proofs as damocles'
//! names (`StackedDrgWindow2KiBV1_2`). The worker proves with them, the manager verifies with
//! them; neither maps them on its own.
//!
//! Architecture invariant: this is the only crate besides the binaries that depends on the
//! proofs library; `damocles-actors` stays free of it.
#![warn(missing_docs)]

use damocles_actors::size::parse_size;
use damocles_actors::wire::seal_proof;
pub use filecoin_proofs_api::{RegisteredPoStProof, RegisteredSealProof};

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
}
