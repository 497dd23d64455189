//! Property: delivering events out of order within the allowed lateness, and
//! redelivering some of them, never changes the alerts (SPEC §4 "Order") — those of §4,
//! the hygiene alerts of §4b, whose clocks are re-armed by nearly every event, and those
//! of §4c: rotations followed or not, shadow identities registered or not.

use lockstep::alert::{Alert, AlertKind};
use lockstep::config::Config;
use lockstep::correlate::reorder::ReorderBuffer;
use lockstep::correlate::{Correlator, Rules};
use lockstep::event::IdentityEvent;
use lockstep::simulate::{generate, Scenario};
use lockstep::store::Store;
use lockstep::time::Span;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};

fn alerts_of(events: &[IdentityEvent]) -> Vec<Alert> {
    let config = Config::default();
    let mut c = Correlator::new(Rules::from(&config), Store::temporary().unwrap());
    let mut buffer = ReorderBuffer::new(config.correlator.allowed_lateness);
    let mut out = Vec::new();
    for e in events {
        buffer.push(e.clone());
        while let Some(e) = buffer.pop_ready() {
            c.apply(&e, &mut out).unwrap();
        }
    }
    while let Some(e) = buffer.pop_any() {
        c.apply(&e, &mut out).unwrap();
    }
    let latest = events.iter().map(|e| e.time).max().unwrap();
    c.finish(latest, usize::MAX, &mut out).unwrap();
    lockstep::alert::sort_alerts(&mut out);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn shuffling_within_lateness_and_redelivering_never_changes_alerts(
        seed in 0u64..1_000_000,
        shuffle_seed in any::<u64>(),
        delay_secs in 0i64..=30,
        redelivery in 0.0f64..0.2,
    ) {
        // 120 accounts: each has a shadow identity never registered with p = 0.08, so
        // every seed has one (p of none ≈ 5e-5).
        let ordered = generate(&Scenario { disorder: Span(0), redelivery: 0.0, months: 4, consistency: true, ..Scenario::new(seed, 120) });
        let baseline = alerts_of(&ordered);
        for kind in [AlertKind::EchoMissing, AlertKind::RotationOverdue, AlertKind::CredentialUnused, AlertKind::RotationMissed, AlertKind::UnregisteredIdentity] {
            prop_assert!(baseline.iter().any(|a| a.kind == kind), "no {kind} in the baseline");
        }

        // Each event is delayed by up to `delay_secs` (≤ allowed_lateness) and some are
        // delivered a second time, also delayed.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(shuffle_seed);
        let max = Span::secs(delay_secs).0;
        let mut delivered = Vec::new();
        for ev in &ordered {
            delivered.push((ev.time.0 + rng.gen_range(0..=max), ev.clone()));
            if rng.gen_bool(redelivery) {
                delivered.push((ev.time.0 + rng.gen_range(0..=max), ev.clone()));
            }
        }
        delivered.sort_by_key(|(at, _)| *at);
        let shuffled: Vec<_> = delivered.into_iter().map(|(_, e)| e).collect();
        prop_assert_eq!(alerts_of(&shuffled), baseline);
    }
}
