//! Links every crate libnorman.a holds, so that rustc's `--print native-static-libs` for this
//! staticlib lists the system libraries a static link of libnorman.a needs (see the Makefile).
pub use norman;
