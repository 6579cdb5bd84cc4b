// Smoke: a few virtual users through the whole mix for 30 s (x TIME_SCALE): every
// route answers with the right body, nothing fails, nothing is shed.
import { login, mixRequest, seconds, summaryTrendStats, thresholds, SCALE } from './lib/mix.js';

export const options = {
  vus: Math.max(1, Math.round(5 * SCALE)),
  duration: seconds('30s'),
  thresholds: Object.assign({ fluxgate_shed: ['count==0'] }, thresholds),
  summaryTrendStats,
};

export const setup = login;
export default mixRequest;
