// Load: ramp to 10 000 virtual users over 5 minutes, hold 1 minute, ramp down
// (docs/LOADTEST.md). SCALE and TIME_SCALE shrink it; THINK sets the pause between requests.
import { login, mixRequest, stages, summaryTrendStats, thresholds } from './lib/mix.js';

export const options = {
  stages: stages([
    { duration: '5m', target: 10000 },
    { duration: '1m', target: 10000 },
    { duration: '30s', target: 0 },
  ]),
  thresholds,
  summaryTrendStats,
};

export const setup = login;
export default mixRequest;
