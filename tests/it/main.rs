//! The integration test binary: every module drives the real `tfrollback` and `terraform`
//! binaries against the local S3 server started by `lab`.

mod bad_input;
mod ci_recipes;
mod faults;
mod getting_started;
mod lab;
mod lab_smoke;
mod proxy;
mod races;
mod read_path;
mod restore_marks;
mod rollback;
mod secrets;
mod snapshots;
