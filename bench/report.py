"""The one markdown table a bench run prints, and what it was measured with."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.coldstart import ColdSamples
from bench.pushlive import PushSamples
from bench.stats import percentile
from bench.streams import StreamSamples
from bench.throughput import Measured

if TYPE_CHECKING:  # bench.kvbench imports this module
    from bench.kvbench import KVResults

TIMES = "\u00d7"  # the multiplication sign, as the README's tables write ratios
KV_LANGUAGES = {"py": "Python", "js": "JS"}
HEADER = (
    "| measurement | req/s | " + TIMES + " {baseline} | p50 ms | p99 ms | notes |\n"
    "|---|---:|---:|---:|---:|---|"
)
BLANK = "—"


@dataclass(frozen=True)
class Results:
    """Everything one run measured."""

    baseline: str
    throughput: Sequence[Measured]
    unavailable: Sequence[str]
    cold: dict[str, ColdSamples]
    push: PushSamples
    streams: dict[str, StreamSamples]
    extra_rows: Sequence[str] = ()
    kv: KVResults | None = None


def ms(value: float) -> str:
    """Milliseconds with the precision that matters at that size."""
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def row(*cells: str) -> str:
    """One markdown table row."""
    return "| " + " | ".join(cells) + " |"


def throughput_row(measured: Measured) -> str:
    """A system's medians, its ratio, errors, each round's req/s, and its start time."""
    target = measured.target
    rounds = " / ".join(f"{r.rps:,.0f}" for r in measured.rounds)
    notes = [f"{measured.errors} errors" if measured.errors else "no errors", f"rounds: {rounds}"]
    if target.start_ms is not None:
        notes.append(f"start → first 200: {ms(target.start_ms)} ms")
    return row(
        target.label,
        f"{measured.median('rps'):,.0f}",
        f"{measured.ratio:.2f}",
        ms(measured.median("p50_ms")),
        ms(measured.median("p99_ms")),
        "; ".join(notes),
    )


def cold_rows(language: str, samples: ColdSamples) -> list[str]:
    """The runtime's and the client's view of the cold requests of one language."""
    if not samples.server_ms:
        return [
            row(
                f"Edge {language} cold start",
                BLANK,
                BLANK,
                BLANK,
                BLANK,
                f"none of {samples.requests} first requests was cold",
            )
        ]
    n = len(samples.server_ms)
    return [
        row(
            f"Edge {language} cold start, server side (`x-edge-cold-start-ms`)",
            BLANK,
            BLANK,
            ms(percentile(samples.server_ms, 50)),
            ms(percentile(samples.server_ms, 99)),
            f"{n} cold of {samples.requests} first requests",
        ),
        row(
            f"Edge {language} cold request, client-observed",
            BLANK,
            BLANK,
            ms(percentile(samples.client_ms, 50)),
            ms(percentile(samples.client_ms, 99)),
            f"next (warm) request: p50 {ms(percentile(samples.warm_ms, 50))} ms",
        ),
    ]


def stream_rows(streams: dict[str, StreamSamples]) -> list[str]:
    """Per language: streamed MB/s against bare falcon's, and time to first chunk."""
    names = {"py": "Python generator", "js": "JS stream"}
    lines = []
    for language, name in names.items():
        edge, bare = streams.get(language), streams.get(f"falcon-{language}")
        if edge is None or bare is None:
            continue
        lines.append(
            row(
                f"Edge {name}, throughput of one {edge.mb} MB download",
                BLANK,
                f"{edge.mb_per_s / bare.mb_per_s:.2f} {TIMES} falcon",
                BLANK,
                BLANK,
                f"{edge.mb_per_s:,.0f} MB/s; bare falcon `resp.stream` of the same "
                f"blocks: {bare.mb_per_s:,.0f} MB/s",
            )
        )
        lines.append(
            row(
                f"Edge {name}, time to first chunk",
                BLANK,
                BLANK,
                ms(percentile(edge.ttfc_ms, 50)),
                ms(percentile(edge.ttfc_ms, 99)),
                f"{len(edge.ttfc_ms)} requests; bare falcon: p50 "
                f"{ms(percentile(bare.ttfc_ms, 50))} / p99 {ms(percentile(bare.ttfc_ms, 99))} ms",
            )
        )
    return lines


def kv_rows(results: KVResults) -> list[str]:
    """Per language the KV function, with the get's added cost; then direct redis-py."""
    direct = results.direct_ms
    lines = []
    for lang, samples in results.languages.items():
        with_p50 = statistics.median(samples.with_get)
        without_p50 = statistics.median(samples.without_get)
        lines.append(
            row(
                f"Edge KV get round trip, {KV_LANGUAGES[lang]} (one `KV.get` of a 64-byte key, "
                "warm, sequential)",
                BLANK,
                f"{with_p50 / without_p50:.2f} {TIMES} no get",
                ms(with_p50),
                ms(percentile(samples.with_get, 99)),
                f"adds {ms(with_p50 - without_p50)} ms (p50) to the same function without "
                f"the get (p50 {ms(without_p50)} / p99 "
                f"{ms(percentile(samples.without_get, 99))} ms); {len(samples.with_get)} "
                "requests each",
            )
        )
    lines.append(
        row(
            "Direct redis-py `GET` of the same key on the same Redis (the floor)",
            BLANK,
            BLANK,
            ms(statistics.median(direct)),
            ms(percentile(direct, 99)),
            f"{len(direct)} GETs from the bench process, in the same blocks",
        )
    )
    return lines


def push_row(samples: PushSamples) -> str:
    """Push-to-live: median and worst of a few pushes."""
    return row(
        "Edge push-to-live (`git push` → new answer served)",
        BLANK,
        BLANK,
        ms(percentile(samples.live_ms, 50)),
        ms(max(samples.live_ms)),
        f"{len(samples.live_ms)} pushes, p99 column is the max; `git push` alone: "
        f"p50 {ms(percentile(samples.push_ms, 50))} ms",
    )


def table(results: Results) -> str:
    """The markdown table: throughput rows, then cold starts, then push-to-live."""
    lines = [HEADER.format(baseline=results.baseline)]
    lines += [throughput_row(m) for m in results.throughput]
    lines += [
        row(f"workerd: unavailable ({why})", BLANK, BLANK, BLANK, BLANK, "")
        for why in results.unavailable
    ]
    for language, samples in results.cold.items():
        lines += cold_rows(language, samples)
    lines += stream_rows(results.streams)
    if results.kv is not None:
        lines += kv_rows(results.kv)
    lines.append(push_row(results.push))
    lines += results.extra_rows
    return "\n".join(lines)


def footer(command: str, wrk: str, facts: dict[str, str]) -> str:
    """How the table was made: the command, the load, the machine."""
    machine = ", ".join(f"{key} {value}" for key, value in facts.items())
    return (
        f"Command: `{command}`; load: `{wrk}` on loopback, wrk sharing the cores "
        "with the servers; req/s, p50 and p99 are medians over rounds, each ratio is "
        "computed within its round (median shown). Cold starts: Python's server side is "
        "the instance start (a fork from the function's template), JS's the isolate "
        "creation and module evaluation; with fewer than 100 samples p99 is the maximum."
        "\n\n"
        f"Machine: {machine}."
    )
