#!/usr/bin/env python3
"""Reads a Prometheus text page with the `prometheus_client` package's own parser (PyPI), independent of the
server that wrote it.

  prometheus_scrape.py URL
      prints one JSON object: {sample name: [[labels, value], ...]} for every sample on the page; exits
      non-zero if the page cannot be fetched or is not valid Prometheus text.
"""
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
        content_type = response.headers.get("Content-Type", "")
        text = response.read().decode("utf-8")
    if not content_type.startswith("text/plain"):
        sys.exit(f"Content-Type is {content_type!r}, not text/plain")
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append([sample.labels, sample.value])
    print(json.dumps(samples))


if __name__ == "__main__":
    main()
