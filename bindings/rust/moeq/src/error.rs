//! `moeq::Error`: the status of a failed call and the library's message, which names
//! the argument at fault and what was expected of it.
use crate::ffi::moeq_call;
use moeq_sys::moeq_status;
use std::ffi::CStr;
use std::fmt;

/// Why a call failed: the library's `moeq_status` codes other than `MOEQ_OK`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    InvalidArgument,
    Unsupported,
    NoDevice,
    OutOfMemory,
    WorkspaceTooSmall,
    Cuda,
    Internal,
    /// A code this crate does not know (a newer library).
    Unknown(i32),
}

impl Status {
    fn from_code(code: moeq_status) -> Status {
        match code as u32 {
            moeq_sys::MOEQ_ERR_INVALID_ARGUMENT => Status::InvalidArgument,
            moeq_sys::MOEQ_ERR_UNSUPPORTED => Status::Unsupported,
            moeq_sys::MOEQ_ERR_NO_DEVICE => Status::NoDevice,
            moeq_sys::MOEQ_ERR_OUT_OF_MEMORY => Status::OutOfMemory,
            moeq_sys::MOEQ_ERR_WORKSPACE_TOO_SMALL => Status::WorkspaceTooSmall,
            moeq_sys::MOEQ_ERR_CUDA => Status::Cuda,
            moeq_sys::MOEQ_ERR_INTERNAL => Status::Internal,
            _ => Status::Unknown(code),
        }
    }

    /// The library's code for this status.
    pub fn code(self) -> moeq_status {
        let code = match self {
            Status::InvalidArgument => moeq_sys::MOEQ_ERR_INVALID_ARGUMENT,
            Status::Unsupported => moeq_sys::MOEQ_ERR_UNSUPPORTED,
            Status::NoDevice => moeq_sys::MOEQ_ERR_NO_DEVICE,
            Status::OutOfMemory => moeq_sys::MOEQ_ERR_OUT_OF_MEMORY,
            Status::WorkspaceTooSmall => moeq_sys::MOEQ_ERR_WORKSPACE_TOO_SMALL,
            Status::Cuda => moeq_sys::MOEQ_ERR_CUDA,
            Status::Internal => moeq_sys::MOEQ_ERR_INTERNAL,
            Status::Unknown(code) => return code,
        };
        code as moeq_status
    }

    /// The library's name for it: "MOEQ_ERR_INVALID_ARGUMENT", ...
    pub fn name(self) -> &'static str {
        // SAFETY: moeq_status_name returns a static NUL-terminated string for any code.
        unsafe { CStr::from_ptr(moeq_call!(moeq_status_name(self.code()))) }.to_str().unwrap_or("MOEQ_UNKNOWN_STATUS")
    }
}

/// A failed call: its status and the message that says what was wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    status: Status,
    message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn status(&self) -> Status {
        self.status
    }

    /// The library's message, e.g. "lora_b: expected 3 dims [E, N, r], got [128, 16]".
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An error found on the Rust side before calling the library, worded as the library words its own.
    pub(crate) fn invalid_argument(message: String) -> Error {
        Error { status: Status::InvalidArgument, message }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            formatter.write_str(self.status.name())
        } else {
            formatter.write_str(&self.message)
        }
    }
}

impl std::error::Error for Error {}

/// `Ok` for MOEQ_OK; otherwise the status with this thread's last error message.
/// Call it right after the call that returned `status`, on the same thread: the
/// message is thread-local and the next moeq call replaces it.
pub(crate) fn check(status: moeq_status) -> Result<()> {
    if status == moeq_sys::MOEQ_OK as moeq_status {
        return Ok(());
    }
    // SAFETY: moeq_last_error returns this thread's message, valid until its next moeq call.
    let message = unsafe { CStr::from_ptr(moeq_call!(moeq_last_error())) }.to_string_lossy().into_owned();
    Err(Error { status: Status::from_code(status), message })
}
