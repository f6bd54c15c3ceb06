//! `gridmint chain verify` and `gridmint chain show`: the coordinator's signed blocks, read from its
//! data dir (offline, read-only) or from a running coordinator, checked from genesis.
//!
//! Verification replays the log from the initial state, so it needs nothing but the blocks and the
//! stored entry bytes: `api::chain::Verifier` does the checking; this file only fetches.

use anyhow::Context;
use api::Client;
use api::chain::{ChainError, ChainErrorKind, ChainReport, Verifier};
use api::wire::{CHAIN_PAGE_MAX, ChainView};
use engine::{AccountId, Block, Sig, State, genesis_hash};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};
use store::{CommandLog, SqliteLog, StoreError};

#[derive(clap::Subcommand, Debug)]
pub enum ChainCommand {
    /// Check every block's signature, link and commands root, and replay the log from genesis to
    /// every block's state hash; exit non-zero naming the first bad block
    Verify {
        #[command(flatten)]
        source: Source,
        /// Require every block to be signed by this validator (default: the signer of block 1;
        /// with --coordinator, the validator the coordinator names)
        #[arg(long)]
        validator: Option<AccountId>,
        /// Replay from this genesis file instead of the one the data dir or coordinator records
        #[arg(long)]
        genesis: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Show one block's header, or a table of every block
    Show {
        /// The block to show (default: all of them, one line each)
        height: Option<u64>,
        #[command(flatten)]
        source: Source,
        #[arg(long)]
        json: bool,
    },
}

/// Where the chain is read from: exactly one of the two.
#[derive(clap::Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct Source {
    /// A coordinator's data dir (or a demo's), read offline without changing anything
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// A running coordinator's URL
    #[arg(long)]
    pub coordinator: Option<String>,
}

pub async fn run(cmd: ChainCommand) -> anyhow::Result<()> {
    match cmd {
        ChainCommand::Verify {
            source,
            validator,
            genesis,
            json,
        } => {
            let verified = verify(&source, validator, genesis.as_deref()).await;
            match (&verified, json) {
                (Ok(report), true) => {
                    let mut value = serde_json::to_value(report)?;
                    value["ok"] = true.into();
                    println!("{}", serde_json::to_string_pretty(&value)?);
                }
                (Ok(report), false) => {
                    println!("{}", summary(report));
                    println!("  genesis    {}", report.genesis_hash);
                    println!(
                        "  tip        {} (height {})",
                        report.tip_hash, report.blocks
                    );
                    if let Some(v) = report.validator {
                        println!("  validator  {v}");
                    }
                    if report.tail_entries > 0 {
                        println!(
                            "  {} entries after the last block are not sealed yet: replayed, but no block vouches for them",
                            report.tail_entries
                        );
                    }
                }
                (Err(e), true) => {
                    let height = e.downcast_ref::<ChainError>().and_then(ChainError::height);
                    let value = serde_json::json!({
                        "ok": false,
                        "height": height,
                        "error": format!("{e:#}"),
                    });
                    println!("{}", serde_json::to_string_pretty(&value)?);
                }
                (Err(_), false) => {}
            }
            verified.map(|_| ())
        }
        ChainCommand::Show {
            height,
            source,
            json,
        } => show(&source, height, json).await,
    }
}

/// One line: what the demo and `chain verify` print.
pub fn summary(report: &ChainReport) -> String {
    format!(
        "chain verified: {} blocks{}, {} entries{}, state hash {}",
        report.blocks,
        if report.uncertified_blocks > 0 {
            format!(
                " (+{} still gathering their quorum certificates)",
                report.uncertified_blocks
            )
        } else {
            String::new()
        },
        report.entries,
        if report.tail_entries > 0 {
            format!(" ({} unsealed or not final)", report.tail_entries)
        } else {
            String::new()
        },
        report.state_hash
    )
}

/// The state before any entry: built from `genesis` when given (a genesis file the verifier
/// trusts), else from the genesis the data dir or coordinator records.
async fn initial_state(chain: &Chain, genesis: Option<&Path>) -> anyhow::Result<State> {
    let genesis = match (genesis, chain) {
        (Some(path), _) => crate::genesis::load(path)?,
        (None, Chain::Local(log)) => log
            .genesis()?
            .context("the data dir records no genesis (written by an older gridmint?)")?,
        (None, Chain::Remote { client, .. }) => client
            .genesis()
            .await
            .with_context(|| format!("{}: fetching the genesis", client.base()))?,
    };
    State::from_genesis(&genesis).map_err(|e| anyhow::anyhow!("invalid genesis: {e}"))
}

/// A chain to read: a data dir's SQLite file (read-only) or a coordinator.
enum Chain {
    Local(SqliteLog),
    Remote { client: Client, view: ChainView },
}

impl Chain {
    async fn open(source: &Source) -> anyhow::Result<Chain> {
        match (&source.data_dir, &source.coordinator) {
            (Some(dir), _) => {
                // A `gridmint demo --data-dir DIR` keeps its coordinator in DIR/coordinator.
                let nested = dir.join("coordinator");
                let dir = if !dir.join("gridmint.sqlite").exists()
                    && nested.join("gridmint.sqlite").exists()
                {
                    &nested
                } else {
                    dir
                };
                let log = SqliteLog::open_read_only(dir)
                    .with_context(|| format!("opening the chain in {}", dir.display()))?;
                Ok(Chain::Local(log))
            }
            (None, Some(url)) => {
                let client = Client::new(url);
                let view = client.chain().await?;
                Ok(Chain::Remote { client, view })
            }
            (None, None) => anyhow::bail!("give --data-dir DIR or --coordinator URL"),
        }
    }

    /// Blocks read per call: one at a time locally, so that a corrupt block is reported only
    /// after every block before it has been checked.
    fn block_page(&self) -> usize {
        match self {
            Chain::Local(_) => 1,
            Chain::Remote { .. } => CHAIN_PAGE_MAX as usize,
        }
    }

    /// Up to `limit` blocks after height `after`.
    async fn blocks(&self, after: u64, limit: usize) -> anyhow::Result<Vec<Block>> {
        match self {
            Chain::Local(log) => match log.blocks_after(after, limit) {
                Ok(blocks) => Ok(blocks),
                Err(StoreError::CorruptBlock { height, msg }) => Err(ChainError {
                    at: api::chain::Location::Block(height),
                    kind: ChainErrorKind::CorruptBlock(msg),
                }
                .into()),
                Err(e) => Err(e.into()),
            },
            Chain::Remote { client, .. } => {
                let from = after.saturating_add(1);
                let limit = u32::try_from(limit).unwrap_or(CHAIN_PAGE_MAX);
                Ok(client.chain_blocks(from, limit).await?)
            }
        }
    }

    /// The signatures held of blocks `from..=to`.
    async fn signatures(&self, from: u64, to: u64) -> anyhow::Result<Vec<(u64, AccountId, Sig)>> {
        match self {
            Chain::Local(log) => Ok(log.signatures(from, to)?),
            Chain::Remote { client, .. } => {
                let mut out = Vec::new();
                let mut next = from;
                while next <= to {
                    let limit = u32::try_from(to - next + 1)
                        .unwrap_or(CHAIN_PAGE_MAX)
                        .min(CHAIN_PAGE_MAX);
                    out.extend(
                        client
                            .chain_signatures(next, limit)
                            .await?
                            .into_iter()
                            // A signature of another header is evidence, not certificate.
                            .filter(|s| s.header.is_none())
                            .map(|s| (s.height, s.validator, s.signature)),
                    );
                    next = next.saturating_add(u64::from(limit));
                }
                Ok(out)
            }
        }
    }

    /// The stored bytes of up to a page of entries after `after`.
    async fn entries(&self, after: u64) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
        match self {
            Chain::Local(log) => Ok(log.raw_entries(after, 4096)?),
            Chain::Remote { client, .. } => {
                let page = client
                    .chain_entries(after.saturating_add(1), CHAIN_PAGE_MAX)
                    .await?;
                page.iter()
                    .map(|e| {
                        e.bytes().map(|b| (e.seq, b)).with_context(|| {
                            format!("log entry {} from the coordinator is not hex", e.seq)
                        })
                    })
                    .collect()
            }
        }
    }
}

/// Log entries read ahead in pages, handed out block by block.
struct Entries {
    buf: VecDeque<(u64, Vec<u8>)>,
    /// Last seq read into `buf`.
    read: u64,
    exhausted: bool,
}

impl Entries {
    /// Reads one more page; false when the log has no more entries.
    async fn fill(&mut self, chain: &Chain) -> anyhow::Result<bool> {
        if self.exhausted {
            return Ok(false);
        }
        let page = chain.entries(self.read).await?;
        let Some(&(last, _)) = page.last() else {
            self.exhausted = true;
            return Ok(false);
        };
        // Entries come in increasing order; anything else would make this loop forever.
        anyhow::ensure!(
            last > self.read,
            "log entries after {} came back out of order",
            self.read
        );
        self.read = last;
        self.buf.extend(page);
        Ok(true)
    }

    /// The entries up to and including `last_seq` (fewer if the log ends first).
    async fn through(
        &mut self,
        chain: &Chain,
        last_seq: u64,
    ) -> anyhow::Result<Vec<(u64, Vec<u8>)>> {
        while self.read < last_seq && self.fill(chain).await? {}
        let mut out = Vec::new();
        while let Some(front) = self.buf.front() {
            if front.0 > last_seq {
                break;
            }
            out.extend(self.buf.pop_front());
        }
        Ok(out)
    }
}

/// Verifies the whole chain of `source` from genesis.
pub async fn verify(
    source: &Source,
    validator: Option<AccountId>,
    genesis: Option<&Path>,
) -> anyhow::Result<ChainReport> {
    let chain = Chain::open(source).await?;
    let initial = initial_state(&chain, genesis).await?;
    let mut validator = validator;
    if let Chain::Remote { view, client } = &chain {
        let ours = genesis_hash(&initial);
        anyhow::ensure!(
            view.genesis_hash == ours,
            "{}: the coordinator's genesis hash {} is not the hash {ours} of the genesis it serves or was given",
            client.base(),
            view.genesis_hash
        );
        validator = validator.or(Some(view.validator));
    }
    // The certificates are checked against the validator set the genesis declares (its hash is
    // what the verifier trusts), never against one a data dir or validator reports.
    let set = initial.validators.set.clone();
    let certified = !set.validators.is_empty();
    let mut verifier = if certified {
        Verifier::with_validators(initial, set.clone())
    } else {
        Verifier::new(initial, validator)
    };
    let mut entries = Entries {
        buf: VecDeque::new(),
        read: 0,
        exhausted: false,
    };
    // A validator set's chain is final up to its last block with a quorum certificate; blocks
    // after it are still gathering signatures and are replayed like the unsealed tail. A block
    // without a certificate before a certified one is an error.
    let mut uncertified: Vec<Block> = Vec::new();
    let mut after = 0u64;
    loop {
        let blocks = chain.blocks(after, chain.block_page()).await?;
        let Some(last) = blocks.last() else {
            break;
        };
        after = last.header.height;
        let signatures = if certified {
            chain
                .signatures(blocks[0].header.height, last.header.height)
                .await?
        } else {
            Vec::new()
        };
        for block in &blocks {
            if !certified {
                let covered = entries.through(&chain, block.header.last_seq).await?;
                verifier.block(block, &covered)?;
                continue;
            }
            let sigs: Vec<(AccountId, Sig)> = signatures
                .iter()
                .filter(|(h, _, _)| *h == block.header.height)
                .map(|(_, v, s)| (*v, *s))
                .collect();
            // Against the set as the block begins (validators join and leave by vote).
            let final_ = verifier
                .validator_set()
                .is_some_and(|set| set.is_quorum(sigs.iter().map(|(v, _)| v)));
            if !final_ {
                uncertified.push(block.clone());
                continue;
            }
            if let Some(first) = uncertified.first() {
                // A later block is final but this one is not: check it to name what is missing.
                let covered = entries.through(&chain, first.header.last_seq).await?;
                let sigs: Vec<(AccountId, Sig)> = signatures
                    .iter()
                    .filter(|(h, _, _)| *h == first.header.height)
                    .map(|(_, v, s)| (*v, *s))
                    .collect();
                verifier.certified_block(first, &sigs, &covered)?;
                anyhow::bail!("block {} has no quorum certificate", first.header.height);
            }
            let covered = entries.through(&chain, block.header.last_seq).await?;
            verifier.certified_block(block, &sigs, &covered)?;
        }
    }
    let rest: Vec<_> = entries.buf.drain(..).collect();
    verifier.tail(&rest)?;
    while entries.fill(&chain).await? {
        let page: Vec<_> = entries.buf.drain(..).collect();
        verifier.tail(&page)?;
    }
    let mut report = verifier.finish();
    report.uncertified_blocks = uncertified.len() as u64;
    Ok(report)
}

fn format_time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn block_json(block: &Block) -> serde_json::Value {
    serde_json::json!({
        "height": block.header.height,
        "hash": block.hash(),
        "entries": block.header.entries(),
        "header": block.header,
        "signature": block.signature,
    })
}

async fn show(source: &Source, height: Option<u64>, json: bool) -> anyhow::Result<()> {
    let chain = Chain::open(source).await?;
    if let Some(height) = height {
        anyhow::ensure!(height > 0, "heights start at 1 (0 is genesis, not a block)");
        let block = chain
            .blocks(height - 1, 1)
            .await?
            .into_iter()
            .next()
            .filter(|b| b.header.height == height)
            .with_context(|| format!("there is no block {height}"))?;
        if json {
            println!("{}", serde_json::to_string_pretty(&block_json(&block))?);
            return Ok(());
        }
        let h = &block.header;
        println!("block {}", h.height);
        println!("  hash           {}", block.hash());
        println!("  previous hash  {}", h.prev_hash);
        println!("  time           {} ({})", format_time(h.time), h.time);
        println!(
            "  entries        {}..={} ({})",
            h.first_seq,
            h.last_seq,
            h.entries()
        );
        println!("  commands root  {}", h.commands_root);
        println!("  state hash     {}", h.state_hash);
        println!("  validator      {}", h.validator);
        println!("  signature      {}", block.signature);
        return Ok(());
    }
    let mut all = Vec::new();
    loop {
        let after = all.last().map_or(0, |b: &Block| b.header.height);
        let page = chain.blocks(after, CHAIN_PAGE_MAX as usize).await?;
        if page.is_empty() {
            break;
        }
        all.extend(page);
    }
    if json {
        let blocks: Vec<_> = all.iter().map(block_json).collect();
        println!("{}", serde_json::to_string_pretty(&blocks)?);
        return Ok(());
    }
    println!(
        "{:>7} {:>8} {:>17}  {:<24}  {:<14} {:<14}",
        "height", "entries", "seqs", "time", "state hash", "block hash"
    );
    for b in &all {
        let h = &b.header;
        println!(
            "{:>7} {:>8} {:>17}  {:<24}  {:<14} {:<14}",
            h.height,
            h.entries(),
            format!("{}..={}", h.first_seq, h.last_seq),
            format_time(h.time),
            format!("{}…", &h.state_hash.to_hex()[..12]),
            format!("{}…", &b.hash().to_hex()[..12]),
        );
    }
    if all.is_empty() {
        println!("(no blocks yet)");
    }
    Ok(())
}
