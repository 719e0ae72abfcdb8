//! A command payload from MOM's command topic: accepted or rejected with a reason, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match mes_edge::orders::parse_command(data) {
        Ok(cmd) => {
            // What is accepted serializes again (the reply echoes parts of it).
            serde_json::to_vec(&cmd).expect("an accepted command serializes");
            // Its times were checked by the parser: reading them again cannot fail differently.
            assert_eq!(cmd.issued_ms().is_some(), cmd.issued_at.is_some());
            assert_eq!(cmd.expires_ms().is_some(), cmd.expires_at.is_some());
        }
        Err((_, reason)) => assert!(!reason.is_empty()),
    }
});
