//! Safe Rust API of moeq: 4-bit (NF4/FP4, bitsandbytes layout) Mixture-of-Experts
//! weights and the per-expert GEMM with a fused LoRA adapter, forward and backward, on
//! CUDA GPUs and on the CPU.
//!
//! - [`Tensor`] owns a DLPack managed tensor (library-allocated, or handed over);
//!   [`TensorView`] / [`TensorViewMut`] borrow Rust slices or device memory.
//! - [`quantize`] gives a [`QTensor`]; [`dequantize`], [`expert_gemm_lora`] and
//!   [`expert_gemm_lora_backward`] read a [`QTensorView`] (of a `QTensor`, or of
//!   buffers from a bitsandbytes checkpoint); [`swiglu`] / [`swiglu_backward`] run the
//!   activation between the projections.
//! - Every call returns `Result<_, Error>`; the error's `Display` is the library's
//!   message, which names the argument at fault.
//!
//! The library is thread-safe per call: tensors and views are `Send` and `Sync`.
//!
//! ```no_run
//! use moeq::{dequantize, quantize, QuantConfig, Stream, TensorView, TensorViewMut};
//!
//! let weight: Vec<f32> = (0..2 * 64 * 128).map(|i| (i % 97) as f32 / 48.0 - 1.0).collect();
//! let input = TensorView::from_slice(&weight, &[2, 64, 128])?;
//! let quantized = quantize(&input, &QuantConfig::default(), Stream::DEFAULT)?;
//! let mut restored = vec![0f32; weight.len()];
//! dequantize(&quantized.view(), TensorViewMut::from_slice(&mut restored, &[2, 64, 128])?, Stream::DEFAULT)?;
//! # Ok::<(), moeq::Error>(())
//! ```
mod call_args;
mod device;
mod dtype;
mod error;
mod expert_gemm;
mod expert_gemm_backward;
mod ffi;
mod library_info;
mod qtensor;
mod quantize;
mod raw_view;
mod swiglu;
mod tensor;
mod view;

pub use device::{Device, Stream};
pub use dtype::{Bf16, DType, Element, F16};
pub use error::{Error, Result, Status};
pub use expert_gemm::{expert_gemm_lora, ExpertGemm, Lora, WeightLayout};
pub use expert_gemm_backward::{expert_gemm_lora_backward, ExpertGemmGrad};
pub use library_info::{build_info, cuda_available, version};
/// The raw bindings, for what the safe API does not cover.
pub use moeq_sys as sys;

/// The Rust example of the repository's README.md, compiled by `cargo test` so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../../../README.md")]
struct ReadmeExample;
pub use qtensor::{quantized_layout, Format, NestedStats, QTensor, QTensorView, QuantConfig, QuantLayout, Quantized};
pub use quantize::{dequantize, quantize};
pub use swiglu::{swiglu, swiglu_backward, GateLayout, SwigluConfig};
pub use tensor::Tensor;
pub use view::{Exclusive, Shared, TensorView, TensorViewMut, View};
