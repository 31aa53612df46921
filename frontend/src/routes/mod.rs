//! The app's pages.

pub mod auth;
pub mod bank;
pub mod console;
pub mod dashboard;
