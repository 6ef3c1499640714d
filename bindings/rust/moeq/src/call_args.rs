//! What the forward and backward GEMM argument structs share: the weight, routing and
//! LoRA operands as the library reads them, nullable pointers for optional operands,
//! and the workspace as (pointer, bytes).
use crate::error::Result;
use crate::expert_gemm::{Lora, WeightLayout};
use crate::qtensor::QTensorView;
use crate::view::{TensorView, TensorViewMut};
use moeq_sys::{moeq_qtensor, DLTensor};
use std::os::raw::c_void;
use std::ptr;

/// The operands both directions read, kept alive while an argument struct points at them.
pub(crate) struct SharedOperands {
    pub weight: moeq_qtensor,
    pub weight_layout: i32,
    pub group_end: DLTensor,
    pub lora_a: Option<DLTensor>,
    pub lora_b: Option<DLTensor>,
    pub lora_scale: f32,
}

impl SharedOperands {
    /// They point into the views given, which must outlive them.
    pub(crate) fn of(
        weight: &QTensorView<'_>,
        weight_layout: WeightLayout,
        group_end: &TensorView<'_>,
        lora: &Option<Lora<'_>>,
    ) -> Result<SharedOperands> {
        Ok(SharedOperands {
            weight: weight.to_raw()?,
            weight_layout: weight_layout.code(),
            group_end: group_end.dl_tensor(),
            lora_a: lora.as_ref().map(|lora| lora.a.dl_tensor()),
            lora_b: lora.as_ref().map(|lora| lora.b.dl_tensor()),
            lora_scale: lora.as_ref().map_or(0.0, |lora| lora.scale),
        })
    }
}

pub(crate) fn optional_input(tensor: &Option<DLTensor>) -> *const DLTensor {
    tensor.as_ref().map_or(ptr::null(), |tensor| tensor as *const DLTensor)
}

pub(crate) fn optional_output(tensor: &mut Option<DLTensor>) -> *mut DLTensor {
    tensor.as_mut().map_or(ptr::null_mut(), |tensor| tensor as *mut DLTensor)
}

/// Device scratch given to a call, or (NULL, 0) to let the library allocate it.
pub(crate) fn workspace_parts(workspace: &Option<TensorViewMut<'_>>) -> (*mut c_void, usize) {
    workspace.as_ref().map_or((ptr::null_mut(), 0), |workspace| {
        let tensor = workspace.dl_tensor();
        let bytes = workspace.shape().iter().product::<i64>() as usize * workspace.dtype().bytes();
        ((tensor.data as *mut u8).wrapping_add(tensor.byte_offset as usize) as *mut c_void, bytes)
    })
}
