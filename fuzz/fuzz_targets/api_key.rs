//! Arbitrary credentials through the key format check: it must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpwarden::auth::api_key;

fuzz_target!(|key: &str| {
    if api_key::check_format(key).is_ok() {
        assert!(api_key::is_key_like(key));
        assert_eq!(key.len(), api_key::LEN);
    }
    let _ = api_key::hash(key);
});
