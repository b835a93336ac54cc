//! Credentials to identity.

pub mod api_key;
