// Spike: 100 -> 5 000 -> 100 virtual users in 2.5 minutes (docs/LOADTEST.md).
import { login, mixRequest, stages, summaryTrendStats, thresholds } from './lib/mix.js';

export const options = {
  stages: stages([
    { duration: '20s', target: 100 },
    { duration: '10s', target: 5000 },
    { duration: '60s', target: 5000 },
    { duration: '10s', target: 100 },
    { duration: '50s', target: 100 },
  ]),
  thresholds,
  summaryTrendStats,
};

export const setup = login;
export default mixRequest;
