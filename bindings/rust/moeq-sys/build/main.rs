//! Build script of moeq-sys: finds libmoeq and its headers, links the library (unless
//! the `dlopen` feature loads it at run time) and generates the bindings with bindgen.
mod bindings;
mod location;

use std::env;
use std::path::PathBuf;

fn main() {
    let load_at_run_time = env::var_os("CARGO_FEATURE_DLOPEN").is_some();
    let moeq = location::find_moeq(!load_at_run_time);
    if let Some(lib_dir) = &moeq.lib_dir {
        if !load_at_run_time {
            println!("cargo:rustc-link-search=native={}", lib_dir.display());
            println!("cargo:rustc-link-lib=dylib=moeq");
            // This crate's own tests find the library without LD_LIBRARY_PATH.
            println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{}", lib_dir.display());
        }
        // DEP_MOEQ_LIB_DIR for dependent build scripts (rpath of tests and examples),
        // and the last place the `dlopen` feature looks.
        println!("cargo:lib_dir={}", lib_dir.display());
        println!("cargo:rustc-env=MOEQ_SYS_LIB_DIR={}", lib_dir.display());
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // The header itself (bindgen's callbacks name only the files it includes): new
    // functions in moeq.h regenerate the bindings.
    println!("cargo:rerun-if-changed={}", moeq.header.display());
    bindings::generate(&moeq.header, &moeq.include_dirs, load_at_run_time, &out_dir.join("bindings.rs"));
}
