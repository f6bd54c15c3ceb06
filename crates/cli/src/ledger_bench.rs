//! `gridmint bench`, ledger section: signed transfers committed per second on one core, next to
//! raw ed25519-dalek batch verification on the same core, measured side by side in one run.
//!
//! - **Raw**: `ed25519_dalek::verify_batch` over exactly the messages (the transfers' signing
//!   bytes), signatures and already-decoded keys that the commit path then gets: the ceiling for
//!   any path that checks every signature.
//! - **Commit path**: the same pre-signed transfers through `api::verify_batch` (one
//!   batch check per group, keys kept decompressed in the coordinator's key cache) and
//!   `Node::commit_batch` (nonce checks, `State::apply`, history rows, one fsync'd
//!   `synchronous=FULL` SQLite transaction per group) into a real log in a temp dir: what
//!   `POST /v1/actions/batch` does, minus HTTP and JSON. A group is verified while the one
//!   before it commits (a second thread, pinned to the same core), as a coordinator's request
//!   handlers check a batch's signatures outside the node's lock while another batch's commit
//!   waits for its fsync: this is the measured path, against the goal. The same path serially —
//!   verify a group, commit it, then the next — is measured beside it on groups of its own,
//!   with where its time goes. The log's history writer writes the history rows on a thread of
//!   its own, not pinned, as on a coordinator; how far it trails the last commit is reported,
//!   and the rows are checked.
//!
//! The transfers: `group` accounts funded at genesis, each sending one base unit to the next in
//! every group, with nonces 1, 2, 3… from group to group. So a group has as many distinct signers
//! as transfers (the realistic shape for a busy ledger, and no shortcut for the batch check), and
//! signers recur across groups, so the key cache is warm as it is on a coordinator whose accounts
//! are known (a warm-up round sees every account first). The calling thread and the committing
//! thread are pinned to one core; rounds alternate which commit side goes first and where the
//! raw side goes, and medians are reported.

use crate::bench::median;
use anyhow::{Context, ensure};
use api::Identity;
use api::{BatchKeys, verify_batch};
use coordinator::bench_support::{BenchNode, CommitTimes};
use ed25519_dalek::{Signature, VerifyingKey};
use engine::{Action, Genesis, Input, Signed, tokens};
use serde_json::json;
use std::time::{Duration, Instant};

/// Goal: committed transfers per second over raw batch-verified signatures per second.
pub const GOAL_RATIO: f64 = 0.80;

/// Transfers per group commit (and distinct senders).
const GROUP: usize = 1024;

/// Both sides' timings.
#[derive(Clone, Debug)]
pub struct TransferBench {
    /// Transfers per round (on each side).
    pub transfers: usize,
    /// Transfers per group commit and per batch check.
    pub group: usize,
    pub rounds: usize,
    /// Length of one transfer's signing bytes: the message each signature covers.
    pub message_bytes: usize,
    /// Per round: `ed25519_dalek::verify_batch` over all the round's signatures.
    pub raw: Vec<Duration>,
    /// Per round: the round's transfers verified and committed, each group verified while the
    /// one before it commits (both on the bench's core).
    pub commit: Vec<Duration>,
    /// Per round: as many other transfers verified and committed one group after the other.
    pub serial: Vec<Duration>,
    /// Over all measured rounds: where the serial commit path's time went.
    pub verify: Duration,
    pub apply: Duration,
    pub append: Duration,
    /// After the last commit: how long until the history writer had written every row.
    pub history_lag: Duration,
}

impl TransferBench {
    pub fn raw_per_second(&self) -> f64 {
        self.transfers as f64 / median(&self.raw).as_secs_f64()
    }

    pub fn committed_per_second(&self) -> f64 {
        self.transfers as f64 / median(&self.commit).as_secs_f64()
    }

    pub fn serial_per_second(&self) -> f64 {
        self.transfers as f64 / median(&self.serial).as_secs_f64()
    }

    pub fn ratio(&self) -> f64 {
        self.committed_per_second() / self.raw_per_second()
    }

    pub fn serial_ratio(&self) -> f64 {
        self.serial_per_second() / self.raw_per_second()
    }

    /// Microseconds per committed transfer of `total` over the measured rounds.
    fn per_transfer_us(&self, total: Duration) -> f64 {
        total.as_secs_f64() * 1e6 / (self.transfers * self.rounds) as f64
    }

    /// Serial commit-path time outside verify, apply and append (building inputs, checking
    /// results).
    fn other(&self) -> Duration {
        let all: Duration = self.serial.iter().sum();
        all.saturating_sub(self.verify + self.apply + self.append)
    }

    /// The section of `gridmint bench`'s table.
    pub fn table(&self, number: u32) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let ratio = self.ratio();
        let _ = writeln!(
            s,
            "{number}. Ledger: {} pre-signed transfers per round between {} funded accounts, \
             median of {} interleaved rounds, everything measured on one core",
            self.transfers, self.group, self.rounds
        );
        let _ = writeln!(
            s,
            "   signed transfers committed/s (1 core, group commit of {}) {:>9.0}   (a group verified while the one before commits, as a coordinator does)",
            self.group,
            self.committed_per_second()
        );
        let _ = writeln!(
            s,
            "   the same, serially                                         {:>9.0}   (verify, commit, then the next group: ratio {:.3})",
            self.serial_per_second(),
            self.serial_ratio()
        );
        let _ = writeln!(
            s,
            "   ed25519 batch verify/s (1 core)                            {:>9.0}   ({}-byte messages, batches of {})",
            self.raw_per_second(),
            self.message_bytes,
            self.group
        );
        let _ = writeln!(
            s,
            "   ratio, goal >= {GOAL_RATIO:.2}                                      {ratio:>9.3}   {}",
            if ratio >= GOAL_RATIO {
                "(met)"
            } else {
                "(missed)"
            }
        );
        let _ = writeln!(
            s,
            "   per serially committed transfer: verify {:.1} µs, apply {:.1} µs, append {:.1} µs (fsync'd SQLite), other {:.1} µs; raw verify {:.1} µs",
            self.per_transfer_us(self.verify),
            self.per_transfer_us(self.apply),
            self.per_transfer_us(self.append),
            self.per_transfer_us(self.other()),
            1e6 / self.raw_per_second(),
        );
        let _ = writeln!(
            s,
            "   history rows (written by the log's history writer thread) all written {:.0} ms after the last commit",
            self.history_lag.as_secs_f64() * 1e3
        );
        s
    }

    pub fn to_json(&self) -> serde_json::Value {
        let ms = |d: &Duration| d.as_secs_f64() * 1e3;
        json!({
            "transfers_per_round": self.transfers,
            "group_commit": self.group,
            "rounds": self.rounds,
            "message_bytes": self.message_bytes,
            "committed_per_second": self.committed_per_second(),
            "batch_verify_per_second": self.raw_per_second(),
            "ratio": self.ratio(),
            "goal_ratio": GOAL_RATIO,
            "serial_committed_per_second": self.serial_per_second(),
            "serial_ratio": self.serial_ratio(),
            "commit_rounds_ms": self.commit.iter().map(ms).collect::<Vec<_>>(),
            "serial_rounds_ms": self.serial.iter().map(ms).collect::<Vec<_>>(),
            "raw_rounds_ms": self.raw.iter().map(ms).collect::<Vec<_>>(),
            "history_lag_ms": self.history_lag.as_secs_f64() * 1e3,
            "serial_per_transfer_us": {
                "verify": self.per_transfer_us(self.verify),
                "apply": self.per_transfer_us(self.apply),
                "append": self.per_transfer_us(self.append),
                "other": self.per_transfer_us(self.other()),
                "raw_verify": 1e6 / self.raw_per_second(),
            },
        })
    }
}

/// One group, ready for both sides.
struct Group {
    signed: Vec<Signed<Action>>,
    messages: Vec<Vec<u8>>,
    signatures: Vec<Signature>,
    keys: Vec<VerifyingKey>,
}

/// Runs the measurement; `quick` does fewer and shorter rounds.
pub fn transfer_bench(quick: bool) -> anyhow::Result<TransferBench> {
    let (groups_per_round, rounds) = if quick { (4, 3) } else { (16, 5) };
    let senders: Vec<Identity> = (0..GROUP)
        .map(|i| {
            let mut secret = [0x5a; 32];
            secret[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Identity::from_secret(secret)
        })
        .collect();
    let verifying: Vec<VerifyingKey> = senders
        .iter()
        .map(|s| VerifyingKey::from_bytes(&s.id().0))
        .collect::<Result<_, _>>()
        .context("decoding a sender's key")?;
    // The treasury, which every signed action pays its fee to (rules 8), is none of the senders.
    let treasury = Identity::from_secret([0xa5; 32]).id();
    let mut genesis = Genesis::dev(treasury);
    for s in &senders {
        genesis.allocations.insert(s.id(), tokens(1_000));
    }

    // One warm-up round, then the measured ones.
    // Per round, groups for each of the two commit sides.
    let total_groups = 2 * groups_per_round * (rounds + 1);
    eprintln!(
        "ledger: signing {} transfers ({} groups of {GROUP})",
        total_groups * GROUP,
        total_groups
    );
    let mut groups: Vec<Group> = (0..total_groups)
        .map(|g| {
            let nonce = g as u64 + 1;
            let signed: Vec<Signed<Action>> = senders
                .iter()
                .enumerate()
                .map(|(i, from)| {
                    let to = senders[(i + 1) % GROUP].id();
                    from.sign_with_nonce(nonce, Action::Transfer { to, amount: 1 })
                })
                .collect();
            let messages = signed
                .iter()
                .map(|s| Signed::signing_bytes(&s.signer, s.nonce, &s.body))
                .collect();
            let signatures = signed
                .iter()
                .map(|s| Signature::from_bytes(&s.signature.0))
                .collect();
            Group {
                signed,
                messages,
                signatures,
                keys: verifying.clone(),
            }
        })
        .collect();
    let message_bytes = groups[0].messages[0].len();

    let dir = tempfile::tempdir().context("creating a temp dir for the command log")?;
    let mut node = BenchNode::open(dir.path(), &genesis)?;
    let keys = BatchKeys::new(GROUP * 2);

    let raw_side = |groups: &[Group]| -> anyhow::Result<Duration> {
        let start = Instant::now();
        for g in groups {
            let messages: Vec<&[u8]> = g.messages.iter().map(Vec::as_slice).collect();
            ed25519_dalek::verify_batch(&messages, &g.signatures, &g.keys)
                .map_err(|e| anyhow::anyhow!("raw batch verification failed: {e}"))?;
        }
        Ok(start.elapsed())
    };
    // One core for everything measured: this thread, and the commit path's committing thread
    // (pinned after the log is open, so the history writer, a thread of the log's own, is not).
    let core = core_affinity::get_core_ids()
        .and_then(|ids| ids.into_iter().next())
        .context("no CPU core to pin the bench to")?;
    ensure!(
        core_affinity::set_for_current(core),
        "cannot pin the bench to one core"
    );
    // The commit path verifies a group while the group before it commits (on that core too), as
    // a coordinator's request handlers check a batch's signatures outside the node's lock while
    // another batch's commit waits for its fsync: at most one verified group waits.
    // Serially instead, each group is verified, then committed, then the next is verified.
    let mut commit_side = |groups: Vec<Vec<Signed<Action>>>,
                           pipelined: bool,
                           times: &mut (Duration, CommitTimes)|
     -> anyhow::Result<Duration> {
        let start = Instant::now();
        let node = &mut node;
        let keys = &keys;
        let verify = |group: Vec<Signed<Action>>, spent: &mut Duration| {
            let verify_start = Instant::now();
            let verdicts = verify_batch(&group, keys);
            *spent += verify_start.elapsed();
            group
                .into_iter()
                .zip(verdicts)
                .map(|(signed, verdict)| verdict.map(|()| Input::Signed(signed)))
                .collect::<Result<Vec<_>, _>>()
                .context("a pre-signed transfer failed verification")
        };
        if !pipelined {
            for group in groups {
                let inputs = verify(group, &mut times.0)?;
                let (results, commit) = node.commit_batch(inputs);
                times.1.apply += commit.apply;
                times.1.append += commit.append;
                if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                    anyhow::bail!("a transfer was not committed: {e}");
                }
            }
            return Ok(start.elapsed());
        }
        std::thread::scope(|scope| {
            let (verified, to_commit) = std::sync::mpsc::sync_channel::<Vec<Input>>(1);
            let committer = scope.spawn(move || -> anyhow::Result<CommitTimes> {
                ensure!(
                    core_affinity::set_for_current(core),
                    "cannot pin the committing thread to the bench's core"
                );
                let mut spent = CommitTimes::default();
                for inputs in to_commit {
                    let (results, commit) = node.commit_batch(inputs);
                    spent.apply += commit.apply;
                    spent.append += commit.append;
                    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                        anyhow::bail!("a transfer was not committed: {e}");
                    }
                }
                Ok(spent)
            });
            for group in groups {
                let inputs = verify(group, &mut times.0)?;
                if verified.send(inputs).is_err() {
                    // The committer stopped: its error is the answer.
                    break;
                }
            }
            drop(verified);
            let spent = committer
                .join()
                .map_err(|_| anyhow::anyhow!("the committing thread panicked"))??;
            times.1.apply += spent.apply;
            times.1.append += spent.append;
            Ok(start.elapsed())
        })
    };

    let mut raw = Vec::with_capacity(rounds);
    let mut commit = Vec::with_capacity(rounds);
    let mut serial = Vec::with_capacity(rounds);
    let mut spent = (Duration::ZERO, CommitTimes::default());
    for round in 0..=rounds {
        // Each commit side gets groups of its own, in nonce order: the side that runs first
        // takes the earlier ones. Which of them goes first alternates, and the raw side (over
        // the pipelined side's signatures) goes before, between or after them in turn.
        let earlier: Vec<Group> = groups.drain(..groups_per_round).collect();
        let later: Vec<Group> = groups.drain(..groups_per_round).collect();
        let pipelined_first = round % 2 == 0;
        let raw_at = round % 3;
        let signed = |these: &[Group]| these.iter().map(|g| g.signed.clone()).collect();
        let mut pipelined_times = (Duration::ZERO, CommitTimes::default());
        let mut serial_times = (Duration::ZERO, CommitTimes::default());
        let pipelined_groups = if pipelined_first { &earlier } else { &later };
        let mut raw_took = Duration::ZERO;
        let (mut commit_took, mut serial_took) = (Duration::ZERO, Duration::ZERO);
        for step in 0..3 {
            if step == raw_at {
                raw_took = raw_side(pipelined_groups)?;
            }
            let these = match step {
                0 => &earlier,
                1 => &later,
                _ => continue,
            };
            if (step == 0) == pipelined_first {
                commit_took = commit_side(signed(these), true, &mut pipelined_times)?;
            } else {
                serial_took = commit_side(signed(these), false, &mut serial_times)?;
            }
        }
        let n = (groups_per_round * GROUP) as f64;
        eprintln!(
            "ledger: {} {round}: committed {:>7.0}/s pipelined, {:>7.0}/s serially; raw batch \
             verify {:>7.0}/s",
            if round == 0 { "warm-up" } else { "round" },
            n / commit_took.as_secs_f64(),
            n / serial_took.as_secs_f64(),
            n / raw_took.as_secs_f64(),
        );
        if round > 0 {
            raw.push(raw_took);
            commit.push(commit_took);
            serial.push(serial_took);
            spent.0 += serial_times.0;
            spent.1.apply += serial_times.1.apply;
            spent.1.append += serial_times.1.append;
        }
    }

    let history_lag = node.history_written()?;
    // Every transfer landed, and every account sent as much as it received.
    let committed = (total_groups * GROUP) as u64;
    ensure!(
        node.log_len() == committed,
        "the log holds {} entries, not {committed}",
        node.log_len()
    );
    node.state()
        .check_supply()
        .map_err(|e| anyhow::anyhow!("supply not conserved: {e}"))?;
    // Every account sent as much as it received, and paid the action fee once per group.
    let fee = node.state().action_fee;
    let groups = total_groups as u128;
    let kept = fee
        .checked_mul(groups)
        .and_then(|paid| tokens(1_000).checked_sub(paid))
        .context("the action fees exceed what a sender was given")?;
    if let Some((i, s)) = senders
        .iter()
        .enumerate()
        .find(|(_, s)| node.state().balance(&s.id()) != kept)
    {
        anyhow::bail!(
            "sender {i} ({}) holds {} base units, not {kept}: 1,000 GRID less {groups} action \
             fees of {fee}",
            s.id(),
            node.state().balance(&s.id()),
        );
    }
    // Every sender's history: per group, its transfer (with its fee) and the one it received.
    let history = node.history(&senders[0].id(), usize::MAX)?;
    let count = |is: fn(&engine::Event) -> bool| history.iter().filter(|r| is(&r.event)).count();
    let transfers = count(|e| matches!(e, engine::Event::Transferred { .. }));
    let fees_paid = count(|e| matches!(e, engine::Event::ActionFeePaid { .. }));
    ensure!(
        transfers == 2 * total_groups && fees_paid == total_groups,
        "sender 0's history holds {transfers} transfers and {fees_paid} fees, not {} and \
         {total_groups}",
        2 * total_groups
    );
    let fees = fee
        .checked_mul(groups)
        .and_then(|f| f.checked_mul(GROUP as u128))
        .context("the action fees overflow")?;
    ensure!(
        node.state().balance(&treasury) == fees,
        "the treasury holds {} base units, not the {fees} of the fees",
        node.state().balance(&treasury)
    );

    Ok(TransferBench {
        transfers: groups_per_round * GROUP,
        group: GROUP,
        rounds,
        message_bytes,
        raw,
        commit,
        serial,
        verify: spent.0,
        apply: spent.1.apply,
        append: spent.1.append,
        history_lag,
    })
}
