//! Copies values between the host and a tensor on its device: a plain copy
//! on the CPU; cudaMemcpy on a GPU, from the CUDA runtime opened at run time (moeq's
//! C ABI moves no data between devices).
use moeq::{Device, Element, Tensor};
use std::os::raw::{c_int, c_void};

const CUDA_MEMCPY_HOST_TO_DEVICE: c_int = 1;
const CUDA_MEMCPY_DEVICE_TO_HOST: c_int = 2;
const CUDA_RUNTIME_NAMES: [&str; 4] =
    ["libcudart.so", "libcudart.so.13", "libcudart.so.12", "/usr/local/cuda/lib64/libcudart.so"];

type CudaMemcpy = unsafe extern "C" fn(*mut c_void, *const c_void, usize, c_int) -> c_int;

pub enum Transfer {
    Host,
    Cuda(libloading::Library),
}

impl Transfer {
    /// How to reach `device`'s memory, or why it cannot be reached.
    pub fn to(device: Device) -> Result<Transfer, String> {
        match device {
            Device::Cpu => Ok(Transfer::Host),
            Device::Cuda(_) => CUDA_RUNTIME_NAMES
                .iter()
                // SAFETY: loading the CUDA runtime runs only its initialisers.
                .find_map(|name| unsafe { libloading::Library::new(name) }.ok())
                .map(Transfer::Cuda)
                .ok_or_else(|| format!("no CUDA runtime found (tried {})", CUDA_RUNTIME_NAMES.join(", "))),
        }
    }

    /// A new tensor on `device` holding `values`.
    pub fn upload<T: Element>(&self, values: &[T], shape: &[i64], device: Device) -> moeq::Result<Tensor> {
        let mut tensor = Tensor::empty(shape, T::DTYPE, device)?;
        self.write(&mut tensor, values);
        Ok(tensor)
    }

    /// Overwrites a tensor of dtype `T::DTYPE` with `values` (as many as it holds).
    pub fn write<T: Element>(&self, tensor: &mut Tensor, values: &[T]) {
        assert_eq!(values.len(), tensor.element_count(), "values for the whole tensor");
        match self {
            Transfer::Host => tensor.as_mut_slice::<T>().expect("a CPU tensor of T").copy_from_slice(values),
            Transfer::Cuda(runtime) => {
                let bytes = std::mem::size_of_val(values);
                // SAFETY: the tensor holds `bytes` bytes on the GPU and is borrowed exclusively.
                self.memcpy(
                    runtime,
                    tensor.data_mut_ptr(),
                    values.as_ptr() as *const c_void,
                    bytes,
                    CUDA_MEMCPY_HOST_TO_DEVICE,
                );
            }
        }
    }

    /// The values of a tensor of dtype `T::DTYPE`; on a GPU it waits for the work
    /// queued on the default stream before.
    pub fn read<T: Element + Default>(&self, tensor: &Tensor) -> Vec<T> {
        match self {
            Transfer::Host => tensor.as_slice::<T>().expect("a CPU tensor of T").to_vec(),
            Transfer::Cuda(runtime) => {
                let mut values = vec![T::default(); tensor.element_count()];
                let bytes = std::mem::size_of_val(values.as_slice());
                self.memcpy(
                    runtime,
                    values.as_mut_ptr() as *mut c_void,
                    tensor.data_ptr(),
                    bytes,
                    CUDA_MEMCPY_DEVICE_TO_HOST,
                );
                values
            }
        }
    }

    fn memcpy(&self, runtime: &libloading::Library, to: *mut c_void, from: *const c_void, bytes: usize, kind: c_int) {
        // SAFETY: cudaMemcpy has this signature in every CUDA runtime; both regions hold `bytes`.
        let status = unsafe {
            let memcpy = runtime.get::<CudaMemcpy>(b"cudaMemcpy\0").expect("cudaMemcpy in the CUDA runtime");
            memcpy(to, from, bytes, kind)
        };
        assert_eq!(status, 0, "cudaMemcpy failed with cudaError {status}");
    }
}
