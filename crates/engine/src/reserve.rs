//! Reserved capacity (rules 26): a requester reserves task slots on providers for a number of
//! periods, at a price per slot per period that each provider agrees to by accepting.
//!
//! - **Offer.** `Action::Reserve` names how many slots, what a slot's provider must have
//!   (cores, memory, a GPU, a region — all required, unlike a job's preferred region), the
//!   period, how many periods, and the price per slot per period. The first period of every
//!   slot is prepaid into the reservation's escrow at once. Slots nobody accepts within one
//!   period of the offer are refunded (`ReservationRefunded`), as they are when the requester
//!   cancels.
//! - **Acceptance.** An active provider that meets the requirements and has the minimum stake
//!   accepts some of the open slots (`Action::AcceptReservation`): a **lease** of those slots,
//!   its periods counted from the acceptance. A provider leases at most its own slot count in
//!   all, and one lease per reservation.
//! - **Service.** While a provider holds a lease of requester `R`, the scheduler gives `R`'s
//!   tasks the leased slots (and their local queue) before anything else, never holds them
//!   back for a better-suited provider, and lets no other requester's work into them: the
//!   provider's other work fits in its unleased slots only. `R`'s tasks on a leased provider
//!   are covered by the lease (`TaskCovered`): they are not paid from the job's escrow and the
//!   job's `max_price` does not keep them off it (a job with `max_price = 0` runs only on its
//!   owner's reservations). Results are verified as any other.
//! - **Settlement.** At the first entry applied at or after a lease's period end (the leader
//!   logs `LeaderCommand::SettleReservations` when nothing else comes), the period's escrow
//!   goes to the provider **whether or not the slots were used** — it held them for the
//!   requester and turned other work away — with the protocol fee and its delegators' share
//!   taken as from any payment (`ReservationPaid`). It is refunded to the requester instead
//!   when the provider **missed** the period: a reserved run of it timed out, it was lost or
//!   left, or at the end it is not active or lacks the minimum stake. Then the next period is
//!   taken from the requester's balance; a balance that cannot pay it ends the lease.
//! - **Cancellation.** The requester (`Action::CancelReservation`): open slots are refunded at
//!   once; every lease runs to the end of its current period (it is paid for it) and is not
//!   renewed. The provider (`Action::LeaveReservation`): its lease ends at once and the current
//!   period's escrow goes back to the requester in full — leaving early forfeits the period.
//!
//! All arithmetic is checked; reservation escrow joins the supply equation.

use crate::command::{Event, Rejection};
use crate::ledger::{Tokens, bps_of};
use crate::state::{ProviderStatus, State};
use crate::types::{AccountId, Amount, TaskId, Time};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most slots one reservation asks for.
pub const MAX_SLOTS: u32 = 64;
/// The most periods one reservation runs.
pub const MAX_PERIODS: u32 = 1_000;
/// The shortest and longest period.
pub const MIN_PERIOD_MS: u64 = 1_000;
pub const MAX_PERIOD_MS: u64 = 365 * 86_400_000;
/// The most reservations one requester has live at once, and the network in all.
pub const MAX_LIVE_PER_OWNER: usize = 16;
pub const MAX_LIVE: usize = 4_096;
/// Ended reservations kept for reading (the newest).
pub const KEEP_ENDED: usize = 256;

/// What a requester asks for: the part of `Action::Reserve` it signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReservationSpec {
    /// Slots reserved, over one or more providers.
    pub slots: u32,
    /// Least cores a slot's provider has (0: any).
    #[serde(default)]
    pub cores: u32,
    /// Least memory a slot's provider has, in bytes (0: any).
    #[serde(default)]
    pub memory_bytes: u64,
    /// Only providers that declare a GPU.
    #[serde(default)]
    pub gpu: bool,
    /// Only providers in this region.
    #[serde(default)]
    pub region: Option<String>,
    /// Length of one period, in milliseconds.
    pub period_ms: u64,
    /// Periods a lease runs (each prepaid when it starts).
    pub periods: u32,
    /// What one slot costs per period, in base units.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub price_per_slot: Amount,
}

/// One provider's share of a reservation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lease {
    pub slots: u32,
    /// When the current period began (the first began at the acceptance).
    pub period_start: Time,
    /// Which period runs now, from 0.
    pub period: u32,
    /// The current period's prepaid escrow: `slots × price_per_slot`.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub held: Amount,
    /// The provider missed this period (a reserved run timed out, it was lost or left): the
    /// period is refunded, and the lease ends.
    pub missed: bool,
}

/// Why a lease ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LeaseEnd {
    /// Its last period was paid.
    Completed,
    /// The requester cancelled; its current period was paid.
    Cancelled,
    /// The requester's balance could not pay the next period.
    Lapsed,
    /// The provider missed a period (refunded).
    Missed,
    /// The provider left the reservation (its period refunded).
    Left,
}

/// A reservation and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reservation {
    pub id: u64,
    pub owner: AccountId,
    pub spec: ReservationSpec,
    pub created: Time,
    /// Slots not accepted by then are refunded.
    pub open_until: Time,
    /// Slots no provider has accepted yet.
    pub open_slots: u32,
    /// Their prepaid escrow: `open_slots × price_per_slot`.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub open_held: Amount,
    /// The requester cancelled: no lease is renewed.
    pub cancelled: bool,
    /// Paid to providers so far (before fees).
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub paid: Amount,
    /// Refunded to the requester so far.
    #[serde(with = "crate::types::amount")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub refunded: Amount,
    /// Its tasks that leased slots ran.
    pub tasks_covered: u64,
    /// Set when nothing is open and no lease runs any more.
    pub ended: Option<Time>,
}

/// Every reservation, and the leases by provider.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reservations {
    /// The id the next reservation gets (from 1).
    pub next_id: u64,
    pub reservations: BTreeMap<u64, Reservation>,
    /// provider → reservation → its lease.
    pub leases: BTreeMap<AccountId, BTreeMap<u64, Lease>>,
    /// The earliest time something is due (an offer lapsing, a period ending); `None`: nothing.
    pub next_due: Option<Time>,
}

impl Reservations {
    /// Escrow held by every reservation (open slots and current periods).
    pub fn held(&self) -> Option<Amount> {
        let open = self
            .reservations
            .values()
            .try_fold(0u128, |s, r| s.checked_add(r.open_held))?;
        self.leases
            .values()
            .flat_map(|m| m.values())
            .try_fold(open, |s, l| s.checked_add(l.held))
    }

    /// Slots leased on `provider`, per requester.
    pub fn leased_by_owner(&self, provider: &AccountId) -> BTreeMap<AccountId, u32> {
        let mut out: BTreeMap<AccountId, u32> = BTreeMap::new();
        for (id, lease) in self.leases.get(provider).into_iter().flatten() {
            if let Some(r) = self.reservations.get(id) {
                let e = out.entry(r.owner).or_default();
                *e = e.saturating_add(lease.slots);
            }
        }
        out
    }

    /// Slots leased on `provider` in all.
    pub fn leased_slots(&self, provider: &AccountId) -> u32 {
        self.leases
            .get(provider)
            .into_iter()
            .flatten()
            .fold(0u32, |s, (_, l)| s.saturating_add(l.slots))
    }

    /// The reservation of `owner` that `provider` holds a lease of, if any (the lowest id).
    pub fn lease_of(&self, provider: &AccountId, owner: &AccountId) -> Option<u64> {
        self.leases
            .get(provider)?
            .keys()
            .find(|id| self.reservations.get(id).is_some_and(|r| r.owner == *owner))
            .copied()
    }

    /// `reservation`'s leases, by provider.
    pub fn leases_of(&self, reservation: u64) -> Vec<(AccountId, &Lease)> {
        self.leases
            .iter()
            .filter_map(|(p, m)| m.get(&reservation).map(|l| (*p, l)))
            .collect()
    }

    fn live_of(&self, owner: &AccountId) -> usize {
        self.reservations
            .values()
            .filter(|r| r.ended.is_none() && r.owner == *owner)
            .count()
    }

    fn live(&self) -> usize {
        self.reservations
            .values()
            .filter(|r| r.ended.is_none())
            .count()
    }

    /// Recomputes `next_due` from what is open and leased.
    fn recompute_due(&mut self) {
        let offers = self
            .reservations
            .values()
            .filter(|r| r.open_slots > 0)
            .map(|r| r.open_until);
        let periods = self
            .leases
            .values()
            .flat_map(|m| m.iter())
            .filter_map(|(id, l)| {
                let r = self.reservations.get(id)?;
                Some(l.period_start.saturating_add(r.spec.period_ms))
            });
        self.next_due = offers.chain(periods).min();
    }
}

impl ReservationSpec {
    /// Whether the spec can be a reservation (amounts aside).
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_SLOTS).contains(&self.slots) {
            return Err(format!("slots must be from 1 to {MAX_SLOTS}"));
        }
        if !(MIN_PERIOD_MS..=MAX_PERIOD_MS).contains(&self.period_ms) {
            return Err("the period must be from a second to a year".into());
        }
        if !(1..=MAX_PERIODS).contains(&self.periods) {
            return Err(format!("periods must be from 1 to {MAX_PERIODS}"));
        }
        if self.price_per_slot == 0 {
            return Err("the price per slot must be positive".into());
        }
        if self.cores > 1024 {
            return Err("no provider has more than 1024 cores".into());
        }
        if let Some(region) = &self.region
            && (region.is_empty() || region.len() > 64)
        {
            return Err("a region is 1 to 64 bytes".into());
        }
        Ok(())
    }

    /// Whether a provider with `spec` meets the reservation's requirements.
    pub fn admits(&self, spec: &crate::types::ProviderSpec) -> Result<(), String> {
        if spec.cores < self.cores {
            return Err(format!(
                "needs {} cores, provider has {}",
                self.cores, spec.cores
            ));
        }
        if spec.memory_bytes < self.memory_bytes {
            return Err(format!(
                "needs {} bytes of memory, provider has {}",
                self.memory_bytes, spec.memory_bytes
            ));
        }
        if self.gpu && spec.gpu.is_none() {
            return Err("needs a GPU, provider declares none".into());
        }
        if let Some(region) = &self.region
            && *region != spec.region
        {
            return Err(format!(
                "needs region {region}, provider is in {}",
                spec.region
            ));
        }
        Ok(())
    }
}

fn overflow(what: &str) -> Rejection {
    Rejection::TooLarge(format!("{what} would overflow"))
}

fn invalid(why: impl Into<String>) -> Rejection {
    Rejection::InvalidReservation(why.into())
}

impl State {
    fn needs_reservations(&self) -> Result<(), Rejection> {
        if self.rules < 26 {
            return Err(Rejection::NeedsRules {
                what: "reserved capacity".into(),
                needs: 26,
                runs: self.rules,
            });
        }
        Ok(())
    }

    /// Reservation `id`, for an action on it (rules 26).
    fn reservation_for(&self, id: u64) -> Result<&Reservation, Rejection> {
        self.needs_reservations()?;
        self.reservations
            .reservations
            .get(&id)
            .ok_or(Rejection::UnknownReservation(id))
    }

    /// `Action::Reserve`: the offer, its open slots' first period prepaid.
    pub(crate) fn reserve(
        &mut self,
        who: AccountId,
        spec: &ReservationSpec,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        self.needs_reservations()?;
        spec.validate().map_err(invalid)?;
        if self.reservations.live_of(&who) >= MAX_LIVE_PER_OWNER {
            return Err(invalid(format!(
                "an account has at most {MAX_LIVE_PER_OWNER} reservations live"
            )));
        }
        if self.reservations.live() >= MAX_LIVE {
            return Err(invalid(format!(
                "the network holds at most {MAX_LIVE} live reservations"
            )));
        }
        let held = spec
            .price_per_slot
            .checked_mul(Amount::from(spec.slots))
            .ok_or_else(|| invalid("slots × price overflows"))?;
        self.require_funds(&who, held)?;
        self.debit(&who, held)?;
        let id = self.reservations.next_id.max(1);
        let open_until = now.saturating_add(spec.period_ms);
        self.reservations.next_id = id.checked_add(1).ok_or_else(|| overflow("ids"))?;
        self.reservations.reservations.insert(
            id,
            Reservation {
                id,
                owner: who,
                spec: spec.clone(),
                created: now,
                open_until,
                open_slots: spec.slots,
                open_held: held,
                cancelled: false,
                paid: 0,
                refunded: 0,
                tasks_covered: 0,
                ended: None,
            },
        );
        self.reservations.recompute_due();
        Ok(vec![Event::Reserved {
            reservation: id,
            owner: who,
            slots: spec.slots,
            held,
            open_until,
        }])
    }

    /// `Action::AcceptReservation`: `who` leases `slots` of the open ones.
    pub(crate) fn accept_reservation(
        &mut self,
        who: AccountId,
        id: u64,
        slots: u32,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        let r = self.reservation_for(id)?;
        let p = self.active_provider(&who)?;
        if r.ended.is_some() || r.cancelled || now >= r.open_until {
            return Err(invalid(format!("reservation {id} takes no acceptance")));
        }
        if r.owner == who || r.owner == p.operator() {
            return Err(invalid("a requester cannot lease its own reservation"));
        }
        if slots == 0 || slots > r.open_slots {
            return Err(invalid(format!(
                "accept 1 to {} slots of reservation {id}",
                r.open_slots
            )));
        }
        if self
            .reservations
            .leases
            .get(&who)
            .is_some_and(|m| m.contains_key(&id))
        {
            return Err(invalid(format!(
                "provider {who} already holds a lease of reservation {id}"
            )));
        }
        r.spec.admits(&p.spec).map_err(invalid)?;
        let leased = self.reservations.leased_slots(&who);
        if leased.saturating_add(slots) > p.spec.slots {
            return Err(invalid(format!(
                "provider {who} has {} slots and {leased} leased already",
                p.spec.slots
            )));
        }
        if !self.has_min_stake(&who) {
            return Err(invalid(format!(
                "provider has {} bonded, below the minimum stake {}",
                Tokens(self.backing(&who)),
                Tokens(self.ledger.min_stake)
            )));
        }
        let held = r
            .spec
            .price_per_slot
            .checked_mul(Amount::from(slots))
            .ok_or_else(|| overflow("reservation"))?;
        let period_end = now.saturating_add(r.spec.period_ms);
        let Some(r) = self.reservations.reservations.get_mut(&id) else {
            return Err(Rejection::UnknownReservation(id));
        };
        r.open_slots = r.open_slots.saturating_sub(slots);
        r.open_held = r
            .open_held
            .checked_sub(held)
            .ok_or_else(|| overflow("reservation"))?;
        self.reservations.leases.entry(who).or_default().insert(
            id,
            Lease {
                slots,
                period_start: now,
                period: 0,
                held,
                missed: false,
            },
        );
        self.reservations.recompute_due();
        Ok(vec![Event::ReservationAccepted {
            reservation: id,
            provider: who,
            slots,
            period_end,
        }])
    }

    /// `Action::CancelReservation`: open slots refunded now; leases run out their period.
    pub(crate) fn cancel_reservation(
        &mut self,
        who: AccountId,
        id: u64,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        let r = self.reservation_for(id)?;
        if r.owner != who {
            return Err(Rejection::NotReservationOwner(id));
        }
        if r.ended.is_some() {
            return Err(invalid(format!("reservation {id} has ended")));
        }
        if r.cancelled {
            return Err(invalid(format!("reservation {id} is already cancelled")));
        }
        if let Some(r) = self.reservations.reservations.get_mut(&id) {
            r.cancelled = true;
        }
        let mut events = vec![Event::ReservationCancelled { reservation: id }];
        events.extend(self.refund_open(id)?);
        self.end_if_done(id, now);
        self.reservations.recompute_due();
        Ok(events)
    }

    /// `Action::LeaveReservation`: `who`'s lease ends now, its current period refunded.
    pub(crate) fn leave_reservation(
        &mut self,
        who: AccountId,
        id: u64,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        self.reservation_for(id)?;
        let lease = self
            .reservations
            .leases
            .get_mut(&who)
            .and_then(|m| m.remove(&id))
            .ok_or_else(|| invalid(format!("provider {who} holds no lease of reservation {id}")))?;
        if self
            .reservations
            .leases
            .get(&who)
            .is_some_and(BTreeMap::is_empty)
        {
            self.reservations.leases.remove(&who);
        }
        let mut events = self.refund_reserved(id, lease.held)?;
        events.push(Event::LeaseEnded {
            reservation: id,
            provider: who,
            reason: LeaseEnd::Left,
        });
        self.end_if_done(id, now);
        self.reservations.recompute_due();
        Ok(events)
    }

    /// Refunds `amount` of reservation `id`'s escrow to its owner.
    fn refund_reserved(&mut self, id: u64, amount: Amount) -> Result<Vec<Event>, Rejection> {
        let Some(r) = self.reservations.reservations.get_mut(&id) else {
            return Ok(Vec::new());
        };
        if amount == 0 {
            return Ok(Vec::new());
        }
        r.refunded = r
            .refunded
            .checked_add(amount)
            .ok_or_else(|| overflow("reservation"))?;
        let owner = r.owner;
        self.credit(&owner, amount)?;
        Ok(vec![Event::ReservationRefunded {
            reservation: id,
            owner,
            amount,
        }])
    }

    /// Refunds reservation `id`'s open slots.
    fn refund_open(&mut self, id: u64) -> Result<Vec<Event>, Rejection> {
        let Some(r) = self.reservations.reservations.get_mut(&id) else {
            return Ok(Vec::new());
        };
        let amount = r.open_held;
        r.open_held = 0;
        r.open_slots = 0;
        self.refund_reserved(id, amount)
    }

    /// Marks reservation `id` ended when nothing is open and no lease runs; keeps the newest
    /// [`KEEP_ENDED`] ended ones.
    fn end_if_done(&mut self, id: u64, now: Time) {
        let leased = self
            .reservations
            .leases
            .values()
            .any(|m| m.contains_key(&id));
        let Some(r) = self.reservations.reservations.get_mut(&id) else {
            return;
        };
        if r.ended.is_some() || r.open_slots > 0 || leased {
            return;
        }
        r.ended = Some(now);
        let ended: Vec<u64> = self
            .reservations
            .reservations
            .values()
            .filter(|r| r.ended.is_some())
            .map(|r| r.id)
            .collect();
        for old in ended.iter().take(ended.len().saturating_sub(KEEP_ENDED)) {
            self.reservations.reservations.remove(old);
        }
    }

    /// Whether an offer lapses or a period ends by `now` (the leader then logs
    /// `LeaderCommand::SettleReservations` if nothing else comes).
    pub fn reservations_due(&self, now: Time) -> bool {
        self.rules >= 26 && self.reservations.next_due.is_some_and(|t| t <= now)
    }

    /// Settles everything due by `now` (called after each applied input): lapsed offers
    /// refunded, ended periods paid (or refunded) and leases renewed or ended.
    pub(crate) fn settle_reservations(&mut self, now: Time) -> Result<Vec<Event>, Rejection> {
        if !self.reservations_due(now) {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        let lapsed: Vec<u64> = self
            .reservations
            .reservations
            .values()
            .filter(|r| r.open_slots > 0 && r.open_until <= now)
            .map(|r| r.id)
            .collect();
        for id in lapsed {
            events.extend(self.refund_open(id)?);
            self.end_if_done(id, now);
        }
        let due: Vec<(AccountId, u64)> = self
            .reservations
            .leases
            .iter()
            .flat_map(|(p, m)| m.iter().map(move |(id, l)| (*p, *id, l)))
            .filter(|(_, id, l)| {
                self.reservations
                    .reservations
                    .get(id)
                    .is_some_and(|r| l.period_start.saturating_add(r.spec.period_ms) <= now)
            })
            .map(|(p, id, _)| (p, id))
            .collect();
        for (provider, id) in due {
            events.extend(self.settle_lease(provider, id, now)?);
            self.end_if_done(id, now);
        }
        self.reservations.recompute_due();
        Ok(events)
    }

    /// Settles every period of `provider`'s lease of `id` that ended by `now`.
    fn settle_lease(
        &mut self,
        provider: AccountId,
        id: u64,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        let mut events = Vec::new();
        loop {
            let Some(r) = self.reservations.reservations.get(&id) else {
                return Ok(events);
            };
            let (owner, spec, cancelled) = (r.owner, r.spec.clone(), r.cancelled);
            let Some(lease) = self
                .reservations
                .leases
                .get(&provider)
                .and_then(|m| m.get(&id))
                .cloned()
            else {
                return Ok(events);
            };
            let end = lease.period_start.saturating_add(spec.period_ms);
            if end > now {
                return Ok(events);
            }
            let available = !lease.missed
                && self
                    .providers
                    .get(&provider)
                    .is_some_and(|p| p.status == ProviderStatus::Active)
                && self.has_min_stake(&provider);
            let mut outcome = None;
            if available {
                events.extend(self.pay_period(provider, id, lease.held, lease.period, now)?);
            } else {
                events.extend(self.refund_reserved(id, lease.held)?);
                outcome = Some(LeaseEnd::Missed);
            }
            let next = lease.period.saturating_add(1);
            if outcome.is_none() {
                if cancelled {
                    outcome = Some(LeaseEnd::Cancelled);
                } else if next >= spec.periods {
                    outcome = Some(LeaseEnd::Completed);
                }
            }
            let cost = spec
                .price_per_slot
                .checked_mul(Amount::from(lease.slots))
                .ok_or_else(|| overflow("reservation"))?;
            if outcome.is_none() && self.balance(&owner) < cost {
                outcome = Some(LeaseEnd::Lapsed);
            }
            match outcome {
                Some(reason) => {
                    if let Some(m) = self.reservations.leases.get_mut(&provider) {
                        m.remove(&id);
                        if m.is_empty() {
                            self.reservations.leases.remove(&provider);
                        }
                    }
                    events.push(Event::LeaseEnded {
                        reservation: id,
                        provider,
                        reason,
                    });
                    return Ok(events);
                }
                None => {
                    self.debit(&owner, cost)?;
                    if let Some(l) = self
                        .reservations
                        .leases
                        .get_mut(&provider)
                        .and_then(|m| m.get_mut(&id))
                    {
                        l.period = next;
                        l.period_start = end;
                        l.held = cost;
                        l.missed = false;
                    }
                    events.push(Event::ReservationRenewed {
                        reservation: id,
                        owner,
                        provider,
                        period: next,
                        amount: cost,
                        period_end: end.saturating_add(spec.period_ms),
                    });
                }
            }
        }
    }

    /// Pays a lease's period to its provider: the fee to the treasury, its delegators' share to
    /// its pool, the rest to it.
    fn pay_period(
        &mut self,
        provider: AccountId,
        id: u64,
        gross: Amount,
        period: u32,
        now: Time,
    ) -> Result<Vec<Event>, Rejection> {
        let fee = bps_of(gross, self.ledger.fee_bps).ok_or_else(|| overflow("fee"))?;
        let net = gross.checked_sub(fee).ok_or_else(|| overflow("payment"))?;
        let (kept, delegators) = self.share_payment(provider, net, now)?;
        self.credit(&provider, kept)?;
        let treasury = self.ledger.treasury;
        self.credit(&treasury, fee)?;
        self.count_fee(fee)?;
        if let Some(p) = self.providers.get_mut(&provider) {
            p.stats.earned = p.stats.earned.saturating_add(kept);
        }
        if let Some(r) = self.reservations.reservations.get_mut(&id) {
            r.paid = r
                .paid
                .checked_add(gross)
                .ok_or_else(|| overflow("reservation"))?;
        }
        let mut events = vec![Event::ReservationPaid {
            reservation: id,
            provider,
            period,
            amount: kept,
            fee,
        }];
        events.extend(delegators);
        Ok(events)
    }

    /// The reservation whose lease covers `provider` running `owner`'s tasks, if any.
    pub fn covering_lease(&self, provider: &AccountId, owner: &AccountId) -> Option<u64> {
        if self.rules < 26 {
            return None;
        }
        self.reservations.lease_of(provider, owner)
    }

    /// A run of `task` (owned by `owner`) on `provider` timed out: a lease of `owner`'s on
    /// `provider` missed its period.
    pub(crate) fn lease_missed(&mut self, provider: &AccountId, owner: &AccountId) {
        let Some(id) = self.covering_lease(provider, owner) else {
            return;
        };
        if let Some(l) = self
            .reservations
            .leases
            .get_mut(provider)
            .and_then(|m| m.get_mut(&id))
        {
            l.missed = true;
        }
    }

    /// `provider` was lost or left: every lease it holds misses its period.
    pub(crate) fn leases_missed(&mut self, provider: &AccountId) {
        for l in self
            .reservations
            .leases
            .get_mut(provider)
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            l.missed = true;
        }
    }

    /// A task of a leased requester was paid by its lease: counted, and the event.
    pub(crate) fn cover_task(&mut self, id: u64, task: TaskId, provider: AccountId) -> Event {
        if let Some(r) = self.reservations.reservations.get_mut(&id) {
            r.tasks_covered = r.tasks_covered.saturating_add(1);
        }
        Event::TaskCovered {
            task,
            provider,
            reservation: id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ReservationSpec {
        ReservationSpec {
            slots: 2,
            cores: 2,
            memory_bytes: 1 << 30,
            gpu: false,
            region: Some("eu".into()),
            period_ms: 60_000,
            periods: 3,
            price_per_slot: 1_000,
        }
    }

    #[test]
    fn a_spec_is_checked() {
        assert!(spec().validate().is_ok());
        type Case = (fn(&mut ReservationSpec), &'static str);
        let table: Vec<Case> = vec![
            (|s| s.slots = 0, "slots"),
            (|s| s.slots = MAX_SLOTS + 1, "slots"),
            (|s| s.period_ms = 999, "period"),
            (|s| s.period_ms = MAX_PERIOD_MS + 1, "period"),
            (|s| s.periods = 0, "periods"),
            (|s| s.periods = MAX_PERIODS + 1, "periods"),
            (|s| s.price_per_slot = 0, "price"),
            (|s| s.cores = 1025, "cores"),
            (|s| s.region = Some(String::new()), "region"),
            (|s| s.region = Some("x".repeat(65)), "region"),
        ];
        for (change, word) in table {
            let mut s = spec();
            change(&mut s);
            let err = s.validate().expect_err(word);
            assert!(err.contains(word), "{err} should name {word}");
        }
    }

    #[test]
    fn requirements_are_required() {
        let mut p = crate::types::ProviderSpec {
            slots: 4,
            cores: 4,
            memory_bytes: 2 << 30,
            gpu: None,
            benchmark_score: 1,
            region: "eu".into(),
            price_per_fuel: 1,
            operator: None,
        };
        assert!(spec().admits(&p).is_ok());
        p.region = "us".into();
        assert!(spec().admits(&p).unwrap_err().contains("region"));
        p.region = "eu".into();
        p.cores = 1;
        assert!(spec().admits(&p).unwrap_err().contains("cores"));
        p.cores = 4;
        p.memory_bytes = 1;
        assert!(spec().admits(&p).unwrap_err().contains("memory"));
        p.memory_bytes = 2 << 30;
        let mut s = spec();
        s.gpu = true;
        assert!(s.admits(&p).unwrap_err().contains("GPU"));
    }
}
