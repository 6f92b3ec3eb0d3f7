//! Examples of embedding the Sparebox crates; see the `examples/` programs.
#![forbid(unsafe_code)]
