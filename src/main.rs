//! The `knx-echarge` binary: command-line wiring only; the work is in the library.

fn main() {}
