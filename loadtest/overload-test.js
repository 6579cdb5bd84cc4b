// Overload in the open model: requests arrive at RATE per second whatever the
// gateway does (closed-model virtual users slow down with the server and hide
// overload). Against loadtest/configs/overload.conf (three demo instances that each
// serve 50 requests at once, 100 ms each: 1 500 requests/s together; the 67 % rule
// admits 100 at once, about 1 000/s) the default 3 000/s is twice the capacity: the
// gateway must shed the excess fast and keep admitted latency near the unloaded 100 ms.
//   RATE (3000) x SCALE, DURATION (60s) x TIME_SCALE
import http from 'k6/http';
import { record, seconds, summaryTrendStats, SCALE, BASE_URL } from './lib/mix.js';

export const options = {
  scenarios: {
    overload: {
      executor: 'constant-arrival-rate',
      rate: Math.max(1, Math.round(Number(__ENV.RATE || 3000) * SCALE)),
      timeUnit: '1s',
      duration: seconds(__ENV.DURATION || '60s'),
      preAllocatedVUs: Math.max(10, Math.round(500 * SCALE)),
      maxVUs: Math.max(50, Math.round(5000 * SCALE)),
    },
  },
  thresholds: {
    admitted_duration: ['p(99)<300'],
    real_failures: ['rate<0.001'],
    http_req_failed: ['rate<0.001'],
  },
  summaryTrendStats,
};

export default function () {
  record(http.get(`${BASE_URL}/api/status`, { timeout: '10s', tags: { name: 'GET /api/status' } }), (r) => r.json('status') === 'ok');
}
