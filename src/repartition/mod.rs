//! Routing by lineage root (SPEC §7) for source topics keyed as their producers like — by
//! their own entity id, typically — so that every event is correlated where its tree's
//! state lives, and a tree that gains a parent moves with it.
//!
//! One router per group (the member that owns partition 0 of the repartition topic) reads
//! every source partition in the order of SPEC §4 — the reorder buffer and watermark of
//! one instance — and keeps the lineage directory: the edges of §4 (first parent, no
//! cycle), the redelivery filter, and which entities have events. For each event it
//! writes to the repartition topic, keyed by the event's root after its edge, to the
//! partition (state shard) [`shard_of`] that root:
//!
//! - `events`: a run of events bound for one shard, in order (one record for up to
//!   [`RUN`] of them: a record per event cost the router more in producing it than in
//!   routing it), in the topic's binary encoding ([`wire`]); an event `awaits` a tree
//!   when its edge joined a tree that has state on another shard to this root's tree;
//! - `move-out`, to that other shard, at the same place in the order: the shard takes the
//!   tree's state out of its store ([`crate::store::tree`]) and writes it back as
//! - `move-in`, to the new root's shard, which imports it before the awaiting event;
//! - `mark`, to every shard after each step: the router's watermark. A shard evaluates its
//!   deadlines up to the last mark, so time and deadlines advance on every instance, and a
//!   shard is never ahead of the events routed to it.
//!
//! Every output of the router and of a shard goes through its store's outbox, committed
//! with the state it came from: a crash repeats outputs, never loses one. Repeats are
//! harmless: the shards drop events they applied (redelivery filter), move-outs of trees
//! they no longer hold yield empty move-ins, and a move-in for a tree already joined is
//! dropped. Chains of awaiting point back in time, so shards never wait on each other in
//! a circle.
//!
//! Runs and move-outs written by a lockstep from before the binary encoding (canonical
//! JSON, what each event awaits in [`AWAITS`] headers) are still read: a group stopped
//! and started on a newer build loses none of the records its router wrote.

pub mod wire;

use crate::correlate::{lineage, Stats};
use crate::error::{DecodeError, StoreError};
use crate::event::IdentityEvent;
use crate::store::tree::TreeState;
use crate::store::{OutboxRecord, Store};
use crate::time::{Micros, Span};

/// Header naming what a repartition record is.
pub const RECORD: &str = "lockstep.record";
/// Header of an `events` record in canonical JSON (as written before [`wire`]), one for
/// each event that waits for a tree: its index in the run, a tab, and the top of the tree
/// it waits for.
pub const AWAITS: &str = "lockstep.awaits";
/// How far the watermark moves between marks when no event was routed.
pub const MARK_EVERY: Span = Span::secs(1);
/// The most events in one `events` record (some 100 KiB).
pub const RUN: usize = 512;

/// A record of the repartition topic.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    /// Events to correlate, in order.
    Events(Vec<RoutedEvent>),
    /// The event whose edge moves the tree whose top is its entity to another shard.
    MoveOut(IdentityEvent),
    /// A tree's state, for the shard of the root it joined.
    MoveIn(TreeState),
    /// Every event before this time has been routed.
    Mark(Micros),
}

/// An event to correlate, after the tree `awaits` (if any) has moved in.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutedEvent {
    /// The event.
    pub ev: IdentityEvent,
    /// The top of a tree joined by this event's edge, whose state comes from another
    /// shard.
    pub awaits: Option<String>,
}

/// The state shard, of `shards`, of the tree whose root is `root`: FNV-1a, stable across
/// processes and versions (the state on disk depends on it).
pub fn shard_of(root: &str, shards: usize) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in root.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as i32
}

impl Routed {
    fn kind(&self) -> &'static str {
        match self {
            Routed::Events(_) => "events",
            Routed::MoveOut(_) => "move-out",
            Routed::MoveIn(_) => "move-in",
            Routed::Mark(_) => "mark",
        }
    }

    /// The record for partition `partition` of `topic`, keyed by `root` (none for a run
    /// of events: they have a root each).
    pub fn record(&self, topic: &str, root: &str, partition: i32) -> OutboxRecord {
        let headers = vec![(RECORD.to_owned(), self.kind().as_bytes().to_vec())];
        let payload = match self {
            Routed::Events(run) => {
                let mut payload = wire::payload(run.len() * 128);
                for routed in run {
                    wire::encode_into(&mut payload, &routed.ev, routed.awaits.as_deref());
                }
                payload
            }
            Routed::MoveOut(ev) => {
                let mut payload = wire::payload(128);
                wire::encode_into(&mut payload, ev, None);
                payload
            }
            // Rows of strings, enums and numbers: serialising cannot fail.
            Routed::MoveIn(tree) => serde_json::to_vec(tree).unwrap_or_default(),
            Routed::Mark(at) => at.0.to_string().into_bytes(),
        };
        let key = match self {
            Routed::Events(_) => None,
            _ => Some(root.as_bytes().to_vec()),
        };
        OutboxRecord {
            topic: topic.to_owned(),
            key,
            partition: Some(partition),
            payload,
            headers,
        }
    }

    /// Reads a record of the repartition topic, whose headers are `headers` (name,
    /// value).
    pub fn decode(headers: &[(&str, &[u8])], payload: &[u8]) -> Result<Routed, DecodeError> {
        let text = |bytes: &[u8]| {
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|e| DecodeError::new(format!("repartition record: {e}")))
        };
        let kind = headers
            .iter()
            .find(|(name, _)| *name == RECORD)
            .map(|h| h.1);
        let binary = payload.first() == Some(&wire::FORMAT);
        match kind {
            Some(b"events") if binary => Ok(Routed::Events(
                wire::decode(payload)?
                    .into_iter()
                    .map(|(ev, awaits)| RoutedEvent { ev, awaits })
                    .collect(),
            )),
            Some(b"move-out") if binary => {
                let mut events = wire::decode(payload)?;
                match (events.pop(), events.is_empty()) {
                    (Some((ev, None)), true) => Ok(Routed::MoveOut(ev)),
                    _ => Err(DecodeError::new(
                        "repartition move-out: not one event that awaits nothing",
                    )),
                }
            }
            // Canonical JSON, as written before the binary encoding.
            Some(b"events") => {
                let mut run = payload
                    .split(|&b| b == b'\n')
                    .filter(|line| !line.is_empty())
                    .map(|line| {
                        let ev = crate::decode::json::decode(line)?;
                        Ok(RoutedEvent { ev, awaits: None })
                    })
                    .collect::<Result<Vec<_>, DecodeError>>()?;
                for (_, value) in headers.iter().filter(|(name, _)| *name == AWAITS) {
                    let value = text(value)?;
                    let awaiting = value
                        .split_once('\t')
                        .and_then(|(i, top)| Some((i.parse::<usize>().ok()?, top)))
                        .and_then(|(i, top)| Some((run.get_mut(i)?, top)));
                    let Some((routed, top)) = awaiting else {
                        return Err(DecodeError::new(format!(
                            "repartition record: {AWAITS} {value:?} names no event of the run"
                        )));
                    };
                    routed.awaits = Some(top.to_owned());
                }
                Ok(Routed::Events(run))
            }
            Some(b"move-out") => Ok(Routed::MoveOut(crate::decode::json::decode(payload)?)),
            Some(b"move-in") => serde_json::from_slice(payload)
                .map(Routed::MoveIn)
                .map_err(|e| DecodeError::new(format!("repartition move-in: {e}"))),
            Some(b"mark") => text(payload)?
                .parse()
                .map(|t| Routed::Mark(Micros(t)))
                .map_err(|e| DecodeError::new(format!("repartition mark: {e}"))),
            other => Err(DecodeError::new(format!(
                "not a repartition record: header {RECORD} is {:?} (is a source topic named as kafka.repartition_topic?)",
                other.map(String::from_utf8_lossy)
            ))),
        }
    }
}

/// The router's side: where each event goes. Its store holds the redelivery filter and
/// the lineage directory; it raises no alert and keeps no deadline.
pub struct Router {
    store: Store,
    stats: Stats,
    topic: String,
    shards: usize,
    /// The last watermark marked.
    marked: Micros,
    /// Whether events were routed since.
    routed: bool,
    /// The run of events being gathered for each shard.
    runs: Vec<Vec<RoutedEvent>>,
    out: Vec<OutboxRecord>,
}

impl Router {
    /// Routes to `shards` partitions of `topic`, with its directory in `store`.
    pub fn new(topic: String, shards: usize, store: Store) -> Router {
        Router {
            store,
            stats: Stats::default(),
            topic,
            shards,
            marked: Micros::MIN,
            routed: false,
            runs: vec![Vec::new(); shards.max(1)],
            out: Vec::new(),
        }
    }

    /// Closes the run of events gathered for `shard` into a record.
    fn close_run(&mut self, shard: i32) {
        let Some(run) = self.runs.get_mut(shard as usize) else {
            return;
        };
        if !run.is_empty() {
            let events = Routed::Events(std::mem::take(run));
            self.out.push(events.record(&self.topic, "", shard));
        }
    }

    /// Routes an event in the order of SPEC §4, unless it is a redelivery: adds its edge
    /// to the directory, and, when the edge joins a tree with state on another shard,
    /// moves that tree.
    pub fn apply(&mut self, ev: &IdentityEvent) -> Result<(), StoreError> {
        let store = &mut self.store;
        if !self.stats.admit(store, ev)? {
            return Ok(());
        }
        let mut moves = None;
        if let Some(parent) = ev.parent.as_deref().filter(|_| ev.succeeded()) {
            // Events of an entity, or of its descendants, went to its shard while it
            // was a top: then it has state there.
            let known = store.has_children(&ev.entity)? || store.entity_known(&ev.entity)?;
            if lineage::add_edge(store, &ev.entity, parent)? && known {
                let root = store.top(parent)?;
                let from = shard_of(&ev.entity, self.shards);
                if from != shard_of(&root, self.shards) {
                    moves = Some(from);
                }
            }
        }
        store.mark_known(&ev.entity, ev.entity_kind)?;
        let root = store.top(&ev.entity)?;
        let mut awaits = None;
        if let Some(from) = moves {
            // After the events routed there before it.
            self.close_run(from);
            let out = Routed::MoveOut(ev.clone());
            self.out.push(out.record(&self.topic, &root, from));
            awaits = Some(ev.entity.clone());
        }
        let shard = shard_of(&root, self.shards);
        let routed = RoutedEvent {
            ev: ev.clone(),
            awaits,
        };
        self.runs[shard as usize].push(routed);
        if self.runs[shard as usize].len() == RUN {
            self.close_run(shard);
        }
        self.routed = true;
        Ok(())
    }

    /// Marks `watermark` on every shard, if it moved — past events routed since the
    /// last mark, or by [`MARK_EVERY`] (quiet feeds: the watermark follows the clock,
    /// and a mark a step would be a stream of records for nothing). Any rising sequence
    /// of marks is exact; a coarser one only evaluates deadlines later.
    pub fn mark(&mut self, watermark: Micros) {
        if watermark <= self.marked || !(self.routed || watermark >= self.marked.plus(MARK_EVERY)) {
            return;
        }
        self.marked = watermark;
        self.routed = false;
        for shard in 0..self.shards as i32 {
            self.close_run(shard);
            let mark = Routed::Mark(watermark);
            self.out.push(mark.record(&self.topic, "", shard));
        }
    }

    /// The records routed since the last call.
    pub fn take(&mut self) -> Vec<OutboxRecord> {
        for shard in 0..self.shards as i32 {
            self.close_run(shard);
        }
        std::mem::take(&mut self.out)
    }

    /// What it admitted, with its store's gauges.
    pub fn stats(&self) -> Stats {
        self.stats.of_store(&self.store)
    }

    /// The store of its directory, positions and outbox.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};

    use proptest::prelude::*;

    use super::*;
    use crate::alert::{sort_alerts, Alert};
    use crate::config::Config;
    use crate::correlate::reorder::ReorderBuffer;
    use crate::correlate::{Correlator, Rules};
    use crate::event::{Action, EntityKind, Outcome, System};
    use crate::time::Span;

    fn rules() -> Rules {
        Rules::from(&Config::parse("").unwrap())
    }

    fn in_order(events: &[IdentityEvent]) -> Vec<IdentityEvent> {
        let mut sorted = events.to_vec();
        sorted.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
        sorted
    }

    /// One correlator, every deadline up to `as_of`.
    fn alone(events: &[IdentityEvent], as_of: Micros) -> Vec<Alert> {
        let mut c = Correlator::new(rules(), Store::temporary().unwrap());
        let mut out = Vec::new();
        for ev in in_order(events) {
            c.apply(&ev, &mut out).unwrap();
        }
        c.finish(as_of, usize::MAX, &mut out).unwrap();
        sort_alerts(&mut out);
        out
    }

    fn decoded(record: &OutboxRecord) -> (usize, String, Routed) {
        let headers: Vec<(&str, &[u8])> = record
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let routed = Routed::decode(&headers, &record.payload).unwrap();
        let key = record.key.clone().map(String::from_utf8);
        let key = key.transpose().unwrap().unwrap_or_default();
        (record.partition.unwrap() as usize, key, routed)
    }

    /// A router taking `events` in their arrival order through a reorder buffer (30 s of
    /// lateness, as live) and `n` shards, each shard taking one record a turn (so that
    /// awaiting events meet their move-ins late or early), the router marking its
    /// watermark every few events; every deadline up to `as_of` at the end.
    fn routed(events: &[IdentityEvent], n: usize, as_of: Micros) -> (Vec<Alert>, usize) {
        let mut router = Router::new("r".into(), n, Store::temporary().unwrap());
        let mut queues: Vec<VecDeque<(String, Routed)>> = vec![VecDeque::new(); n];
        let mut route = |ev: Option<&IdentityEvent>, mark: Option<Micros>| {
            if let Some(ev) = ev {
                router.apply(ev).unwrap();
            }
            if let Some(watermark) = mark {
                router.mark(watermark);
            }
            for record in router.take() {
                match decoded(&record) {
                    // A shard takes the events of a run one a turn.
                    (shard, key, Routed::Events(run)) => {
                        for routed in run {
                            queues[shard].push_back((key.clone(), Routed::Events(vec![routed])));
                        }
                    }
                    (shard, key, r) => queues[shard].push_back((key, r)),
                }
            }
        };
        let mut buffer = ReorderBuffer::new(Span::secs(30));
        for (i, ev) in events.iter().enumerate() {
            buffer.push(ev.clone());
            while let Some(ev) = buffer.pop_ready() {
                route(Some(&ev), None);
            }
            if i % 5 == 4 {
                route(None, Some(buffer.watermark()));
            }
        }
        while let Some(ev) = buffer.pop_any() {
            route(Some(&ev), None);
        }
        let mut shards: Vec<Correlator> = (0..n)
            .map(|_| Correlator::new(rules(), Store::temporary().unwrap()))
            .collect();
        let mut stash: Vec<HashMap<String, TreeState>> = vec![HashMap::new(); n];
        let (mut out, mut moves) = (Vec::new(), 0);
        loop {
            let mut progressed = false;
            for s in 0..n {
                let Some((key, front)) = queues[s].front().cloned() else {
                    continue;
                };
                let c = &mut shards[s];
                match front {
                    Routed::Events(run) => {
                        let [RoutedEvent { ev, awaits }] = &run[..] else {
                            unreachable!("queued one by one")
                        };
                        if let Some(top) = awaits.as_ref().filter(|t| !c.joined(t).unwrap()) {
                            let Some(tree) = stash[s].remove(top) else {
                                continue;
                            };
                            assert!(c.move_in(tree).unwrap());
                        }
                        c.apply(ev, &mut out).unwrap();
                    }
                    Routed::MoveOut(ev) => {
                        let tree = c.move_out(&ev, &mut out).unwrap();
                        moves += usize::from(!tree.is_empty());
                        let record = Routed::MoveIn(tree).record("r", &key, shard_of(&key, n));
                        let (to, _, moved) = decoded(&record);
                        let Routed::MoveIn(tree) = moved else {
                            unreachable!()
                        };
                        stash[to].insert(tree.top.clone(), tree);
                    }
                    Routed::MoveIn(_) => unreachable!("move-ins come from shards"),
                    Routed::Mark(w) => {
                        c.advance(w, usize::MAX, &mut out).unwrap();
                    }
                }
                queues[s].pop_front();
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        assert!(
            queues.iter().all(VecDeque::is_empty),
            "a shard waits for a move-in that never comes"
        );
        for c in &mut shards {
            c.finish(as_of, usize::MAX, &mut out).unwrap();
        }
        sort_alerts(&mut out);
        (out, moves)
    }

    fn event(i: usize, t: i64, system: System, entity: &str, action: Action) -> IdentityEvent {
        let start = Micros::parse("2026-03-02T10:00:00Z").unwrap();
        let time = start.plus(Span::secs(t));
        IdentityEvent::new(
            format!("e{i}"),
            system,
            time,
            entity,
            EntityKind::ApiKey,
            action,
        )
    }

    #[test]
    fn a_tree_that_gains_a_parent_after_it_has_state_moves_with_it() {
        use Action::*;
        use System::*;
        // k1 under r1 is revoked in iam (a case, echo deadlines pending) and used; then
        // r1, top of that tree, is issued under org (another tree, with its own case
        // covering everything below it); later events of the joined tree.
        let n = 8;
        let mut story = vec![
            event(0, 0, Iam, "org", Created),
            event(1, 1, Iam, "r1", Created),
            event(2, 2, Vault, "k1", Issued).with_parent("r1"),
            event(3, 3, Iam, "k1", Issued).with_parent("r1"),
            event(4, 60, Iam, "k1", Revoked),
            event(5, 120, Iam, "org", Revoked),
            event(6, 180, Iam, "r1", Issued).with_parent("org"),
            event(7, 400, Vault, "k1", Used),
            event(8, 500, Mdm, "r1", Used),
            event(9, 1000, Vault, "k1", Revoked),
        ];
        for e in &mut story {
            e.entity_kind = EntityKind::ServiceAccount;
        }
        assert_ne!(
            shard_of("r1", n),
            shard_of("org", n),
            "pick names on two shards"
        );
        let as_of = story[9].time.plus(Span::days(1));
        let (got, moves) = routed(&story, n, as_of);
        assert_eq!(moves, 1, "r1's tree moved");
        let expected = alone(&story, as_of);
        assert!(expected.len() >= 4, "{expected:#?}");
        assert_eq!(got, expected);
    }

    #[test]
    fn a_run_of_events_is_one_record_that_reads_back_with_what_each_awaits_and_so_do_json_runs() {
        let run: Vec<RoutedEvent> = (0..3)
            .map(|i| RoutedEvent {
                ev: event(i, i as i64, System::Iam, &format!("k{i}"), Action::Used),
                awaits: (i == 1).then(|| "top\twith a tab".to_owned()),
            })
            .collect();
        let record = Routed::Events(run.clone()).record("r", "", 2);
        assert_eq!((record.key.as_ref(), record.partition), (None, Some(2)));
        assert_eq!(decoded(&record).2, Routed::Events(run.clone()));
        let out = Routed::MoveOut(run[0].ev.clone()).record("r", "top", 2);
        assert_eq!(decoded(&out).2, Routed::MoveOut(run[0].ev.clone()));
        let two = Routed::decode(&[(RECORD, b"move-out")], &record.payload);
        assert!(two.unwrap_err().reason.contains("not one event"));

        // As written before the binary encoding: canonical JSON lines, awaits in headers.
        let json: Vec<u8> = run
            .iter()
            .flat_map(|r| {
                crate::decode::json::encode(&r.ev)
                    .into_bytes()
                    .into_iter()
                    .chain([b'\n'])
            })
            .collect();
        let headers: &[(&str, &[u8])] = &[(RECORD, b"events"), (AWAITS, b"1\ttop\twith a tab")];
        assert_eq!(
            Routed::decode(headers, &json).unwrap(),
            Routed::Events(run.clone())
        );
        let one = crate::decode::json::encode(&run[0].ev).into_bytes();
        let out = Routed::decode(&[(RECORD, b"move-out")], &one).unwrap();
        assert_eq!(out, Routed::MoveOut(run[0].ev.clone()));
        let wrong: &[(&str, &[u8])] = &[(RECORD, b"events"), (AWAITS, b"7\tx")];
        let why = Routed::decode(wrong, &json).unwrap_err().reason;
        assert!(why.contains("names no event of the run"), "{why}");
    }

    #[test]
    fn a_router_closes_a_shards_run_before_a_move_out_or_a_mark_to_it() {
        use Action::*;
        let n = 8;
        let mut router = Router::new("r".into(), n, Store::temporary().unwrap());
        let mut k1 = event(1, 1, System::Vault, "k1", Issued);
        k1.parent = Some("r1".into());
        let mut r1 = event(2, 2, System::Iam, "r1", Issued);
        r1.parent = Some("org".into());
        for ev in [event(0, 0, System::Iam, "org", Created), k1, r1] {
            router.apply(&ev).unwrap();
        }
        router.mark(Micros::parse("2026-03-02T10:00:03Z").unwrap());
        let records: Vec<(usize, String, Routed)> = router.take().iter().map(decoded).collect();
        let (r1_shard, org_shard) = (shard_of("r1", n) as usize, shard_of("org", n) as usize);
        let kinds: Vec<(usize, &str)> = records.iter().map(|(p, _, r)| (*p, r.kind())).collect();
        let move_out = kinds
            .iter()
            .position(|k| *k == (r1_shard, "move-out"))
            .unwrap();
        assert!(
            kinds[..move_out].contains(&(r1_shard, "events")),
            "k1's event goes to r1's shard before r1's tree moves out: {kinds:?}"
        );
        for shard in 0..n {
            let mark = kinds.iter().position(|k| *k == (shard, "mark")).unwrap();
            assert!(
                !kinds[mark..].contains(&(shard, "events")),
                "shard {shard}'s events before its mark: {kinds:?}"
            );
        }
        let Some((_, _, Routed::Events(run))) = records
            .iter()
            .rfind(|(p, _, r)| *p == org_shard && r.kind() == "events")
        else {
            panic!("no run for org's shard: {kinds:?}")
        };
        assert_eq!(run.last().unwrap().awaits.as_deref(), Some("r1"));
    }

    trait WithParent {
        fn with_parent(self, p: &str) -> Self;
    }
    impl WithParent for IdentityEvent {
        fn with_parent(mut self, p: &str) -> Self {
            self.parent = Some(p.into());
            self
        }
    }

    fn story() -> impl Strategy<Value = Vec<IdentityEvent>> {
        use Action::*;
        let actions = [
            Created, Issued, Rotated, Used, Used, Used, Revoked, Disabled, Enabled, Deleted,
        ];
        // Seconds over about six hours, and an arrival delay of up to 25 s.
        let one = (
            0i64..20_000,
            0usize..4,
            0usize..12,
            0usize..actions.len(),
            prop::option::weighted(0.3, 0usize..12),
            prop::bool::weighted(0.05),
            0i64..25,
        );
        prop::collection::vec(one, 1..60).prop_map(move |raw| {
            let mut arrival: Vec<(i64, IdentityEvent)> = raw
                .into_iter()
                .enumerate()
                .map(|(i, (t, s, e, a, p, failed, delay))| {
                    let mut ev = event(i, t, System::ALL[s], &format!("n{e}"), actions[a]);
                    ev.parent = p.map(|p| format!("n{p}"));
                    if failed {
                        ev.outcome = Outcome::Failure;
                    }
                    // Some redeliveries: the same (system, id) twice.
                    if i % 17 == 16 {
                        ev.event_id = "e0".into();
                    }
                    (t + delay, ev)
                })
                .collect();
            arrival.sort_by_key(|(at, _)| *at);
            arrival.into_iter().map(|(_, ev)| ev).collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn routed_over_shards_the_alerts_are_one_correlators(events in story(), n in 2usize..5) {
            let as_of = events.iter().map(|e| e.time).max().unwrap().plus(Span::days(200));
            let (got, _) = routed(&events, n, as_of);
            prop_assert_eq!(got, alone(&events, as_of));
        }
    }
}
