//! The hostile table: malformed and hostile requests with valid credentials, one module per
//! API. Each must be refused with a 4xx and the JSON error body, changing nothing.

mod business;
mod dataserver;
mod interbank;

use super::{Probe, Table, World};

/// Malformed and hostile requests with valid credentials → a 4xx JSON error, nothing changed.
pub fn hostile_table(w: &World) -> Vec<Probe> {
    let mut t = Table { w, probes: vec![] };
    business::amounts(&mut t);
    business::ids(&mut t);
    business::openings(&mut t);
    business::login(&mut t);
    business::payments(&mut t);
    business::idempotency(&mut t);
    business::keys(&mut t);
    interbank::table(&mut t);
    dataserver::table(&mut t);
    t.probes
}
