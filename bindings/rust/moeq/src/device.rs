//! Where a tensor lives (`Device`) and the CUDA stream a call is ordered on (`Stream`).
use moeq_sys::DLDevice;
use std::os::raw::c_void;
use std::ptr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    Cpu,
    /// A CUDA GPU, by its index.
    Cuda(i32),
}

impl Device {
    pub(crate) fn to_dl(self) -> DLDevice {
        match self {
            Device::Cpu => DLDevice { device_type: moeq_sys::kDLCPU, device_id: 0 },
            Device::Cuda(index) => DLDevice { device_type: moeq_sys::kDLCUDA, device_id: index },
        }
    }

    /// As the library sees it: pinned host memory is CPU memory, managed memory a
    /// GPU's; `None` for devices moeq never takes.
    pub(crate) fn from_dl(device: DLDevice) -> Option<Device> {
        match device.device_type {
            moeq_sys::kDLCPU | moeq_sys::kDLCUDAHost => Some(Device::Cpu),
            moeq_sys::kDLCUDA | moeq_sys::kDLCUDAManaged => Some(Device::Cuda(device.device_id)),
            _ => None,
        }
    }
}

/// A `cudaStream_t`. CPU calls ignore it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stream(*mut c_void);

// SAFETY: a CUDA stream handle is not tied to the host thread that created it.
unsafe impl Send for Stream {}
unsafe impl Sync for Stream {}

impl Stream {
    /// The legacy default stream (NULL), and the only one CPU calls need.
    pub const DEFAULT: Stream = Stream(ptr::null_mut());

    /// # Safety
    /// `stream` must be a live `cudaStream_t` of the device the tensors of the calls are on.
    pub unsafe fn from_raw(stream: *mut c_void) -> Stream {
        Stream(stream)
    }

    pub(crate) fn as_raw(self) -> *mut c_void {
        self.0
    }
}
