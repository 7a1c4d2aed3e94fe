//! Native cost of routing one request (fetch policy, decision, Set-Cookie),
//! for the 80:20 config and the benchmark's large config
//! (`envoy-test/bench/large-config.json`: 100 pools, 50 rules, hashOn), side
//! by side.
//!   cargo run --release -p sticky-split-core --example decide_cost
//! Prints the median of 15 timings of 200,000 requests each (ns/request).

// A measuring tool, not part of the filter: a panic here is a failed run.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::time::Instant;

use rand_core::SeedableRng;
use sticky_split_core::config::Config;
use sticky_split_core::request::Headers;
use sticky_split_core::rng::Prng;
use sticky_split_core::stream::route;
use sticky_split_core::testing::FakeStream;

const LARGE: &str = include_str!("../../../envoy-test/bench/large-config.json");

fn requests() -> Vec<Headers> {
    let base = |cookie: Option<String>| {
        let mut h = vec![
            (":authority".to_string(), b"127.0.0.1:10000".to_vec()),
            (":path".to_string(), b"/".to_vec()),
            (":method".to_string(), b"GET".to_vec()),
            (":scheme".to_string(), b"http".to_vec()),
            ("x-forwarded-proto".to_string(), b"http".to_vec()),
            (
                "x-request-id".to_string(),
                b"0c8d1e7a-0000-4000-8000-000000000000".to_vec(),
            ),
        ];
        if let Some(c) = cookie {
            h.push(("cookie".to_string(), c.into_bytes()));
        }
        h
    };
    let big: Vec<String> = (1..=40)
        .map(|i| format!("c{i:02}={}", "v".repeat(95)))
        .collect();
    vec![
        base(None),
        base(Some("_ga=GA1.2.345; nginx-app-subset=pool1".into())),
        base(Some(format!("{}; nginx-app-subset=pool2", big.join("; ")))),
    ]
}

fn time(config: &Config, reqs: &[Headers]) -> f64 {
    let mut rng = Prng::seed_from_u64(1);
    let mut sources: Vec<FakeStream> = reqs
        .iter()
        .map(|headers| FakeStream {
            headers: headers.clone(),
            ..FakeStream::default()
        })
        .collect();
    let mut samples: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            for i in 0..200_000 {
                let source = &mut sources[i % reqs.len()];
                black_box(route(config, source, &mut rng, None, false));
            }
            start.elapsed().as_nanos() as f64 / 200_000.0
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[7]
}

fn main() {
    let small = Config::from_json(br#"{"pools": [{"name": "pool1", "weight": 80}, {"name": "pool2", "weight": 20}], "cookie": {"name": "nginx-app-subset"}, "clusterHeader": "x-sticky-split-cluster"}"#).unwrap();
    let large = Config::from_json(LARGE.as_bytes()).unwrap();
    let reqs = requests();
    let (a, b) = (time(&small, &reqs), time(&large, &reqs));
    println!("routing cost, native, request mix (new / returning / 4 KiB cookie), median of 15 x 200,000:");
    println!("  80:20 config:                       {a:8.1} ns");
    println!(
        "  large config (100 pools, 50 rules): {b:8.1} ns   ({:.2}x)",
        b / a
    );
}
