//! `chrono-tests`: helpers shared by the end-to-end tests in `tests/tests/` (starting the
//! local AWS emulator and a private PostgreSQL cluster). Nothing in here ships.

pub mod asl;
pub mod iam;
pub mod moto;
