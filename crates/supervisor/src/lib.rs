//! The supervisor: starts every component, restarts what fails, pets the watchdog.

#![forbid(unsafe_code)]

pub mod cli;
