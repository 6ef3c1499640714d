//! bindgen over include/moeq/moeq.h: every `moeq_*` item and the DLPack types it uses.
use std::path::{Path, PathBuf};

/// Writes the bindings to `out`; with `load_at_run_time` the functions become
/// members of `MoeqLibrary` (opened with libloading) instead of `extern` items.
pub fn generate(header: &Path, include_dirs: &[PathBuf], load_at_run_time: bool, out: &Path) {
    let mut builder = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .clang_args(include_dirs.iter().map(|dir| format!("-I{}", dir.display())))
        .allowlist_function("moeq_.*")
        .allowlist_type("(moeq|DL)_?.*")
        .allowlist_var("(MOEQ|DLPACK|kDL)_?.*")
        // Every moeq function returns a status: ignoring one hides the failure.
        .must_use_type("moeq_status")
        .prepend_enum_name(false)
        .size_t_is_usize(true)
        .derive_default(true)
        .rustfmt_bindings(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks));
    if load_at_run_time {
        builder = builder.dynamic_library_name("MoeqLibrary").dynamic_link_require_all(true);
    }
    builder
        .generate()
        .unwrap_or_else(|error| panic!("bindgen could not parse {}: {error}", header.display()))
        .write_to_file(out)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", out.display()));
}
