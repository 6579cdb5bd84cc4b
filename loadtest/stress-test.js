// Stress: ramp to 20 000 virtual users over 8 minutes to find the breaking point
// (docs/LOADTEST.md). Thresholds are reported, not expected to hold at the top.
import { login, mixRequest, stages, summaryTrendStats, thresholds } from './lib/mix.js';

export const options = {
  stages: stages([
    { duration: '2m', target: 5000 },
    { duration: '2m', target: 10000 },
    { duration: '2m', target: 15000 },
    { duration: '2m', target: 20000 },
    { duration: '1m', target: 0 },
  ]),
  thresholds,
  summaryTrendStats,
};

export const setup = login;
export default mixRequest;
