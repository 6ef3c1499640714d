//! The expert GEMM with LoRA, backward: for every expert e
//! grad_x_e = dY_e · W_e + s · (dY_e · B_e) · A_e, grad_A_e = s · (dY_e · B_e)ᵀ · x_e,
//! grad_B_e = s · dY_eᵀ · (x_e · A_eᵀ).
use crate::call_args::{optional_input, optional_output, workspace_parts, SharedOperands};
use crate::device::Stream;
use crate::error::{check, Result};
use crate::expert_gemm::{Lora, WeightLayout};
use crate::ffi::moeq_call;
use crate::qtensor::QTensorView;
use crate::view::{TensorView, TensorViewMut};
use moeq_sys::moeq_expert_gemm_grad_args;
use std::mem::size_of;

/// The operands of `expert_gemm_lora_backward`. Each gradient is optional and
/// overwritten, not accumulated; experts without rows get zero LoRA gradients.
#[derive(Debug)]
pub struct ExpertGemmGrad<'a> {
    /// [M, K]: needed for grad_lora_a, and for grad_lora_b unless `x_lora_a` is given.
    pub x: Option<TensorView<'a>>,
    pub weight: QTensorView<'a>,
    pub weight_layout: WeightLayout,
    pub group_end: TensorView<'a>,
    pub lora: Option<Lora<'a>>,
    /// [M, N], x's dtype.
    pub grad_y: TensorView<'a>,
    /// [M, r] saved by the forward, so it need not be recomputed.
    pub x_lora_a: Option<TensorView<'a>>,
    /// [M, K], x's dtype.
    pub grad_x: Option<TensorViewMut<'a>>,
    /// [E, r, K], lora.a's dtype, any strides.
    pub grad_lora_a: Option<TensorViewMut<'a>>,
    /// [E, N, r], lora.b's dtype, any strides.
    pub grad_lora_b: Option<TensorViewMut<'a>>,
    pub workspace: Option<TensorViewMut<'a>>,
}

impl ExpertGemmGrad<'_> {
    /// The scratch the GPU path needs with these operands; 0 on the CPU.
    pub fn workspace_bytes(&self) -> Result<usize> {
        let mut bytes = 0;
        // SAFETY: `raw` points into `self`, alive for the call.
        self.with_raw(|raw| check(unsafe { moeq_call!(moeq_expert_gemm_grad_workspace_size(raw, &mut bytes)) }))??;
        Ok(bytes)
    }

    /// Calls `call` with the library's argument struct, which points into `self`.
    fn with_raw<R>(&self, call: impl FnOnce(&moeq_expert_gemm_grad_args) -> R) -> Result<R> {
        let shared = SharedOperands::of(&self.weight, self.weight_layout, &self.group_end, &self.lora)?;
        let x = self.x.as_ref().map(|tensor| tensor.dl_tensor());
        let grad_y = self.grad_y.dl_tensor();
        let x_lora_a = self.x_lora_a.as_ref().map(|tensor| tensor.dl_tensor());
        let mut grad_x = self.grad_x.as_ref().map(|tensor| tensor.dl_tensor());
        let mut grad_lora_a = self.grad_lora_a.as_ref().map(|tensor| tensor.dl_tensor());
        let mut grad_lora_b = self.grad_lora_b.as_ref().map(|tensor| tensor.dl_tensor());
        let (workspace, workspace_bytes) = workspace_parts(&self.workspace);
        let raw = moeq_expert_gemm_grad_args {
            struct_size: size_of::<moeq_expert_gemm_grad_args>() as u32,
            x: optional_input(&x),
            weight: &shared.weight,
            weight_layout: shared.weight_layout,
            group_end: &shared.group_end,
            lora_a: optional_input(&shared.lora_a),
            lora_b: optional_input(&shared.lora_b),
            lora_scale: shared.lora_scale,
            grad_y: &grad_y,
            x_lora_a: optional_input(&x_lora_a),
            grad_x: optional_output(&mut grad_x),
            grad_lora_a: optional_output(&mut grad_lora_a),
            grad_lora_b: optional_output(&mut grad_lora_b),
            workspace,
            workspace_bytes,
        };
        Ok(call(&raw))
    }
}

/// Runs the backward GEMM; a GPU call is ordered on `stream` and does not wait for it.
pub fn expert_gemm_lora_backward(args: ExpertGemmGrad<'_>, stream: Stream) -> Result<()> {
    // SAFETY: `raw` points into `args`, whose outputs are borrowed exclusively.
    args.with_raw(|raw| check(unsafe { moeq_call!(moeq_expert_gemm_lora_backward(raw, stream.as_raw())) }))?
}
