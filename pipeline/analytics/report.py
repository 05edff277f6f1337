"""A self-contained HTML report of the analytics, for people who would rather look than read.

Charts are drawn with matplotlib and embedded as inline SVG: the file opens anywhere, offline, with no
JavaScript libraries and nothing fetched. Every chart counts one thing on its value axis (plays, or users, never
both), says what in its axis label and its note, and labels its values; times are UTC; the page prints on A4 with
no chart split across pages. Each section that answers a documented question (``queries.QUESTIONS``) carries the
question, its parameters and the figures it shows (``data-question``, ``data-params``, ``data-figures``): the
tests compare them with the documented SQL run on its own.
"""

from __future__ import annotations

import functools
import html
import io
import itertools
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec

import matplotlib
import matplotlib.dates as mdates
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from pipeline.analytics.queries import (
    MATCHED,
    MAX_SEED_SHARE,
    MIN_FREE_DAYS,
    MIN_SONG_SESSIONS,
    MIN_TOGETHER,
    Analytics,
)

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
BLUE, GREY, ORANGE = "#3b7dd8", "#9aa5b1", "#e8833a"
LEVEL_COLOURS = {"free": GREY, "paid": BLUE}
# Fewer past upgrades than this and the shares they give are flagged as a rough guide.
FEW_UPGRADES = 20
# Sessions a song must be played in to seed "played in the same session".
SEED_SESSIONS = 10
P = ParamSpec("P")
THOUSANDS = FuncFormatter(lambda v, _: f"{v:,.0f}")


def _styled(chart: Callable[P, str]) -> Callable[P, str]:
    """Draw ``chart`` under the report's style only, on a figure made without pyplot: importing the report (a
    notebook does) changes neither the backend nor the style of anyone's own charts."""

    @functools.wraps(chart)
    def drawn(*args: P.args, **kwargs: P.kwargs) -> str:
        with matplotlib.rc_context(
            {"font.size": 9, "axes.titlesize": 10, "svg.fonttype": "none", "svg.hashsalt": "sparkify"}
        ):
            return chart(*args, **kwargs)

    return drawn


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)  # a canvas of its own: no pyplot, no backend chosen for the process
    return fig, fig.subplots()


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _counts(axis: Any) -> None:
    """A count axis: whole numbers only, with thousands separators."""
    axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    axis.set_major_formatter(THOUSANDS)


def _tidy(ax: Axes) -> None:
    ax.spines[["top", "right"]].set_visible(False)


@_styled
def _hbar(
    labels: Sequence[str],
    values: Sequence[float],
    unit: str,
    colours: Sequence[str] | None = None,
    fmt: str = "{:,.0f}",
) -> str:
    """Horizontal bars, largest on top, each labelled with its value; ``unit`` names the value axis."""
    fig, ax = _figure(7.5, max(1.6, 0.32 * len(labels) + 0.8))
    bars = ax.barh(list(labels)[::-1], list(values)[::-1], color=list(colours or [BLUE] * len(labels))[::-1])
    ax.bar_label(bars, labels=[fmt.format(v) for v in list(values)[::-1]], padding=3, fontsize=8)
    ax.set_xlabel(unit)
    _counts(ax.xaxis)
    ax.margins(x=0.12)
    _tidy(ax)
    return _svg(fig)


@_styled
def _vbar(labels: Sequence[str], values: Sequence[float], unit: str, xlabel: str) -> str:
    fig, ax = _figure(7.5, 2.8)
    bars = ax.bar(list(labels), list(values), color=BLUE)
    if len(labels) <= 12:
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values], padding=2, fontsize=8)
    ax.set_ylabel(unit)
    _counts(ax.yaxis)
    ax.set_xlabel(xlabel)
    _tidy(ax)
    return _svg(fig)


def _spread(ys: list[float], gap: float) -> list[float]:
    """``ys`` moved apart as little as possible so that no two are closer than ``gap``, order kept."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    out = list(ys)
    for prev, cur in itertools.pairwise(order):
        out[cur] = max(out[cur], out[prev] + gap)
    return out


@_styled
def _lines(frame: pd.DataFrame, x: str, series: str, y: str, unit: str, colours: dict[str, str] | None = None) -> str:
    """One line per ``series``, each ending in its last value, the end labels kept clear of each other. A series
    with no row at a point of ``x`` is at zero there (the queries give no row for a count of none), not bridged."""
    fig, ax = _figure(7.5, 3.0)
    ends: list[tuple[str, pd.Timestamp, float, Any]] = []
    grid = frame.assign(**{x: pd.to_datetime(frame[x])}).pivot_table(
        index=x, columns=series, values=y, aggfunc="sum", fill_value=0
    )
    grid = grid.sort_index()[list(dict.fromkeys(frame[series]))]
    for name in grid.columns:
        colour = colours.get(str(name)) if colours else None
        line = ax.plot(grid.index, grid[name], marker="o", markersize=3, label=str(name), color=colour)
        ends.append((str(name), pd.Timestamp(grid.index[-1]), float(grid[name].iloc[-1]), line[0].get_color()))
    ax.set_ylim(bottom=0)
    when = pd.to_datetime(frame[x]).drop_duplicates().sort_values()
    if len(when) <= 10:  # weeks: a tick on each point
        ax.set_xticks(mdates.date2num(list(when)))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    _counts(ax.yaxis)
    ax.set_ylabel(unit)
    fig.canvas.draw()  # the axes' final scale, to space the labels in points
    top = ax.get_ylim()[1]
    points_per_unit = ax.get_window_extent().height / top * 72 / fig.dpi if top else 0
    gap = 10 / points_per_unit if points_per_unit else 0
    for (_, at, value, colour), placed in zip(ends, _spread([e[2] for e in ends], gap), strict=True):
        ax.annotate(
            f"{value:,.0f}",
            (at, value),
            xytext=(5, (placed - value) * points_per_unit),
            textcoords="offset points",
            fontsize=8,
            va="center",
            color=colour,
        )
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.06, 1))
    fig.autofmt_xdate()
    _tidy(ax)
    return _svg(fig)


@dataclass
class Columns:
    """A table's columns as a reader sees them: header text, and how each value is written."""

    names: dict[str, str]
    formats: dict[str, Callable[[Any], str]] = field(default_factory=dict)


def _count(v: Any) -> str:
    return "" if pd.isna(v) else f"{int(v):,}"


def _share(v: Any) -> str:
    return "" if pd.isna(v) else f"{float(v):.0%}"


def _decimal(v: Any) -> str:
    return "" if pd.isna(v) else f"{float(v):,.2f}"


def _table(frame: pd.DataFrame, columns: Columns, limit: int = 20) -> str:
    if frame.empty:
        return "<p class='empty'>No rows.</p>"
    shown = frame.head(limit).loc[:, list(columns.names)]
    return shown.rename(columns=columns.names).to_html(
        index=False,
        border=0,
        classes="data",
        escape=True,
        formatters=columns.formats,
        na_rep="",
    )


def _figures(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="records", date_format="iso", date_unit="s", force_ascii=False)


@dataclass
class Section:
    title: str
    body: str
    note: str = ""
    chart: bool = True
    # The documented question the section shows, its parameters, and the figures it shows.
    question: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    figures: pd.DataFrame | None = None

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.title.lower()).strip("-")

    def html(self) -> str:
        note = f"<p class='note'>{html.escape(self.note)}</p>" if self.note else ""
        attrs = f" id='{self.anchor}' class='{'chart' if self.chart else 'table'}'"
        if self.question:
            figures = _figures(self.figures) if self.figures is not None else "[]"
            attrs += (
                f" data-question='{self.question}' data-params='{html.escape(json.dumps(self.params), quote=True)}'"
                f" data-figures='{html.escape(figures, quote=True)}'"
            )
        return f"<section{attrs}><h2>{html.escape(self.title)}</h2>{note}{self.body}</section>"


def _name(title: object, artist: object, width: int = 48) -> str:
    text = f"{title} - {artist}"
    return text if len(text) <= width else text[: width - 1] + "…"


def _times(n: int, what: str) -> str:
    return f"{n:,} {what}{'' if n == 1 else 's'}"


def _day(ts: pd.Timestamp) -> str:
    return f"{ts.day} {ts:%b %Y}"


def build(analytics: Analytics, source: str) -> str:
    """The whole page: one function per part of it, in reading order."""
    a = analytics
    h = a.headline()
    period = a.period()
    songs = a.top_songs(15)
    parts = [
        *_song_side(a, h, songs),
        *_trends(a, period),
        *_levels(a, period),
        *_playlists(a),
        *_when_and_on_what(a, period),
    ]
    return _page(source, h, period, parts)


def _song_side(a: Analytics, h: dict[str, int | float], songs: pd.DataFrame) -> list[Section]:
    """How much of the plays the catalogue names, and why the rest is not matched."""
    parts: list[Section] = []
    breakdown = a.match_breakdown()
    parts.append(
        Section(
            "Why plays match a song, or not",
            _hbar(
                breakdown["reason"].tolist(),
                breakdown["plays"].tolist(),
                "plays",
                [BLUE if r == MATCHED else ORANGE for r in breakdown["reason"]],
            )
            if len(breakdown)
            else "<p class='empty'>No plays.</p>",
            f"{h['matched_plays']:,} of {h['plays']:,} plays ({h['match_rate']:.2%}) match a song of the catalogue "
            "exactly (title, artist and length). 'No song of that title' is a gap in the catalogue; 'title found, "
            "another artist' is another artist's song of that title or another spelling of the artist; the last, "
            "another cut of the song.",
            question="match_breakdown",
            figures=breakdown[["reason", "plays"]],
        )
    )
    parts.append(
        Section(
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
            question="top_songs",
            params={"n": 15},
            figures=songs[["title", "artist", "plays"]],
        )
    )
    unmatched = a.top_unmatched(15)
    parts.append(
        Section(
            "Most played songs with no match, and why",
            _table(
                unmatched,
                Columns(
                    {"title": "Song", "artist": "Artist", "plays": "Plays", "reason": "Why no match"}, {"Plays": _count}
                ),
            ),
            chart=False,
            question="top_unmatched",
            params={"n": 15},
            figures=unmatched,
        )
    )
    artists = a.top_artists(15)
    if len(artists):
        parts.append(
            Section(
                "Most played artists",
                _hbar(artists["artist"].tolist(), artists["plays"].tolist(), "plays"),
                question="top_artists",
                params={"n": 15},
                figures=artists[["artist", "plays"]],
            )
        )
    return parts


# A day the data starts or ends more than this far into is partial: charted, it would look like a fall.
SLACK = pd.Timedelta(hours=1)


def _whole(period: tuple[pd.Timestamp, pd.Timestamp]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last day (UTC) the period covers whole, within an hour at either end."""
    first, last = period
    start = first.normalize() + pd.Timedelta(days=0 if first - first.normalize() <= SLACK else 1)
    end = last.normalize() - pd.Timedelta(days=0 if last.normalize() + pd.Timedelta(days=1) - last <= SLACK else 1)
    return start, end


def full_weeks(weekly: pd.DataFrame, period: tuple[pd.Timestamp, pd.Timestamp]) -> tuple[pd.DataFrame, list[str]]:
    """The weeks (Monday to Sunday, UTC) whose every day the period covers whole, and how the others are described."""
    first, last = _whole(period)
    weeks = pd.to_datetime(weekly["week"])
    whole = (weeks >= first) & (weeks + pd.Timedelta(days=6) <= last)
    left_out = []
    for week in sorted(set(weeks[~whole])):
        days = max(0, (min(week + pd.Timedelta(days=6), last) - max(week, first)).days + 1)
        left_out.append(f"the week of {_day(week)} ({days} whole day{'' if days == 1 else 's'} of 7)")
    return weekly.loc[whole.to_numpy()], left_out


def whole_days(daily: pd.DataFrame, period: tuple[pd.Timestamp, pd.Timestamp]) -> tuple[pd.DataFrame, list[str]]:
    """The days (UTC) the period covers whole, within an hour at either end, and how the others are described."""
    first, last = period
    start, end = _whole(period)
    days = pd.to_datetime(daily["day"])
    left_out = []
    if start > first.normalize():
        left_out.append(f"{_day(first)} (the data starts at {first:%H:%M})")
    if end < last.normalize():
        left_out.append(f"{_day(last)} (the data ends at {last:%H:%M})")
    return daily.loc[((days >= start) & (days <= end)).to_numpy()], left_out


def _trends(a: Analytics, period: tuple[pd.Timestamp, pd.Timestamp] | None) -> list[Section]:
    """Artists and songs over the weeks."""
    parts: list[Section] = []
    weekly = a.weekly_plays("artist", 5)
    if len(weekly) and period is not None:
        full, left_out = full_weeks(weekly, period)
        note = "Plays per week, Monday to Sunday (UTC), of the five artists most played overall."
        if left_out:
            note += " Partial weeks are left out, so none looks like a fall or a rise: " + "; ".join(left_out) + "."
        parts.append(
            Section(
                "Weekly plays of the five most played artists",
                _lines(full, "week", "artist_name", "plays", "plays per week")
                if len(full)
                else "<p class='empty'>The data covers no whole week.</p>",
                note,
                question="weekly_plays",
                params={"by": "artist", "n": 5},
                figures=weekly,
            )
        )
    movers = a.movers("song", 5)
    parts.append(
        Section(
            "Songs growing and falling",
            _table(
                movers,
                Columns(
                    {
                        "song_title": "Song",
                        "artist_name": "Artist",
                        "last_week": "Last 7 days",
                        "week_before": "7 days before",
                        "change": "Change",
                        "direction": "",
                    },
                    {"Last 7 days": _count, "7 days before": _count, "Change": lambda v: f"{int(v):+,}"},
                ),
            ),
            "Plays in the last 7 days of data against the 7 days before (at least 3 plays in one of them).",
            chart=False,
            question="movers",
            params={"by": "song", "n": 5},
            figures=movers,
        )
    )
    return parts


def _levels(a: Analytics, period: tuple[pd.Timestamp, pd.Timestamp] | None) -> list[Section]:
    """Who listens each day at which level, and whom to offer a subscription."""
    parts: list[Section] = []
    if period is not None:
        active = a.active_users_per_day()
        if len(active):
            parts.append(
                _daily(
                    "Active users per day, by level",
                    active,
                    period,
                    "users who played that day",
                    "Users who played at least one song that day (UTC), by their level when they played; one who "
                    "changed level that day counts at both.",
                    "active_users_per_day",
                    with_last_day=True,
                )
            )
        known = a.known_users_by_level_per_day()
        if len(known):
            parts.append(
                _daily(
                    "Known users by level, per day",
                    known,
                    period,
                    "users seen so far",
                    "Every user seen by that day, at the level they held (user_levels), whether or not they played: "
                    "the user base by level, not the activity. One who changed level that day counts at both.",
                    "known_users_by_level_per_day",
                )
            )
    levels = a.levels()
    parts.append(
        Section(
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
        Section(
            "Plays by the level at the time of the play",
            _hbar(
                levels["level"].tolist(),
                levels["plays"].tolist(),
                "plays",
                [LEVEL_COLOURS.get(lv, GREY) for lv in levels["level"]],
            ),
        )
    )
    parts.append(_promotion(a))
    changes = a.level_changes()
    parts.append(
        Section(
            "Who upgraded and downgraded, when",
            _table(
                changes.assign(changed_at=pd.to_datetime(changes["changed_at"]).dt.strftime("%Y-%m-%d %H:%M")),
                Columns({"user_id": "User", "changed_at": "Changed at (UTC)", "from_level": "From", "to_level": "To"}),
            ),
            f"{_times((changes['to_level'] == 'paid').sum(), 'upgrade')} and "
            f"{_times((changes['to_level'] == 'free').sum(), 'downgrade')}, from the level history (user_levels).",
            chart=False,
            question="level_changes",
            figures=changes,
        )
    )
    return parts


def _daily(
    title: str,
    frame: pd.DataFrame,
    period: tuple[pd.Timestamp, pd.Timestamp],
    unit: str,
    note: str,
    question: str,
    with_last_day: bool = False,
) -> Section:
    """Users per day by level, on the whole days only; the note names the days left out (and, ``with_last_day``,
    the last whole day's figures)."""
    shown, left_out = whole_days(frame, period)
    if with_last_day and len(shown):
        last_day = pd.to_datetime(shown["day"]).max()
        on_last = shown[pd.to_datetime(shown["day"]) == last_day].set_index("level")["users"]
        note += f" On {_day(last_day)}: " + ", ".join(f"{n:,} {lv}" for lv, n in on_last.items()) + "."
    if left_out:
        note += " Days the data covers in part are left out: " + "; ".join(left_out) + "."
    return Section(
        title,
        _lines(shown, "day", "level", "users", unit, LEVEL_COLOURS)
        if len(shown)
        else "<p class='empty'>The data covers no whole day.</p>",
        note,
        question=question,
        figures=frame,
    )


def _promotion(a: Analytics) -> Section:
    targets = a.promotion_targets(15)
    upgrades = int(targets["upgraders"].max()) if len(targets) else 0
    note = (
        f"Most active first: plays per day in their current free period, of those free for {MIN_FREE_DAYS} day or "
        "more (newer users are too new to judge). 'Past upgraders less active' is the share of past upgrades (after "
        f"a free spell of {MIN_FREE_DAYS} day or more) whose user played less per day before upgrading than this "
        "user does now: "
    )
    if targets.empty:
        note = f"No user has been free for {MIN_FREE_DAYS} day or more in their current period."
    elif upgrades == 0:
        note += "the history holds no such upgrade yet, so there is nothing to compare with."
    elif upgrades < FEW_UPGRADES:
        note += f"of only {upgrades:,} upgrade{'s' if upgrades > 1 else ''}, so read it as a rough guide."
    else:
        note += f"of {upgrades:,} upgrades."
    return Section(
        "Free users to offer a subscription",
        _table(
            targets.assign(name=targets["first_name"].fillna("") + " " + targets["last_name"].fillna("")),
            Columns(
                {
                    "user_id": "User",
                    "name": "Name",
                    "plays": "Plays",
                    "sessions": "Sessions",
                    "days_free": "Days free",
                    "plays_per_day": "Plays per day",
                    "upgraders_below": "Past upgraders less active",
                },
                {
                    "Plays": _count,
                    "Sessions": _count,
                    "Days free": lambda v: f"{float(v):,.1f}",
                    "Plays per day": _decimal,
                    "Past upgraders less active": _share,
                },
            ),
        ),
        note,
        chart=False,
        question="promotion_targets",
        params={"n": 15},
        figures=targets,
    )


def _playlists(a: Analytics) -> list[Section]:
    """A first step toward playlists: songs that go together, beyond their popularity."""
    seeds = a.co_play_seeds(3, SEED_SESSIONS)
    measure = (
        "Lift: how many times more often a song is played in a session with the seed than in any session (1 is what "
        "its popularity predicts); 'expected' is how many sessions would hold both if the two were unrelated. Only "
        f"songs in at least {MIN_TOGETHER} of the seed's sessions and {MIN_SONG_SESSIONS} sessions in all are "
        f"ranked; fewer is noise. A song in {MAX_SEED_SHARE:.0%} of all sessions or more is no seed: nothing can go "
        "with it much more often than chance already does."
    )
    parts = [
        Section(
            "Songs played together",
            _table(seeds, Columns({"title": "Song", "artist": "Artist", "sessions": "Sessions"}, {"Sessions": _count}))
            if len(seeds)
            else f"<p class='empty'>Too few sessions for an answer: no song was played in {SEED_SESSIONS} sessions "
            f"or more (and under {MAX_SEED_SHARE:.0%} of all).</p>",
            f"A first step toward playlists: for the songs played in the most sessions (at least {SEED_SESSIONS}), "
            f"the songs that go with them beyond their popularity. {measure}",
            chart=False,
            question="co_play_seeds",
            params={"n": 3, "min_sessions": SEED_SESSIONS},
            figures=seeds,
        )
    ]
    for title, artist, sessions in zip(seeds["title"], seeds["artist"], seeds["sessions"], strict=True):
        together = a.played_with(str(title), str(artist), 10)
        body = (
            _table(
                together,
                Columns(
                    {
                        "title": "Song",
                        "artist": "Artist",
                        "together": "Sessions together",
                        "expected": "Expected",
                        "song_sessions": "Sessions with the song",
                        "lift": "Lift",
                    },
                    {
                        "Sessions together": _count,
                        "Expected": lambda v: f"{v:,.1f}",
                        "Sessions with the song": _count,
                        "Lift": lambda v: f"{v:,.1f}×",
                    },
                ),
            )
            if len(together)
            else f"<p class='empty'>Too thin for an answer: no song played in {MIN_SONG_SESSIONS} sessions or more "
            f"shares {MIN_TOGETHER} of its {int(sessions):,} sessions.</p>"
        )
        parts.append(
            Section(
                f"Played in the same session as “{title}” by {artist}",
                body,
                f"The seed was played in {int(sessions):,} sessions; lift as above.",
                chart=False,
                question="played_with",
                params={"title": str(title), "artist": str(artist), "n": 10},
                figures=together,
            )
        )
    return parts


def _weekdays(a: Analytics, period: tuple[pd.Timestamp, pd.Timestamp]) -> Section:
    """Average plays per weekday over the whole days the data covers: a month has five of some weekdays and four of
    others, so totals would rank the weekdays by the calendar."""
    start, end = _whole(period)
    daily = a.plays_per_day().assign(day=lambda f: pd.to_datetime(f["day"])).set_index("day")["plays"]
    days = daily.reindex(pd.date_range(start, end, freq="D"), fill_value=0) if start <= end else daily.iloc[:0]
    by = days.groupby(pd.DatetimeIndex(days.index).dayofweek)
    mean, count = by.mean().reindex(range(7)), by.size().reindex(range(7), fill_value=0)
    shown = [d for d in range(7) if count[d]]
    return Section(
        "Average plays per weekday",
        _vbar([WEEKDAYS[d] for d in shown], [float(mean[d]) for d in shown], "plays per day (average)", "weekday (UTC)")
        if shown
        else "<p class='empty'>The data covers no whole day.</p>",
        "Plays per day averaged over each weekday's whole days in the data (UTC): "
        + ", ".join(f"{count[d]} {WEEKDAYS[d]}" for d in shown)
        + ".",
    )


def _when_and_on_what(a: Analytics, period: tuple[pd.Timestamp, pd.Timestamp] | None) -> list[Section]:
    """Plays by hour, weekday, browser and operating system."""
    parts: list[Section] = []
    hours = a.plays_by_hour()
    parts.append(
        Section(
            "Plays by hour of day",
            _vbar([str(x) for x in hours["hour"]], hours["plays"].tolist(), "plays", "hour (UTC)"),
        )
    )
    if period is not None:
        parts.append(_weekdays(a, period))
    agents = a.plays_by_agent()
    for what in ("browser", "os"):
        by = agents.groupby(what)["plays"].sum().sort_values(ascending=False)
        title = "Plays by browser" if what == "browser" else "Plays by operating system"
        parts.append(Section(title, _hbar(by.index.tolist(), by.tolist(), "plays")))
    return parts


def _page(
    source: str, h: dict[str, int | float], period: tuple[pd.Timestamp, pd.Timestamp] | None, parts: list[Section]
) -> str:
    """The page around the sections: title, what it covers, headline cards, contents, styles, and the hook the
    tests read."""
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
    covers = f"Plays from {_day(period[0])} to {_day(period[1])} (UTC)" if period is not None else "No plays loaded yet"
    contents = "".join(f"<li><a href='#{p.anchor}'>{html.escape(p.title)}</a></li>" for p in parts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sparkify listening report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 52rem; padding: 0 1rem; color: #222;
  line-height: 1.4; }}
h1 {{ margin-bottom: .2rem; }} h2 {{ font-size: 1.1rem; margin: 0 0 .3rem; }}
.meta {{ color: #666; margin-top: 0; }} .period {{ font-size: 1.05rem; margin: .2rem 0; }}
.cards {{ display: flex; gap: .8rem; flex-wrap: wrap; }}
.card {{ border: 1px solid #ddd; border-radius: 8px; padding: .6rem 1rem; }}
.card .n {{ font-size: 1.5rem; font-weight: 600; }}
nav ol {{ columns: 2; font-size: .9rem; padding-left: 1.2rem; }}
section {{ margin: 1.8rem 0; break-inside: avoid; page-break-inside: avoid; }}
section svg {{ max-width: 100%; height: auto; display: block; }}
table.data {{ border-collapse: collapse; font-size: .85rem; }}
table.data td, table.data th {{ padding: .2rem .6rem; border-bottom: 1px solid #eee; text-align: left; }}
.note, .empty {{ color: #555; font-size: .9rem; margin: 0 0 .5rem; }}
@media print {{
  @page {{ size: A4; margin: 14mm; }}
  body {{ max-width: none; margin: 0; padding: 0; font-size: 10pt; }}
  section {{ margin: 1rem 0; }} nav {{ display: none; }}
}}
</style></head>
<body>
<h1>Sparkify listening report</h1>
<p class="period">{html.escape(covers)}</p>
<p class="meta">Read from {html.escape(source)} &middot; generated {generated} &middot; all times UTC</p>
<div class="cards">{cards}</div>
<nav><h2>Contents</h2><ol>{contents}</ol></nav>
{"".join(p.html() for p in parts)}
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
