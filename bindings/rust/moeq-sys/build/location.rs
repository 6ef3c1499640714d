//! Where libmoeq and its headers are, in this order: MOEQ_LIB_DIR, MOEQ_BUILD_DIR
//! (relative paths are taken from the repository root, as ./run does), the project's
//! own CMake build (<repository>/build), then pkg-config (an installed moeq).
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Moeq {
    /// The folder holding libmoeq.so, when one was found.
    pub lib_dir: Option<PathBuf>,
    /// moeq/moeq.h, as found in `include_dirs`.
    pub header: PathBuf,
    /// Folders holding <moeq/moeq.h> and <dlpack/dlpack.h>.
    pub include_dirs: Vec<PathBuf>,
}

/// Panics with what to set when `library_needed` and no libmoeq.so is found.
pub fn find_moeq(library_needed: bool) -> Moeq {
    for variable in ["MOEQ_LIB_DIR", "MOEQ_BUILD_DIR", "MOEQ_INCLUDE_DIR", "MOEQ_DLPACK_INCLUDE_DIR"] {
        println!("cargo:rerun-if-env-changed={variable}");
    }
    let repository = repository_root();
    let mut include_dirs: Vec<PathBuf> = env_path("MOEQ_INCLUDE_DIR").into_iter().collect();
    include_dirs.push(repository.join("include"));

    let explicit_build = env_path("MOEQ_BUILD_DIR").map(|dir| repository.join(dir));
    let build_dir = explicit_build.clone().unwrap_or_else(|| repository.join("build"));
    let lib_dir = if let Some(dir) = env_path("MOEQ_LIB_DIR") {
        Some(dir)
    } else if explicit_build.is_some() || holds_library(&build_dir) {
        include_dirs.extend(cmake_cached_path(&build_dir, "MOEQ_DLPACK_INCLUDE_DIR"));
        Some(build_dir.clone())
    } else if let Ok(installed) = pkg_config::Config::new().cargo_metadata(false).env_metadata(false).probe("moeq") {
        include_dirs.extend(installed.include_paths);
        installed.link_paths.into_iter().next()
    } else {
        None
    };
    if library_needed && !lib_dir.as_deref().map_or(false, holds_library) {
        panic!(
            "libmoeq.so not found (looked in {}). Build moeq (`./run build`), or set MOEQ_LIB_DIR to the \
             folder holding libmoeq.so, MOEQ_BUILD_DIR to moeq's CMake build folder, or PKG_CONFIG_PATH \
             to an installed moeq.pc; or enable the `dlopen` feature to load it at run time",
            lib_dir.as_deref().unwrap_or(&build_dir).display()
        );
    }
    include_dirs.extend(env_path("MOEQ_DLPACK_INCLUDE_DIR"));
    if !include_dirs.iter().any(|dir| dir.join("dlpack/dlpack.h").is_file()) {
        include_dirs.extend(python_dlpack_include_dir());
    }
    let header = include_dirs
        .iter()
        .map(|dir| dir.join("moeq/moeq.h"))
        .find(|header| header.is_file())
        .unwrap_or_else(|| panic!("moeq/moeq.h not found in {include_dirs:?}: set MOEQ_INCLUDE_DIR"));
    Moeq { lib_dir, header, include_dirs }
}

/// bindings/rust/moeq-sys is three folders below the repository root.
fn repository_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    manifest_dir.join("../../..")
}

fn env_path(variable: &str) -> Option<PathBuf> {
    env::var_os(variable).filter(|value| !value.is_empty()).map(PathBuf::from)
}

fn holds_library(dir: &Path) -> bool {
    dir.join("libmoeq.so").exists()
}

/// A PATH entry of a CMake build's cache, e.g. where it found DLPack.
fn cmake_cached_path(build_dir: &Path, entry: &str) -> Option<PathBuf> {
    let cache = fs::read_to_string(build_dir.join("CMakeCache.txt")).ok()?;
    let prefix = format!("{entry}:PATH=");
    cache.lines().find_map(|line| line.strip_prefix(prefix.as_str())).map(PathBuf::from)
}

/// DLPack >= 1.0 ships with the PyPI package apache-tvm-ffi, as for the C++ build.
fn python_dlpack_include_dir() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args(["-c", "import tvm_ffi.libinfo as l; print(l.find_dlpack_include_path())"])
        .output()
        .ok()?;
    let dir = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(dir.trim())).filter(|_| output.status.success())
}
