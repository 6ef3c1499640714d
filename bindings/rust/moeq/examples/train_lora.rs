//! Trains per-expert LoRA adapters on a 4-bit Mixture-of-Experts layer with moeq: 16
//! experts of 256 x 512 stored in NF4, SGD toward a synthetic target made by a hidden
//! "teacher" adapter. Runs on the GPU when one is present (falling back to the CPU
//! while the CUDA path is unsupported), else on the CPU. Prints the loss as it falls
//! and exits with failure unless the final loss is below FINAL_LOSS_FRACTION of the
//! first.
#[path = "../tests/support/random.rs"]
mod random;
#[path = "support/transfer.rs"]
mod transfer;

use moeq::{
    expert_gemm_lora, expert_gemm_lora_backward, quantize, Device, ExpertGemm, ExpertGemmGrad, Lora, QTensor,
    QuantConfig, Status, Stream, Tensor, WeightLayout,
};
use random::Random;
use std::process::ExitCode;
use transfer::Transfer;

const EXPERTS: usize = 16;
const OUT_FEATURES: usize = 256;
const IN_FEATURES: usize = 512;
const RANK: usize = 8;
/// alpha / r, as PEFT scales the adapter.
const LORA_SCALE: f32 = 2.0;
const STEPS: usize = 300;
const LEARNING_RATE: f32 = 150.0;
/// What the example promises (and CI checks through its exit code).
const FINAL_LOSS_FRACTION: f64 = 0.05;

fn main() -> ExitCode {
    println!("{}", moeq::build_info());
    let losses = match train_on(preferred_device()) {
        Ok(losses) => losses,
        Err(error) => {
            eprintln!("training failed: {error} ({})", error.status().name());
            return ExitCode::FAILURE;
        }
    };
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    println!(
        "loss {first:.4e} -> {last:.4e}: {:.3e} of the initial loss (must be below {FINAL_LOSS_FRACTION})",
        last / first
    );
    if last < FINAL_LOSS_FRACTION * first {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn preferred_device() -> Device {
    if moeq::cuda_available() {
        Device::Cuda(0)
    } else {
        Device::Cpu
    }
}

/// Trains on `device`, or on the CPU if the GPU cannot be used: no CUDA runtime to
/// copy data with, or a moeq build whose CUDA path is not there yet.
fn train_on(device: Device) -> moeq::Result<Vec<f64>> {
    if device == Device::Cpu {
        return train(Device::Cpu, &Transfer::Host);
    }
    let transfer = match Transfer::to(device) {
        Ok(transfer) => transfer,
        Err(reason) => {
            println!("GPU present but {reason}: training on the CPU");
            return train(Device::Cpu, &Transfer::Host);
        }
    };
    match train(device, &transfer) {
        Err(error) if error.status() == Status::Unsupported => {
            println!("the CUDA path says: {error}; training on the CPU instead");
            train(Device::Cpu, &Transfer::Host)
        }
        outcome => outcome,
    }
}

/// Rows routed to each expert: uneven, and expert 5 gets none.
fn group_end() -> Vec<i64> {
    (0..EXPERTS as i64)
        .map(|expert| if expert == 5 { 0 } else { 16 + 8 * (expert % 4) })
        .scan(0, |end, rows| {
            *end += rows;
            Some(*end)
        })
        .collect()
}

/// The layer's fixed operands, on the training device.
struct Layer {
    weight: QTensor,
    group_end: Tensor,
    x: Tensor,
    rows: usize,
}

impl Layer {
    /// y = x · Wᵀ + scale · (x · Aᵀ) · Bᵀ per expert; also saves x · Aᵀ for the backward.
    fn forward(&self, a: &Tensor, b: &Tensor, y: &mut Tensor, x_lora_a: Option<&mut Tensor>) -> moeq::Result<()> {
        expert_gemm_lora(
            ExpertGemm {
                x: self.x.view(),
                weight: self.weight.view(),
                weight_layout: WeightLayout::ExpertOutIn,
                group_end: self.group_end.view(),
                lora: Some(Lora { a: a.view(), b: b.view(), scale: LORA_SCALE }),
                y: y.view_mut(),
                x_lora_a: x_lora_a.map(Tensor::view_mut),
                workspace: None,
            },
            Stream::DEFAULT,
        )
    }
}

fn train(device: Device, transfer: &Transfer) -> moeq::Result<Vec<f64>> {
    println!("training on {device:?}: {EXPERTS} experts of {OUT_FEATURES} x {IN_FEATURES} in NF4, LoRA rank {RANK}");
    let mut random = Random::new(2024);
    let group_end = group_end();
    let rows = *group_end.last().unwrap() as usize;
    let weight_shape = [EXPERTS as i64, OUT_FEATURES as i64, IN_FEATURES as i64];
    let a_shape = [EXPERTS as i64, RANK as i64, IN_FEATURES as i64];
    let b_shape = [EXPERTS as i64, OUT_FEATURES as i64, RANK as i64];
    let y_shape = [rows as i64, OUT_FEATURES as i64];

    let full_precision_weight =
        transfer.upload(&random.values(EXPERTS * OUT_FEATURES * IN_FEATURES, 0.5), &weight_shape, device)?;
    let layer = Layer {
        weight: quantize(&full_precision_weight.view(), &QuantConfig::default(), Stream::DEFAULT)?,
        group_end: transfer.upload(&group_end, &[EXPERTS as i64], device)?,
        x: transfer.upload(&random.values(rows * IN_FEATURES, 1.0), &[rows as i64, IN_FEATURES as i64], device)?,
        rows,
    };
    drop(full_precision_weight);

    let teacher_a = transfer.upload(&random.values(EXPERTS * RANK * IN_FEATURES, 0.05), &a_shape, device)?;
    let teacher_b = transfer.upload(&random.values(EXPERTS * OUT_FEATURES * RANK, 0.05), &b_shape, device)?;
    let mut target = Tensor::empty(&y_shape, moeq::DType::F32, device)?;
    layer.forward(&teacher_a, &teacher_b, &mut target, None)?;
    let target: Vec<f32> = transfer.read(&target);

    // PEFT's initialisation: A random, B zero, so training starts from the base layer.
    let mut a_values = random.values(EXPERTS * RANK * IN_FEATURES, 0.05);
    let mut b_values = vec![0f32; EXPERTS * OUT_FEATURES * RANK];
    let mut a = transfer.upload(&a_values, &a_shape, device)?;
    let mut b = transfer.upload(&b_values, &b_shape, device)?;
    let mut y = Tensor::empty(&y_shape, moeq::DType::F32, device)?;
    let mut x_lora_a = Tensor::empty(&[rows as i64, RANK as i64], moeq::DType::F32, device)?;
    let mut grad_y = Tensor::empty(&y_shape, moeq::DType::F32, device)?;
    let mut grad_a = Tensor::empty(&a_shape, moeq::DType::F32, device)?;
    let mut grad_b = Tensor::empty(&b_shape, moeq::DType::F32, device)?;

    let mut losses = Vec::with_capacity(STEPS + 1);
    for step in 0..=STEPS {
        layer.forward(&a, &b, &mut y, Some(&mut x_lora_a))?;
        let (loss, loss_gradient) = mean_squared_error(&transfer.read(&y), &target);
        losses.push(loss);
        if step % 25 == 0 {
            println!("step {step:4}  loss {loss:.4e}");
        }
        if step == STEPS {
            break;
        }
        transfer.write(&mut grad_y, &loss_gradient);
        expert_gemm_lora_backward(
            ExpertGemmGrad {
                x: Some(layer.x.view()),
                weight: layer.weight.view(),
                weight_layout: WeightLayout::ExpertOutIn,
                group_end: layer.group_end.view(),
                lora: Some(Lora { a: a.view(), b: b.view(), scale: LORA_SCALE }),
                grad_y: grad_y.view(),
                x_lora_a: Some(x_lora_a.view()),
                grad_x: None,
                grad_lora_a: Some(grad_a.view_mut()),
                grad_lora_b: Some(grad_b.view_mut()),
                workspace: None,
            },
            Stream::DEFAULT,
        )?;
        sgd_step(&mut a_values, &transfer.read(&grad_a));
        sgd_step(&mut b_values, &transfer.read(&grad_b));
        transfer.write(&mut a, &a_values);
        transfer.write(&mut b, &b_values);
    }
    println!("{} rows routed over {EXPERTS} experts, {STEPS} steps", layer.rows);
    Ok(losses)
}

/// The mean of (y - target)² and its gradient with respect to y.
fn mean_squared_error(y: &[f32], target: &[f32]) -> (f64, Vec<f32>) {
    let count = y.len() as f64;
    let loss = y.iter().zip(target).map(|(&y, &t)| (f64::from(y) - f64::from(t)).powi(2)).sum::<f64>() / count;
    let gradient = y.iter().zip(target).map(|(&y, &t)| (2.0 * (f64::from(y) - f64::from(t)) / count) as f32).collect();
    (loss, gradient)
}

fn sgd_step(parameters: &mut [f32], gradients: &[f32]) {
    for (parameter, gradient) in parameters.iter_mut().zip(gradients) {
        *parameter -= LEARNING_RATE * gradient;
    }
}
