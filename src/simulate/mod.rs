//! A seeded scenario generator: service accounts with API keys, vault secrets and tokens,
//! MDM agents and SIEM inventory, then offboardings echoed on time, late, never, after a
//! failed attempt, followed by use of a revoked key or re-activation — delivered slightly
//! out of order and with redeliveries, as real feeds are. With `months`, the keys of the
//! accounts that stay live on: rotated with the secrets that hold them (on time, late or
//! never) and used or left dormant, for the hygiene alerts of SPEC §4b. With
//! `consistency`, the stories of §4c too (module `consistency`): keys rotated with and
//! without their vault secrets, shadow identities. It feeds the demo, the tests and the
//! benchmarks; the same seed always gives the same events.

mod consistency;

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::event::{Action, EntityKind, IdentityEvent, Outcome, System};
use crate::time::{Micros, Span};

/// What to generate.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// Seed of the generator.
    pub seed: u64,
    /// Number of service accounts.
    pub accounts: u32,
    /// The earliest event time.
    pub start: Micros,
    /// Events are delivered up to this much out of time order (keep it below the
    /// correlator's `allowed_lateness` for exact results).
    pub disorder: Span,
    /// Fraction of events delivered twice.
    pub redelivery: f64,
    /// Mean number of usage records per API key.
    pub uses_per_key: u32,
    /// How long (in 30-day months) the keys of accounts that are not offboarded live on
    /// after their first week: rotations and use, or neglect. 0: no such tail.
    pub months: u32,
    /// Also the stories of SPEC §4c: rotations a vault secret follows or not, shadow
    /// identities registered in time, late, never, or decommissioned.
    pub consistency: bool,
}

impl Scenario {
    /// Defaults: 2026-03-02T00:00:00Z, 20 s disorder, 1% redeliveries, 7 uses per key.
    pub fn new(seed: u64, accounts: u32) -> Self {
        Scenario {
            seed,
            accounts,
            start: Micros(1_772_409_600_000_000),
            disorder: Span::secs(20),
            redelivery: 0.01,
            uses_per_key: 7,
            months: 0,
            consistency: false,
        }
    }
}

/// How an offboarding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Offboarding {
    OnTime,
    Late(System),
    Never(System),
    FailedThenRetried,
    FailedNeverRetried,
    KeyUsedAfter,
    Reactivated,
}

struct Builder {
    rng: ChaCha8Rng,
    events: Vec<IdentityEvent>,
    ids: [u64; 4],
}

impl Builder {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        system: System,
        time: Micros,
        entity: &str,
        kind: EntityKind,
        action: Action,
        outcome: Outcome,
        parent: Option<&str>,
        actor: &str,
    ) {
        let n = &mut self.ids[system.index()];
        *n += 1;
        let source = match system {
            System::Iam => "aws.cloudtrail",
            System::Vault => "hashicorp.vault",
            System::Mdm => "jamf",
            System::Siem => "splunk",
        };
        let mut attributes = BTreeMap::new();
        if action.class() == crate::event::ActionClass::Revocation {
            attributes.insert(
                "ticket".to_owned(),
                format!("OFF-{}", entity.len() * 7 + *n as usize % 1000),
            );
        }
        self.events.push(IdentityEvent {
            event_id: format!("{system}-{n:09}"),
            system,
            source: source.to_owned(),
            time,
            entity: entity.to_owned(),
            entity_kind: kind,
            action,
            outcome,
            parent: parent.map(str::to_owned),
            actor: Some(actor.to_owned()),
            attributes,
        });
    }

    /// A parentless event by `actor` with the given outcome.
    #[allow(clippy::too_many_arguments)]
    fn act(
        &mut self,
        actor: &str,
        outcome: Outcome,
        system: System,
        time: Micros,
        entity: &str,
        kind: EntityKind,
        action: Action,
    ) {
        self.push(system, time, entity, kind, action, outcome, None, actor);
    }

    fn ok(
        &mut self,
        system: System,
        time: Micros,
        entity: &str,
        kind: EntityKind,
        action: Action,
        parent: Option<&str>,
    ) {
        let actor = if action == Action::Used {
            entity.to_owned()
        } else {
            "terraform".to_owned()
        };
        self.push(
            system,
            time,
            entity,
            kind,
            action,
            Outcome::Success,
            parent,
            &actor,
        );
    }

    fn within(&mut self, from: Micros, lo: Span, hi: Span) -> Micros {
        Micros(from.0 + self.rng.gen_range(lo.0..=hi.0))
    }
}

/// Generates the scenario, in delivery order.
pub fn generate(s: &Scenario) -> Vec<IdentityEvent> {
    let mut b = Builder {
        rng: ChaCha8Rng::seed_from_u64(s.seed),
        events: Vec::with_capacity(s.accounts as usize * 40),
        ids: [0; 4],
    };
    for i in 0..s.accounts {
        account(&mut b, s, i);
    }
    let mut delivered: Vec<(i64, IdentityEvent)> =
        Vec::with_capacity(b.events.len() + b.events.len() / 50);
    let events = std::mem::take(&mut b.events);
    for ev in events {
        let jitter = b.rng.gen_range(0..=s.disorder.0);
        if b.rng.gen_bool(s.redelivery.clamp(0.0, 1.0)) {
            let again = b.rng.gen_range(0..=s.disorder.0);
            delivered.push((ev.time.0 + again, ev.clone()));
        }
        delivered.push((ev.time.0 + jitter, ev));
    }
    delivered.sort_by_key(|d| d.0);
    delivered.into_iter().map(|(_, ev)| ev).collect()
}

fn account(b: &mut Builder, s: &Scenario, i: u32) {
    use Action::*;
    use EntityKind as K;
    use System::*;
    let sa = format!("svc-{i:06}@corp.example");
    let t0 = b.within(s.start, Span(0), Span::hours(24 * 6));
    b.ok(Iam, t0, &sa, K::ServiceAccount, Created, None);
    let seen = b.within(t0, Span::mins(1), Span::mins(10));
    b.ok(Siem, seen, &sa, K::ServiceAccount, Observed, None);

    let offboarded = b.rng.gen_bool(0.55);
    let tr = b.within(t0, Span::hours(24), Span::hours(24 * 4));
    let life_end = if offboarded {
        tr
    } else {
        t0.plus(Span::hours(24 * 5))
    };

    let mut keys = Vec::new();
    let mut tails = Vec::new();
    for j in 0..b.rng.gen_range(1..=3) {
        let key = format!("{sa}/key-{j}");
        let issued = b.within(t0, Span::mins(1), Span::hours(1));
        b.ok(Iam, issued, &key, K::ApiKey, Issued, Some(&sa));
        let secret = format!("vault:kv/ci/{sa}/key-{j}");
        let stored = b.within(issued, Span::secs(10), Span::mins(5));
        b.ok(Vault, stored, &secret, K::Secret, Created, Some(&key));
        let uses = s.uses_per_key.max(1);
        for _ in 0..b.rng.gen_range(uses / 2..=uses + uses / 2) {
            let used = Micros(b.rng.gen_range(stored.0..life_end.0.max(stored.0 + 1)));
            b.ok(Iam, used, &key, K::ApiKey, Used, None);
        }
        tails.push((key.clone(), secret.clone(), stored));
        keys.push((key, secret));
    }
    let token = format!("{sa}/token-0");
    let minted = b.within(t0, Span::mins(1), Span::hours(2));
    b.ok(Vault, minted, &token, K::Token, Issued, Some(&sa));
    let agent = b.rng.gen_bool(0.4).then(|| format!("mac-{i:06}/agent"));
    if let Some(agent) = &agent {
        let enrolled = b.within(t0, Span::mins(5), Span::hours(3));
        b.ok(Mdm, enrolled, agent, K::Agent, Enrolled, Some(&sa));
    }
    if s.consistency {
        consistency::shadows(b, i, t0);
    }
    if !offboarded {
        if s.consistency {
            if let Some((key, secret)) = keys.first() {
                consistency::rotation(b, t0, key, secret);
            }
        }
        if s.months > 0 {
            let horizon = s.start.plus(Span::days(30 * i64::from(s.months)));
            for (key, secret, stored) in tails {
                key_life(b, &key, &secret, stored, life_end, horizon);
            }
        }
        return;
    }

    let roll = b.rng.gen_range(0..100);
    let pick = |b: &mut Builder| [Iam, Vault, Mdm, Siem][b.rng.gen_range(0..4)];
    let plan = match roll {
        0..=54 => Offboarding::OnTime,
        55..=69 => Offboarding::Late(pick(b)),
        70..=79 => Offboarding::Never(pick(b)),
        80..=83 => Offboarding::FailedThenRetried,
        84..=87 => Offboarding::FailedNeverRetried,
        88..=94 => Offboarding::KeyUsedAfter,
        _ => Offboarding::Reactivated,
    };
    b.act(
        "offboarding-bot",
        Outcome::Success,
        Iam,
        tr,
        &sa,
        K::ServiceAccount,
        Disabled,
    );

    // When each system echoes: on time within its SLA, late past it, or never.
    let echo = |b: &mut Builder, system: System, sla: Span| -> Option<Micros> {
        match plan {
            Offboarding::Never(s) if s == system => None,
            Offboarding::Late(s) if s == system => Some(b.within(
                tr,
                Span(sla.0 + Span::mins(1).0),
                Span(sla.0 + Span::hours(2).0),
            )),
            _ => Some(b.within(tr, Span::secs(30), Span(sla.0 * 3 / 4))),
        }
    };
    for (key, secret) in &keys {
        if plan == Offboarding::KeyUsedAfter && key.ends_with("key-0") {
            let used = b.within(tr, Span::mins(5), Span::mins(40));
            b.ok(Iam, used, key, K::ApiKey, Used, None);
            continue;
        }
        if let Some(t) = echo(b, Iam, Span::mins(15)) {
            b.act(
                "offboarding-bot",
                Outcome::Success,
                Iam,
                t,
                key,
                K::ApiKey,
                Deleted,
            );
        }
        if let Some(t) = echo(b, Vault, Span::mins(15)) {
            b.act(
                "offboarding-bot",
                Outcome::Success,
                Vault,
                t,
                secret,
                K::Secret,
                Deleted,
            );
        }
    }
    match plan {
        Offboarding::FailedThenRetried | Offboarding::FailedNeverRetried => {
            let failed = b.within(tr, Span::secs(20), Span::mins(3));
            b.act(
                "offboarding-bot",
                Outcome::Failure,
                Vault,
                failed,
                &token,
                K::Token,
                Revoked,
            );
            if plan == Offboarding::FailedThenRetried {
                let retried = b.within(failed, Span::mins(1), Span::mins(10));
                b.act(
                    "offboarding-bot",
                    Outcome::Success,
                    Vault,
                    retried,
                    &token,
                    K::Token,
                    Revoked,
                );
            }
        }
        _ => {
            if let Some(t) = echo(b, Vault, Span::mins(15)) {
                b.act(
                    "offboarding-bot",
                    Outcome::Success,
                    Vault,
                    t,
                    &token,
                    K::Token,
                    Revoked,
                );
            }
        }
    }
    if let Some(agent) = &agent {
        if let Some(t) = echo(b, Mdm, Span::hours(4)) {
            b.act(
                "offboarding-bot",
                Outcome::Success,
                Mdm,
                t,
                agent,
                K::Agent,
                Unenrolled,
            );
        }
    }
    if let Some(t) = echo(b, Siem, Span::hours(1)) {
        b.act(
            "splunk-sync",
            Outcome::Success,
            Siem,
            t,
            &sa,
            K::ServiceAccount,
            Revoked,
        );
    }
    if plan == Offboarding::Reactivated {
        let back = b.within(tr, Span::hours(5), Span::hours(8));
        b.act(
            "helpdesk",
            Outcome::Success,
            Iam,
            back,
            &sa,
            K::ServiceAccount,
            Enabled,
        );
        let key = format!("{sa}/key-9");
        let issued = b.within(back, Span::mins(1), Span::mins(30));
        b.ok(Iam, issued, &key, K::ApiKey, Issued, Some(&sa));
    }
}

/// The life of a key after its account's first week, until `horizon`: rotated with its
/// secret every 60–88 days (half the keys), late every 95–120 days (a fifth), or never;
/// used every 1–10 days until the horizon, or (three in ten) never again.
fn key_life(
    b: &mut Builder,
    key: &str,
    secret: &str,
    issued: Micros,
    from: Micros,
    horizon: Micros,
) {
    use Action::*;
    use EntityKind as K;
    use System::*;
    let interval = match b.rng.gen_range(0..100) {
        0..=49 => Some((60, 88)),
        50..=69 => Some((95, 120)),
        _ => None,
    };
    if let Some((lo, hi)) = interval {
        let mut t = issued;
        loop {
            t = b.within(t, Span::days(lo), Span::days(hi));
            if t >= horizon {
                break;
            }
            b.ok(Iam, t, key, K::ApiKey, Rotated, None);
            let stored = b.within(t, Span::secs(10), Span::mins(5));
            b.ok(Vault, stored, secret, K::Secret, Rotated, None);
        }
    }
    if b.rng.gen_bool(0.7) {
        let mut t = from;
        loop {
            t = b.within(t, Span::days(1), Span::days(10));
            if t >= horizon {
                break;
            }
            b.ok(Iam, t, key, K::ApiKey, Used, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_events_and_every_story_occurs() {
        let a = generate(&Scenario::new(7, 300));
        assert_eq!(a, generate(&Scenario::new(7, 300)));
        assert_ne!(a, generate(&Scenario::new(8, 300)));
        let has = |action: Action, outcome: Outcome| {
            a.iter().any(|e| e.action == action && e.outcome == outcome)
        };
        assert!(has(Action::Disabled, Outcome::Success));
        assert!(has(Action::Revoked, Outcome::Failure));
        assert!(has(Action::Enabled, Outcome::Success));
        assert!(has(Action::Unenrolled, Outcome::Success));
        let mut ids: Vec<_> = a.iter().map(|e| (e.system, e.event_id.clone())).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert!(ids.len() < n, "some events are redelivered");
        assert!(
            a.windows(2).any(|w| w[1].time < w[0].time),
            "delivery is out of order"
        );
        assert!(
            !has(Action::Rotated, Outcome::Success),
            "no tail without months"
        );
    }

    #[test]
    fn months_add_rotations_after_the_first_week() {
        let scenario = Scenario {
            months: 5,
            ..Scenario::new(7, 100)
        };
        let events = generate(&scenario);
        let rotated: Vec<_> = events
            .iter()
            .filter(|e| e.action == Action::Rotated)
            .collect();
        assert!(rotated.iter().any(|e| e.system == System::Iam));
        assert!(rotated.iter().any(|e| e.system == System::Vault));
        let horizon = scenario.start.plus(Span::days(150));
        assert!(events.iter().all(|e| e.time < horizon.plus(Span::mins(10))));
        assert!(events
            .iter()
            .any(|e| e.time > scenario.start.plus(Span::days(100))));
    }

    #[test]
    fn consistency_adds_rotations_and_shadow_identities_and_nothing_without_it() {
        let plain = generate(&Scenario::new(7, 300));
        let scenario = Scenario {
            consistency: true,
            ..Scenario::new(7, 300)
        };
        let events = generate(&scenario);
        assert!(events.len() > plain.len());
        assert!(!plain.iter().any(|e| e.entity.contains("shadow")));
        let has = |f: &dyn Fn(&IdentityEvent) -> bool| events.iter().any(f);
        assert!(has(
            &|e| e.action == Action::Rotated && e.system == System::Iam
        ));
        assert!(has(
            &|e| e.action == Action::Rotated && e.system == System::Vault
        ));
        assert!(has(
            &|e| e.entity.ends_with("shadow-agent") && e.system == System::Mdm
        ));
        assert!(has(
            &|e| e.entity.starts_with("shadow-") && e.system == System::Siem
        ));
        assert!(has(
            &|e| e.entity.contains("shadow") && e.system == System::Iam
        ));
        assert!(has(
            &|e| e.entity.contains("shadow") && e.action == Action::Unenrolled
        ));
    }
}
