//! Empty on purpose: this crate exists for its dependencies' `metal` features (see Cargo.toml).
