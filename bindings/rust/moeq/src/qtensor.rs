//! 4-bit tensors in the bitsandbytes layout: `QTensor` owns its buffers,
//! `QTensorView` borrows them (e.g. bytes read from a bitsandbytes checkpoint).
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{check, Error, Result};
use crate::ffi::moeq_call;
use crate::tensor::Tensor;
use crate::view::{TensorView, TensorViewMut, View};
use moeq_sys::{moeq_qtensor, moeq_quant_config, moeq_quant_layout, MOEQ_FORMAT_FP4, MOEQ_FORMAT_NF4, MOEQ_MAX_DIMS};
use std::mem::size_of;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// NormalFloat4, bitsandbytes "nf4".
    Nf4,
    /// bitsandbytes "fp4".
    Fp4,
}

impl Format {
    fn code(self) -> i32 {
        (match self {
            Format::Nf4 => MOEQ_FORMAT_NF4,
            Format::Fp4 => MOEQ_FORMAT_FP4,
        }) as i32
    }
}

/// How to quantize; the default is bitsandbytes': NF4, blocks of 64, not nested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantConfig {
    pub format: Format,
    /// A power of two in [32, 4096].
    pub blocksize: i32,
    /// Double quantization (bitsandbytes' compress_statistics).
    pub nested: bool,
}

impl Default for QuantConfig {
    fn default() -> QuantConfig {
        QuantConfig { format: Format::Nf4, blocksize: 64, nested: false }
    }
}

impl QuantConfig {
    pub(crate) fn to_raw(self) -> moeq_quant_config {
        moeq_quant_config {
            struct_size: size_of::<moeq_quant_config>() as u32,
            format: self.format.code(),
            blocksize: self.blocksize,
            nested: i32::from(self.nested),
        }
    }
}

/// The buffers a quantized tensor needs (moeq_quantized_layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuantLayout {
    pub packed_bytes: i64,
    pub absmax_count: i64,
    /// F32, or U8 when nested.
    pub absmax_dtype: DType,
    /// F32 entries; 0 when not nested.
    pub nested_absmax_count: i64,
    /// Device scratch quantize needs (0 on the CPU and for plain formats).
    pub quantize_workspace_bytes: i64,
}

/// The sizes and dtypes of the buffers a tensor of `shape` quantized with `config` needs.
pub fn quantized_layout(config: &QuantConfig, shape: &[i64]) -> Result<QuantLayout> {
    let mut layout = moeq_quant_layout { struct_size: size_of::<moeq_quant_layout>() as u32, ..Default::default() };
    // SAFETY: every pointer is to a live local of the type the header names.
    check(unsafe {
        moeq_call!(moeq_quantized_layout(&config.to_raw(), shape.len() as i32, shape.as_ptr(), &mut layout))
    })?;
    Ok(QuantLayout {
        packed_bytes: layout.packed_bytes,
        absmax_count: layout.absmax_count,
        absmax_dtype: if config.nested { DType::U8 } else { DType::F32 },
        nested_absmax_count: layout.nested_absmax_count,
        quantize_workspace_bytes: layout.quantize_workspace_bytes,
    })
}

/// A 4-bit tensor in the bitsandbytes layout. `B` holds the buffers: owned
/// `Tensor`s in a `QTensor`, borrowed views in a `QTensorView`. The library checks
/// every field against the others on each call.
#[derive(Clone, Debug)]
pub struct Quantized<B> {
    pub format: Format,
    pub blocksize: i32,
    /// The logical shape, e.g. [E, N, K].
    pub shape: Vec<i64>,
    /// The logical dtype: F32, F16 or BF16.
    pub dtype: DType,
    /// uint8 [ceil(numel / 2)]; element 2j is the high nibble of byte j.
    pub packed: B,
    /// F32 [blocks], or U8 [blocks] codes when nested.
    pub absmax: B,
    pub nested: Option<NestedStats<B>>,
}

/// Double quantization: absmax[i] = code[q[i]] * absmax[i / 256] + offset.
#[derive(Clone, Debug)]
pub struct NestedStats<B> {
    /// F32 [ceil(blocks / 256)].
    pub absmax: B,
    /// F32 [256], the signed 8-bit dynamic map.
    pub code: B,
    /// F32 [1], the mean subtracted before quantizing absmax.
    pub offset: B,
}

pub type QTensor = Quantized<Tensor>;
pub type QTensorView<'a> = Quantized<TensorView<'a>>;

impl QTensor {
    /// Uninitialised buffers on `device` for a tensor of `shape` and `dtype` quantized with `config`.
    pub fn empty(config: &QuantConfig, shape: &[i64], dtype: DType, device: Device) -> Result<QTensor> {
        let layout = quantized_layout(config, shape)?;
        let nested = if config.nested {
            Some(NestedStats {
                absmax: Tensor::empty(&[layout.nested_absmax_count], DType::F32, device)?,
                code: Tensor::empty(&[moeq_sys::MOEQ_NESTED_CODE_SIZE.into()], DType::F32, device)?,
                offset: Tensor::empty(&[1], DType::F32, device)?,
            })
        } else {
            None
        };
        Ok(Quantized {
            format: config.format,
            blocksize: config.blocksize,
            shape: shape.to_vec(),
            dtype,
            packed: Tensor::empty(&[layout.packed_bytes], DType::U8, device)?,
            absmax: Tensor::empty(&[layout.absmax_count], layout.absmax_dtype, device)?,
            nested,
        })
    }

    pub fn device(&self) -> Device {
        self.packed.device()
    }

    pub fn view(&self) -> QTensorView<'_> {
        Quantized {
            format: self.format,
            blocksize: self.blocksize,
            shape: self.shape.clone(),
            dtype: self.dtype,
            packed: self.packed.view(),
            absmax: self.absmax.view(),
            nested: self.nested.as_ref().map(|nested| NestedStats {
                absmax: nested.absmax.view(),
                code: nested.code.view(),
                offset: nested.offset.view(),
            }),
        }
    }

    /// The buffers as the target of moeq_quantize.
    pub(crate) fn view_mut(&mut self) -> Quantized<TensorViewMut<'_>> {
        Quantized {
            format: self.format,
            blocksize: self.blocksize,
            shape: self.shape.clone(),
            dtype: self.dtype,
            packed: self.packed.view_mut(),
            absmax: self.absmax.view_mut(),
            nested: self.nested.as_mut().map(|nested| NestedStats {
                absmax: nested.absmax.view_mut(),
                code: nested.code.view_mut(),
                offset: nested.offset.view_mut(),
            }),
        }
    }
}

impl<Access> Quantized<View<'_, Access>> {
    /// The struct the library reads; it points into `self` and must not outlive it.
    pub(crate) fn to_raw(&self) -> Result<moeq_qtensor> {
        if self.shape.len() > MOEQ_MAX_DIMS as usize {
            return Err(Error::invalid_argument(format!(
                "shape: expected at most {MOEQ_MAX_DIMS} dims, got {:?}",
                self.shape
            )));
        }
        let mut raw = moeq_qtensor {
            struct_size: size_of::<moeq_qtensor>() as u32,
            format: self.format.code(),
            blocksize: self.blocksize,
            nested: i32::from(self.nested.is_some()),
            ndim: self.shape.len() as i32,
            dtype: self.dtype.to_dl(),
            packed: self.packed.dl_tensor(),
            absmax: self.absmax.dl_tensor(),
            ..Default::default()
        };
        raw.shape[..self.shape.len()].copy_from_slice(&self.shape);
        if let Some(nested) = &self.nested {
            raw.nested_absmax = nested.absmax.dl_tensor();
            raw.nested_code = nested.code.dl_tensor();
            raw.nested_offset = nested.offset.dl_tensor();
        }
        Ok(raw)
    }
}
