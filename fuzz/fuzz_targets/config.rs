//! Fuzz target: the config file loader (`config::file::parse`) on arbitrary text. Must never
//! panic; every refusal names a line and column inside the text.
#![no_main]

use knx_echarge::config::file::{LoadError, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(LoadError::Invalid { problems, .. }) = parse(text, "fuzz.toml") {
        let lines = text.lines().count().max(1) + 1;
        for p in problems {
            assert!(p.line >= 1 && p.line <= lines, "line {} of {lines}", p.line);
            assert!(p.column >= 1);
        }
    }
});
