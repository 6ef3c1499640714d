//! swiglu / swiglu_backward against a float64 reference written from moeq.h's formula,
//! and their argument errors.
mod support;

use moeq::{swiglu, swiglu_backward, GateLayout, Status, Stream, SwigluConfig, TensorView, TensorViewMut};
use support::assert_rejects;
use support::random::Random;

fn columns(config: &SwigluConfig, cols: usize, i: usize) -> (usize, usize) {
    match config.layout {
        GateLayout::Halves => (i, cols + i),
        GateLayout::Interleaved => (2 * i, 2 * i + 1),
    }
}

fn reference(config: &SwigluConfig, gate: f64, up: f64, grad: f64) -> (f64, f64, f64) {
    let (alpha, limit, offset) = (f64::from(config.alpha), f64::from(config.limit), f64::from(config.up_offset));
    let g = gate.min(limit);
    let u = up.clamp(-limit, limit);
    let s = 1.0 / (1.0 + (-alpha * g).exp());
    let grad_gate = if gate > limit { 0.0 } else { grad * (u + offset) * (s + alpha * g * s * (1.0 - s)) };
    let grad_up = if up.abs() > limit { 0.0 } else { grad * g * s };
    ((u + offset) * g * s, grad_gate, grad_up)
}

fn close(actual: f32, expected: f64) -> bool {
    (f64::from(actual) - expected).abs() <= 1e-5 * expected.abs() + 1e-6
}

#[test]
fn forward_and_backward_match_float64_for_swiglu_and_gpt_oss() {
    let (rows, cols) = (7usize, 20usize);
    for config in [SwigluConfig::default(), SwigluConfig::gpt_oss()] {
        let mut random = Random::new(5);
        let gate_up = random.values(rows * 2 * cols, 10.0);
        let grad = random.values(rows * cols, 1.0);
        let mut out = vec![f32::NAN; rows * cols];
        let mut grad_gate_up = vec![f32::NAN; rows * 2 * cols];
        let shape_in = [rows as i64, 2 * cols as i64];
        let shape_out = [rows as i64, cols as i64];
        let input = TensorView::from_slice(&gate_up, &shape_in).unwrap();
        swiglu(&config, &input, TensorViewMut::from_slice(&mut out, &shape_out).unwrap(), Stream::DEFAULT).unwrap();
        let grad_view = TensorView::from_slice(&grad, &shape_out).unwrap();
        let target = TensorViewMut::from_slice(&mut grad_gate_up, &shape_in).unwrap();
        swiglu_backward(&config, &input, &grad_view, target, Stream::DEFAULT).unwrap();
        for m in 0..rows {
            for i in 0..cols {
                let (gate, up) = columns(&config, cols, i);
                let row = m * 2 * cols;
                let (value, grad_gate, grad_up) = reference(
                    &config,
                    f64::from(gate_up[row + gate]),
                    f64::from(gate_up[row + up]),
                    f64::from(grad[m * cols + i]),
                );
                assert!(close(out[m * cols + i], value), "{config:?} out[{m}, {i}]");
                assert!(close(grad_gate_up[row + gate], grad_gate), "{config:?} grad gate[{m}, {i}]");
                assert!(close(grad_gate_up[row + up], grad_up), "{config:?} grad up[{m}, {i}]");
            }
        }
    }
}

#[test]
fn bad_arguments_are_errors_naming_them() {
    let gate_up = vec![1f32; 4 * 16];
    let input = TensorView::from_slice(&gate_up, &[4, 16]).unwrap();
    let mut out = vec![0f32; 4 * 9];
    let result = swiglu(
        &SwigluConfig::default(),
        &input,
        TensorViewMut::from_slice(&mut out, &[4, 9]).unwrap(),
        Stream::DEFAULT,
    );
    assert_rejects(result, Status::InvalidArgument, "out");
    let config = SwigluConfig { limit: 0.0, ..SwigluConfig::default() };
    let mut out = vec![0f32; 4 * 8];
    let result = swiglu(&config, &input, TensorViewMut::from_slice(&mut out, &[4, 8]).unwrap(), Stream::DEFAULT);
    assert_rejects(result, Status::InvalidArgument, "config.limit");
}
