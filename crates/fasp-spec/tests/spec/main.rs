//! Integration tests of `fasp-spec`: rendering tables, file lists, node answers, round trips,
//! property tests.

// The json! literals using every key need more macro depth than the default.
#![recursion_limit = "512"]

mod common;
mod node;
mod proptests;
mod proxy;
mod render;
mod roundtrip;
