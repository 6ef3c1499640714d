//! Lets this crate's tests and examples find libmoeq.so without LD_LIBRARY_PATH: an
//! rpath to the folder moeq-sys found it in (DEP_MOEQ_LIB_DIR).
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_MOEQ_LIB_DIR");
    if let Some(lib_dir) = std::env::var_os("DEP_MOEQ_LIB_DIR") {
        let lib_dir = lib_dir.to_string_lossy();
        println!("cargo:rustc-link-arg-tests=-Wl,-rpath,{lib_dir}");
        println!("cargo:rustc-link-arg-examples=-Wl,-rpath,{lib_dir}");
    }
}
