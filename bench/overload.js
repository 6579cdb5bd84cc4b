// Open-model overload for bench/overload.sh: a constant arrival rate, whatever the
// server does (a closed loop like wrk would slow down with the server and hide the
// collapse). Admitted (2xx) latency is kept apart from sheds (429/503) and errors.
import http from 'k6/http';
import { Trend, Counter } from 'k6/metrics';

const admitted = new Trend('admitted_duration', true);
const good = new Counter('good_responses');
const shed = new Counter('shed_responses');
const failed = new Counter('failed_responses');

export const options = {
  scenarios: {
    load: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 1000),
      timeUnit: '1s',
      duration: __ENV.DURATION || '20s',
      preAllocatedVUs: Number(__ENV.VUS || 400),
      maxVUs: Number(__ENV.MAX_VUS || 4000),
    },
  },
  summaryTrendStats: ['p(50)', 'p(99)', 'max'],
  discardResponseBodies: true,
};

export default function () {
  const res = http.get(`${__ENV.BASE_URL}/api/status`, { timeout: '10s' });
  if (res.status >= 200 && res.status < 300) {
    good.add(1);
    admitted.add(res.timings.duration);
  } else if (res.status === 429 || res.status === 503) {
    shed.add(1);
  } else {
    failed.add(1); // status 0 = connection error, reset or client timeout
  }
}

export function handleSummary(data) {
  return { [__ENV.OUT]: JSON.stringify(data) };
}
