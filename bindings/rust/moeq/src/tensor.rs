//! `Tensor`: an owned DLPack >= 1.0 managed tensor (`DLManagedTensorVersioned`),
//! allocated by moeq_tensor_empty or handed over by another library. Its deleter runs
//! exactly once: when the `Tensor` is dropped, unless `into_raw` gave it away.
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::{check, Error, Result};
use crate::ffi::moeq_call;
use crate::raw_view::{contiguous_strides, RawView};
use crate::view::{TensorView, TensorViewMut, View};
use moeq_sys::{DLManagedTensorVersioned, DLTensor, DLPACK_FLAG_BITMASK_READ_ONLY, DLPACK_MAJOR_VERSION};
use std::fmt;
use std::os::raw::c_void;
use std::ptr::{self, NonNull};
use std::slice;

pub struct Tensor {
    managed: NonNull<DLManagedTensorVersioned>,
}

// SAFETY: the tensor is owned, its data is read through &self and written through
// &mut self only, and deleters may run on any thread (moeq's free host or device
// memory; `from_raw` requires it of others).
unsafe impl Send for Tensor {}
unsafe impl Sync for Tensor {}

impl Tensor {
    /// An uninitialised, contiguous tensor allocated by the library on `device`.
    pub fn empty(shape: &[i64], dtype: DType, device: Device) -> Result<Tensor> {
        let mut managed = ptr::null_mut();
        // SAFETY: shape holds shape.len() sizes; managed receives the new tensor.
        check(unsafe {
            moeq_call!(moeq_tensor_empty(
                shape.len() as i32,
                shape.as_ptr(),
                dtype.to_dl(),
                device.to_dl(),
                &mut managed
            ))
        })?;
        let managed = NonNull::new(managed).expect("moeq_tensor_empty succeeded without a tensor");
        Ok(Tensor { managed })
    }

    /// Takes ownership of `managed`. On error its deleter has already been called:
    /// a DLPack major version other than this crate's, a malformed shape, or a dtype
    /// or device moeq never takes.
    ///
    /// # Safety
    /// `managed` must be NULL or a live managed tensor that nothing else will delete,
    /// whose data is valid until its deleter runs, and whose deleter may be called
    /// from any thread.
    pub unsafe fn from_raw(managed: *mut DLManagedTensorVersioned) -> Result<Tensor> {
        let managed = NonNull::new(managed)
            .ok_or_else(|| Error::invalid_argument("managed: expected a tensor, got NULL".into()))?;
        let tensor = Tensor { managed };
        let version = tensor.managed().version;
        if version.major != DLPACK_MAJOR_VERSION {
            return Err(Error::invalid_argument(format!(
                "managed: expected DLPack major version {DLPACK_MAJOR_VERSION}, got {}.{}",
                version.major, version.minor
            )));
        }
        let dl = tensor.dl();
        if dl.ndim < 0 || (dl.ndim > 0 && dl.shape.is_null()) || tensor.shape().iter().any(|&size| size < 0) {
            return Err(Error::invalid_argument(format!("managed: ndim {} with a missing or negative shape", dl.ndim)));
        }
        if DType::from_dl(dl.dtype).is_none() {
            return Err(Error::invalid_argument(format!("managed: dtype {:?} is not one moeq takes", dl.dtype)));
        }
        if Device::from_dl(dl.device).is_none() {
            return Err(Error::invalid_argument(format!(
                "managed: device {:?} is neither a CPU nor a CUDA GPU",
                dl.device
            )));
        }
        Ok(tensor)
    }

    /// Gives the managed tensor away: the caller now owns it and must call its deleter.
    pub fn into_raw(self) -> *mut DLManagedTensorVersioned {
        let managed = self.managed.as_ptr();
        std::mem::forget(self);
        managed
    }

    pub fn shape(&self) -> &[i64] {
        let dl = self.dl();
        if dl.ndim == 0 {
            return &[];
        }
        // SAFETY: a DLTensor's shape holds ndim sizes, alive as long as the tensor.
        unsafe { slice::from_raw_parts(dl.shape, dl.ndim as usize) }
    }

    pub fn dtype(&self) -> DType {
        DType::from_dl(self.dl().dtype).expect("checked when the tensor was taken over")
    }

    pub fn device(&self) -> Device {
        Device::from_dl(self.dl().device).expect("checked when the tensor was taken over")
    }

    pub fn element_count(&self) -> usize {
        self.shape().iter().product::<i64>() as usize
    }

    /// Whether its producer marked it read-only (DLPACK_FLAG_BITMASK_READ_ONLY).
    pub fn is_read_only(&self) -> bool {
        self.managed().flags & u64::from(DLPACK_FLAG_BITMASK_READ_ONLY) != 0
    }

    pub fn view(&self) -> TensorView<'_> {
        View::from_raw_view(RawView::of_dl_tensor(self.dl(), self.dtype(), self.device()))
    }

    /// # Panics
    /// When the tensor is read-only.
    pub fn view_mut(&mut self) -> TensorViewMut<'_> {
        assert!(!self.is_read_only(), "view_mut of a read-only tensor");
        View::from_raw_view(RawView::of_dl_tensor(self.dl(), self.dtype(), self.device()))
    }

    /// Where the data starts (byte_offset applied), on the tensor's device: for
    /// copying to and from a GPU with the caller's CUDA library.
    pub fn data_ptr(&self) -> *const c_void {
        let dl = self.dl();
        (dl.data as *const u8).wrapping_add(dl.byte_offset as usize) as *const c_void
    }

    /// As `data_ptr`, for writing.
    ///
    /// # Panics
    /// When the tensor is read-only.
    pub fn data_mut_ptr(&mut self) -> *mut c_void {
        assert!(!self.is_read_only(), "data_mut_ptr of a read-only tensor");
        self.data_ptr() as *mut c_void
    }

    /// The elements of a contiguous CPU tensor of dtype `T::DTYPE`.
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        let data = self.host_data::<T>()?;
        // SAFETY: host_data checked dtype, device and layout; the data lives as long as self.
        Ok(unsafe { slice::from_raw_parts(data, self.element_count()) })
    }

    /// The elements of a contiguous, writable CPU tensor of dtype `T::DTYPE`.
    pub fn as_mut_slice<T: Element>(&mut self) -> Result<&mut [T]> {
        if self.is_read_only() {
            return Err(Error::invalid_argument("tensor: read-only, expected a writable tensor".into()));
        }
        let data = self.host_data::<T>()? as *mut T;
        // SAFETY: as in as_slice, and &mut self makes the borrow exclusive.
        Ok(unsafe { slice::from_raw_parts_mut(data, self.element_count()) })
    }

    fn host_data<T: Element>(&self) -> Result<*const T> {
        let problem = if self.device() != Device::Cpu {
            Some(format!("expected a CPU tensor, got one on {:?}", self.device()))
        } else if self.dtype() != T::DTYPE {
            Some(format!("expected dtype {:?}, got {:?}", T::DTYPE, self.dtype()))
        } else if !self.is_contiguous() {
            Some(format!("expected a contiguous tensor, got strides {:?}", self.view().strides()))
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(Error::invalid_argument(format!("tensor: {problem}")));
        }
        if self.element_count() == 0 {
            return Ok(NonNull::dangling().as_ptr());
        }
        let data = self.data_ptr() as *const T;
        if data.is_null() || data as usize % std::mem::align_of::<T>() != 0 {
            return Err(Error::invalid_argument(format!(
                "tensor: data {data:?} is NULL or misaligned for {:?}",
                T::DTYPE
            )));
        }
        Ok(data)
    }

    fn is_contiguous(&self) -> bool {
        let view = self.view();
        let expected = contiguous_strides(view.shape());
        view.shape()
            .iter()
            .zip(view.strides().iter().zip(&expected))
            .all(|(&size, (stride, compact))| size <= 1 || stride == compact)
    }

    fn managed(&self) -> &DLManagedTensorVersioned {
        // SAFETY: the tensor is alive until self is dropped.
        unsafe { self.managed.as_ref() }
    }

    fn dl(&self) -> &DLTensor {
        &self.managed().dl_tensor
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        if let Some(deleter) = self.managed().deleter {
            // SAFETY: self owns the tensor and this is the only place it is released.
            unsafe { deleter(self.managed.as_ptr()) }
        }
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Tensor")
            .field("shape", &self.shape())
            .field("dtype", &self.dtype())
            .field("device", &self.device())
            .finish()
    }
}
