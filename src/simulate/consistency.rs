//! The stories of SPEC §4c, with `Scenario::consistency`: the first key of an account
//! that stays live is rotated in IAM in its first week and its vault secret follows on
//! time (six in ten), late (two in ten) or never; and some accounts have shadow
//! identities — an MDM agent no IAM identity stands behind, or a service account only
//! the SIEM and the vault know — registered in IAM in time, late or never, or
//! decommissioned before anyone asked.

use rand::Rng;

use super::Builder;
use crate::event::{Action::*, EntityKind as K, System::*};
use crate::time::{Micros, Span};

/// The rotation of `key` (issued under the account created at `t0`) and its `secret`.
pub(super) fn rotation(b: &mut Builder, t0: Micros, key: &str, secret: &str) {
    let rotated = b.within(t0, Span::hours(24 * 2), Span::hours(24 * 4));
    b.ok(Iam, rotated, key, K::ApiKey, Rotated, None);
    let follows = match b.rng.gen_range(0..100) {
        0..=59 => Some(b.within(rotated, Span::secs(10), Span::mins(10))),
        60..=79 => Some(b.within(rotated, Span::mins(20), Span::hours(2))),
        _ => None,
    };
    if let Some(t) = follows {
        b.ok(Vault, t, secret, K::Secret, Rotated, None);
    }
}

/// The shadow identities of account `i` (created at `t0`), if it has any.
pub(super) fn shadows(b: &mut Builder, i: u32, t0: Micros) {
    if b.rng.gen_bool(0.15) {
        let agent = format!("mac-{i:06}/shadow-agent");
        let enrolled = b.within(t0, Span::mins(5), Span::hours(12));
        b.ok(Mdm, enrolled, &agent, K::Agent, Enrolled, None);
        if let Some(t) = fate(b, &agent, K::Agent, enrolled) {
            b.ok(Mdm, t, &agent, K::Agent, Unenrolled, None);
        }
    }
    if b.rng.gen_bool(0.05) {
        let account = format!("shadow-{i:06}@corp.example");
        let seen = b.within(t0, Span::mins(5), Span::hours(12));
        b.ok(Siem, seen, &account, K::ServiceAccount, Observed, None);
        let secret = format!("vault:kv/shadow/{i:06}");
        let stored = b.within(seen, Span::mins(1), Span::hours(1));
        b.ok(Vault, stored, &secret, K::Secret, Created, Some(&account));
        if let Some(t) = fate(b, &account, K::ServiceAccount, seen) {
            b.ok(Siem, t, &account, K::ServiceAccount, Deleted, None);
            let gone = b.within(t, Span::secs(10), Span::mins(5));
            b.ok(Vault, gone, &secret, K::Secret, Deleted, None);
        }
    }
}

/// Registered in IAM within a day (a quarter) or late (15%) — then `None` — or, a fifth,
/// the time it is decommissioned where it was seen, within a day; or never (40%).
fn fate(b: &mut Builder, entity: &str, kind: K, seen: Micros) -> Option<Micros> {
    let registered = match b.rng.gen_range(0..100) {
        0..=24 => b.within(seen, Span::hours(1), Span::hours(20)),
        25..=39 => b.within(seen, Span::hours(30), Span::hours(48)),
        40..=59 => return Some(b.within(seen, Span::hours(1), Span::hours(20))),
        _ => return None,
    };
    b.ok(Iam, registered, entity, kind, Created, None);
    None
}
