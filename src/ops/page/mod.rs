//! The status page: one HTML document with its style and script inlined, built into the binary
//! and put together (and gzipped) once, so that the page is one request, needs no internet and
//! asks the runtime for nothing but `/api/v1/...`. The Content-Security-Policy holds the page to
//! that.

pub mod gzip;

use super::response::Response;
use hyper::body::Bytes;
use hyper::header::{
    CONTENT_ENCODING, CONTENT_SECURITY_POLICY, REFERRER_POLICY, VARY, X_CONTENT_TYPE_OPTIONS,
};
use std::sync::LazyLock;

const HTML: &str = include_str!("assets/index.html");
const CSS: &str = include_str!("assets/page.css");
const JS: &str = include_str!("assets/page.js");

static PAGE: LazyLock<Bytes> = LazyLock::new(|| {
    HTML.replace("/*STYLE*/", CSS)
        .replace("/*SCRIPT*/", JS)
        .into()
});

/// The page gzipped, for every client that takes it (every browser does).
static PAGE_GZIP: LazyLock<Bytes> = LazyLock::new(|| gzip::gzip(&PAGE).into());

/// The page's size, bytes: (plain, gzipped). docs/STATUS-PAGE.md states them; a test keeps them
/// small.
pub fn size() -> (usize, usize) {
    (PAGE.len(), PAGE_GZIP.len())
}

/// Whether a client's `Accept-Encoding` takes gzip (RFC 9110 12.5.3: `gzip`, its old name
/// `x-gzip`, or `*`, not refused with `q=0`).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|v| {
        v.split(',').any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            ["gzip", "x-gzip", "*"]
                .iter()
                .any(|g| name.eq_ignore_ascii_case(g))
                && !refused
        })
    })
}

/// The page, gzipped if the client takes it (`gzip`, from its `Accept-Encoding`).
pub fn response(gzip: bool) -> Response {
    let body = if gzip { &PAGE_GZIP } else { &PAGE };
    // Nothing but this server: no CDN, no beacon, no frame around it. The token may be in the
    // address: no referrer carries it anywhere.
    let r = Response::new(200, "text/html; charset=utf-8", Bytes::clone(body))
        .with(VARY, "Accept-Encoding")
        .with(
            CONTENT_SECURITY_POLICY,
            "default-src 'none'; connect-src 'self'; style-src 'unsafe-inline'; \
             script-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'none'",
        )
        .with(REFERRER_POLICY, "no-referrer")
        .with(X_CONTENT_TYPE_OPTIONS, "nosniff");
    match gzip {
        true => r.with(CONTENT_ENCODING, "gzip"),
        false => r,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_is_whole_and_small() {
        assert!(!super::PAGE.is_empty());
        let page = std::str::from_utf8(&super::PAGE).unwrap();
        assert!(!page.contains("/*STYLE*/") && !page.contains("/*SCRIPT*/"));
        assert!(!page.contains("http://") && !page.contains("https://"));
        let (plain, gzipped) = super::size();
        assert!(plain < 40 * 1024, "{plain} bytes");
        assert!(gzipped * 2 < plain, "gzipped {gzipped} of {plain} bytes");
    }

    #[test]
    fn gzip_is_sent_to_who_takes_it() {
        use super::accepts_gzip as takes;
        assert!(takes(Some("gzip, deflate, br, zstd")));
        assert!(takes(Some("br;q=1.0, gzip;q=0.8, *;q=0.1")));
        assert!(takes(Some("*")));
        assert!(takes(Some("X-GZIP")));
        assert!(!takes(None));
        assert!(!takes(Some("identity")));
        assert!(!takes(Some("br, gzip;q=0")));
        assert!(!takes(Some("deflate, gzip ; q=0.0")));
    }
}
