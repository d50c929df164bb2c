//! Who is calling, on both ports.
//!
//! - Worker → manager: `Authorization: Bearer <token>`, a per-worker token the manager created
//!   (`util worker token create <name>`). The manager keeps only `token_hash(token)` and takes
//!   the caller's name from it. Facts damocles has no parameter for travel in headers
//!   ([`THREAD_HEADER`]).
//! - Manager → worker management port: the manager proves it holds the worker's token hash by
//!   signing each call: `Authorization: DamoclesControl <unix secs>.<hex HMAC>`, keyed with
//!   [`ControlKey`], which both sides derive from the token hash. The signature covers the time,
//!   the force flag and the body, so it cannot be reused for another call or after
//!   [`MAX_SKEW_SECS`], and neither it nor the key can call the manager, which wants the token.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::hex;

/// Our extension: the calling thread's index (`AllocateSector`, `WdPoStAllocateJobs`).
pub const THREAD_HEADER: &str = "X-Damocles-Thread";
/// Our extension: resume a thread into `Finished` or `Aborted` from afar (`true`).
pub const FORCE_HEADER: &str = "X-Damocles-Force";
/// The scheme of the manager's signed calls to a worker.
pub const CONTROL_SCHEME: &str = "DamoclesControl";
/// How far apart the signer's and the checker's clocks may be.
pub const MAX_SKEW_SECS: i64 = 300;

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, rest) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// What the manager stores for a token: SHA-256 of it.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equality whose time does not depend on where the inputs differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `parts` run together, under `key`.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length: new_from_slice cannot fail.
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Why the worker refused a signed call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ControlError {
    /// No signature was sent.
    #[error("this call changes the worker and carries no credential of its manager: send it through the manager (`damocles-manager util worker ...`) or run `damocles-worker worker -c <config>` on the worker's machine")]
    Missing,
    /// The header is not `DamoclesControl <secs>.<hex>`.
    #[error("malformed {CONTROL_SCHEME} credential: expected `{CONTROL_SCHEME} <unix secs>.<hex signature>`")]
    Malformed,
    /// The signature's time is this many seconds away from the clock.
    #[error("the credential is {0}s away from this worker's clock (at most {MAX_SKEW_SECS}s): check both clocks")]
    Stale(i64),
    /// The signature does not match the body.
    #[error("the credential was not made with this worker's token: the manager holds another token for this worker name, or the call was altered")]
    BadSignature,
}

/// The key of the manager's signatures to one worker, derived from the worker's token hash.
#[derive(Clone)]
pub struct ControlKey([u8; 32]);

impl std::fmt::Debug for ControlKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ControlKey(..)")
    }
}

impl ControlKey {
    /// The key both sides derive from the worker token's SHA-256.
    pub fn from_token_hash(hash: &[u8; 32]) -> Self {
        ControlKey(hmac(hash, &[b"damocles worker control v1"]))
    }

    /// The key of a worker token.
    pub fn from_token(token: &str) -> Self {
        Self::from_token_hash(&token_hash(token))
    }

    fn mac(&self, ts: i64, force: bool, body: &[u8]) -> [u8; 32] {
        let head = format!("{ts}\n{force}\n");
        hmac(&self.0, &[head.as_bytes(), body])
    }

    /// The `Authorization` value for a call with `body`, made at `ts` (unix seconds).
    pub fn sign(&self, ts: i64, force: bool, body: &[u8]) -> String {
        format!(
            "{CONTROL_SCHEME} {ts}.{}",
            hex::encode(&self.mac(ts, force, body))
        )
    }

    /// Checks an `Authorization` value against the call's body and force flag at `now`.
    pub fn verify(
        &self,
        header: Option<&str>,
        force: bool,
        body: &[u8],
        now: i64,
    ) -> Result<(), ControlError> {
        let value = header
            .and_then(|h| h.trim().strip_prefix(CONTROL_SCHEME))
            .ok_or(ControlError::Missing)?;
        let (ts, sig) = value
            .trim()
            .split_once('.')
            .ok_or(ControlError::Malformed)?;
        let ts: i64 = ts.parse().map_err(|_| ControlError::Malformed)?;
        let sig = hex::decode32(sig).ok_or(ControlError::Malformed)?;
        let skew = now.saturating_sub(ts);
        if skew.abs() > MAX_SKEW_SECS {
            return Err(ControlError::Stale(skew));
        }
        if ct_eq(&sig, &self.mac(ts, force, body)) {
            Ok(())
        } else {
            Err(ControlError::BadSignature)
        }
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_takes_the_token_of_a_bearer_header_only() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }

    #[test]
    fn token_hash_is_sha256() {
        // SHA-256("abc").
        let want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hex::encode(&token_hash("abc")), want);
    }

    #[test]
    fn a_signature_holds_for_its_body_flag_and_time_only() {
        let key = ControlKey::from_token("worker-a-token");
        let body = br#"{"method":"VenusWorker.WorkerPause","params":[0]}"#;
        let now = 1_800_000_000;
        let h = key.sign(now, false, body);
        assert_eq!(key.verify(Some(&h), false, body, now + 10), Ok(()));
        // (header, force, body, when, error)
        type Case<'a> = (Option<&'a str>, bool, &'a [u8], i64, ControlError);
        let cases: [Case; 6] = [
            (None, false, body, now, ControlError::Missing),
            (Some("Bearer x"), false, body, now, ControlError::Missing),
            (
                Some("DamoclesControl 12"),
                false,
                body,
                now,
                ControlError::Malformed,
            ),
            (Some(&h), true, body, now, ControlError::BadSignature),
            (Some(&h), false, b"{}", now, ControlError::BadSignature),
            (Some(&h), false, body, now + 301, ControlError::Stale(301)),
        ];
        for (header, force, b, at, want) in cases {
            assert_eq!(
                key.verify(header, force, b, at),
                Err(want.clone()),
                "{want}"
            );
        }
        let other = ControlKey::from_token("worker-b-token");
        assert_eq!(
            other.verify(Some(&h), false, body, now),
            Err(ControlError::BadSignature)
        );
        // The manager derives the same key from the hash it keeps.
        let from_hash = ControlKey::from_token_hash(&token_hash("worker-a-token"));
        assert_eq!(from_hash.verify(Some(&h), false, body, now), Ok(()));
    }

    #[test]
    fn ct_eq_compares_whole_slices() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
