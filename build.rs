//! Lays out the code an idle cell runs together in the release binary (docs/FOOTPRINT.md,
//! "The idle loop's code together").
//!
//! An idle cell's resident memory is mostly its own executable's pages, and each code page it
//! runs maps its 64 KiB neighbourhood with it (the kernel's fault-around). The functions an idle
//! cell enters are about 1,350 of 18,000, scattered over 8 MB of code; packaging/idle-order.txt
//! lists them (made by packaging/idle-order.sh from a profile of bench S5's cell), and the linker
//! puts them first, side by side. A name the code no longer has is skipped without a word, so a
//! stale list costs memory, never a build.
//!
//! Only where the linker is LLD: the release profile on x86_64 Linux with Rust 1.90 or later,
//! which links with its own rust-lld unless told otherwise. GNU ld does not know the option.
//! `MES_EDGE_IDLE_ORDER=0` builds without it.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=packaging/idle-order.txt");
    println!("cargo:rerun-if-env-changed=MES_EDGE_IDLE_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    if !links_with_rust_lld() || std::env::var("MES_EDGE_IDLE_ORDER").is_ok_and(|v| v == "0") {
        return;
    }
    let order =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("packaging/idle-order.txt");
    if order.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=mes-edge=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=mes-edge=-Wl,--no-warn-symbol-ordering");
    }
}

fn links_with_rust_lld() -> bool {
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    if env("PROFILE") != "release" || env("TARGET") != "x86_64-unknown-linux-gnu" {
        return false;
    }
    // A linker of one's own (or linker features) may be GNU ld: leave the link alone.
    if env("CARGO_ENCODED_RUSTFLAGS").contains("linker")
        || !env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_empty()
    {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = String::from_utf8_lossy(&out.stdout);
    let mut parts = version
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
