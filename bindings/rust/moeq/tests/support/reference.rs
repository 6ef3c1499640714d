//! The expert GEMM with LoRA in float64, written from the formulas of moeq.h. Each
//! function takes `term`, applied to every factor: the identity gives the result,
//! `f64::abs` the magnitude that bounds its float32 rounding error.
use super::problem::Problem;

/// y [M, N] for the routed rows (other rows stay 0).
pub fn forward(problem: &Problem, term: impl Fn(f64) -> f64) -> Vec<f64> {
    let (k, n, r) = (problem.in_features, problem.out_features, problem.rank);
    let mut y = vec![0.0; problem.rows * n];
    for expert in 0..problem.experts {
        for row in problem.rows_of(expert) {
            let x = |inp: usize| term(f64::from(problem.x[row * k + inp]));
            let x_a: Vec<f64> =
                (0..r).map(|j| (0..k).map(|inp| x(inp) * term(problem.a_at(expert, j, inp))).sum()).collect();
            for out in 0..n {
                let base: f64 = (0..k).map(|inp| x(inp) * term(problem.weight_at(expert, out, inp))).sum();
                let lora: f64 = (0..r).map(|j| x_a[j] * term(problem.b_at(expert, out, j))).sum();
                y[row * n + out] = base + term(f64::from(problem.scale)) * lora;
            }
        }
    }
    y
}

pub struct Gradients {
    /// [M, K]
    pub x: Vec<f64>,
    /// [E, r, K]
    pub lora_a: Vec<f64>,
    /// [E, N, r]
    pub lora_b: Vec<f64>,
}

/// The gradients of sum(grad_y ⊙ y) with respect to x, A and B.
pub fn backward(problem: &Problem, grad_y: &[f32], term: impl Fn(f64) -> f64) -> Gradients {
    let (k, n, r) = (problem.in_features, problem.out_features, problem.rank);
    let scale = term(f64::from(problem.scale));
    let mut gradients = Gradients {
        x: vec![0.0; problem.rows * k],
        lora_a: vec![0.0; problem.experts * r * k],
        lora_b: vec![0.0; problem.experts * n * r],
    };
    for expert in 0..problem.experts {
        for row in problem.rows_of(expert) {
            let x = |inp: usize| term(f64::from(problem.x[row * k + inp]));
            let dy = |out: usize| term(f64::from(grad_y[row * n + out]));
            let dy_b: Vec<f64> =
                (0..r).map(|j| (0..n).map(|out| dy(out) * term(problem.b_at(expert, out, j))).sum()).collect();
            let x_a: Vec<f64> =
                (0..r).map(|j| (0..k).map(|inp| x(inp) * term(problem.a_at(expert, j, inp))).sum()).collect();
            for inp in 0..k {
                let base: f64 = (0..n).map(|out| dy(out) * term(problem.weight_at(expert, out, inp))).sum();
                let lora: f64 = (0..r).map(|j| dy_b[j] * term(problem.a_at(expert, j, inp))).sum();
                gradients.x[row * k + inp] = base + scale * lora;
                for (j, dy_b_j) in dy_b.iter().enumerate() {
                    gradients.lora_a[(expert * r + j) * k + inp] += scale * dy_b_j * x(inp);
                }
            }
            for out in 0..n {
                for (j, x_a_j) in x_a.iter().enumerate() {
                    gradients.lora_b[(expert * n + out) * r + j] += scale * dy(out) * x_a_j;
                }
            }
        }
    }
    gradients
}
