//! The status page: one HTML document with its style and script inlined, built into the binary
//! and put together once, so that the page is one request, needs no internet and asks the
//! runtime for nothing but `/api/v1/...`. The Content-Security-Policy holds the page to that.

use super::response::Response;
use hyper::body::Bytes;
use hyper::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use std::sync::LazyLock;

const HTML: &str = include_str!("assets/index.html");
const CSS: &str = include_str!("assets/page.css");
const JS: &str = include_str!("assets/page.js");

static PAGE: LazyLock<Bytes> = LazyLock::new(|| {
    HTML.replace("/*STYLE*/", CSS)
        .replace("/*SCRIPT*/", JS)
        .into()
});

/// The page's size as served, bytes (docs/STATUS-PAGE.md states it; a test keeps it small).
pub fn size() -> usize {
    PAGE.len()
}

pub fn response() -> Response {
    // Nothing but this server: no CDN, no beacon, no frame around it. The token may be in the
    // address: no referrer carries it anywhere.
    Response::new(200, "text/html; charset=utf-8", PAGE.clone())
        .with(
            CONTENT_SECURITY_POLICY,
            "default-src 'none'; connect-src 'self'; style-src 'unsafe-inline'; \
             script-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'none'",
        )
        .with(REFERRER_POLICY, "no-referrer")
        .with(X_CONTENT_TYPE_OPTIONS, "nosniff")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_is_whole_and_small() {
        assert!(!super::PAGE.is_empty());
        let page = std::str::from_utf8(&super::PAGE).unwrap();
        assert!(!page.contains("/*STYLE*/") && !page.contains("/*SCRIPT*/"));
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(super::size() < 40 * 1024, "{} bytes", super::size());
    }
}
