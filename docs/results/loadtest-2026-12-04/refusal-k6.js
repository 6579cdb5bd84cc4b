import http from 'k6/http';
const body = open('/tmp/up/body.json');
export const options = { vus: 3000, iterations: 60000 };
export default function () {
  const r = http.post('http://127.0.0.1:8380/api/echo', body, { headers: { 'Content-Type': 'application/json' } });
}
