//! What both kinds of tensor view hold: the data pointer and the shape and strides a
//! `DLTensor` points into.
use crate::device::Device;
use crate::dtype::DType;
use crate::error::{Error, Result};
use moeq_sys::DLTensor;
use std::os::raw::c_void;

#[derive(Clone, Debug)]
pub(crate) struct RawView {
    data: *mut c_void,
    byte_offset: u64,
    device: Device,
    dtype: DType,
    shape: Vec<i64>,
    /// Always explicit: DLPack >= 1.2 wants strides whenever ndim > 0.
    strides: Vec<i64>,
}

/// Row-major strides, in elements.
pub(crate) fn contiguous_strides(shape: &[i64]) -> Vec<i64> {
    let mut strides = vec![1; shape.len()];
    for dim in (0..shape.len().saturating_sub(1)).rev() {
        strides[dim] = strides[dim + 1] * shape[dim + 1];
    }
    strides
}

impl RawView {
    /// A view of `element_count` elements at `data`, checked to stay inside them.
    pub(crate) fn of_elements(
        data: *mut c_void,
        element_count: usize,
        dtype: DType,
        shape: &[i64],
        strides: Option<&[i64]>,
    ) -> Result<RawView> {
        let strides = strides.map_or_else(|| contiguous_strides(shape), <[i64]>::to_vec);
        if strides.len() != shape.len() {
            return Err(Error::invalid_argument(format!(
                "strides: expected {} entries like shape {shape:?}, got {strides:?}",
                shape.len()
            )));
        }
        if shape.iter().any(|&size| size < 0) {
            return Err(Error::invalid_argument(format!("shape: expected no negative sizes, got {shape:?}")));
        }
        if strides.iter().any(|&stride| stride < 0) {
            return Err(Error::invalid_argument(format!("strides: expected no negative strides, got {strides:?}")));
        }
        let needed = elements_reached(shape, &strides);
        if needed > element_count as u128 {
            return Err(Error::invalid_argument(format!(
                "data: shape {shape:?} with strides {strides:?} reaches {needed} elements, the slice holds {element_count}"
            )));
        }
        Ok(RawView { data, byte_offset: 0, device: Device::Cpu, dtype, shape: shape.to_vec(), strides })
    }

    /// A view of memory the caller vouches for; no checks.
    pub(crate) fn of_pointer(
        data: *mut c_void,
        dtype: DType,
        device: Device,
        shape: &[i64],
        strides: Option<&[i64]>,
    ) -> RawView {
        let strides = strides.map_or_else(|| contiguous_strides(shape), <[i64]>::to_vec);
        RawView { data, byte_offset: 0, device, dtype, shape: shape.to_vec(), strides }
    }

    /// The same tensor as `tensor` (whose dtype and device the caller has read), with
    /// its shape and strides copied.
    pub(crate) fn of_dl_tensor(tensor: &DLTensor, dtype: DType, device: Device) -> RawView {
        let ndim = tensor.ndim as usize;
        // SAFETY: a DLTensor's shape (and strides, when not NULL) hold ndim entries.
        let shape = unsafe { dl_array(tensor.shape, ndim) };
        let strides = if tensor.strides.is_null() {
            contiguous_strides(&shape)
        } else {
            unsafe { dl_array(tensor.strides, ndim) }
        };
        RawView { data: tensor.data, byte_offset: tensor.byte_offset, device, dtype, shape, strides }
    }

    /// The `DLTensor` the library reads; it points into `self`, so it must not outlive it.
    pub(crate) fn dl_tensor(&self) -> DLTensor {
        DLTensor {
            data: self.data,
            device: self.device.to_dl(),
            ndim: self.shape.len() as i32,
            dtype: self.dtype.to_dl(),
            shape: self.shape.as_ptr() as *mut i64,
            strides: self.strides.as_ptr() as *mut i64,
            byte_offset: self.byte_offset,
        }
    }

    pub(crate) fn shape(&self) -> &[i64] {
        &self.shape
    }

    pub(crate) fn strides(&self) -> &[i64] {
        &self.strides
    }

    pub(crate) fn dtype(&self) -> DType {
        self.dtype
    }

    pub(crate) fn device(&self) -> Device {
        self.device
    }
}

/// How many elements from the start a strided shape reaches (0 when it is empty).
fn elements_reached(shape: &[i64], strides: &[i64]) -> u128 {
    if shape.contains(&0) {
        return 0;
    }
    1 + shape.iter().zip(strides).map(|(&size, &stride)| (size as u128 - 1) * stride as u128).sum::<u128>()
}

unsafe fn dl_array(values: *const i64, count: usize) -> Vec<i64> {
    if count == 0 {
        Vec::new()
    } else {
        std::slice::from_raw_parts(values, count).to_vec()
    }
}
