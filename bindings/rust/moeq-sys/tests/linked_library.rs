//! The library moeq-sys reaches (linked, or opened with `dlopen`) is the one whose
//! header the bindings were generated from.
use moeq_sys::*;

#[cfg(not(feature = "dlopen"))]
fn loaded_version() -> u32 {
    unsafe { moeq_version() }
}

#[cfg(feature = "dlopen")]
fn loaded_version() -> u32 {
    unsafe { library().moeq_version() }
}

#[test]
fn the_loaded_library_has_the_version_of_the_header() {
    assert_eq!(loaded_version(), MOEQ_VERSION_NUMBER);
}
