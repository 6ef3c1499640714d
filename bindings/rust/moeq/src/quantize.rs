//! `quantize` (float -> NF4/FP4) and `dequantize` (NF4/FP4 -> float).
use crate::device::Stream;
use crate::error::{check, Result};
use crate::ffi::moeq_call;
use crate::qtensor::{QTensor, QTensorView, QuantConfig};
use crate::view::{TensorView, TensorViewMut};
use std::ptr;

/// Quantizes `input` (F32, F16 or BF16, contiguous, any shape) into buffers the
/// library allocates on the input's device. A GPU call is ordered on `stream`.
pub fn quantize(input: &TensorView<'_>, config: &QuantConfig, stream: Stream) -> Result<QTensor> {
    let mut quantized = QTensor::empty(config, input.shape(), input.dtype(), input.device())?;
    {
        let target = quantized.view_mut();
        let mut raw = target.to_raw()?;
        // The workspace of nested GPU quantization comes from the stream-ordered allocator.
        // SAFETY: raw points into `target`, views of buffers only `quantized` owns.
        check(unsafe {
            moeq_call!(moeq_quantize(
                &input.dl_tensor(),
                &config.to_raw(),
                &mut raw,
                ptr::null_mut(),
                0,
                stream.as_raw()
            ))
        })?;
    }
    Ok(quantized)
}

/// Dequantizes `quantized` into `out` (F32, F16 or BF16, contiguous, of its shape):
/// each value is dtype(code * absmax), computed in float32.
pub fn dequantize(quantized: &QTensorView<'_>, out: TensorViewMut<'_>, stream: Stream) -> Result<()> {
    let raw = quantized.to_raw()?;
    // SAFETY: raw and the output tensor point into live views; out is borrowed exclusively.
    check(unsafe { moeq_call!(moeq_dequantize(&raw, &mut out.dl_tensor(), stream.as_raw())) })
}
