//! The integration test binary: every scenario module drives the real `tfrollback` and
//! `terraform` binaries against the local S3 server; `support` holds what they share (the
//! server, sandboxes, running commands, direct AWS access) and no scenario.

// The support modules are `pub` for the scenario modules of this one binary; nothing leaves it.
#![allow(unreachable_pub)]

mod bad_input;
mod ci_recipes;
mod doctor;
mod faults;
mod getting_started;
mod guard;
mod lab_smoke;
mod point_in_time;
mod races;
mod ranged_reads;
mod read_path;
mod restore_marks;
mod rollback;
mod safety;
mod secrets;
mod servers;
mod snapshots;
mod support;
