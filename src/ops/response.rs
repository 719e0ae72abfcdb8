//! An HTTP response as the health listener writes it: status, type, body and a few headers,
//! always `Connection: close`. Its own file, so that the routes (page, API, access checks) and
//! the server that writes it share it without importing each other.

pub struct Response {
    code: u16,
    reason: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    pub(super) extra: Vec<(&'static str, String)>,
}

impl Response {
    pub(super) fn new(
        code: u16,
        reason: &'static str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Response {
        Response {
            code,
            reason,
            content_type,
            body,
            extra: Vec::new(),
        }
    }

    #[cfg(test)]
    pub(super) fn code(&self) -> u16 {
        self.code
    }

    pub(super) fn text(code: u16, reason: &'static str, body: &str) -> Response {
        Response::new(code, reason, "text/plain; charset=utf-8", body.into())
    }

    pub(super) fn json_error(code: u16, why: &str) -> Response {
        let reason = match code {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            429 => "Too Many Requests",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        };
        let mut body = serde_json::to_vec(&serde_json::json!({ "error": why })).unwrap_or_default();
        body.push(b'\n');
        Response::new(code, reason, "application/json", body)
    }

    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
            self.code,
            self.reason,
            self.content_type,
            self.body.len()
        );
        for (k, v) in &self.extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}
