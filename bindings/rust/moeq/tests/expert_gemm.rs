//! The expert GEMM forward through the safe API against a float64 reference.
mod support;

use moeq::{expert_gemm_lora, Bf16, ExpertGemm, Lora, Stream, TensorView, TensorViewMut, WeightLayout};
use support::problem::Problem;
use support::{assert_close, reference};

/// Float32 accumulation over K = 128 inputs, relative to the sum of absolute terms.
const TOLERANCE: f64 = 2e-5;
/// Rows past the last group end must keep what they held.
const UNTOUCHED: f32 = 7.0;

/// Four experts, the second without rows, and 3 rows no expert owns.
fn problem(layout: WeightLayout) -> Problem {
    Problem::new(11, &[5, 0, 17, 9], 3, 128, 64, 8, layout)
}

fn assert_matches_reference(problem: &Problem, y: &[f32]) {
    let routed = problem.group_end[problem.experts - 1] as usize * problem.out_features;
    let expected = reference::forward(problem, |value| value);
    let magnitude = reference::forward(problem, f64::abs);
    assert_close("y", &y[..routed], &expected[..routed], &magnitude[..routed], TOLERANCE);
    assert!(y[routed..].iter().all(|&value| value == UNTOUCHED), "rows past the last group end were written");
}

#[test]
fn forward_matches_float64_for_both_weight_layouts() {
    for layout in [WeightLayout::ExpertOutIn, WeightLayout::ExpertInOut] {
        let problem = problem(layout);
        let mut y = vec![UNTOUCHED; problem.rows * problem.out_features];
        expert_gemm_lora(problem.forward_args(&mut y), Stream::DEFAULT).unwrap();
        assert_matches_reference(&problem, &y);
    }
}

#[test]
fn group_end_may_be_int32() {
    let problem = problem(WeightLayout::ExpertOutIn);
    let group_end: Vec<i32> = problem.group_end.iter().map(|&end| end as i32).collect();
    let mut y = vec![UNTOUCHED; problem.rows * problem.out_features];
    let mut args = problem.forward_args(&mut y);
    args.group_end = TensorView::from_slice(&group_end, &[problem.experts as i64]).unwrap();
    expert_gemm_lora(args, Stream::DEFAULT).unwrap();
    assert_matches_reference(&problem, &y);
}

#[test]
fn without_lora_the_result_is_the_base_product() {
    let mut problem = problem(WeightLayout::ExpertOutIn);
    let mut y = vec![UNTOUCHED; problem.rows * problem.out_features];
    let mut args = problem.forward_args(&mut y);
    args.lora = None;
    expert_gemm_lora(args, Stream::DEFAULT).unwrap();
    problem.scale = 0.0;
    assert_matches_reference(&problem, &y);
}

#[test]
fn lora_b_in_peft_layout_is_read_through_its_strides() {
    let problem = problem(WeightLayout::ExpertOutIn);
    let peft_b = problem.contiguous_to_peft_b(&problem.lora_b);
    let strides = problem.peft_b_strides();
    let mut y = vec![UNTOUCHED; problem.rows * problem.out_features];
    let mut args = problem.forward_args(&mut y);
    args.lora = Some(Lora {
        a: TensorView::from_slice(&problem.lora_a, &problem.shape_a()).unwrap(),
        b: TensorView::from_slice_strided(&peft_b, &problem.shape_b(), Some(&strides)).unwrap(),
        scale: problem.scale,
    });
    expert_gemm_lora(args, Stream::DEFAULT).unwrap();
    assert_matches_reference(&problem, &y);
}

#[test]
fn x_lora_a_receives_x_times_a_transposed() {
    let problem = problem(WeightLayout::ExpertOutIn);
    let (k, r) = (problem.in_features, problem.rank);
    let mut y = vec![UNTOUCHED; problem.rows * problem.out_features];
    let mut x_lora_a = vec![UNTOUCHED; problem.rows * r];
    let mut args = problem.forward_args(&mut y);
    args.x_lora_a = Some(TensorViewMut::from_slice(&mut x_lora_a, &[problem.rows as i64, r as i64]).unwrap());
    expert_gemm_lora(args, Stream::DEFAULT).unwrap();
    for expert in 0..problem.experts {
        for row in problem.rows_of(expert) {
            for j in 0..r {
                let terms: Vec<f64> =
                    (0..k).map(|inp| f64::from(problem.x[row * k + inp]) * problem.a_at(expert, j, inp)).collect();
                let magnitude: f64 = terms.iter().map(|term| term.abs()).sum();
                assert_close("x_lora_a", &x_lora_a[row * r + j..][..1], &[terms.iter().sum()], &[magnitude], TOLERANCE);
            }
        }
    }
}

#[test]
fn bfloat16_activations_take_float32_lora_factors_as_peft_keeps_them() {
    let mut problem = problem(WeightLayout::ExpertOutIn);
    let x: Vec<Bf16> = problem.x.iter().map(|&value| Bf16::from_f32(value)).collect();
    problem.x = x.iter().map(|value| value.to_f32()).collect();
    let mut y = vec![Bf16::from_f32(UNTOUCHED); problem.rows * problem.out_features];
    let args = ExpertGemm {
        x: TensorView::from_slice(&x, &problem.shape_x()).unwrap(),
        weight: problem.weight.view(),
        weight_layout: problem.layout,
        group_end: TensorView::from_slice(&problem.group_end, &[problem.experts as i64]).unwrap(),
        lora: Some(problem.lora()),
        y: TensorViewMut::from_slice(&mut y, &problem.shape_y()).unwrap(),
        x_lora_a: None,
        workspace: None,
    };
    expert_gemm_lora(args, Stream::DEFAULT).unwrap();
    let routed = problem.group_end[problem.experts - 1] as usize * problem.out_features;
    let y: Vec<f32> = y[..routed].iter().map(|value| value.to_f32()).collect();
    let expected = reference::forward(&problem, |value| value);
    // Float32 accumulation, then one rounding to bfloat16 (8 significant bits).
    let allowed: Vec<f64> = reference::forward(&problem, f64::abs)
        .iter()
        .zip(&expected)
        .map(|(magnitude, value)| TOLERANCE * magnitude + value.abs() * 2f64.powi(-8))
        .collect();
    assert_close("y", &y, &expected[..routed], &allowed[..routed], 1.0);
}
