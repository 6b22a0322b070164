//! The xDS conformance suite (`xds-conformance`, XDS-SPEC §1) against the real `outrider` binary,
//! state of the world and delta: every scenario starts its own management server and its own
//! `outrider` process and checks the rules through `/config_dump`, `/ready`, CSDS and the
//! requests the server recorded.
//!
//! `XDS_SUITE_ONLY=<part of a name>` runs only the matching scenarios.

use xds_conformance::suite::{ClientCommand, Mode, SuiteOptions, run_suite};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outrider_passes_the_xds_conformance_suite() {
    let client = ClientCommand::new(
        env!("CARGO_BIN_EXE_outrider"),
        [
            "-c",
            "{bootstrap}",
            "--admin-address-path",
            "{admin_address_path}",
        ],
    );
    let options = SuiteOptions {
        modes: vec![Mode::Sotw, Mode::Delta],
        only: std::env::var("XDS_SUITE_ONLY").ok(),
        // Scenarios mostly wait (on timers, on the client); three at a time keep two cores busy
        // without starving the timing checks.
        parallel: 3,
    };
    let report = run_suite(&client, &options).await;
    eprintln!("{}", report.table());
    assert!(
        report.all_passed(),
        "{} of {} xDS conformance scenarios failed (table above)",
        report.failures().len(),
        report.results.len()
    );
}
