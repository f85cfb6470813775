"""The independent expander of calscope's differential test: recurring-ical-events (PyPI).

Reads {"files": [...], "from": ISO, "to": ISO, "tz": NAME} as JSON on stdin and prints, per
file, the instances the library reports in the window: [uid, start, end, status, transp] with
UTC times as YYYY-MM-DDTHH:MM:SSZ, or {"error": "..."} when it cannot read the file.
Floating times and dates are read in the window's zone (the library's rule).
"""
import datetime as dt
import json
import sys
import zoneinfo

import icalendar
import recurring_ical_events

UTC = dt.timezone.utc


def instant(value, tz):
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz)
        return value.astimezone(UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=tz).astimezone(UTC)


def fmt(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    query = json.load(sys.stdin)
    tz = zoneinfo.ZoneInfo(query["tz"])
    start = dt.datetime.fromisoformat(query["from"].replace("Z", "+00:00")).astimezone(tz)
    stop = dt.datetime.fromisoformat(query["to"].replace("Z", "+00:00")).astimezone(tz)
    out = {}
    for path in query["files"]:
        try:
            with open(path, "rb") as f:
                cal = icalendar.Calendar.from_ical(f.read())
            rows = []
            for ev in recurring_ical_events.of(cal).between(start, stop):
                s = ev.get("DTSTART")
                if s is None:
                    continue
                s = s.dt
                e = ev.get("DTEND")
                if e is not None:
                    e = e.dt
                elif ev.get("DURATION") is not None:
                    e = s + ev.get("DURATION").dt
                elif isinstance(s, dt.datetime):
                    e = s
                else:
                    e = s + dt.timedelta(days=1)
                rows.append([
                    str(ev.get("UID", "")),
                    fmt(instant(s, tz)),
                    fmt(instant(e, tz)),
                    str(ev.get("STATUS", "")).upper(),
                    str(ev.get("TRANSP", "")).upper(),
                ])
            rows.sort()
            out[path] = {"instances": rows}
        except Exception as exc:  # the library's failure is data for the comparison
            out[path] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(out, sys.stdout)


main()
