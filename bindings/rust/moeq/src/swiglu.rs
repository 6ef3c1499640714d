//! The gated activation between the projections (SwiGLU), forward and backward:
//! out = (clamp(up, -limit, limit) + up_offset) · g · sigmoid(alpha · g), g = min(gate, limit).
use crate::device::Stream;
use crate::error::{check, Result};
use crate::ffi::moeq_call;
use crate::view::{TensorView, TensorViewMut};
use moeq_sys::{moeq_swiglu_config, MOEQ_GATE_UP_HALVES, MOEQ_GATE_UP_INTERLEAVED};
use std::mem::size_of;

/// Where gate and up lie in the gate_up projection's output [M, 2I].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateLayout {
    /// gate = columns [0, I), up = [I, 2I): Qwen3, GLM, Mixtral, DeepSeek.
    Halves,
    /// gate = even columns, up = odd ones: gpt-oss.
    Interleaved,
}

/// The activation's form. The default is silu(gate) · up over halves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SwigluConfig {
    pub layout: GateLayout,
    /// Slope inside the sigmoid (finite).
    pub alpha: f32,
    /// Clamp bound (> 0); `f32::INFINITY`: no clamp.
    pub limit: f32,
    /// Added to the clamped up (finite).
    pub up_offset: f32,
}

impl Default for SwigluConfig {
    fn default() -> Self {
        SwigluConfig { layout: GateLayout::Halves, alpha: 1.0, limit: f32::INFINITY, up_offset: 0.0 }
    }
}

impl SwigluConfig {
    /// gpt-oss' form: interleaved, alpha 1.702, limit 7, up offset 1.
    pub fn gpt_oss() -> Self {
        SwigluConfig { layout: GateLayout::Interleaved, alpha: 1.702, limit: 7.0, up_offset: 1.0 }
    }

    fn to_raw(self) -> moeq_swiglu_config {
        moeq_swiglu_config {
            struct_size: size_of::<moeq_swiglu_config>() as u32,
            layout: (match self.layout {
                GateLayout::Halves => MOEQ_GATE_UP_HALVES,
                GateLayout::Interleaved => MOEQ_GATE_UP_INTERLEAVED,
            }) as i32,
            alpha: self.alpha,
            limit: self.limit,
            up_offset: self.up_offset,
        }
    }
}

/// `out` [M, I] from `gate_up` [M, 2I] (one dtype, F32, F16 or BF16; rows may be
/// padded, columns adjacent) in one pass, computed in float32 and rounded once.
pub fn swiglu(config: &SwigluConfig, gate_up: &TensorView<'_>, out: TensorViewMut<'_>, stream: Stream) -> Result<()> {
    let raw = config.to_raw();
    // SAFETY: the tensors point into live views; out is borrowed exclusively.
    check(unsafe { moeq_call!(moeq_swiglu(&raw, &gate_up.dl_tensor(), &mut out.dl_tensor(), stream.as_raw())) })
}

/// The gradient at `gate_up` given `grad_out` [M, I], into `grad_gate_up` [M, 2I]
/// (gate_up's layout; zero past a clamp bound).
pub fn swiglu_backward(
    config: &SwigluConfig,
    gate_up: &TensorView<'_>,
    grad_out: &TensorView<'_>,
    grad_gate_up: TensorViewMut<'_>,
    stream: Stream,
) -> Result<()> {
    let raw = config.to_raw();
    // SAFETY: the tensors point into live views; grad_gate_up is borrowed exclusively.
    check(unsafe {
        moeq_call!(moeq_swiglu_backward(
            &raw,
            &gate_up.dl_tensor(),
            &grad_out.dl_tensor(),
            &mut grad_gate_up.dl_tensor(),
            stream.as_raw()
        ))
    })
}
