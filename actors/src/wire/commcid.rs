//! Filecoin commitments as CIDs, the way deals and chain messages name them: a piece or
//! unsealed commitment is `baga6ea4seaq…` (CIDv1, codec fil-commitment-unsealed, multihash
//! sha2-256-trunc254-padded), a sealed one `bagboea4b5abc…` (fil-commitment-sealed,
//! poseidon-bls12_381-a2-fc1). Both are base32 text with the multibase prefix `b`.

/// The kind of commitment a CID carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commitment {
    /// A piece's or a sector's data (CommP, CommD).
    Unsealed,
    /// A sector's replica (CommR).
    Sealed,
}

impl Commitment {
    /// The CID's bytes before the digest: version 1, codec, multihash code, digest length, each
    /// an unsigned varint.
    fn prefix(self) -> &'static [u8] {
        match self {
            // 0xf101, 0x1012
            Commitment::Unsealed => &[0x01, 0x81, 0xe2, 0x03, 0x92, 0x20, 0x20],
            // 0xf102, 0xb401
            Commitment::Sealed => &[0x01, 0x82, 0xe2, 0x03, 0x81, 0xe8, 0x02, 0x20],
        }
    }
}

const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// The CID text of a commitment.
pub fn encode(kind: Commitment, comm: &[u8; 32]) -> String {
    let mut bytes = kind.prefix().to_vec();
    bytes.extend_from_slice(comm);
    let mut out = String::from("b");
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The commitment a CID text carries; the error says what is wrong with it.
pub fn decode(kind: Commitment, cid: &str) -> Result<[u8; 32], String> {
    let what = match kind {
        Commitment::Unsealed => "a piece CID (baga6ea4seaq...)",
        Commitment::Sealed => "a sealed CID (bagboea4b5abc...)",
    };
    let bad = |why: &str| format!("{cid:?} is not {what}: {why}");
    let body = cid
        .strip_prefix('b')
        .ok_or_else(|| bad("it does not start with the base32 prefix b"))?;
    let mut bytes = Vec::with_capacity(40);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in body.bytes() {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c)
            .ok_or_else(|| bad("it has a character outside base32"))?;
        acc = (acc << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
        }
        acc &= (1 << bits) - 1;
    }
    let prefix = kind.prefix();
    if bytes.len() != prefix.len() + 32 || !bytes.starts_with(prefix) {
        return Err(bad("wrong version, codec, hash or length"));
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes[prefix.len()..]);
    Ok(out)
}

/// The piece CID of a piece commitment.
pub fn piece_cid(comm: &[u8; 32]) -> String {
    encode(Commitment::Unsealed, comm)
}

/// The sealed CID of a replica commitment.
pub fn sealed_cid(comm: &[u8; 32]) -> String {
    encode(Commitment::Sealed, comm)
}

/// The commitment of a piece CID.
pub fn piece_comm(cid: &str) -> Result<[u8; 32], String> {
    decode(Commitment::Unsealed, cid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_has_the_prefixes_filecoin_users_know() {
        let comm: [u8; 32] = std::array::from_fn(|i| (i * 13 + 1) as u8);
        let p = piece_cid(&comm);
        assert!(p.starts_with("baga6ea4seaq"), "{p}");
        assert_eq!(piece_comm(&p), Ok(comm));
        let s = sealed_cid(&comm);
        assert!(s.starts_with("bagboea4b5abc"), "{s}");
        assert_eq!(decode(Commitment::Sealed, &s), Ok(comm));
        // A sealed CID is not a piece CID.
        assert!(piece_comm(&s).unwrap_err().contains("codec"));
    }

    #[test]
    fn a_known_piece_cid_decodes_to_its_commitment() {
        // The data commitment of an empty 32GiB sector, as lotus and boost print it.
        let cid = "baga6ea4seaqao7s73y24kcutaosvacpdjgfe5pw76ooefnyqw4ynr3d2y6x2mpq";
        let comm = piece_comm(cid).unwrap_or_default();
        assert_eq!(
            super::super::hex::encode(&comm),
            "077e5fde35c50a9303a55009e3498a4ebedff39c42b710b730d8ec7ac7afa63e"
        );
        assert_eq!(piece_cid(&comm), cid);
    }

    #[test]
    fn garbage_is_refused_with_the_reason() {
        for (bad, why) in [
            ("", "prefix b"),
            ("baga6ea4seaq!", "outside base32"),
            ("baga6ea4seaq", "length"),
            ("Qmabc", "prefix b"),
        ] {
            let e = piece_comm(bad).unwrap_err();
            assert!(e.contains(why) && e.contains("piece CID"), "{bad}: {e}");
        }
    }
}
