//! The vocabulary shared by every InterBank process and by the browser app.
//!
//! Architecture Invariant: this crate builds for `wasm32-unknown-unknown`; it has no
//! runtime, network or storage dependency (checked by `.ci/run`, which builds it for wasm32).
//!
//! Every type here is *parsed* at the edge (`FromStr` / `Deserialize`) and is valid from then
//! on: a `Money` never has three decimals, an `Ibk` never names bank 0, a `Document` always has
//! correct check digits.

pub mod api;
pub mod document;
pub mod error;
pub mod ids;
pub mod money;
pub mod pix;

pub use document::{Document, DocumentError};
pub use error::ErrorBody;
pub use ids::{AccountId, BankId, BusinessId, Ibk, IdError};
pub use money::{Amount, Money, MoneyError};
pub use pix::{KeyType, PixKey, Target};
