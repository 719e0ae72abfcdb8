"""Scrapes an HTTP endpoint the way a monitoring agent does, for the ops tests.

    http_scrape.py URL [--metrics]

GETs URL with Python's own HTTP client (urllib) and prints one JSON object on stdout:
{"status": 200, "content_type": "...", "body": "..."}. With --metrics the body is also parsed
with prometheus_client's text-format parser, and "families" maps each metric family name to
{"type": ..., "samples": [[sample name, {labels}, value], ...]}; a body the parser rejects
exits 2 with the parser's error on stderr. Connection errors exit 1.
"""
import json
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    url = sys.argv[1]
    metrics = "--metrics" in sys.argv[2:]
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            status, ctype, body = r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        status, ctype, body = e.code, e.headers.get("Content-Type", ""), e.read()
    except OSError as e:
        print(f"http_scrape: {url}: {e}", file=sys.stderr)
        return 1
    text = body.decode("utf-8")
    out = {"status": status, "content_type": ctype, "body": text}
    if metrics:
        try:
            out["families"] = {
                f.name: {
                    "type": f.type,
                    "samples": [[s.name, s.labels, s.value] for s in f.samples],
                }
                for f in text_string_to_metric_families(text)
            }
        except Exception as e:  # the parser raises ValueError and friends
            print(f"http_scrape: not Prometheus text format: {e}", file=sys.stderr)
            return 2
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
