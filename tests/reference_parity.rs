//! Every case of every supported golden fixture: ids and image positions exact, pixel values within
//! the fixture's tolerance, image/input embeddings and logits within 1e-4, greedy ids exact.

use monovlm_e2e::fixture;
use runtime::reference::check_fixture;
use runtime::LoadOptions;

fn assert_fixture_passes(name: &str) {
    let reports =
        check_fixture(&fixture(name), None, &LoadOptions::default()).expect("fixture loads");
    assert!(!reports.is_empty(), "{name}: no cases");
    let failures: Vec<String> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.line())
        .collect();
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
    // The checks must have run, not been skipped for lack of golden data.
    for r in &reports {
        assert!(r.logits_err.is_some(), "{}: logits not compared", r.name);
        assert!(r.greedy_ok.is_some(), "{}: greedy ids not compared", r.name);
    }
}

#[test]
fn fuyu_tiny_matches_transformers() {
    assert_fixture_passes("fuyu-tiny");
}

#[test]
fn solo_tiny_matches_upstream_solo() {
    assert_fixture_passes("solo-tiny");
}

#[test]
fn eve2_tiny_matches_upstream_eve() {
    assert_fixture_passes("eve2-tiny");
}

#[test]
fn eve1_tiny_matches_upstream_eve() {
    assert_fixture_passes("eve1-tiny");
}

#[test]
fn hovle_tiny_matches_upstream_hovle() {
    assert_fixture_passes("hovle-tiny");
}

#[test]
fn monointernvl_tiny_matches_upstream_mono_internvl() {
    assert_fixture_passes("monointernvl-tiny");
}
