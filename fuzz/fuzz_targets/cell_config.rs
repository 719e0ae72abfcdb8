//! A cell config file: any text gives a config or located problems, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(e) = mes_edge::config::parse(Path::new("cell.toml"), text) {
        // Locating a problem (line and column from a byte span) is part of the parser.
        let _ = e.to_string();
    }
});
