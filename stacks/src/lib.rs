//! `chrono-stacks`: the typed CloudFormation model and the five stacks of a ChronoTracer
//! customer account, as pure functions of a customer config.
//!
//! This crate owns data → templates. It must not do I/O beyond reading a config file
//! it is handed, and it must never depend on the AWS SDK.
