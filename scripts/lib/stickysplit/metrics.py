"""The filter's metrics as a Prometheus server scrapes them from Envoy's
/stats/prometheus (read with prometheus_client's parser), and a poll for
values that land later: the filter hands its counts and its memory gauge to
Envoy once a second, on its tick, not as requests happen."""

import time

from prometheus_client.parser import text_string_to_metric_families


def series(text, name, *labels):
    """{key: value} of the samples called `name` (as printed, e.g.
    `sticky_split_requests_total`) in Prometheus text. The key is the tuple
    of the values of `labels`, in that order; a single label's value alone;
    with no labels, the one sample's value is returned instead of a dict
    (None if there is none). Whole numbers come back as ints."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name != name:
                continue
            value = int(sample.value) if float(sample.value).is_integer() else sample.value
            key = tuple(sample.labels.get(label) for label in labels)
            key = key[0] if len(labels) == 1 else key
            if key in out:
                raise ValueError(f"{name}: more than one sample for {labels or 'no labels'} {key}")
            out[key] = value
    if not labels:
        return out.get((), None)
    return out


class NeverHeld(TimeoutError):
    """A polled condition did not hold in time; the message has the last value seen."""


def until(read, want, timeout=10.0, interval=0.1, what="value"):
    """Calls read() until what it returns equals `want` (or, when `want` is
    callable, until want(value) is true) and returns that value. After
    `timeout` seconds raises NeverHeld with the last value seen."""
    done = want if callable(want) else (lambda value: value == want)
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            expected = "" if callable(want) else f", expected {want!r}"
            raise NeverHeld(f"{what} still {value!r} after {timeout:g} s{expected}")
        time.sleep(interval)


def total_at_least(n):
    """For until(): the values of a {key: count} mapping add up to `n` or
    more. Counts only grow, so once they reach the number of requests sent,
    every VM has handed over its share and the mapping can be checked exactly."""
    return lambda counts: sum(counts.values()) >= n
