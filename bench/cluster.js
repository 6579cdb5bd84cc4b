// Load for bench/cluster.sh: a constant arrival rate spread round-robin over the
// gateway replicas in GATEWAYS (comma-separated base URLs), as a load balancer in
// front of them would. Counts 2xx (admitted), sheds by reason (x-fluxgate-shed) and
// anything else as a failure: a 5xx without a shed reason, or no answer at all.
import http from 'k6/http';
import { Counter } from 'k6/metrics';
import exec from 'k6/execution';

const admitted = new Counter('admitted');
const shedOverloaded = new Counter('shed_overloaded');
const shedRate = new Counter('shed_rate_limited');
const shedOther = new Counter('shed_other');
const failed = new Counter('failed');
const gateways = (__ENV.GATEWAYS || 'http://127.0.0.1:18501').split(',');

export const options = {
  scenarios: {
    load: {
      executor: 'constant-arrival-rate',
      rate: Number(__ENV.RATE || 600),
      timeUnit: '1s',
      duration: __ENV.DURATION || '20s',
      preAllocatedVUs: Number(__ENV.VUS || 300),
      maxVUs: Number(__ENV.MAX_VUS || 2000),
    },
  },
  discardResponseBodies: true,
  summaryTrendStats: ['p(50)', 'p(99)', 'max'],
};

export default function () {
  const base = gateways[exec.scenario.iterationInTest % gateways.length];
  const res = http.get(`${base}/work`, { timeout: '10s' });
  if (res.status >= 200 && res.status < 300) {
    admitted.add(1);
  } else if (res.headers['X-Fluxgate-Shed'] === 'overloaded' || res.headers['X-Fluxgate-Shed'] === 'queue_timeout') {
    shedOverloaded.add(1);
  } else if (res.headers['X-Fluxgate-Shed'] === 'rate_limited') {
    shedRate.add(1);
  } else if (res.headers['X-Fluxgate-Shed']) {
    shedOther.add(1);
  } else {
    failed.add(1);
  }
}

export function handleSummary(data) {
  return { [__ENV.OUT]: JSON.stringify(data) };
}
