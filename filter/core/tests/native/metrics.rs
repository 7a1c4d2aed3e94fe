//! Counter names and slots, batched counts, the memory gauge's shares.

use sticky_split_core::decide::Reason;
use sticky_split_core::metrics::{
    all_counters, counter_name, slot, CounterBatch, CounterLayout, MemoryShare,
};
use sticky_split_core::outcome::Class;

#[test]
fn memory_shares_sum_to_the_vms_sizes() {
    // Two VMs reporting in turn: the gauge holds their sum, whatever the order.
    let (a, b) = (MemoryShare::default(), MemoryShare::default());
    let mut gauge = 0i64;
    for (vm, bytes) in [
        (&a, 1_114_112),
        (&b, 1_179_648),
        (&a, 1_114_112),
        (&b, 1_179_648),
    ] {
        gauge += vm.update(bytes);
    }
    assert_eq!(gauge, 1_114_112 + 1_179_648);
    gauge += a.update(1_179_648); // a grew by a page
    assert_eq!(gauge, 2 * 1_179_648);
    gauge += b.withdraw();
    assert_eq!(gauge, 1_179_648);
    gauge += b.withdraw(); // a second withdrawal takes nothing
    assert_eq!(gauge, 1_179_648);
}

#[test]
fn pending_counts_drain_once() {
    let p = CounterBatch::new(vec![7, 8, 9]);
    p.count(0);
    p.count(2);
    p.count(2);
    p.count(3); // no such slot: ignored
    assert_eq!(p.drain().collect::<Vec<_>>(), vec![(7, 1), (9, 2)]);
    assert_eq!(p.drain().count(), 0);
    p.count(1);
    assert_eq!(p.drain().collect::<Vec<_>>(), vec![(8, 1)]);
}

#[test]
fn names_and_slots_agree() {
    let pools = ["pool1", "v1.2_b"];
    let names = all_counters(pools);
    let table = CounterLayout { pools: 2 };
    assert_eq!(names.len(), table.len());
    assert_eq!(
        names.len(),
        2 * (Reason::ALL.len() + Class::COUNTED.len() + 2)
    );
    for (p, pool) in pools.iter().enumerate() {
        for &r in &Reason::ALL {
            assert_eq!(names[slot(p, r)], counter_name(pool, r));
        }
        for &c in &Class::COUNTED {
            let at = table.response(p, c);
            assert_eq!(
                names[at],
                format!(
                    "sticky_split_responses_total.class=.={};.;pool=.={pool};.;",
                    c.as_str()
                )
            );
        }
        assert_eq!(
            names[table.ejection(p)],
            format!("sticky_split_ejections_total.pool=.={pool};.;")
        );
        assert_eq!(
            names[table.failover(p)],
            format!("sticky_split_failovers_total.pool=.={pool};.;")
        );
    }
    // a WebSocket upgrade (101) is counted, so the classes sum to the requests
    assert_eq!(
        names[table.response(1, Class::Informational)],
        "sticky_split_responses_total.class=.=1xx;.;pool=.=v1.2_b;.;"
    );
    // every slot is named once
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len());
    assert_eq!(
        counter_name("v1.2_b", Reason::DrainedPinned),
        "sticky_split_requests_total.reason=.=drained-pinned;.;pool=.=v1.2_b;.;"
    );
    assert!(Reason::ALL
        .iter()
        .map(|r| r.as_str())
        .chain(Class::COUNTED.iter().map(|c| c.as_str()))
        .all(|name| !name.contains(['_', '.', '='])));
}

/// Response classes: status ranges, and Envoy's own failures (response
/// flags) apart from the application's 5xx.
#[test]
fn response_classes() {
    let cases: &[(u16, u64, Class)] = &[
        (200, 0, Class::Success),
        (204, 0x20, Class::Success),
        (302, 0, Class::Redirection),
        (404, 0, Class::ClientError),
        (503, 0, Class::ServerError),
        (500, 0x8000, Class::ServerError), // retries exhausted on the app's 5xx
        (503, 0x2, Class::Gateway),        // UH no healthy upstream
        (503, 0x20, Class::Gateway),       // UF connection failure
        (503, 0x10, Class::Gateway),       // UR reset before the response
        (503, 0x40, Class::Gateway),       // UC connection termination
        (503, 0x80, Class::Gateway),       // UO overflow
        (503, 0x8020, Class::Gateway),     // URX with UF
        (504, 0x4, Class::ServerError),    // UT: the application is slow, not gone
        (101, 0, Class::Informational),
    ];
    for &(status, flags, want) in cases {
        assert_eq!(Class::of(status, flags), want, "{status} {flags:#x}");
    }
}
