//! The customers' browser app (Leptos, client-side): choose a bank, open an account, log in,
//! and the dashboard — balance, deposit and withdraw, a package builder across banks with Pix
//! keys, accounts in every bank, Pix keys, and the statement with live package statuses.

pub mod api;
pub mod app;
pub mod format;
pub mod i18n;
pub mod routes;
