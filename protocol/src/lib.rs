//! The interbank settlement protocol with no I/O inside: the token ring ([`ring`]), the
//! coordinator's round and the participant's rules ([`engine`]), the votes and the decision
//! ([`settle`]), how long records live ([`retention`]) and the consents a vote draws on
//! ([`consents`]). Events and the time come in as values and what to do comes out as values:
//! the business servers' `interbank` module executes them against the data server and the
//! peers, and [`sim`] executes the very same code over a seeded network, so a bug here is a
//! bug the simulation can find.
//!
//! The crate depends on `shared`, serde, thiserror and utoipa only (and rand for the
//! simulation): no async runtime, no HTTP, no data-server client, no clock.

pub mod bugs;
pub mod consents;
pub mod engine;
pub mod retention;
pub mod ring;
pub mod settle;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
