import http from 'k6/http';
export const options = { vus: 40, duration: '20s' };
const body = JSON.stringify({ items: Array.from({ length: 100 }, (_, i) => ({ id: i, name: `item-${i}` })) });
export default function () {
  if (__ITER % 2) http.get('http://127.0.0.1:8080/health');
  else http.post('http://127.0.0.1:8080/api/echo', body, { headers: { 'Content-Type': 'application/json' } });
}
