//! Seal proof types as integers on the wire (damocles' `abi.RegisteredSealProof`), and the
//! sector size each stands for. The proofs library's own enum is met in `damocles-proof-types`.

/// 2KiB, V1_1.
pub const STACKED_DRG_2KIB_V1_1: u64 = 5;
/// 8MiB, V1_1.
pub const STACKED_DRG_8MIB_V1_1: u64 = 6;
/// 512MiB, V1_1.
pub const STACKED_DRG_512MIB_V1_1: u64 = 7;
/// 32GiB, V1_1.
pub const STACKED_DRG_32GIB_V1_1: u64 = 8;
/// 64GiB, V1_1.
pub const STACKED_DRG_64GIB_V1_1: u64 = 9;

/// The V1_1 seal proof for a sector size in bytes.
pub fn for_size(bytes: u64) -> Option<u64> {
    match bytes {
        2048 => Some(STACKED_DRG_2KIB_V1_1),
        0x80_0000 => Some(STACKED_DRG_8MIB_V1_1),
        0x2000_0000 => Some(STACKED_DRG_512MIB_V1_1),
        0x8_0000_0000 => Some(STACKED_DRG_32GIB_V1_1),
        0x10_0000_0000 => Some(STACKED_DRG_64GIB_V1_1),
        _ => None,
    }
}

/// Sector size in bytes of a seal proof integer (V1 and V1_1).
pub fn sector_size(proof: u64) -> Option<u64> {
    match proof % 5 {
        0 => Some(2048),
        1 => Some(0x80_0000),
        2 => Some(0x2000_0000),
        3 => Some(0x8_0000_0000),
        4 => Some(0x10_0000_0000),
        _ => None,
    }
    .filter(|_| proof < 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_proof_sizes() {
        assert_eq!(for_size(2048), Some(5));
        assert_eq!(sector_size(5), Some(2048));
        assert_eq!(sector_size(8), Some(32 << 30));
        assert_eq!(sector_size(12), None);
    }
}
