"""A self-contained HTML report of the analytics, for people who would rather look than read.

Charts are drawn with matplotlib and embedded as inline SVG: the file opens anywhere, offline, with no
JavaScript libraries and nothing fetched.
"""

from __future__ import annotations

import html
import io
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from .analytics import Analytics

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _bar(labels: list[str], values: list[float], title: str, horizontal: bool = False) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.6 if not horizontal else max(2.4, 0.35 * len(labels) + 1)))
    if horizontal:
        ax.barh(labels[::-1], values[::-1], color="#3b7dd8")
    else:
        ax.bar(labels, values, color="#3b7dd8")
    ax.set_title(title)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def _table(frame: pd.DataFrame, limit: int = 20) -> str:
    if frame.empty:
        return "<p class='empty'>No rows.</p>"
    return frame.head(limit).to_html(index=False, border=0, classes="data", escape=True)


def _figure(title: str, body: str, note: str = "") -> str:
    note_html = f"<figcaption>{html.escape(note)}</figcaption>" if note else ""
    return f"<section class='chart'><h2>{html.escape(title)}</h2>{body}{note_html}</section>"


def build(analytics: Analytics, source: str) -> str:
    h = analytics.headline()
    sections: list[str] = []

    songs = analytics.top_songs(10)
    sections.append(
        _figure(
            "Most played songs",
            _bar(
                [f"{t} - {a}" for t, a in zip(songs["title"], songs["artist"], strict=True)],
                songs["plays"].astype(float).tolist(),
                "plays (matched songs only)",
                horizontal=True,
            )
            if len(songs)
            else "<p class='empty'>No play matched a catalogue song.</p>",
            f"Only plays matched to the song catalogue can be named: {h['match_rate']:.1%} of plays matched.",
        )
    )
    artists = analytics.top_artists(10)
    if len(artists):
        sections.append(
            _figure(
                "Most played artists",
                _bar(artists["artist"].tolist(), artists["plays"].astype(float).tolist(), "plays", horizontal=True),
            )
        )
    hours = analytics.plays_by_hour()
    sections.append(
        _figure(
            "Plays by hour of day (UTC)",
            _bar([str(x) for x in hours["hour"]], hours["plays"].astype(float).tolist(), "plays"),
        )
    )
    days = analytics.plays_by_weekday()
    sections.append(
        _figure(
            "Plays by weekday",
            _bar([WEEKDAYS[int(d) - 1] for d in days["weekday"]], days["plays"].astype(float).tolist(), "plays"),
        )
    )
    levels = analytics.levels()
    sections.append(
        _figure(
            "Free and paid",
            _bar(
                [f"{lv} users" for lv in levels["level"]] + [f"{lv} plays (k)" for lv in levels["level"]],
                levels["users"].astype(float).tolist() + (levels["plays"].astype(float) / 1000).tolist(),
                "users by current level; plays by level at the time",
            ),
        )
    )
    changes = analytics.level_changes()
    sections.append(
        _figure(
            "Who upgraded and downgraded, when",
            _table(changes.assign(changed_at=changes["changed_at"].astype(str))),
            f"{(changes['to_level'] == 'paid').sum()} upgrades and {(changes['to_level'] == 'free').sum()} downgrades.",
        )
    )
    agents = analytics.plays_by_agent()
    by_browser = agents.groupby("browser")["plays"].sum().sort_values(ascending=False)
    by_os = agents.groupby("os")["plays"].sum().sort_values(ascending=False)
    sections.append(
        _figure(
            "Plays by browser",
            _bar(by_browser.index.tolist(), by_browser.astype(float).tolist(), "plays", horizontal=True),
        )
    )
    sections.append(
        _figure(
            "Plays by operating system",
            _bar(by_os.index.tolist(), by_os.astype(float).tolist(), "plays", horizontal=True),
        )
    )

    cards = "".join(
        f"<div class='card'><div class='n'>{v}</div><div>{html.escape(k)}</div></div>"
        for k, v in (
            ("plays", f"{h['plays']:,}"),
            ("users", f"{h['users']:,}"),
            ("songs", f"{h['songs']:,}"),
            ("artists", f"{h['artists']:,}"),
            ("song match rate", f"{h['match_rate']:.1%}"),
        )
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sparkify listening report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }}
.cards {{ display: flex; gap: 1rem; flex-wrap: wrap; }}
.card {{ border: 1px solid #ddd; border-radius: 8px; padding: .8rem 1.2rem; }}
.card .n {{ font-size: 1.6rem; font-weight: 600; }}
section.chart {{ margin: 2rem 0; }} section.chart svg {{ max-width: 100%; height: auto; }}
table.data {{ border-collapse: collapse; font-size: .9rem; }} table.data td, table.data th {{ padding: .2rem .6rem; }}
figcaption, .empty {{ color: #666; font-size: .9rem; }}
</style></head>
<body>
<h1>Sparkify listening report</h1>
<p>Warehouse: {html.escape(source)} &middot; generated {generated}</p>
<div class="cards">{cards}</div>
{"".join(sections)}
<script>
  // Lets a headless browser (and the tests) confirm that every chart was laid out with a size.
  const charts = [...document.querySelectorAll("section.chart svg")];
  document.body.dataset.chartsRendered = charts.filter(s => s.getBoundingClientRect().width > 0).length;
  document.body.dataset.chartsTotal = charts.length;
</script>
</body></html>
"""


def write(analytics: Analytics, source: str, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(build(analytics, source), encoding="utf-8")
    return out
