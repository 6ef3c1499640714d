//! The expert GEMM with LoRA, forward: for every expert e owning rows
//! [group_end[e-1], group_end[e]) of x, y_e = x_e · W_eᵀ + scale · (x_e · A_eᵀ) · B_eᵀ.
use crate::call_args::{optional_input, optional_output, workspace_parts, SharedOperands};
use crate::device::Stream;
use crate::error::{check, Result};
use crate::ffi::moeq_call;
use crate::qtensor::QTensorView;
use crate::view::{TensorView, TensorViewMut};
use moeq_sys::{moeq_expert_gemm_args, MOEQ_LAYOUT_EXPERT_IN_OUT, MOEQ_LAYOUT_EXPERT_OUT_IN};
use std::mem::size_of;

/// How a 3-D expert weight is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// [E, N, K]: Qwen3, GLM, Mixtral, DeepSeek.
    ExpertOutIn,
    /// [E, K, N]: gpt-oss.
    ExpertInOut,
}

impl WeightLayout {
    pub(crate) fn code(self) -> i32 {
        (match self {
            WeightLayout::ExpertOutIn => MOEQ_LAYOUT_EXPERT_OUT_IN,
            WeightLayout::ExpertInOut => MOEQ_LAYOUT_EXPERT_IN_OUT,
        }) as i32
    }
}

/// A LoRA adapter per expert, read through its strides: `a` [E, r, K], `b` [E, N, r]
/// (PEFT's lora_B.weight [N, r*E] is `b` with strides (1, r*E, E)); F32 or x's dtype.
#[derive(Clone, Debug)]
pub struct Lora<'a> {
    pub a: TensorView<'a>,
    pub b: TensorView<'a>,
    pub scale: f32,
}

/// The operands of `expert_gemm_lora`.
#[derive(Debug)]
pub struct ExpertGemm<'a> {
    /// [M, K], F32, F16 or BF16; rows grouped by expert.
    pub x: TensorView<'a>,
    pub weight: QTensorView<'a>,
    pub weight_layout: WeightLayout,
    /// [E], I32 or I64: cumulative end row of each expert.
    pub group_end: TensorView<'a>,
    pub lora: Option<Lora<'a>>,
    /// [M, N], x's dtype; rows past the last group end are left as they are.
    pub y: TensorViewMut<'a>,
    /// Optional output [M, r]: x_e · A_eᵀ, which the backward can reuse.
    pub x_lora_a: Option<TensorViewMut<'a>>,
    /// Device scratch for allocation-free GPU calls (see `workspace_bytes`).
    pub workspace: Option<TensorViewMut<'a>>,
}

impl ExpertGemm<'_> {
    /// The scratch the GPU path needs with these operands; 0 on the CPU.
    pub fn workspace_bytes(&self) -> Result<usize> {
        let mut bytes = 0;
        // SAFETY: `raw` points into `self`, alive for the call.
        self.with_raw(|raw| check(unsafe { moeq_call!(moeq_expert_gemm_workspace_size(raw, &mut bytes)) }))??;
        Ok(bytes)
    }

    /// Calls `call` with the library's argument struct, which points into `self`.
    fn with_raw<R>(&self, call: impl FnOnce(&moeq_expert_gemm_args) -> R) -> Result<R> {
        let shared = SharedOperands::of(&self.weight, self.weight_layout, &self.group_end, &self.lora)?;
        let x = self.x.dl_tensor();
        let mut y = self.y.dl_tensor();
        let mut x_lora_a = self.x_lora_a.as_ref().map(|tensor| tensor.dl_tensor());
        let (workspace, workspace_bytes) = workspace_parts(&self.workspace);
        let raw = moeq_expert_gemm_args {
            struct_size: size_of::<moeq_expert_gemm_args>() as u32,
            x: &x,
            weight: &shared.weight,
            weight_layout: shared.weight_layout,
            group_end: &shared.group_end,
            lora_a: optional_input(&shared.lora_a),
            lora_b: optional_input(&shared.lora_b),
            lora_scale: shared.lora_scale,
            y: &mut y,
            x_lora_a: optional_output(&mut x_lora_a),
            workspace,
            workspace_bytes,
        };
        Ok(call(&raw))
    }
}

/// Runs the forward GEMM; a GPU call is ordered on `stream` and does not wait for it.
pub fn expert_gemm_lora(args: ExpertGemm<'_>, stream: Stream) -> Result<()> {
    // SAFETY: `raw` points into `args`, whose outputs are borrowed exclusively.
    args.with_raw(|raw| check(unsafe { moeq_call!(moeq_expert_gemm_lora(raw, stream.as_raw())) }))?
}
