//! What the loaded libmoeq is: its version, its build, and whether a GPU is usable.
use crate::ffi::moeq_call;
use std::ffi::CStr;

/// MAJOR * 10000 + MINOR * 100 + PATCH of the loaded library.
pub fn version() -> u32 {
    // SAFETY: no arguments, no preconditions.
    unsafe { moeq_call!(moeq_version()) }
}

/// Version, backends, CUDA runtime version and compiled GPU archs, in words.
pub fn build_info() -> &'static str {
    // SAFETY: moeq_build_info returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(moeq_call!(moeq_build_info())) }.to_str().unwrap_or("(not UTF-8)")
}

/// True when the library was built with CUDA and a GPU is visible.
pub fn cuda_available() -> bool {
    // SAFETY: no arguments, no preconditions.
    unsafe { moeq_call!(moeq_cuda_available()) == 1 }
}
