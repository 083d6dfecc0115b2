//! The benchmark's load generator (`callvault-loadgen`, crates/callvault-bench) against the real
//! server: a few calls at a rate, every recording verified in the catalog and on disk, so the tool
//! BENCHMARKS.md relies on cannot rot. No timing is asserted (timings belong in the benchmark).

use callvault_bench::{CatalogAt, Plan, run_server};

use crate::support::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_sees_every_packet_it_sent_in_every_recording() {
    let server = Server::start();
    let plan = Plan {
        calls: 4,
        rate: 20.0,
        seconds: 2,
    };
    let catalog = CatalogAt::sqlite(&server.data_dir);
    let (figures, outcomes, verified) =
        run_server(&plan, server.sip, Some(server.pid()), Some(&catalog))
            .await
            .unwrap();
    let errors: Vec<_> = outcomes.iter().filter_map(|o| o.error.clone()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let verified = verified.unwrap();
    assert_eq!(verified.recordings, 4);
    assert_eq!(verified.failed, 0, "{:?}", verified.problems);
    assert_eq!(figures.get("packets_sent"), Some(4.0 * 2.0 * 100.0));
    assert_eq!(figures.get("packets_lost"), Some(0.0));
    // The /proc readings were taken (their values are the benchmark's business).
    for figure in [
        "cpu_per_packet_us",
        "rss_peak_kib",
        "write_calls_per_recording",
    ] {
        assert!(
            figures.get(figure).is_some(),
            "{figure} missing: {figures:?}"
        );
    }
}
