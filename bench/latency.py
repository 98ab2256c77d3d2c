"""Metric 2: delivery latency under paced load. Deliveries are offered at fixed rates (a
share of metric 1's rate) over 20 SMTP sessions, in metric 1's shape: messages of two
recipients, so that 80 % of its rate is 80 % of its scans and sessions too. Each
delivery's latency is Postfix's own `delay=` of its LMTP delivery (from the message's
arrival until Dovecot has stored it). Also plots delivered rate and p99 against the
offered rate."""

from __future__ import annotations

import re
import smtplib
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Metric 1's load shape: its sessions, message size and recipients a message.
from bench.delivery import RECIPIENTS, SESSIONS, SIZE, Arrivals
from bench.stack import compose
from tests.mail import message

_QUEUED = re.compile(r" ([0-9A-F]{6,}): from=<(paced[^>]*)>")
_SENT = re.compile(
    r" ([0-9A-F]{6,}): to=<[^>]*>, relay=[^ ]*,(?: conn_use=\d+,)? delay=([\d.]+),.* status=sent"
)


@dataclass(frozen=True)
class Level:
    offered: float  # deliveries/s (metric 1's msg/s: a message in a Maildir)
    sent: int  # deliveries
    delivered_rate: float  # deliveries/s, first offer to last delivery
    p50: float  # s
    p99: float  # s


def offer(
    smtp_port: int, rate: float, seconds: float, recipients: list[str], watch: Callable[[int], Arrivals]
) -> Level:
    """Offer ``rate`` deliveries/s for ``seconds``; wait until all are stored."""
    sender = f"paced{int(rate * 100)}-{int(time.time())}@sender.example"
    messages = max(1, int(rate * seconds / RECIPIENTS))
    total = messages * RECIPIENTS
    message_rate = rate / RECIPIENTS
    watcher = watch(total)
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 2))
    lock, counter = threading.Lock(), iter(range(messages))
    start = time.monotonic() + 0.5

    def session() -> None:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as client:
            client.ehlo("load.sender.example")
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                # Each message leaves at its scheduled time: the schedule paces, not the server.
                time.sleep(max(0.0, start + n / message_rate - time.monotonic()))
                to = [recipients[(n * RECIPIENTS + i) % len(recipients)] for i in range(RECIPIENTS)]
                client.sendmail(sender, to, message(to, "", SIZE, sender, subject=f"paced {n}"))

    threads = [threading.Thread(target=session) for _ in range(SESSIONS)]
    for thread in threads:
        thread.start()
    time.sleep(max(0.0, start - time.monotonic()))  # the first message's scheduled time
    watcher.go()
    for thread in threads:
        thread.join()
    rate_delivered = total / watcher.wait()
    deadline = time.monotonic() + 60  # the log trails the Maildir by a little
    while len(delays := _delays(sender, since)) < total:
        if time.monotonic() > deadline:
            raise RuntimeError(f"paced load at {rate:.0f}/s: {len(delays)} of {total} deliveries in the log")
        time.sleep(1)
    return Level(rate, total, rate_delivered, statistics.median(delays), _percentile(delays, 0.99))


def _delays(sender: str, since: str) -> list[float]:
    log = compose("logs", "--no-log-prefix", "--since", since, "postfix")
    queue_ids = {match[1] for match in _QUEUED.finditer(log) if match[2] == sender}
    return [float(match[2]) for match in _SENT.finditer(log) if match[1] in queue_ids]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def plot(levels: list[Level], path: Path) -> None:
    """Delivered rate and p99 latency against the offered rate, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, rate_axis = pyplot.subplots(figsize=(7, 4.5))
    offered = [level.offered for level in levels]
    rate_axis.plot(
        offered, [level.delivered_rate for level in levels], "o-", color="tab:blue", label="delivered msg/s"
    )
    rate_axis.plot(offered, offered, ":", color="gray", label="offered = delivered")
    rate_axis.set_xlabel("offered load (msg/s)")
    rate_axis.set_ylabel("delivered msg/s", color="tab:blue")
    latency_axis = rate_axis.twinx()
    latency_axis.plot(offered, [level.p99 for level in levels], "s--", color="tab:red", label="p99 latency")
    latency_axis.set_ylabel("p99 delivery latency (s)", color="tab:red")
    figure.suptitle("vmm: delivery under paced load (10 KiB, 20 SMTP sessions)")
    figure.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
