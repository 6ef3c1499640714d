//! What the integration tests share: deterministic random data, the bitsandbytes
//! golden vectors, random expert-GEMM problems and their float64 reference.
// Each test binary uses only part of this module.
#![allow(dead_code)]

pub mod golden;
pub mod manifest;
pub mod problem;
pub mod random;
pub mod reference;

/// Asserts that `actual` is within `tolerance` times `magnitude` (the same sum
/// taken over absolute values) of `expected`, element by element.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f64], magnitude: &[f64], tolerance: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths differ");
    for (index, ((&got, &want), &size)) in actual.iter().zip(expected).zip(magnitude).enumerate() {
        let error = (f64::from(got) - want).abs();
        assert!(
            error <= tolerance * size + 1e-30,
            "{what}[{index}]: got {got}, float64 reference {want} (error {error:e}, allowed {:e})",
            tolerance * size
        );
    }
}

/// Asserts that a failed call reports `status` and a message that starts with "argument:".
pub fn assert_rejects<T: std::fmt::Debug>(result: moeq::Result<T>, status: moeq::Status, argument: &str) {
    let error = result.expect_err("the call should have failed");
    assert_eq!(error.status(), status, "status of: {error}");
    assert!(
        error.to_string().starts_with(&format!("{argument}:")),
        "expected a message naming `{argument}`, got: {error}"
    );
}
