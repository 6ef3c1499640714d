//! The `dlopen` feature: libmoeq opened once, at first use, instead of linked.
use crate::{MoeqLibrary, MOEQ_VERSION_MAJOR};
use lazy_static::lazy_static;
use std::ffi::OsString;
use std::path::Path;

lazy_static! {
    static ref LOADED: Result<MoeqLibrary, String> = load();
}

/// The loaded library, or why none of the candidates could be opened.
pub fn try_library() -> Result<&'static MoeqLibrary, &'static str> {
    LOADED.as_ref().map_err(String::as_str)
}

/// The loaded library.
///
/// # Panics
/// When libmoeq cannot be opened; the message lists every place tried.
pub fn library() -> &'static MoeqLibrary {
    try_library().unwrap_or_else(|reason| panic!("{reason}"))
}

/// $MOEQ_LIBRARY if set, else the SONAME through the loader's search path, else the
/// library moeq-sys found when it was built.
fn candidates() -> Vec<OsString> {
    let soname = format!("libmoeq.so.{MOEQ_VERSION_MAJOR}");
    let mut candidates: Vec<OsString> = std::env::var_os("MOEQ_LIBRARY").into_iter().collect();
    candidates.push(OsString::from(&soname));
    if let Some(dir) = option_env!("MOEQ_SYS_LIB_DIR") {
        candidates.push(Path::new(dir).join(&soname).into_os_string());
    }
    candidates
}

fn load() -> Result<MoeqLibrary, String> {
    let mut failures = Vec::new();
    for candidate in candidates() {
        // SAFETY: opening libmoeq runs only its static initialisers, which have no
        // preconditions; every symbol is checked to exist (dynamic_link_require_all).
        match unsafe { MoeqLibrary::new(&candidate) } {
            Ok(library) => return Ok(library),
            Err(error) => failures.push(format!("{}: {error}", candidate.to_string_lossy())),
        }
    }
    Err(format!("cannot load libmoeq (set MOEQ_LIBRARY to its path): {}", failures.join("; ")))
}
