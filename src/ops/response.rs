//! An HTTP response as the health listener's routes make it: status, type, body and a few
//! headers, always `Connection: close`. Its own file, so that the routes (page, API, access
//! checks) and the server that writes it share it without importing each other.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_TYPE};

pub struct Response {
    code: u16,
    content_type: &'static str,
    body: Bytes,
    extra: Vec<(HeaderName, HeaderValue)>,
}

impl Response {
    pub(super) fn new(code: u16, content_type: &'static str, body: impl Into<Bytes>) -> Response {
        Response {
            code,
            content_type,
            body: body.into(),
            extra: Vec::new(),
        }
    }

    pub(super) fn with(mut self, name: HeaderName, value: &'static str) -> Response {
        self.extra.push((name, HeaderValue::from_static(value)));
        self
    }

    #[cfg(test)]
    pub(super) fn code(&self) -> u16 {
        self.code
    }

    pub(super) fn text(code: u16, body: &'static str) -> Response {
        Response::new(code, "text/plain; charset=utf-8", body)
    }

    pub(super) fn json_error(code: u16, why: &str) -> Response {
        let mut body = serde_json::to_vec(&serde_json::json!({ "error": why })).unwrap_or_default();
        body.push(b'\n');
        Response::new(code, "application/json", body)
    }

    /// As hyper writes it. One request per connection: a monitoring agent or the page's next
    /// poll opens a new one, and no idle connection holds one of the listener's few slots.
    pub(super) fn into_hyper(self) -> hyper::Response<Full<Bytes>> {
        let mut r = hyper::Response::new(Full::new(self.body));
        *r.status_mut() = hyper::StatusCode::from_u16(self.code)
            .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        let h = r.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(CONNECTION, HeaderValue::from_static("close"));
        h.extend(self.extra);
        r
    }
}
