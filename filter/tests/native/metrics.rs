//! Counter names and slots, batched counts, the memory gauge's shares.

use sticky_split::decide::Reason;
use sticky_split::metrics::{all_counters, counter_name, slot, CounterBatch, MemoryShare};

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
    let names = all_counters(["pool1", "v1.2_b"]);
    assert_eq!(names.len(), 2 * Reason::ALL.len());
    for (p, pool) in ["pool1", "v1.2_b"].iter().enumerate() {
        for &r in &Reason::ALL {
            assert_eq!(names[slot(p, r)], counter_name(pool, r));
        }
    }
    assert_eq!(
        counter_name("v1.2_b", Reason::DrainedPinned),
        "sticky_split_requests_total_reason=drained-pinned_pool=v1.2_b"
    );
    assert!(Reason::ALL
        .iter()
        .all(|r| !r.as_str().contains(['_', '.', '='])));
}
