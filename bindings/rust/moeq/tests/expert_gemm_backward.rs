//! The expert GEMM backward through the safe API against a float64 reference.
mod support;

use moeq::{expert_gemm_lora, expert_gemm_lora_backward, Stream, TensorView, TensorViewMut, WeightLayout};
use support::problem::{OutputGradients, Problem};
use support::random::Random;
use support::{assert_close, reference};

/// Float32 accumulation over at most 128 terms, relative to the sum of absolute terms.
const TOLERANCE: f64 = 2e-5;

/// Four experts, the second without rows, and 3 rows no expert owns.
fn problem(layout: WeightLayout) -> Problem {
    Problem::new(23, &[5, 0, 17, 9], 3, 128, 64, 8, layout)
}

fn grad_y(problem: &Problem) -> Vec<f32> {
    Random::new(5).values(problem.rows * problem.out_features, 1.0)
}

/// The reference gradients and the magnitudes that bound their rounding.
fn reference_gradients(problem: &Problem, grad_y: &[f32]) -> (reference::Gradients, reference::Gradients) {
    (reference::backward(problem, grad_y, |value| value), reference::backward(problem, grad_y, f64::abs))
}

/// grad_x of the routed rows, grad_lora_a and grad_lora_b against the reference.
fn assert_gradients_match(problem: &Problem, grad_y: &[f32], gradients: &OutputGradients) {
    let (expected, magnitude) = reference_gradients(problem, grad_y);
    let routed = problem.group_end[problem.experts - 1] as usize * problem.in_features;
    assert_close("grad_x", &gradients.x[..routed], &expected.x[..routed], &magnitude.x[..routed], TOLERANCE);
    assert_close("grad_lora_a", &gradients.lora_a, &expected.lora_a, &magnitude.lora_a, TOLERANCE);
    assert_close("grad_lora_b", &gradients.lora_b, &expected.lora_b, &magnitude.lora_b, TOLERANCE);
}

#[test]
fn backward_matches_float64_for_both_weight_layouts() {
    for layout in [WeightLayout::ExpertOutIn, WeightLayout::ExpertInOut] {
        let problem = problem(layout);
        let grad_y = grad_y(&problem);
        let mut gradients = problem.output_gradients();
        expert_gemm_lora_backward(problem.backward_args(&grad_y, &mut gradients), Stream::DEFAULT).unwrap();
        assert_gradients_match(&problem, &grad_y, &gradients);
    }
}

#[test]
fn experts_without_rows_get_zero_lora_gradients() {
    let problem = problem(WeightLayout::ExpertOutIn);
    let grad_y = grad_y(&problem);
    let mut gradients = problem.output_gradients();
    expert_gemm_lora_backward(problem.backward_args(&grad_y, &mut gradients), Stream::DEFAULT).unwrap();
    let idle_expert = 1;
    let a_per_expert = problem.rank * problem.in_features;
    let b_per_expert = problem.out_features * problem.rank;
    assert!(gradients.lora_a[idle_expert * a_per_expert..][..a_per_expert].iter().all(|&value| value == 0.0));
    assert!(gradients.lora_b[idle_expert * b_per_expert..][..b_per_expert].iter().all(|&value| value == 0.0));
}

#[test]
fn x_lora_a_saved_by_the_forward_replaces_x_for_grad_lora_b() {
    let problem = problem(WeightLayout::ExpertOutIn);
    let x_lora_a_shape = [problem.rows as i64, problem.rank as i64];
    let mut y = vec![0f32; problem.rows * problem.out_features];
    let mut x_lora_a = vec![0f32; problem.rows * problem.rank];
    let mut forward = problem.forward_args(&mut y);
    forward.x_lora_a = Some(TensorViewMut::from_slice(&mut x_lora_a, &x_lora_a_shape).unwrap());
    expert_gemm_lora(forward, Stream::DEFAULT).unwrap();

    let grad_y = grad_y(&problem);
    let mut gradients = problem.output_gradients();
    let mut backward = problem.backward_args(&grad_y, &mut gradients);
    backward.x = None;
    backward.grad_lora_a = None;
    backward.x_lora_a = Some(TensorView::from_slice(&x_lora_a, &x_lora_a_shape).unwrap());
    expert_gemm_lora_backward(backward, Stream::DEFAULT).unwrap();
    let (expected, magnitude) = reference_gradients(&problem, &grad_y);
    assert_close("grad_lora_b", &gradients.lora_b, &expected.lora_b, &magnitude.lora_b, TOLERANCE);
    assert!(gradients.lora_a.iter().all(|value| value.is_nan()), "grad_lora_a was not asked for");
}

#[test]
fn lora_gradients_are_written_through_peft_strides() {
    let problem = problem(WeightLayout::ExpertOutIn);
    let grad_y = grad_y(&problem);
    let mut peft_grad_b = vec![f32::NAN; problem.lora_b.len()];
    let mut gradients = problem.output_gradients();
    let mut args = problem.backward_args(&grad_y, &mut gradients);
    let strides = problem.peft_b_strides();
    args.grad_lora_b =
        Some(TensorViewMut::from_slice_strided(&mut peft_grad_b, &problem.shape_b(), Some(&strides)).unwrap());
    expert_gemm_lora_backward(args, Stream::DEFAULT).unwrap();
    let (expected, magnitude) = reference_gradients(&problem, &grad_y);
    assert_close(
        "grad_lora_b",
        &problem.peft_b_to_contiguous(&peft_grad_b),
        &expected.lora_b,
        &magnitude.lora_b,
        TOLERANCE,
    );
}
