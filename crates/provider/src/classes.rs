//! Rules 28: a provider with a GPU offer takes part in proving GPU classes (`engine::gpu_class`).
//!
//! About once a [`CLASS_LOOK_EVERY`] the control loop reads `GET /v1/gpu/classes` (one read:
//! this provider's entry until it knows the class it claims, then its entry and the claims to
//! that class, `?class=&member=`, which does not grow with the class's members) and
//! - while its own claim is pending, answers an open check it has not answered yet with its
//!   device's fingerprint of the check's challenge (`Action::AnswerGpuClass`);
//! - once its class is proven, checks each claim to the same class that it has not checked yet
//!   (a provider of another operator, no open check that is not yet due) with a random
//!   challenge and a commitment to its own device's answer (`Action::ChallengeGpuClass`).
//!
//! Fingerprints are computed in the background (in the device's turn between GPU tasks, see
//! [`crate::work::Worker::gpu_fingerprint`]) and handed back to the control loop, which signs
//! and sends the actions itself: one signer, one sequence of nonces. Every check and answer is
//! tried once (remembered here), so a refused one is never repeated, and said once.

use crate::Agent;
use api::ClientError;
use api::wire::GpuClassesView;
use engine::{AccountId, Action, Event, Hash, Time};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// How often the provider looks at the classes.
pub(crate) const CLASS_LOOK_EVERY: Duration = Duration::from_secs(1);

/// What a computed fingerprint is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Step {
    /// This provider's answer to `checker`'s check (opened at `at`).
    Answer {
        checker: AccountId,
        challenge: u64,
        at: Time,
    },
    /// This provider's check of `provider`'s claim (made since `since`).
    Check {
        provider: AccountId,
        since: Time,
        challenge: u64,
    },
}

/// A fingerprint computed in the background, for the control loop to log.
pub(crate) struct Computed {
    step: Step,
    answer: Result<Hash, String>,
}

/// What the provider remembers of its part in proving classes.
#[derive(Default)]
pub(crate) struct ClassChecks {
    /// The class this provider claims, once the network's view named it.
    class: Option<String>,
    /// When to look next.
    next: Option<Instant>,
    /// Checks of this provider it answered, or is answering: by checker and when it was opened.
    answered: HashSet<(AccountId, Time)>,
    /// Claims it checked, or is checking: by provider and since when it claims.
    checked: HashSet<(AccountId, Time)>,
    /// The last standing it logged: its class and whether pending (so each is said once).
    said: Option<(String, bool)>,
}

impl ClassChecks {
    /// When the control loop should look next; `None`: not before it is told to.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.next
    }

    /// What `view` asks of provider `me` (of `operator`) that it has not done yet, remembered
    /// as done; `draw` draws a check's random challenge.
    fn steps(
        &mut self,
        me: AccountId,
        operator: AccountId,
        view: &GpuClassesView,
        mut draw: impl FnMut() -> Option<u64>,
    ) -> Vec<Step> {
        let mine = view.proven.iter().find(|p| p.provider == me);
        let claim = view.pending.iter().find(|p| p.provider == me);
        let standing = match (mine, claim) {
            (Some(p), _) => (p.class.clone(), false),
            (None, Some(p)) => (p.class.clone(), true),
            // Not in the view: it claims no class (or another one now): learn it again.
            (None, None) => {
                self.class = None;
                return Vec::new();
            }
        };
        self.class = Some(standing.0.clone());
        if self.said.as_ref() != Some(&standing) {
            let class = &standing.0;
            match mine.map(|p| p.by) {
                Some(Some(by)) => {
                    tracing::info!(%class, %by, "GPU class proven by a member's check")
                }
                Some(None) => {
                    tracing::info!(%class, "GPU class founded (no member could check it)")
                }
                None => tracing::info!(%class, "GPU class claimed: waiting for a member's check"),
            }
            self.said = Some(standing);
        }
        let mut steps = Vec::new();
        if let Some(open) = claim.and_then(|c| c.challenge.as_ref())
            && view.now < open.due
            && self.answered.insert((open.checker, open.at))
        {
            steps.push(Step::Answer {
                checker: open.checker,
                challenge: open.challenge,
                at: open.at,
            });
        }
        let Some(mine) = mine else {
            return steps;
        };
        for p in &view.pending {
            let may = p.provider != me
                && p.class == mine.class
                && p.operator != operator
                && !p.checked_by.contains(&me)
                && p.challenge.as_ref().is_none_or(|c| c.due <= view.now);
            if !may || self.checked.contains(&(p.provider, p.since)) {
                continue;
            }
            let Some(challenge) = draw() else {
                break;
            };
            self.checked.insert((p.provider, p.since));
            steps.push(Step::Check {
                provider: p.provider,
                since: p.since,
                challenge,
            });
        }
        steps
    }
}

/// Whether the coordinator refused it (a rule), rather than could not be reached.
fn refused(e: &ClientError) -> bool {
    !e.is_transient()
}

impl Agent {
    /// Whether this provider takes part: it registered with a GPU offer on rules 28 or later.
    pub(crate) fn proves_classes(&self) -> bool {
        self.gpu_offer.is_some() && self.rules >= 28
    }

    /// Reads the classes if it is time to and starts the fingerprints that what it sees needs,
    /// each sent to `done` once computed.
    pub(crate) async fn look_at_classes(&mut self, done: &UnboundedSender<Computed>) {
        if !self.proves_classes() {
            self.classes.next = None;
            return;
        }
        let now = Instant::now();
        if self.classes.next.is_some_and(|next| now < next) {
            return;
        }
        self.classes.next = Some(now + CLASS_LOOK_EVERY);
        let me = self.identity.id();
        let class = self.classes.class.clone();
        // Its own entry until it knows its class; then its own entry and the claims to the
        // class (not the other members: the answer does not grow with them).
        let read = match class.as_deref() {
            Some(class) => self.client.gpu_class_work(class, me).await,
            None => self.client.gpu_classes(None, Some(me)).await,
        };
        let view = match read {
            Ok(view) => view,
            Err(e) => {
                tracing::debug!(error = %e, "reading the GPU classes");
                return;
            }
        };
        let operator = self.spec.operator_of(me);
        let draw = || {
            getrandom::u64()
                .map_err(|e| tracing::warn!(error = %e, "no randomness for a GPU class check"))
                .ok()
        };
        for step in self.classes.steps(me, operator, &view, draw) {
            let worker = self.worker.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let challenge = match step {
                    Step::Answer { challenge, .. } | Step::Check { challenge, .. } => challenge,
                };
                let answer = worker.gpu_fingerprint(challenge).await;
                let _ = done.send(Computed { step, answer });
            });
        }
    }

    /// Says what `checker`'s check, answered, gave.
    fn answered(&mut self, checker: AccountId, events: &[Event]) {
        for event in events {
            match event {
                Event::GpuClassProven { class, .. } => {
                    tracing::info!(%class, by = %checker, "GPU class proven by a member's check");
                    self.classes.said = Some((class.clone(), false));
                }
                Event::GpuClassCheckFailed { .. } => tracing::warn!(
                    %checker,
                    "failed a member's GPU class check: this device does not compute like that \
                     member's (another member may check it)"
                ),
                _ => {}
            }
        }
    }

    /// Logs what a computed fingerprint was for: the answer, or the check with a commitment to
    /// it.
    pub(crate) async fn log_class_step(&mut self, computed: Computed) {
        let Computed { step, answer } = computed;
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    ?step,
                    "could not compute the GPU fingerprint for a class check"
                );
                return;
            }
        };
        match step {
            Step::Answer { checker, at, .. } => {
                let action = Action::AnswerGpuClass { answer };
                match self.client.action(&self.identity, action).await {
                    Ok(resp) => self.answered(checker, &resp.events),
                    Err(e) if !refused(&e) => {
                        // Not heard: tried again while the check is open.
                        tracing::debug!(error = %e, "answering a GPU class check");
                        self.classes.answered.remove(&(checker, at));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, %checker, "answering a GPU class check: refused")
                    }
                }
            }
            Step::Check {
                provider,
                since,
                challenge,
            } => {
                let commitment = engine::class_commitment(&provider, challenge, &answer);
                let action = Action::ChallengeGpuClass {
                    provider,
                    challenge,
                    commitment,
                };
                match self.client.action(&self.identity, action).await {
                    Ok(_) => {
                        tracing::info!(%provider, "checked a provider's claim to this GPU class")
                    }
                    Err(e) if !refused(&e) => {
                        tracing::debug!(error = %e, "checking a GPU class claim");
                        self.classes.checked.remove(&(provider, since));
                    }
                    // Another member's check came first: this one may check once that is due.
                    Err(ClientError::Api { body, .. }) if body.detail.contains("is answering") => {
                        self.classes.checked.remove(&(provider, since));
                    }
                    Err(e) => tracing::warn!(
                        error = %e,
                        %provider,
                        "checking a provider's claim to this GPU class was refused"
                    ),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::wire::{ClassChallengeView, PendingClassView, ProvenClassView};

    fn id(n: u8) -> AccountId {
        AccountId([n; 32])
    }

    fn proven(p: u8, class: &str) -> ProvenClassView {
        ProvenClassView {
            provider: id(p),
            class: class.into(),
            by: None,
            at: 0,
        }
    }

    fn pending(p: u8, class: &str) -> PendingClassView {
        PendingClassView {
            provider: id(p),
            operator: id(p),
            class: class.into(),
            since: 10,
            checked_by: Vec::new(),
            challenge: None,
        }
    }

    fn open(checker: u8, due: Time) -> Option<ClassChallengeView> {
        Some(ClassChallengeView {
            checker: id(checker),
            challenge: 5,
            commitment: Hash([0; 32]),
            at: due - engine::CLASS_ANSWER_MS,
            due,
        })
    }

    /// A member checks each claim to its class once: not its own operator's, not one another
    /// member is checking, not one it checked; again once the claim is made anew.
    #[test]
    fn a_member_checks_each_claim_to_its_class_once() {
        let me = id(1);
        let mut same_operator = pending(4, "a");
        same_operator.operator = me;
        let mut checked = pending(5, "a");
        checked.checked_by = vec![me];
        let mut busy = pending(6, "a");
        busy.challenge = open(9, 200_000);
        let mut lapsed = pending(7, "a");
        lapsed.challenge = open(9, 100_000);
        let mut view = GpuClassesView {
            now: 100_000,
            proven: vec![proven(1, "a"), proven(9, "a")],
            pending: vec![
                pending(2, "a"),
                pending(3, "b"),
                same_operator,
                checked,
                busy,
                lapsed,
            ],
        };
        let mut checks = ClassChecks::default();
        let mut n = 0;
        let mut draw = || {
            n += 1;
            Some(n)
        };
        let steps = checks.steps(me, me, &view, &mut draw);
        let checked: Vec<AccountId> = steps
            .iter()
            .map(|s| match s {
                Step::Check { provider, .. } => *provider,
                Step::Answer { .. } => panic!("{s:?}"),
            })
            .collect();
        assert_eq!(checked, vec![id(2), id(7)]);
        assert_eq!(checks.class.as_deref(), Some("a"));
        // Once only, whatever the view says later (a refused check is not repeated)...
        assert!(checks.steps(me, me, &view, &mut draw).is_empty());
        // ...until the claim is made anew.
        view.pending[0].since = 20;
        assert_eq!(checks.steps(me, me, &view, &mut draw).len(), 1);
    }

    /// A pending provider answers each open check once, and checks nobody.
    #[test]
    fn a_claimant_answers_each_open_check_once() {
        let me = id(2);
        let mut claim = pending(2, "a");
        claim.challenge = open(1, 150_000);
        let mut view = GpuClassesView {
            now: 100_000,
            proven: vec![proven(1, "a")],
            pending: vec![claim, pending(3, "a")],
        };
        let mut checks = ClassChecks::default();
        let draw = || Some(1);
        let steps = checks.steps(me, me, &view, draw);
        assert_eq!(
            steps,
            vec![Step::Answer {
                checker: id(1),
                challenge: 5,
                at: 150_000 - engine::CLASS_ANSWER_MS,
            }]
        );
        assert!(checks.steps(me, me, &view, draw).is_empty());
        // Past due: no answer; not in the view any more: the class is learnt again.
        view.pending[0].challenge = open(9, 100_000);
        assert!(checks.steps(me, me, &view, draw).is_empty());
        view.pending.remove(0);
        assert!(checks.steps(me, me, &view, draw).is_empty());
        assert_eq!(checks.class, None);
    }
}
