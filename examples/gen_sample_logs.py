#!/usr/bin/env python3
"""Writes the sample gateway logs in examples/logs (deterministic).

gateway.log: the gateway's JSON lines over two days, with the optional
fields (model, tokens, tier, cache_key) on LLM calls; nginx-access.log:
the same kind of traffic in nginx "combined" + $request_time.

    python3 examples/gen_sample_logs.py
"""
import json
import math
import os
import random
import time

HERE = os.path.dirname(os.path.abspath(__file__))
START = 1761264000  # 2025-10-24T00:00:00Z
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

USERS = [("admin@example.com", "professional"), ("dev@example.com", "starter"), ("ops@example.com", "enterprise"),
         ("trial-1@example.com", "trial"), ("trial-2@example.com", "trial"), ("analyst@example.com", "professional"),
         ("bot@example.com", "starter"), ("ceo@example.com", "enterprise")]
MODELS = [("gpt-4", 0.25), ("gpt-4-turbo", 0.2), ("gpt-3.5-turbo", 0.25), ("claude-3-haiku", 0.15),
          ("claude-3-sonnet", 0.1), ("llama-3-70b", 0.05)]
ENDPOINTS = [  # method, path, service, weight, median latency s, size
    ("POST", "/api/v1/llm/chat/completions", "llm", 40, 0.85, 1800),
    ("POST", "/api/v1/embeddings", "embeddings", 20, 0.12, 6200),
    ("POST", "/api/v1/search", "search", 15, 0.18, 3100),
    ("GET", "/api/v1/search/suggest", "search", 5, 0.03, 400),
    ("POST", "/api/v1/tts", "tts", 5, 1.2, 48000),
    ("POST", "/api/v1/stt", "stt", 5, 2.1, 900),
    ("GET", "/api/v1/users/{id}/usage", "other", 5, 0.04, 700),
    ("GET", "/api/v1/jobs/{id}", "other", 3, 0.015, 350),
    ("GET", "/healthz", "other", 2, 0.001, 2),
]


def pick(rnd, items, weight):
    total = sum(weight(i) for i in items)
    r = rnd.random() * total
    for i in items:
        r -= weight(i)
        if r < 0:
            return i
    return items[-1]


def hour_weight(h):
    # business hours peak around 14:00 UTC
    return 0.3 + math.exp(-((h - 14) ** 2) / 18.0)


def events(rnd, n):
    hours = [hour_weight(h) for h in range(48)]
    total = sum(hours)
    for _ in range(n):
        r = rnd.random() * total
        h = 0
        while r > hours[h]:
            r -= hours[h]
            h += 1
        t = START + h * 3600 + rnd.random() * 3600
        yield t


def main():
    rnd = random.Random(7)
    times = sorted(events(rnd, 5000))
    with open(os.path.join(HERE, "logs", "gateway.log"), "w") as out:
        prompts = []
        for t in times:
            method, path, service, _, lat, size = pick(rnd, ENDPOINTS, lambda e: e[3])
            path = path.replace("{id}", str(1000 + int(rnd.random() * 9000)))
            user, tier = USERS[int(rnd.random() ** 1.6 * len(USERS))]
            status = 200
            r = rnd.random()
            if r < 0.02:
                status = 429
            elif r < 0.03:
                status = 500
            elif r < 0.04:
                status = 400
            dur = lat * math.exp(0.5 * rnd.gauss(0, 1)) if status not in (429,) else 0.003
            rec = {
                "timestamp": "%s.%03dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(t))), int((t % 1) * 1000)),
                "user_id": user, "method": method, "path": path, "status": status,
                "duration_ms": round(dur * 1000, 1), "size": int(size * math.exp(0.3 * rnd.gauss(0, 1))) if status < 400 else 150,
                "ip_address": "10.0.%d.%d" % (USERS.index((user, tier)), 10 + int(rnd.random() * 200)),
                "user_agent": "python-requests/2.31.0", "service": service, "tier": tier,
            }
            if service == "llm" and status == 200:
                model = pick(rnd, MODELS, lambda m: m[1])[0]
                rec["model"] = model
                rec["input_tokens"] = int(rnd.lognormvariate(6.3, 0.9))
                rec["output_tokens"] = int(rnd.lognormvariate(5.3, 0.7))
                # about a third of prompts repeat an earlier one
                if prompts and rnd.random() < 0.33:
                    rec["cache_key"] = rnd.choice(prompts)
                else:
                    key = "%016x" % rnd.getrandbits(64)
                    prompts.append(key)
                    rec["cache_key"] = key
            if service == "embeddings" and status == 200:
                rec["model"] = "text-embedding-3-small"
                rec["input_tokens"] = int(rnd.lognormvariate(5.5, 0.8))
            out.write(json.dumps(rec, separators=(",", ":")) + "\n")

    rnd = random.Random(11)
    times = sorted(events(rnd, 3000))
    with open(os.path.join(HERE, "logs", "nginx-access.log"), "w") as out:
        for t in times:
            method, path, service, _, lat, size = pick(rnd, ENDPOINTS, lambda e: e[3])
            path = path.replace("{id}", str(1000 + int(rnd.random() * 9000)))
            if method == "GET" and rnd.random() < 0.1:
                path += "?page=%d" % (1 + int(rnd.random() * 5))
            user = "user_%03d" % int(rnd.random() ** 1.5 * 40) if rnd.random() > 0.03 else "-"
            status = 200 if rnd.random() > 0.05 else rnd.choice([400, 401, 404, 429, 500, 502, 504])
            dur = 60.0 if status == 504 else lat * math.exp(0.5 * rnd.gauss(0, 1))
            tm = time.gmtime(int(t))
            stamp = "%02d/%s/%04d:%02d:%02d:%02d +0000" % (tm.tm_mday, MONTHS[tm.tm_mon - 1], tm.tm_year, tm.tm_hour, tm.tm_min, tm.tm_sec)
            out.write('10.1.%d.%d - %s [%s] "%s %s HTTP/1.1" %d %d "-" "OpenAI/Python 1.35.3" %.3f\n' % (
                int(rnd.random() * 4), 10 + int(rnd.random() * 200), user, stamp, method, path, status,
                int(size * math.exp(0.3 * rnd.gauss(0, 1))) if status < 400 else 150, dur))


if __name__ == "__main__":
    main()
