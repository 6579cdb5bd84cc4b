// The seed's traffic mix and everything the tests share: configuration from the
// environment, a real login in setup(), checks on bodies, and sheds kept apart from
// failures.
//
//   BASE_URL    gateway address (default http://127.0.0.1:8080)
//   SCALE       multiplies virtual users / arrival rates (default 1: full size)
//   TIME_SCALE  multiplies every duration (default 1)
//   THINK       seconds a virtual user waits between requests (default 1)
import http from 'k6/http';
import { check, sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
export const SCALE = Number(__ENV.SCALE || 1);
export const TIME_SCALE = Number(__ENV.TIME_SCALE || 1);
export const THINK = Number(__ENV.THINK === undefined ? 1 : __ENV.THINK);

// A deliberate shed (429/503 carrying X-Fluxgate-Shed) is not a failure: it is the
// gateway doing its job. It is counted here, by reason, and excluded from
// http_req_failed by the response callback below.
export const shed = new Counter('fluxgate_shed');
// Real failures only: a connection error, a timeout, a 5xx or 4xx that is not a shed,
// or a 2xx whose body is wrong.
export const realFailures = new Rate('real_failures');
// Latency of admitted (non-shed) requests.
export const admitted = new Trend('admitted_duration', true);

http.setResponseCallback(http.expectedStatuses({ min: 200, max: 399 }, 429, 503));

/** Scales a stage list: VU targets by SCALE (at least 1), durations by TIME_SCALE. */
export function stages(list) {
  return list.map((s) => ({ duration: seconds(s.duration), target: Math.max(1, Math.round(s.target * SCALE)) }));
}

/** `90s`, `2m` → scaled by TIME_SCALE, as k6 duration text. */
export function seconds(text) {
  const match = /^(\d+(?:\.\d+)?)(s|m)$/.exec(text);
  if (!match) throw new Error(`duration ${text}: use s or m`);
  const value = Number(match[1]) * (match[2] === 'm' ? 60 : 1) * TIME_SCALE;
  return `${Math.max(1, Math.round(value))}s`;
}

/** Aggregates in the end-of-test summary and summary.json (p99 included). */
export const summaryTrendStats = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'];

export const thresholds = {
  // Every request, admitted or shed (a shed answers in well under a millisecond).
  http_req_duration: ['p(95)<200'],
  admitted_duration: ['p(95)<200'],
  http_req_failed: ['rate<0.001'],
  real_failures: ['rate<0.001'],
  checks: ['rate>0.999'],
};

// ~100-item JSON body for POST /api/echo (docs/LOADTEST.md).
const ECHO_BODY = JSON.stringify({
  items: Array.from({ length: 100 }, (_, i) => ({ id: i, name: `item-${i}`, price: i * 1.5, tags: ['a', 'b'] })),
});

/** Logs in once for the whole test (a real HS256 token from the demo upstream). */
export function login() {
  const res = http.post(`${BASE_URL}/api/auth/login`, JSON.stringify({ email: 'k6@example.com' }), {
    headers: { 'Content-Type': 'application/json' },
  });
  const token = res.status === 200 ? res.json('token') : null;
  if (!token) throw new Error(`login failed: ${res.status} ${res.body}`);
  return { token };
}

/** Records one response; returns true when it was admitted (not shed). */
export function record(res, bodyCheck) {
  const reason = res.headers['X-Fluxgate-Shed'];
  if ((res.status === 429 || res.status === 503) && reason) {
    shed.add(1, { reason });
    realFailures.add(false);
    return false;
  }
  admitted.add(res.timings.duration);
  const ok = res.status >= 200 && res.status < 300 && check(res, { 'body is right': bodyCheck });
  realFailures.add(!ok);
  return true;
}

const parse = (res) => {
  try {
    return res.json();
  } catch (e) {
    return null;
  }
};

/** One request of the mix: 30 % /health, 20 % /ready, 20 % /api/users (with the
 *  token), 20 % POST /api/echo, 10 % /api/metrics. */
export function mixRequest(data) {
  const pick = Math.random() * 100;
  const params = { timeout: '30s', tags: {} };
  if (pick < 30) {
    params.tags.name = 'GET /health';
    record(http.get(`${BASE_URL}/health`, params), (r) => parse(r)?.status === 'healthy');
  } else if (pick < 50) {
    params.tags.name = 'GET /ready';
    // The demo's /ready is 503 (without X-Fluxgate-Shed) when an instance is over 90 %:
    // a real answer about readiness, checked by its body.
    const res = http.get(`${BASE_URL}/ready`, Object.assign({ responseCallback: http.expectedStatuses(200, 429, 503) }, params));
    if (res.status === 503 && !res.headers['X-Fluxgate-Shed']) {
      realFailures.add(!(parse(res)?.ready === false));
      admitted.add(res.timings.duration);
    } else {
      record(res, (r) => parse(r)?.ready === true);
    }
  } else if (pick < 70) {
    params.tags.name = 'GET /api/users';
    params.headers = { Authorization: `Bearer ${data.token}` };
    record(http.get(`${BASE_URL}/api/users`, params), (r) => Array.isArray(parse(r)?.users));
  } else if (pick < 90) {
    params.tags.name = 'POST /api/echo';
    params.headers = { 'Content-Type': 'application/json' };
    record(http.post(`${BASE_URL}/api/echo`, ECHO_BODY, params), (r) => parse(r)?.echo?.items?.length === 100);
  } else {
    params.tags.name = 'GET /api/metrics';
    record(http.get(`${BASE_URL}/api/metrics`, params), (r) => typeof parse(r)?.total === 'number');
  }
  if (THINK > 0) sleep(THINK * (0.5 + Math.random()));
}
