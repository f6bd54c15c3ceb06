//! Blocks: the command log batched into a hash-chained sequence that anyone can verify offline.
//!
//! A block covers a contiguous, non-empty range of log entries `first_seq..=last_seq`. Its header
//! names the previous header's hash (block 1 names the genesis hash: [`genesis_hash`] of the initial
//! state), the Merkle root of the covered entries' bytes and the state hash after applying the last
//! of them. The validator signs the header (see [`Block`]). Height 0 is genesis, not a block.
//!
//! Merkle tree: a leaf is `BLAKE3("leaf" || bytes)` over an entry's stored (postcard) bytes; an inner
//! node is `BLAKE3("node" || left || right)`; a level with an odd count promotes its last node
//! unchanged; the root of no leaves is `BLAKE3("empty")`.
//!
//! Everything here is pure: checking a chain (signatures, replay) is `api::chain`'s job.

use crate::command::{Entry, SignedBody};
use crate::state::State;
use crate::types::{AccountId, Hash, Sig, Time};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Domain tag of the header hash (distinct from the signing domain).
const HEADER_HASH_DOMAIN: &[u8] = b"gridmint/v1/block-hash";

/// What the validator signs about a batch of log entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockHeader {
    /// 1 for the first block; each block is its predecessor's height plus one.
    pub height: u64,
    /// [`BlockHeader::hash`] of the previous block, or the genesis hash for block 1.
    pub prev_hash: Hash,
    /// When the block was sealed (ms since the Unix epoch): never before the previous block's time
    /// nor before the state's time after the block's last entry.
    pub time: Time,
    /// First log entry covered (log sequence numbers start at 1).
    pub first_seq: u64,
    /// Last log entry covered, inclusive: `last_seq >= first_seq`, a block is never empty.
    pub last_seq: u64,
    /// [`merkle_root`] of the [`leaf`]s of entries `first_seq..=last_seq`.
    pub commands_root: Hash,
    /// [`State::hash`] after applying entry `last_seq`.
    pub state_hash: Hash,
    /// The account whose key signed this header.
    pub validator: AccountId,
}

/// The signature is the validator's over `Signed::<BlockHeader>::signing_bytes(validator, height,
/// header)`: the same domain-separated scheme as every other signed body, with the header's height
/// as the nonce (strictly increasing, like any nonce) and [`BlockHeader::DOMAIN`] as the domain.
impl SignedBody for BlockHeader {
    const DOMAIN: &'static str = "gridmint/v1/block";
}

/// A sealed, signed block. It carries the header only; the entries stay in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Block {
    pub header: BlockHeader,
    pub signature: Sig,
}

impl BlockHeader {
    /// BLAKE3 over a domain tag and the header's postcard encoding; the next block's `prev_hash`.
    pub fn hash(&self) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(HEADER_HASH_DOMAIN);
        h.update(&postcard::to_stdvec(self).unwrap_or_default());
        Hash(*h.finalize().as_bytes())
    }

    /// Number of entries covered (0 only for a malformed header with `last_seq < first_seq`).
    pub fn entries(&self) -> u64 {
        self.last_seq
            .checked_sub(self.first_seq)
            .and_then(|d| d.checked_add(1))
            .unwrap_or(0)
    }

    /// The unsigned header of the block after `prev` (or the first block, when `prev` is `None`),
    /// covering entries `prev.last_seq + 1 ..= last_seq`. `None` if that range is empty or a counter
    /// would overflow. The time is raised to `prev.time` if the clock went backwards.
    pub fn next(
        prev: Option<&BlockHeader>,
        genesis: Hash,
        time: Time,
        last_seq: u64,
        commands_root: Hash,
        state_hash: Hash,
        validator: AccountId,
    ) -> Option<BlockHeader> {
        let (height, prev_hash, first_seq, time) = match prev {
            Some(p) => (
                p.height.checked_add(1)?,
                p.hash(),
                p.last_seq.checked_add(1)?,
                time.max(p.time),
            ),
            None => (1, genesis, 1, time),
        };
        if last_seq < first_seq {
            return None;
        }
        Some(BlockHeader {
            height,
            prev_hash,
            time,
            first_seq,
            last_seq,
            commands_root,
            state_hash,
            validator,
        })
    }
}

/// A block whose entries changed the validator set (rules 4 and later), with what proves the new
/// set to a light client that trusts the set before it: the validators field of the state after
/// the block (whose [`crate::Validators::hash`], with `rest`, gives the block's state hash: see
/// [`State::hash_of_parts`]) and the block's certificate, signatures of the set before it. A
/// joining validator walks these from its genesis set to a checkpoint's block, each certified by
/// the set the previous one proved, so a checkpoint is anchored however much the set changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetChange {
    pub block: Block,
    /// The validators field of the state after `block`.
    pub validators: crate::Validators,
    /// The other part of that state's hash ([`State::hash_parts`]).
    pub rest: Hash,
    /// Validators' signatures of `block.header` (those known; a certificate needs a majority
    /// of the set before the block).
    pub signatures: Vec<(AccountId, Sig)>,
}

impl SetChange {
    /// Whether `validators` and `rest` make the block's state hash: the set is the block's.
    pub fn proves_set(&self) -> bool {
        State::hash_of_parts(&self.validators.hash(), &self.rest) == self.block.header.state_hash
    }
}

impl Block {
    /// The header's hash: what the next block links to.
    pub fn hash(&self) -> Hash {
        self.header.hash()
    }
}

/// One member of a network's validator set, as its genesis declares it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Validator {
    /// The validator's account: its key signs blocks and consensus messages.
    pub account: AccountId,
    /// Voting power (a positive weight): a quorum holds more than half of the total.
    pub power: u64,
    /// Where the other validators and clients reach it (`http://host:port`).
    pub address: String,
    /// Stake bonded for it at genesis: slashable like a provider's (see
    /// [`crate::validators`]), and counted in the genesis supply.
    #[serde(default, with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub stake: crate::types::Amount,
}

/// The validators of a network, in genesis order. Empty for a single coordinator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ValidatorSet {
    pub validators: Vec<Validator>,
}

impl ValidatorSet {
    /// Checks the set: distinct accounts and addresses, positive powers whose total fits a `u64`.
    pub fn validate(&self) -> Result<(), String> {
        let mut total: u64 = 0;
        for (i, v) in self.validators.iter().enumerate() {
            if v.power == 0 {
                return Err(format!("validator {} has voting power 0", v.account));
            }
            total = total
                .checked_add(v.power)
                .ok_or_else(|| "the validators' total voting power overflows".to_string())?;
            if !(v.address.starts_with("http://") || v.address.starts_with("https://")) {
                return Err(format!(
                    "validator {}: address {:?} is not an http:// or https:// URL",
                    v.account, v.address
                ));
            }
            for other in self.validators.iter().take(i) {
                if other.account == v.account {
                    return Err(format!("validator {} is listed twice", v.account));
                }
                if other.address == v.address {
                    return Err(format!("address {} is listed twice", v.address));
                }
                // The consensus engine numbers validators by their account's first 8 bytes.
                if other.account.0.get(..8) == v.account.0.get(..8) {
                    return Err(format!(
                        "validators {} and {} share their first 8 bytes (their consensus id)",
                        other.account, v.account
                    ));
                }
            }
        }
        Ok(())
    }

    /// Total voting power.
    pub fn total_power(&self) -> u64 {
        self.validators
            .iter()
            .fold(0u64, |t, v| t.saturating_add(v.power))
    }

    /// The member with `account`, with its position.
    pub fn get(&self, account: &AccountId) -> Option<(usize, &Validator)> {
        self.validators
            .iter()
            .enumerate()
            .find(|(_, v)| v.account == *account)
    }

    /// Whether `signers` (members, each counted once) hold more than half of the voting power.
    pub fn is_quorum<'a>(&self, signers: impl IntoIterator<Item = &'a AccountId>) -> bool {
        let mut seen: Vec<&AccountId> = Vec::new();
        let mut power: u64 = 0;
        for s in signers {
            if seen.contains(&s) {
                continue;
            }
            seen.push(s);
            if let Some((_, v)) = self.get(s) {
                power = power.saturating_add(v.power);
            }
        }
        // power > total / 2, without rounding: 2 * power > total.
        u128::from(power).saturating_mul(2) > u128::from(self.total_power())
    }
}

/// Why stored bytes are not the one valid encoding of a value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("does not decode: {0}")]
    Malformed(String),
    /// They decode, but re-encoding gives other bytes (trailing bytes, an overlong integer…).
    #[error("decodes but is not in canonical encoding")]
    NotCanonical,
}

/// Decodes postcard `bytes`, accepting only the canonical encoding: the one that encoding the value
/// gives back. Hashes and signatures are over bytes, so two encodings of one value must not pass.
pub fn decode_canonical<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let value: T =
        postcard::from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    match postcard::to_stdvec(&value) {
        Ok(again) if again == bytes => Ok(value),
        _ => Err(DecodeError::NotCanonical),
    }
}

/// The hash block 1 links back to: the hash of the state before any entry.
pub fn genesis_hash(initial: &State) -> Hash {
    initial.hash()
}

/// The Merkle leaf of one entry's stored bytes.
pub fn leaf(entry_bytes: &[u8]) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"leaf");
    h.update(entry_bytes);
    Hash(*h.finalize().as_bytes())
}

/// The Merkle leaf of `entry`, over its postcard encoding (exactly what the log stores).
pub fn entry_leaf(entry: &Entry) -> Hash {
    leaf(&postcard::to_stdvec(entry).unwrap_or_default())
}

fn node(left: &Hash, right: &Hash) -> Hash {
    let mut h = blake3::Hasher::new();
    h.update(b"node");
    h.update(&left.0);
    h.update(&right.0);
    Hash(*h.finalize().as_bytes())
}

/// The root of the binary Merkle tree over `leaves`, in order (see the module docs).
pub fn merkle_root(leaves: &[Hash]) -> Hash {
    if leaves.is_empty() {
        return Hash::of(b"empty");
    }
    let mut level: Vec<Hash> = leaves.to_vec();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => node(l, r),
                [single] => *single,
                // `chunks(2)` yields one or two items; an empty chunk cannot occur.
                _ => Hash::of(b"empty"),
            })
            .collect();
    }
    level.first().copied().unwrap_or_else(|| Hash::of(b"empty"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Input, LeaderCommand};
    use crate::state::EngineConfig;

    fn h(n: u8) -> Hash {
        Hash([n; 32])
    }

    fn b3(parts: &[&[u8]]) -> Hash {
        let mut hasher = blake3::Hasher::new();
        for p in parts {
            hasher.update(p);
        }
        Hash(*hasher.finalize().as_bytes())
    }

    fn n(l: Hash, r: Hash) -> Hash {
        b3(&[b"node", &l.0, &r.0])
    }

    #[test]
    fn merkle_root_of_small_trees() {
        assert_eq!(merkle_root(&[]), b3(&[b"empty"]));
        // One leaf: the root is the leaf itself.
        assert_eq!(merkle_root(&[h(1)]), h(1));
        assert_eq!(merkle_root(&[h(1), h(2)]), n(h(1), h(2)));
        // Odd count: the last node is promoted unchanged to the next level.
        assert_eq!(merkle_root(&[h(1), h(2), h(3)]), n(n(h(1), h(2)), h(3)));
        assert_eq!(
            merkle_root(&[h(1), h(2), h(3), h(4)]),
            n(n(h(1), h(2)), n(h(3), h(4)))
        );
        assert_eq!(
            merkle_root(&[h(1), h(2), h(3), h(4), h(5)]),
            n(n(n(h(1), h(2)), n(h(3), h(4))), h(5))
        );
        assert_eq!(
            merkle_root(&[h(1), h(2), h(3), h(4), h(5), h(6), h(7)]),
            n(n(n(h(1), h(2)), n(h(3), h(4))), n(n(h(5), h(6)), h(7)))
        );
    }

    #[test]
    fn merkle_root_depends_on_order_and_every_leaf() {
        let leaves: Vec<Hash> = (0..9).map(h).collect();
        let root = merkle_root(&leaves);
        let mut swapped = leaves.clone();
        swapped.swap(3, 4);
        assert_ne!(merkle_root(&swapped), root);
        for i in 0..leaves.len() {
            let mut changed = leaves.clone();
            changed[i].0[31] ^= 1;
            assert_ne!(merkle_root(&changed), root, "leaf {i} not covered");
        }
        // Dropping or duplicating the promoted last leaf changes the root too.
        assert_ne!(merkle_root(&leaves[..8]), root);
        let mut dup = leaves.clone();
        dup.push(h(8));
        assert_ne!(merkle_root(&dup), root);
    }

    #[test]
    fn leaves_and_nodes_are_domain_separated() {
        // A leaf over the bytes of an inner node's children is not that inner node.
        let (l, r) = (h(1), h(2));
        let mut concat = l.0.to_vec();
        concat.extend_from_slice(&r.0);
        assert_ne!(leaf(&concat), merkle_root(&[l, r]));
        let entry = Entry {
            time: 5,
            input: Input::Leader(LeaderCommand::ExpireJob { job: 1 }),
        };
        assert_eq!(
            entry_leaf(&entry),
            b3(&[b"leaf", &postcard::to_stdvec(&entry).unwrap()])
        );
    }

    #[test]
    fn only_canonical_encodings_decode() {
        let entry = Entry {
            time: 300,
            input: Input::Leader(LeaderCommand::ExpireJob { job: 1 }),
        };
        let bytes = postcard::to_stdvec(&entry).unwrap();
        assert_eq!(decode_canonical::<Entry>(&bytes), Ok(entry));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            decode_canonical::<Entry>(&trailing),
            Err(DecodeError::NotCanonical)
        );
        // 300 is the varint [0xac, 0x02]; [0xac, 0x82, 0x00] is an overlong form of it.
        assert_eq!(&bytes[..2], &[0xac, 0x02]);
        let mut overlong = vec![0xac, 0x82, 0x00];
        overlong.extend_from_slice(&bytes[2..]);
        assert!(decode_canonical::<Entry>(&overlong).is_err());
        assert!(matches!(
            decode_canonical::<Entry>(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn headers_link_and_hash_every_field() {
        let genesis = genesis_hash(&State::new(EngineConfig::default()));
        assert!(BlockHeader::next(None, genesis, 10, 0, h(1), h(2), AccountId([7; 32])).is_none());
        let first =
            BlockHeader::next(None, genesis, 10, 3, h(1), h(2), AccountId([7; 32])).unwrap();
        assert_eq!((first.height, first.first_seq, first.last_seq), (1, 1, 3));
        assert_eq!(first.prev_hash, genesis);
        assert_eq!(first.entries(), 3);
        // Same last_seq again: an empty block is refused.
        assert!(
            BlockHeader::next(Some(&first), genesis, 11, 3, h(1), h(2), AccountId([7; 32]))
                .is_none()
        );
        // The clock went backwards: the time is held at the previous block's.
        let second =
            BlockHeader::next(Some(&first), genesis, 9, 4, h(3), h(4), AccountId([7; 32])).unwrap();
        assert_eq!(
            (second.height, second.first_seq, second.last_seq),
            (2, 4, 4)
        );
        assert_eq!(second.prev_hash, first.hash());
        assert_eq!(second.time, 10);

        let base = first.hash();
        let variants = [
            BlockHeader {
                height: 2,
                ..first.clone()
            },
            BlockHeader {
                prev_hash: h(9),
                ..first.clone()
            },
            BlockHeader {
                time: 11,
                ..first.clone()
            },
            BlockHeader {
                first_seq: 2,
                ..first.clone()
            },
            BlockHeader {
                last_seq: 4,
                ..first.clone()
            },
            BlockHeader {
                commands_root: h(9),
                ..first.clone()
            },
            BlockHeader {
                state_hash: h(9),
                ..first.clone()
            },
            BlockHeader {
                validator: AccountId([8; 32]),
                ..first.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.hash(), base, "{v:?}");
        }
        // The hash is domain-separated from the plain BLAKE3 of the encoding.
        assert_ne!(base, Hash::of(&postcard::to_stdvec(&first).unwrap()));
    }
}
