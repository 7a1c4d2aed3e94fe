//! One pool health for every worker of a gateway: workers (one `Health`
//! each) share a board through a store that behaves as Envoy's shared data
//! (a version per write, compare-and-swap, 0 meaning unconditional).

use std::cell::RefCell;
use std::rc::Rc;

use sticky_split_core::health::{
    Board, Change, Health, HealthStore, Record, State, Stored, ATTEMPTS,
};

const NOW: u64 = 1_800_000_000;
const NAMES: [&str; 2] = ["pool1", "pool2"];

#[derive(Debug, Default)]
struct Shared {
    bytes: Option<Vec<u8>>,
    version: u32,
    loads: usize,
    stores: usize,
    /// Writes of another party slipped in before each of our next stores.
    meddle: usize,
}

#[derive(Debug, Clone, Default)]
struct Mem(Rc<RefCell<Shared>>);

impl HealthStore for Mem {
    fn load(&mut self) -> Option<(Vec<u8>, u32)> {
        let mut s = self.0.borrow_mut();
        s.loads += 1;
        s.bytes.clone().map(|b| (b, s.version))
    }

    fn store(&mut self, bytes: &[u8], version: u32) -> Stored {
        let mut s = self.0.borrow_mut();
        s.stores += 1;
        if s.meddle > 0 {
            s.meddle -= 1;
            s.version += 1;
            return Stored::Conflict;
        }
        if version != 0 && version != s.version {
            return Stored::Conflict;
        }
        s.bytes = Some(bytes.to_vec());
        s.version += 1;
        Stored::Yes
    }
}

fn worker(mem: &Mem, me: u64, eject_after: u32) -> Health {
    worker_at(mem, me, eject_after, NOW)
}

/// A worker whose configuration loads at `now`.
fn worker_at(mem: &Mem, me: u64, eject_after: u32, now: u64) -> Health {
    Health::new(vec![1, 1], eject_after, 30).share(
        NAMES.iter().map(|n| n.to_string()).collect(),
        Box::new(mem.clone()),
        me,
        now,
    )
}

fn board(mem: &Mem) -> Board {
    Board::decode(mem.0.borrow().bytes.as_deref().unwrap_or_default())
}

#[test]
fn a_dead_pool_costs_at_most_k_plus_n_minus_1_failures() {
    let (n, k) = (4u64, 3u32);
    let mem = Mem::default();
    let mut workers: Vec<Health> = (1..=n).map(|me| worker(&mem, me, k)).collect();
    let mut failures = 0;
    // requests to pool2 (index 1) round-robin over the workers, none synced
    // on a timer: each learns of the ejection from its own failure at most
    for round in 0..10 {
        for h in workers.iter_mut() {
            let down = h.out_of_service(NOW).is_some_and(|d| d[1]);
            if !down {
                failures += 1;
                h.record(1, true, NOW);
            }
        }
        if round == 0 {
            assert_eq!(
                failures, n as usize,
                "each worker sent one before any ejection"
            );
        }
    }
    assert_eq!(failures, k as usize + n as usize - 1);
    assert!(matches!(board(&mem).get("pool2"), Record::Open { .. }));
    // a worker that syncs on its timer avoids the pool without a failure
    let mut late = worker(&mem, 9, k);
    late.sync(NOW);
    assert_eq!(late.out_of_service(NOW), Some(vec![false, true]));
}

#[test]
fn failures_are_counted_for_the_gateway_and_a_known_success_resets_them() {
    let mem = Mem::default();
    let mut a = worker(&mem, 1, 3);
    let mut b = worker(&mem, 2, 3);
    assert_eq!(a.record(1, true, NOW), Change::None);
    assert_eq!(b.record(1, true, NOW), Change::None);
    assert_eq!(board(&mem).get("pool2"), Record::Closed { failures: 2 });
    // a success seen by a worker that knows of the failures resets the count
    assert_eq!(b.record(1, false, NOW), Change::None);
    assert_eq!(board(&mem).get("pool2"), Record::Closed { failures: 0 });
    a.sync(NOW);
    assert_eq!(a.state(1), Some(State::Closed { failures: 0 }));
    for _ in 0..2 {
        a.record(1, true, NOW);
    }
    assert_eq!(
        b.record(1, true, NOW),
        Change::Ejected,
        "the third failure, in the gateway"
    );
}

#[test]
fn the_healthy_path_makes_no_host_call() {
    let mem = Mem::default();
    let mut h = worker(&mem, 1, 3);
    let before = (mem.0.borrow().loads, mem.0.borrow().stores);
    for _ in 0..1000 {
        assert_eq!(h.out_of_service(NOW), None);
        assert!(!h.claim_probe(0, NOW));
        h.record(0, false, NOW);
        h.record(1, false, NOW);
    }
    assert_eq!((mem.0.borrow().loads, mem.0.borrow().stores), before);
}

#[test]
fn an_ejection_survives_a_config_push_even_one_that_removes_the_pool() {
    let mem = Mem::default();
    let mut old = worker(&mem, 1, 1);
    assert_eq!(old.record(1, true, NOW), Change::Ejected);
    // the new configuration's health, same pools: pool2 is out from the start
    let mut pushed = worker(&mem, 2, 1);
    assert_eq!(pushed.out_of_service(NOW + 1), Some(vec![false, true]));
    // a config without pool2 keeps its running ejection: the old config,
    // still serving draining connections, keeps away from pool2 until it
    // runs out
    let without = |now| {
        Health::new(vec![1, 1], 1, 30).share(
            vec!["pool1".into(), "pool3".into()],
            Box::new(mem.clone()),
            3,
            now,
        )
    };
    let _without = without(NOW + 1);
    assert_eq!(board(&mem).get("pool2"), Record::Open { until: NOW + 30 });
    old.sync(NOW + 1);
    assert_eq!(old.out_of_service(NOW + 30), Some(vec![false, true]));
    // once the ejection is over, the next config without pool2 forgets it;
    // the pool coming back later is new
    let _later = without(NOW + 31);
    assert_eq!(board(&mem).get("pool2"), Record::Closed { failures: 0 });
    let mut again = worker(&mem, 4, 1);
    assert_eq!(again.out_of_service(NOW + 31), None);
    // a probe lease held on a removed pool is kept until it runs out; a free
    // one is forgotten
    assert_eq!(again.record(1, true, NOW + 31), Change::Ejected);
    again.out_of_service(NOW + 62);
    assert!(again.claim_probe(1, NOW + 62));
    let _held = without(NOW + 63);
    assert!(matches!(
        board(&mem).get("pool2"),
        Record::HalfOpen { holder: 4, .. }
    ));
    again.probe_abandoned(1);
    let _freed = without(NOW + 63);
    assert_eq!(board(&mem).get("pool2"), Record::Closed { failures: 0 });
    // the canary VM Envoy starts for a new config only reads and forgets
    // what that config dropped: the surviving records are untouched
    assert_eq!(again.record(1, true, NOW + 64), Change::Ejected);
    let written = board(&mem);
    let _canary = worker(&mem, 5, 1);
    assert_eq!(board(&mem), written);
}

#[test]
fn one_probe_for_the_whole_gateway_then_every_worker_takes_the_pool_back() {
    let mem = Mem::default();
    let mut workers: Vec<Health> = (1..=4).map(|me| worker(&mem, me, 1)).collect();
    assert_eq!(workers[0].record(1, true, NOW), Change::Ejected);
    for h in workers.iter_mut() {
        h.sync(NOW + 1);
        assert_eq!(h.out_of_service(NOW + 1), Some(vec![false, true]));
    }
    // the ejection is over: the first worker to route claims the probe
    let after = NOW + 31;
    let claims: Vec<bool> = workers
        .iter_mut()
        .map(|h| {
            let open = h.out_of_service(after).is_some_and(|d| !d[1]);
            open && h.claim_probe(1, after)
        })
        .collect();
    assert_eq!(claims, vec![true, false, false, false]);
    // its success restores the pool for everyone, on their timer
    assert_eq!(workers[0].record(1, false, after), Change::Restored);
    for h in workers.iter_mut() {
        h.sync(after);
        assert_eq!(h.out_of_service(after), None);
    }
}

#[test]
fn a_probe_lease_runs_out_and_an_abandoned_probe_frees_it() {
    let mem = Mem::default();
    let mut a = worker(&mem, 1, 1);
    let mut b = worker(&mem, 2, 1);
    a.record(1, true, NOW);
    b.sync(NOW);
    // the ejection is over: routing needs no host call until a request is
    // routed there, and only that request claims the probe
    let loads = mem.0.borrow().loads;
    assert_eq!(a.out_of_service(NOW + 31), Some(vec![false, false]));
    assert_eq!(b.out_of_service(NOW + 31), Some(vec![false, false]));
    assert_eq!(mem.0.borrow().loads, loads);
    assert!(a.claim_probe(1, NOW + 31));
    // b, routed there too, loses the lease and keeps away until it runs out
    assert!(!b.claim_probe(1, NOW + 31));
    assert_eq!(b.state(1), Some(State::Leased { until: NOW + 41 }));
    let loads = mem.0.borrow().loads;
    for t in 31..41 {
        assert_eq!(b.out_of_service(NOW + t), Some(vec![false, true]));
    }
    assert_eq!(
        mem.0.borrow().loads,
        loads,
        "no host call while the lease holds"
    );
    // a's probe never answers: after the lease (10 s) b may claim it
    assert_eq!(b.out_of_service(NOW + 41), Some(vec![false, false]));
    assert!(b.claim_probe(1, NOW + 41));
    // b's probe is shed by the circuit breaker: the lease is given back at once
    b.probe_abandoned(1);
    a.sync(NOW + 42);
    assert_eq!(a.out_of_service(NOW + 42), Some(vec![false, false]));
    assert!(a.claim_probe(1, NOW + 42));
}

#[test]
fn a_config_push_while_a_probe_lease_is_held_waits_at_most_the_lease() {
    let mem = Mem::default();
    let mut old = worker(&mem, 1, 1);
    old.record(1, true, NOW);
    old.out_of_service(NOW + 31);
    assert!(old.claim_probe(1, NOW + 31));
    // the new configuration's VM has a token of its own: the old lease is
    // another's, and runs out after LEASE
    let mut pushed = worker_at(&mem, 7, 1, NOW + 32);
    assert_eq!(pushed.out_of_service(NOW + 32), Some(vec![false, true]));
    assert_eq!(pushed.out_of_service(NOW + 41), Some(vec![false, false]));
    assert!(pushed.claim_probe(1, NOW + 41));
}

#[test]
fn writers_that_race_do_not_lose_failures() {
    let mem = Mem::default();
    let mut a = worker(&mem, 1, 10);
    mem.0.borrow_mut().meddle = 3;
    assert_eq!(a.record(1, true, NOW), Change::None);
    assert_eq!(board(&mem).get("pool2"), Record::Closed { failures: 1 });
    // a store that always conflicts: the VM's own view decides, no panic
    mem.0.borrow_mut().meddle = usize::MAX;
    assert_eq!(a.give_up_report(NOW), None, "nothing given up yet");
    assert_eq!(a.record(1, true, NOW), Change::None);
    assert_eq!(a.state(1), Some(State::Closed { failures: 2 }));
}

#[test]
fn a_board_update_that_gives_up_is_reported_at_most_every_ten_seconds() {
    let mem = Mem::default();
    let mut a = worker(&mem, 1, 10);
    // 7 conflicts are retried; 8 in a row give up
    mem.0.borrow_mut().meddle = ATTEMPTS - 1;
    a.record(1, true, NOW);
    assert_eq!(a.give_up_report(NOW), None);
    mem.0.borrow_mut().meddle = usize::MAX;
    a.record(1, true, NOW);
    assert_eq!(a.give_up_report(NOW), Some(1));
    assert_eq!(a.give_up_report(NOW), None, "reported once");
    // three more within ten seconds: held, then reported as one line
    for t in 1..4 {
        a.record(1, true, NOW + t);
        assert_eq!(a.give_up_report(NOW + t), None);
    }
    assert_eq!(a.give_up_report(NOW + 9), None);
    assert_eq!(a.give_up_report(NOW + 10), Some(3));
    // a host that refuses the write is no give-up (the glue logs that call)
    let mut refused = worker(&Mem(Rc::new(RefCell::new(Shared::default()))), 2, 10);
    refused.record(1, true, NOW);
    assert_eq!(refused.give_up_report(NOW), None);
}

#[test]
fn data_that_is_not_ours_is_no_state() {
    let pool2_open = {
        let mut b = Board::default();
        b.set("pool2", Record::Open { until: NOW + 10 });
        b.encode()
    };
    let mut truncated = pool2_open.clone();
    truncated.pop();
    let mut extra = pool2_open.clone();
    extra.push(0);
    let mut bad_tag = pool2_open.clone();
    let tag_at = 4 + 2 + 1 + "pool2".len();
    bad_tag[tag_at] = 9;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("another plugin's text", b"{\"some\": \"json\"}".to_vec()),
        ("truncated", truncated),
        ("trailing bytes", extra),
        ("unknown state", bad_tag),
        ("a huge count", b"SSH1\xff\xff".to_vec()),
    ];
    for (label, bytes) in cases {
        assert_eq!(Board::decode(&bytes), Board::default(), "{label}");
        let mem = Mem(Rc::new(RefCell::new(Shared {
            bytes: Some(bytes),
            version: 7,
            ..Shared::default()
        })));
        let mut h = worker(&mem, 1, 1);
        assert_eq!(h.out_of_service(NOW), None, "{label}");
        assert_eq!(
            h.record(1, true, NOW),
            Change::Ejected,
            "{label}: writes over it"
        );
    }
    // an ejection far beyond any ejectSeconds is capped, never stuck
    let far = {
        let mut b = Board::default();
        b.set("pool2", Record::Open { until: u64::MAX });
        b.encode()
    };
    let mem = Mem(Rc::new(RefCell::new(Shared {
        bytes: Some(far),
        version: 1,
        ..Shared::default()
    })));
    let mut h = worker(&mem, 1, 1);
    assert_eq!(
        h.state(1),
        Some(State::HalfOpen { probing: false }),
        "over at once"
    );
    assert_eq!(h.out_of_service(NOW), Some(vec![false, false]));
    assert!(h.claim_probe(1, NOW));
    // and a board round-trips
    assert_eq!(
        Board::decode(&pool2_open).get("pool2"),
        Record::Open { until: NOW + 10 }
    );
}
