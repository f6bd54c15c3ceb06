//! Batch signature checks at admission, over keys decoded once per signer.
//!
//! `ed25519-consensus`'s batch verifier takes keys as bytes and
//! decompresses every key again in every batch: for batches of distinct signers that is one point
//! decompression more per signature, on top of its serial-only curve arithmetic. Here the same
//! check is made over keys kept decompressed in a [`BatchKeys`], with `curve25519-dalek`'s
//! multiscalar multiplication. The answers are exactly [`crate::verify`]'s: the batch equation is
//! ZIP 215's (cofactored, so it accepts exactly what the single checks accept), keys must pass
//! [`crate::valid_account`] before they are cached, and when a batch fails (or has one item) every
//! item is checked on its own with [`crate::verify`] so that exactly the bad ones are reported.

use crate::AuthError;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use engine::{AccountId, Signed, SignedBody};
use sha2::{Digest, Sha512};
use std::collections::HashMap;
use std::sync::Mutex;

/// Keys of recent signers that passed [`crate::valid_account`], decompressed. Shared by the threads
/// that verify; holds at most `capacity` keys (emptied when full: simple and bounded).
pub struct BatchKeys {
    keys: Mutex<HashMap<AccountId, EdwardsPoint>>,
    capacity: usize,
}

impl std::fmt::Debug for BatchKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchKeys")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl BatchKeys {
    pub fn new(capacity: usize) -> BatchKeys {
        BatchKeys {
            keys: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The decompressed keys of `ids`, in order; `None` for one that is no valid account (its
    /// signatures never verify). One lock for the whole batch.
    fn points(&self, ids: impl Iterator<Item = AccountId>) -> Vec<Option<EdwardsPoint>> {
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        ids.map(|id| {
            if let Some(point) = keys.get(&id) {
                return Some(*point);
            }
            if !crate::valid_account(&id) {
                return None;
            }
            let point = CompressedEdwardsY(id.0).decompress()?;
            if keys.len() >= self.capacity {
                keys.clear();
            }
            keys.insert(id, point);
            Some(point)
        })
        .collect()
    }
}

/// Verifies many signed bodies at once, one result per item, in order: exactly the answers of
/// [`crate::verify`] on each, for less CPU per signature on batches of hundreds. Keys come from
/// (and go into) `keys`.
pub fn verify_batch<T: SignedBody>(
    signed: &[Signed<T>],
    keys: &BatchKeys,
) -> Vec<Result<(), AuthError>> {
    let points = keys.points(signed.iter().map(|s| s.signer));
    let queued: Vec<(&Signed<T>, EdwardsPoint)> = signed
        .iter()
        .zip(&points)
        .filter_map(|(s, p)| p.map(|p| (s, p)))
        .collect();
    if queued.len() > 1 && batch_holds(&queued) {
        // Every signature under a valid key verified; the others are bad keys.
        signed
            .iter()
            .zip(&points)
            .map(|(s, p)| match p {
                Some(_) => Ok(()),
                None => Err(AuthError::BadKey(s.signer)),
            })
            .collect()
    } else {
        signed.iter().map(crate::verify).collect()
    }
}

/// Whether ZIP 215's batch equation holds for every `(signed, key)`:
/// `[8]([-Σ zᵢsᵢ]B + Σ [zᵢ]Rᵢ + Σ [zᵢkᵢ]Aᵢ) = 0` with random 128-bit `zᵢ` and
/// `kᵢ = SHA-512(Rᵢ ‖ Aᵢ ‖ messageᵢ)`, the terms of one key coalesced. False when any `R` does
/// not decompress or any `s` is not canonical (as the single check rejects those), and when no
/// randomness could be had.
fn batch_holds<T: SignedBody>(queued: &[(&Signed<T>, EdwardsPoint)]) -> bool {
    let mut random = vec![0u8; queued.len() * 16];
    if getrandom::fill(&mut random).is_err() {
        return false;
    }
    let mut b_coeff = Scalar::ZERO;
    let mut r_coeffs = Vec::with_capacity(queued.len());
    let mut rs = Vec::with_capacity(queued.len());
    // One coefficient per distinct key, in order of first appearance.
    let mut a_index: HashMap<AccountId, usize> = HashMap::with_capacity(queued.len());
    let mut a_coeffs: Vec<Scalar> = Vec::with_capacity(queued.len());
    let mut as_: Vec<EdwardsPoint> = Vec::with_capacity(queued.len());
    for ((item, point), z) in queued.iter().zip(random.chunks_exact(16)) {
        let sig = &item.signature.0;
        let (r_bytes, s_bytes) = sig.split_at(32);
        let Ok(r_bytes) = <[u8; 32]>::try_from(r_bytes) else {
            return false;
        };
        let Ok(s_bytes) = <[u8; 32]>::try_from(s_bytes) else {
            return false;
        };
        let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let message = Signed::<T>::signing_bytes(&item.signer, item.nonce, &item.body);
        let k = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(r_bytes)
                .chain_update(item.signer.0)
                .chain_update(&message)
                .finalize()
                .into(),
        );
        let mut z_bytes = [0u8; 32];
        z_bytes[..16].copy_from_slice(z);
        let z = Scalar::from_bytes_mod_order(z_bytes);
        b_coeff -= z * s;
        rs.push(r);
        r_coeffs.push(z);
        let at = *a_index.entry(item.signer).or_insert_with(|| {
            as_.push(*point);
            a_coeffs.push(Scalar::ZERO);
            a_coeffs.len() - 1
        });
        if let Some(coeff) = a_coeffs.get_mut(at) {
            *coeff += z * k;
        }
    }
    let check = EdwardsPoint::vartime_multiscalar_mul(
        std::iter::once(&b_coeff).chain(&a_coeffs).chain(&r_coeffs),
        std::iter::once(&ED25519_BASEPOINT_POINT)
            .chain(&as_)
            .chain(&rs),
    );
    check.mul_by_cofactor().is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Identity;
    use engine::{Action, Sig};

    fn batch(n: usize) -> Vec<Signed<Action>> {
        (0..n)
            .map(|i| {
                let id = Identity::from_secret([i as u8 + 1; 32]);
                id.sign_with_nonce(i as u64 + 1, Action::CancelJob(i as u64))
            })
            .collect()
    }

    /// `crate::verify` on each, as text (`AuthError` has no `PartialEq`).
    fn reference(signed: &[Signed<Action>]) -> Vec<Result<(), String>> {
        text(signed.iter().map(crate::verify).collect())
    }

    fn text(results: Vec<Result<(), AuthError>>) -> Vec<Result<(), String>> {
        results
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn a_good_batch_verifies_and_the_bad_items_are_named() {
        let keys = BatchKeys::new(64);
        let good = batch(40);
        assert!(verify_batch(&good, &keys).iter().all(Result::is_ok));
        // Again, with every key cached.
        assert!(verify_batch(&good, &keys).iter().all(Result::is_ok));

        let mut bad = good.clone();
        bad[3].nonce += 1; // the message changed
        bad[17].signature.0[0] ^= 1; // R changed
        bad[20].signature.0[63] |= 0xf0; // s not canonical
        bad[25].signer = AccountId([0; 32]); // not a valid account (small order)
        let results = verify_batch(&bad, &keys);
        assert!(matches!(results[25], Err(AuthError::BadKey(_))));
        let results = text(results);
        assert_eq!(results, reference(&bad));
        let failed: Vec<usize> = (0..results.len())
            .filter(|i| results[*i].is_err())
            .collect();
        assert_eq!(failed, [3, 17, 20, 25]);
    }

    #[test]
    fn small_batches_and_repeated_signers_agree_with_single_checks() {
        let keys = BatchKeys::new(2); // emptied while in use
        assert!(verify_batch::<Action>(&[], &keys).is_empty());
        let one = batch(1);
        assert_eq!(text(verify_batch(&one, &keys)), reference(&one));
        // One signer, many actions: its terms are coalesced.
        let id = Identity::from_secret([9; 32]);
        let mut same: Vec<Signed<Action>> = (1..=20)
            .map(|n| id.sign_with_nonce(n, Action::CancelJob(n)))
            .collect();
        same.extend(batch(5));
        assert!(verify_batch(&same, &keys).iter().all(Result::is_ok));
        same[7].body = Action::CancelJob(1000);
        assert_eq!(text(verify_batch(&same, &keys)), reference(&same));
        assert!(verify_batch(&same, &keys)[7].is_err());
    }

    /// A signature whose `R` carries a small-order component: valid under ZIP 215 (cofactored,
    /// what `crate::verify` implements), invalid under the cofactorless equation. The batch must
    /// accept it, as the single check does.
    #[test]
    fn torsion_in_r_is_accepted_as_the_single_check_accepts_it() {
        let a = Scalar::from_bytes_mod_order([7; 32]);
        let public = (ED25519_BASEPOINT_POINT * a).compress().to_bytes();
        let signer = AccountId(public);
        let body = Action::CancelJob(1);
        let message = Signed::signing_bytes(&signer, 1, &body);
        // The point with y = 0 has order 4.
        let torsion = CompressedEdwardsY([0; 32])
            .decompress()
            .expect("a curve point");
        let r = Scalar::from_bytes_mod_order([3; 32]);
        let big_r = (ED25519_BASEPOINT_POINT * r + torsion)
            .compress()
            .to_bytes();
        let k = Scalar::from_bytes_mod_order_wide(
            &Sha512::new()
                .chain_update(big_r)
                .chain_update(public)
                .chain_update(&message)
                .finalize()
                .into(),
        );
        let s = r + k * a;
        let mut signature = [0u8; 64];
        signature[..32].copy_from_slice(&big_r);
        signature[32..].copy_from_slice(s.as_bytes());
        let odd = Signed {
            signer,
            nonce: 1,
            body,
            signature: Sig(signature),
        };
        crate::verify(&odd).expect("ZIP 215 accepts a torsion component in R");

        let mut signed = batch(8);
        signed.insert(4, odd);
        let keys = BatchKeys::new(64);
        assert!(verify_batch(&signed, &keys).iter().all(Result::is_ok));
        assert!(batch_holds(
            &signed
                .iter()
                .map(|s| (s, CompressedEdwardsY(s.signer.0).decompress().unwrap()))
                .collect::<Vec<_>>()
        ));
    }

    proptest::proptest! {
        /// Random bit flips anywhere in the signatures of a batch of repeated signers: the batch
        /// accepts exactly what the single checks accept.
        #[test]
        fn a_batch_agrees_with_single_checks(
            tamper in proptest::collection::vec((proptest::prelude::any::<bool>(), 0usize..512), 1..24)
        ) {
            let keys = BatchKeys::new(4);
            let ids: Vec<Identity> = (0..6u8).map(|i| Identity::from_secret([i; 32])).collect();
            let signed: Vec<Signed<Action>> = tamper
                .iter()
                .enumerate()
                .map(|(n, (flip, bit))| {
                    let mut s = ids[n % ids.len()].sign(Action::CancelJob(n as u64));
                    if *flip {
                        s.signature.0[bit / 8] ^= 1 << (bit % 8);
                    }
                    s
                })
                .collect();
            proptest::prop_assert_eq!(text(verify_batch(&signed, &keys)), reference(&signed));
        }
    }
}
