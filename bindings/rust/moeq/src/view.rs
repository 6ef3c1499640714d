//! Borrowed tensors: `TensorView` (read by a call) and `TensorViewMut` (written by
//! one), over Rust slices for CPU data or over raw pointers for device data.
use crate::device::Device;
use crate::dtype::{DType, Element};
use crate::error::Result;
use crate::raw_view::RawView;
use moeq_sys::DLTensor;
use std::marker::PhantomData;
use std::os::raw::c_void;

/// A borrowed tensor; `Access` says whether calls may write it.
#[derive(Debug)]
pub struct View<'a, Access> {
    raw: RawView,
    borrowed: PhantomData<(&'a (), Access)>,
}

/// The access of a view that calls only read (like `&[T]`).
#[derive(Debug)]
pub enum Shared {}
/// The access of a view that calls write (like `&mut [T]`).
#[derive(Debug)]
pub enum Exclusive {}

/// A tensor a call only reads, borrowed for `'a`.
pub type TensorView<'a> = View<'a, Shared>;
/// A tensor a call writes, borrowed exclusively for `'a`.
pub type TensorViewMut<'a> = View<'a, Exclusive>;

// SAFETY: a view is a shared or exclusive borrow of data any thread may use; the
// unsafe constructors demand the same of raw pointers.
unsafe impl<Access> Send for View<'_, Access> {}
unsafe impl<Access> Sync for View<'_, Access> {}

impl Clone for TensorView<'_> {
    fn clone(&self) -> Self {
        View::from_raw_view(self.raw.clone())
    }
}

impl<'a, Access> View<'a, Access> {
    pub(crate) fn from_raw_view(raw: RawView) -> View<'a, Access> {
        View { raw, borrowed: PhantomData }
    }

    pub fn shape(&self) -> &[i64] {
        self.raw.shape()
    }

    /// In elements.
    pub fn strides(&self) -> &[i64] {
        self.raw.strides()
    }

    pub fn dtype(&self) -> DType {
        self.raw.dtype()
    }

    pub fn device(&self) -> Device {
        self.raw.device()
    }

    /// What the library reads (or, for a `TensorViewMut`, writes); it points into
    /// `self` and must not outlive it.
    pub(crate) fn dl_tensor(&self) -> DLTensor {
        self.raw.dl_tensor()
    }
}

impl<'a> TensorView<'a> {
    /// A row-major view of `data`; `shape` must not reach past its end.
    pub fn from_slice<T: Element>(data: &'a [T], shape: &[i64]) -> Result<TensorView<'a>> {
        TensorView::from_slice_strided(data, shape, None)
    }

    /// A view of `data` with `strides` in elements (row-major when `None`), checked to
    /// stay inside `data`.
    pub fn from_slice_strided<T: Element>(
        data: &'a [T],
        shape: &[i64],
        strides: Option<&[i64]>,
    ) -> Result<TensorView<'a>> {
        let raw = RawView::of_elements(data.as_ptr() as *mut c_void, data.len(), T::DTYPE, shape, strides)?;
        Ok(View::from_raw_view(raw))
    }

    /// A view of memory on `device` (a GPU, typically) that Rust cannot check.
    ///
    /// # Safety
    /// `data` must point to memory on `device` holding every element `shape` and
    /// `strides` (row-major when `None`) reach, valid and left unwritten for `'a`, and
    /// usable from any host thread.
    pub unsafe fn from_device_ptr(
        data: *const c_void,
        dtype: DType,
        device: Device,
        shape: &[i64],
        strides: Option<&[i64]>,
    ) -> TensorView<'a> {
        View::from_raw_view(RawView::of_pointer(data as *mut c_void, dtype, device, shape, strides))
    }
}

impl<'a> TensorViewMut<'a> {
    /// A row-major view of `data`; `shape` must not reach past its end.
    pub fn from_slice<T: Element>(data: &'a mut [T], shape: &[i64]) -> Result<TensorViewMut<'a>> {
        TensorViewMut::from_slice_strided(data, shape, None)
    }

    /// A view of `data` with `strides` in elements (row-major when `None`), checked to
    /// stay inside `data`.
    pub fn from_slice_strided<T: Element>(
        data: &'a mut [T],
        shape: &[i64],
        strides: Option<&[i64]>,
    ) -> Result<TensorViewMut<'a>> {
        let raw = RawView::of_elements(data.as_mut_ptr() as *mut c_void, data.len(), T::DTYPE, shape, strides)?;
        Ok(View::from_raw_view(raw))
    }

    /// A writable view of memory on `device` (a GPU, typically) that Rust cannot check.
    ///
    /// # Safety
    /// `data` must point to memory on `device` holding every element `shape` and
    /// `strides` (row-major when `None`) reach, valid for `'a`, used by nothing else
    /// meanwhile, and usable from any host thread.
    pub unsafe fn from_device_ptr(
        data: *mut c_void,
        dtype: DType,
        device: Device,
        shape: &[i64],
        strides: Option<&[i64]>,
    ) -> TensorViewMut<'a> {
        View::from_raw_view(RawView::of_pointer(data, dtype, device, shape, strides))
    }
}
