//! What the tests ask of a page kept open, whichever browser holds it: the value of an
//! expression, and waiting until it is what the test expects.

use serde_json::Value;
use std::process::Child;
use std::time::{Duration, Instant};

pub trait OpenPage {
    /// The value of a JavaScript expression in the page.
    fn eval(&mut self, expression: &str) -> Value;

    /// The text of the element with `id`, or None.
    fn text(&mut self, id: &str) -> Option<String> {
        let v = self.eval(&format!(
            "(document.getElementById({id:?}) || {{}}).textContent"
        ));
        v.as_str().map(String::from)
    }

    /// Evaluates `expression` until `accept` takes its value, or fails with the last one.
    fn until(
        &mut self,
        expression: &str,
        within: Duration,
        what: &str,
        accept: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let v = self.eval(expression);
            if accept(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {what}: {v}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Waits up to 5 s for a browser asked to quit (its helper processes go with it), then kills it.
pub fn await_quit(browser: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if browser.try_wait().is_ok_and(|s| s.is_some()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = browser.kill();
    let _ = browser.wait();
}
