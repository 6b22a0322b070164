//! The command line as an operator meets it: `outrider validate`, Envoy's `--mode validate`, and
//! a bad bootstrap failing at start with the file, the field and the reason.

mod common;

use std::process::Command;

use common::temp_dir;

fn outrider(args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_outrider"))
        .args(args)
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bootstrap-ads.yaml");

#[test]
fn validate_accepts_the_example_bootstrap() {
    let (ok, stdout, stderr) = outrider(&["validate", "-c", EXAMPLE]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("configuration '"), "{stdout}");
    assert!(
        stdout.lines().next().is_some_and(|l| l.ends_with("' OK")),
        "{stdout}"
    );
    let (ok, _, stderr) = outrider(&["--mode", "validate", "-c", EXAMPLE]);
    assert!(ok, "{stderr}");
}

#[test]
fn a_bad_bootstrap_names_file_field_and_reason_in_validate_and_at_start() {
    let dir = temp_dir("cli-bad-bootstrap");
    let bad = dir.join("bad.yaml");
    let text = std::fs::read_to_string(EXAMPLE)
        .expect("example")
        .replace("connect_timeout: 1s", "connect_timeout: -1s");
    std::fs::write(&bad, text).expect("write");
    let bad = bad.to_str().expect("utf-8 path");
    let expected = format!("{bad}: static_resources.clusters[0].connect_timeout: ");

    // Envoy's --mode validate names the first problem on stderr; the report lists it too.
    let (ok, _, stderr) = outrider(&["--mode", "validate", "-c", bad]);
    assert!(!ok);
    assert!(stderr.starts_with(&expected), "{stderr}");
    let (ok, stdout, _) = outrider(&["validate", "-c", bad]);
    assert!(!ok);
    assert!(
        stdout.contains("rejected  static_resources.clusters[0].connect_timeout: "),
        "{stdout}"
    );

    // Starting with it fails before anything listens.
    let (ok, _, stderr) = outrider(&["-c", bad]);
    assert!(!ok);
    assert!(stderr.starts_with(&expected), "{stderr}");
}

#[test]
fn no_bootstrap_is_a_usage_error_pointing_at_the_demo() {
    let (ok, _, stderr) = outrider(&[]);
    assert!(!ok);
    assert!(stderr.contains("outrider demo"), "{stderr}");
}
