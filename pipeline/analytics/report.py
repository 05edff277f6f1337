"""A self-contained HTML report of the analytics, for people who would rather look than read.

Charts are drawn with matplotlib and embedded as inline SVG: the file opens anywhere, offline, with no
JavaScript libraries and nothing fetched. Every chart counts one thing on its value axis (plays, or users, never
both), says what in its axis label, and labels its bars with their figures; the page prints on A4 with no chart
split across pages.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import pandas as pd

from pipeline.analytics.queries import MATCHED, Analytics

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
BLUE, GREY, ORANGE = "#3b7dd8", "#9aa5b1", "#e8833a"
LEVEL_COLOURS = {"free": GREY, "paid": BLUE}
plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "svg.fonttype": "none"})


def _svg(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _tidy(ax: plt.Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)


def _hbar(
    labels: Sequence[str],
    values: Sequence[float],
    unit: str,
    colours: Sequence[str] | None = None,
    fmt: str = "{:,.0f}",
) -> str:
    """Horizontal bars, largest on top, each labelled with its value; ``unit`` names the value axis."""
    fig, ax = plt.subplots(figsize=(7.5, max(1.6, 0.32 * len(labels) + 0.8)))
    bars = ax.barh(list(labels)[::-1], list(values)[::-1], color=list(colours or [BLUE] * len(labels))[::-1])
    ax.bar_label(bars, labels=[fmt.format(v) for v in list(values)[::-1]], padding=3, fontsize=8)
    ax.set_xlabel(unit)
    ax.margins(x=0.12)
    _tidy(ax)
    return _svg(fig)


def _vbar(labels: Sequence[str], values: Sequence[float], unit: str, xlabel: str) -> str:
    fig, ax = plt.subplots(figsize=(7.5, 2.8))
    bars = ax.bar(list(labels), list(values), color=BLUE)
    if len(labels) <= 12:
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=2, fontsize=8)
    ax.set_ylabel(unit)
    ax.set_xlabel(xlabel)
    _tidy(ax)
    return _svg(fig)


def _lines(frame: pd.DataFrame, x: str, series: str, y: str, unit: str, colours: dict[str, str] | None = None) -> str:
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    for name, part in frame.groupby(series, sort=False):
        colour = colours.get(str(name)) if colours else None
        ax.plot(pd.to_datetime(part[x]), part[y], marker="o", markersize=3, label=str(name), color=colour)
        last = part.iloc[-1]
        ax.annotate(
            f"{last[y]:,.0f}",
            (pd.to_datetime(last[x]), last[y]),
            xytext=(4, 0),
            textcoords="offset points",
            fontsize=8,
            va="center",
        )
    when = pd.to_datetime(frame[x]).drop_duplicates().sort_values()
    if len(when) <= 10:  # weeks: a tick on each point
        ax.set_xticks(mdates.date2num(when.dt.to_pydatetime()))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    ax.set_ylabel(unit)
    ax.set_ylim(bottom=0)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.autofmt_xdate()
    _tidy(ax)
    return _svg(fig)


def _table(frame: pd.DataFrame, limit: int = 20) -> str:
    if frame.empty:
        return "<p class='empty'>No rows.</p>"
    return frame.head(limit).to_html(index=False, border=0, classes="data", escape=True, float_format="{:,.2f}".format)


def _section(title: str, body: str, note: str = "", chart: bool = True) -> str:
    note_html = f"<p class='note'>{html.escape(note)}</p>" if note else ""
    kind = "chart" if chart else "table"
    return f"<section class='{kind}'><h2>{html.escape(title)}</h2>{note_html}{body}</section>"


def _name(title: object, artist: object, width: int = 48) -> str:
    text = f"{title} - {artist}"
    return text if len(text) <= width else text[: width - 1] + "…"


def build(analytics: Analytics, source: str) -> str:
    """The whole page: one function per part of it, in reading order."""
    a = analytics
    h = a.headline()
    songs = a.top_songs(15)
    parts = [
        *_song_side(a, h, songs),
        *_trends(a),
        *_levels(a),
        *_playlists(a, songs),
        *_when_and_on_what(a),
    ]
    return _page(source, h, parts)


def _song_side(a: Analytics, h: dict[str, int | float], songs: pd.DataFrame) -> list[str]:
    """How much of the plays the catalogue names, and why the rest is not matched."""
    parts: list[str] = []
    # ---- the song side: how much of it we can name, and why the rest is not matched
    breakdown = a.match_breakdown()
    parts.append(
        _section(
            "Why plays match a song, or not",
            _hbar(
                breakdown["reason"].tolist(),
                breakdown["plays"].tolist(),
                "plays",
                [BLUE if r == MATCHED else ORANGE for r in breakdown["reason"]],
            )
            if len(breakdown)
            else "<p class='empty'>No plays.</p>",
            f"{h['matched_plays']:,} of {h['plays']:,} plays ({h['match_rate']:.1%}) match a song of the catalogue "
            "exactly (title, artist and length). 'No song of that title' is a gap in the catalogue; the other two "
            "reasons point at the data (another spelling of the artist, another cut of the song).",
        )
    )
    parts.append(
        _section(
            "Most played songs",
            _hbar(
                [
                    _name(t, ar) + (" ✓" if m else "")
                    for t, ar, m in zip(songs["title"], songs["artist"], songs["in_catalogue"], strict=True)
                ],
                songs["plays"].tolist(),
                "plays",
                [BLUE if m else GREY for m in songs["in_catalogue"]],
            )
            if len(songs)
            else "<p class='empty'>No plays.</p>",
            "Every play, named by the title and artist the app played. Blue bars (✓) match a song of the catalogue; "
            "grey ones are songs the catalogue does not have.",
        )
    )
    unmatched = a.top_unmatched(15)
    parts.append(_section("Most played songs with no match, and why", _table(unmatched), chart=False))
    artists = a.top_artists(15)
    if len(artists):
        parts.append(
            _section("Most played artists", _hbar(artists["artist"].tolist(), artists["plays"].tolist(), "plays"))
        )
    return parts


def _trends(a: Analytics) -> list[str]:
    """Artists and songs over the weeks."""
    parts: list[str] = []
    # ---- trends
    weekly = a.weekly_plays("artist", 5)
    if len(weekly):
        parts.append(
            _section(
                "Weekly plays of the five most played artists",
                _lines(weekly, "week", "artist_name", "plays", "plays per week"),
                "Weeks start on Monday (UTC); the first and last weeks may be partial.",
            )
        )
    movers = a.movers("song", 5)
    parts.append(
        _section(
            "Songs growing and falling",
            _table(movers.rename(columns={"song_title": "title", "artist_name": "artist"})),
            "Plays in the last 7 days of data against the 7 days before (at least 3 plays in one of them).",
            chart=False,
        )
    )
    return parts


def _levels(a: Analytics) -> list[str]:
    """Paying and free users, and whom to offer a subscription."""
    parts: list[str] = []
    # ---- levels
    per_day = a.users_by_level_per_day()
    if len(per_day):
        parts.append(
            _section(
                "Paying and free users per day",
                _lines(per_day, "day", "level", "users", "users", LEVEL_COLOURS),
                "Users with a period at that level on that day (user_levels); one who changed level that day counts "
                "at both.",
            )
        )
    levels = a.levels()
    parts.append(
        _section(
            "Users by current level",
            _hbar(
                levels["level"].tolist(),
                levels["users"].tolist(),
                "users",
                [LEVEL_COLOURS.get(lv, GREY) for lv in levels["level"]],
            ),
        )
    )
    parts.append(
        _section(
            "Plays by the level at the time of the play",
            _hbar(
                levels["level"].tolist(),
                levels["plays"].tolist(),
                "plays",
                [LEVEL_COLOURS.get(lv, GREY) for lv in levels["level"]],
            ),
        )
    )
    targets = a.promotion_targets(15)
    parts.append(
        _section(
            "Free users to offer a subscription",
            _table(targets),
            "Most active first: plays per day in their current free period. 'upgraders_below' is the share of past "
            "upgrades whose user was less active before upgrading than this user is now.",
            chart=False,
        )
    )
    changes = a.level_changes()
    parts.append(
        _section(
            "Who upgraded and downgraded, when",
            _table(changes.assign(changed_at=changes["changed_at"].astype(str))),
            f"{(changes['to_level'] == 'paid').sum()} upgrades and {(changes['to_level'] == 'free').sum()} "
            "downgrades, from user_levels.",
            chart=False,
        )
    )
    return parts


def _playlists(a: Analytics, songs: pd.DataFrame) -> list[str]:
    """A first step toward playlists."""
    parts: list[str] = []
    # ---- playlists
    if len(songs):
        seed_title, seed_artist = str(songs["title"].iloc[0]), str(songs["artist"].iloc[0])
        parts.append(
            _section(
                f"Played in the same session as “{seed_title}” by {seed_artist}",
                _table(a.played_with(seed_title, seed_artist, 10)),
                "A first step toward playlists: the songs most often in the same session as the most played one.",
                chart=False,
            )
        )
    return parts


def _when_and_on_what(a: Analytics) -> list[str]:
    """Plays by hour, weekday, browser and operating system."""
    parts: list[str] = []
    # ---- when and on what
    hours = a.plays_by_hour()
    parts.append(
        _section(
            "Plays by hour of day",
            _vbar([str(x) for x in hours["hour"]], hours["plays"].tolist(), "plays", "hour (UTC)"),
        )
    )
    days = a.plays_by_weekday()
    parts.append(
        _section(
            "Plays by weekday",
            _vbar([WEEKDAYS[int(d) - 1] for d in days["weekday"]], days["plays"].tolist(), "plays", "weekday (UTC)"),
        )
    )
    agents = a.plays_by_agent()
    for what in ("browser", "os"):
        by = agents.groupby(what)["plays"].sum().sort_values(ascending=False)
        title = "Plays by browser" if what == "browser" else "Plays by operating system"
        parts.append(_section(title, _hbar(by.index.tolist(), by.tolist(), "plays")))
    return parts


def _page(source: str, h: dict[str, int | float], parts: list[str]) -> str:
    """The page around the sections: title, headline cards, styles, and the hook the tests read."""
    cards = "".join(
        f"<div class='card'><div class='n'>{v}</div><div>{html.escape(k)}</div></div>"
        for k, v in (
            ("plays", f"{h['plays']:,}"),
            ("users", f"{h['users']:,}"),
            ("songs", f"{h['songs']:,}"),
            ("artists", f"{h['artists']:,}"),
            ("plays matched to a song", f"{h['match_rate']:.2%}"),
        )
    )
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sparkify listening report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 52rem; padding: 0 1rem; color: #222;
  line-height: 1.4; }}
h1 {{ margin-bottom: .2rem; }} h2 {{ font-size: 1.1rem; margin: 0 0 .3rem; }}
.meta {{ color: #666; margin-top: 0; }}
.cards {{ display: flex; gap: .8rem; flex-wrap: wrap; }}
.card {{ border: 1px solid #ddd; border-radius: 8px; padding: .6rem 1rem; }}
.card .n {{ font-size: 1.5rem; font-weight: 600; }}
section {{ margin: 1.8rem 0; break-inside: avoid; page-break-inside: avoid; }}
section svg {{ max-width: 100%; height: auto; display: block; }}
table.data {{ border-collapse: collapse; font-size: .85rem; }}
table.data td, table.data th {{ padding: .2rem .6rem; border-bottom: 1px solid #eee; text-align: left; }}
.note, .empty {{ color: #555; font-size: .9rem; margin: 0 0 .5rem; }}
@media print {{
  @page {{ size: A4; margin: 14mm; }}
  body {{ max-width: none; margin: 0; padding: 0; font-size: 10pt; }}
  section {{ margin: 1rem 0; }}
}}
</style></head>
<body>
<h1>Sparkify listening report</h1>
<p class="meta">Warehouse: {html.escape(source)} &middot; generated {generated}</p>
<div class="cards">{cards}</div>
{"".join(parts)}
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
