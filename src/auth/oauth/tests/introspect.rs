//! Introspection against a real endpoint on loopback.
