"""The consumer a team would write in an afternoon, as the bench's peer for `evpipe
ingest`: confluent-kafka + psycopg2 `execute_values`, sessions in arrival order (a
visitor's event more than 30 minutes after its last one starts a new session), no
validation beyond JSON parsing, at-least-once (database commit, then offsets commit).
Run by Debian's /usr/bin/python3 (python3-confluent-kafka, python3-psycopg2).

usage: peer_consumer.py BROKERS TOPIC GROUP DATABASE_URL EXPECTED_MESSAGES
Exits once EXPECTED_MESSAGES messages were read (valid or not) and stored."""
import json
import sys
import uuid
from datetime import datetime, timezone

import psycopg2
import psycopg2.extras
from confluent_kafka import Consumer

CONVERSIONS = {"PURCHASE", "SIGN_UP", "APPOINTMENT_COMPLETE", "FORM_SUBMIT", "LEAD"}
SESSION_GAP_S = 30 * 60


def ts(value):
    if isinstance(value, (int, float)):  # epoch milliseconds, as the contract allows
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def main():
    brokers, topic, group, dburl, expected = sys.argv[1:6]
    expected = int(expected)
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    db = psycopg2.connect(dburl)
    cur = db.cursor()
    cur.execute('SELECT unnest(enum_range(NULL::"EventType"))::text')
    types = {r[0] for r in cur.fetchall()}
    sessions = {}  # visitorId -> [session id, last event time]
    seen = idle = 0
    while seen < expected:
        msgs = consumer.consume(num_messages=2000, timeout=1.0)
        if not msgs:
            idle += 1
            if idle > 60:
                sys.exit(f"peer_consumer: nothing to read for 60 s after {seen} of {expected}")
            continue
        idle = 0
        ses_rows, ev_rows, pv_rows, conv_rows = {}, [], [], []
        for m in msgs:
            if m.error():
                continue
            seen += 1
            try:
                e = json.loads(m.value())
                at = ts(e["timestamp"])
                visitor = e["visitorId"]
                etype = e["type"]
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            if etype not in types or not isinstance(visitor, str):
                continue
            s = sessions.get(visitor)
            if s is None or (at - s[1]).total_seconds() > SESSION_GAP_S:
                s = [str(uuid.uuid4()), at, at]
                sessions[visitor] = s
            s[1] = max(s[1], at)
            ses_rows[s[0]] = (s[0], visitor, s[2], s[1], e.get("userAgent"))
            ev_rows.append((str(uuid.uuid4()), e.get("eventId") or str(uuid.uuid4()), s[0],
                            etype, visitor, e.get("url"),
                            json.dumps(e["properties"]) if "properties" in e else None, at))
            if etype == "PAGE_VIEW":
                pv_rows.append((str(uuid.uuid4()), e.get("eventId"), s[0], visitor,
                                e.get("url") or "", e.get("title"), at))
            if etype in CONVERSIONS:
                conv_rows.append((str(uuid.uuid4()), e.get("eventId"), s[0], visitor, etype, at))
        psycopg2.extras.execute_values(
            cur, 'INSERT INTO analytics_sessions (id, "visitorId", "startedAt", "endedAt", '
            '"userAgent") VALUES %s ON CONFLICT (id) DO UPDATE SET "endedAt" = '
            'EXCLUDED."endedAt", "eventCount" = analytics_sessions."eventCount" + 1',
            list(ses_rows.values()), page_size=1000)
        psycopg2.extras.execute_values(
            cur, 'INSERT INTO analytics_events (id, "eventId", "sessionId", type, "visitorId", '
            'url, properties, "occurredAt") VALUES %s ON CONFLICT DO NOTHING', ev_rows,
            page_size=1000)
        psycopg2.extras.execute_values(
            cur, 'INSERT INTO page_views (id, "eventId", "sessionId", "visitorId", url, title, '
            '"viewedAt") VALUES %s ON CONFLICT DO NOTHING', pv_rows, page_size=1000)
        psycopg2.extras.execute_values(
            cur, 'INSERT INTO conversion_events (id, "eventId", "sessionId", "visitorId", type, '
            '"occurredAt") VALUES %s ON CONFLICT DO NOTHING', conv_rows, page_size=1000)
        db.commit()
        consumer.commit(asynchronous=False)
    consumer.close()
    db.close()


if __name__ == "__main__":
    main()
