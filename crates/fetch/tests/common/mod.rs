#![allow(dead_code)]
pub mod sink;
