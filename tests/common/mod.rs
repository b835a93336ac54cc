//! Shared test helpers.
pub mod upstream;
