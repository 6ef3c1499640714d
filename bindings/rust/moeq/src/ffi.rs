//! `moeq_call!`: one way to call a libmoeq function, whether the library is linked
//! or opened at run time (the `dlopen` feature of moeq-sys).

#[cfg(not(feature = "dlopen"))]
macro_rules! moeq_call {
    ($function:ident($($argument:expr),* $(,)?)) => {
        moeq_sys::$function($($argument),*)
    };
}

#[cfg(feature = "dlopen")]
macro_rules! moeq_call {
    ($function:ident($($argument:expr),* $(,)?)) => {
        moeq_sys::library().$function($($argument),*)
    };
}

pub(crate) use moeq_call;
