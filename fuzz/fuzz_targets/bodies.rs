#![no_main]
//! Any bytes as a customer-API request body: deserialising never panics, and what is accepted
//! serialises back to a body that deserialises to the same request.
use shared::api::{CreateAccount, Login, Pay, RegisterKey};

fn trip<T: serde::de::DeserializeOwned + serde::Serialize>(data: &[u8]) {
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let text = serde_json::to_vec(&v).expect("a parsed body serialises");
        let again: T = serde_json::from_slice(&text).expect("a serialised body parses");
        assert_eq!(serde_json::to_vec(&again).ok(), Some(text));
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    trip::<Pay>(data);
    trip::<CreateAccount>(data);
    trip::<Login>(data);
    trip::<RegisterKey>(data);
});
